"""Consent parsing: ISO, US month-first, Salesforce style, Excel cells, time zones."""

from __future__ import annotations

import itertools

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile import consent
from reconcile.consent import ConsentTally, parse_consent, parse_utc_instants
from reconcile.errors import OptionError

PARSED = [
    ("2024-03-10", "2024-03-10T00:00:00"),
    ("2024-3-5", "2024-03-05T00:00:00"),
    ("2024-03-10T11:00", "2024-03-10T11:00:00"),
    ("2024-03-10 11:00", "2024-03-10T11:00:00"),
    ("2024-03-10T11:00:01Z", "2024-03-10T11:00:01"),
    ("2024-03-10t11:00:01z", "2024-03-10T11:00:01"),
    ("2024-03-10T11:00:00.250Z", "2024-03-10T11:00:00.250000"),
    ("2024-03-10T11:00:00,5Z", "2024-03-10T11:00:00.500000"),
    ("2024-03-10T06:00:00-05:00", "2024-03-10T11:00:00"),
    ("2024-03-10T16:30:00+0530", "2024-03-10T11:00:00"),
    ("2024-03-10T11:00:00+00", "2024-03-10T11:00:00"),
    ("2024-03-10T11:00:00.000+0000", "2024-03-10T11:00:00"),
    ("3/9/2024", "2024-03-09T00:00:00"),
    ("03/09/2024", "2024-03-09T00:00:00"),
    ("3/9/2024 11:30 PM", "2024-03-09T23:30:00"),
    ("3/9/2024 11:30 pm", "2024-03-09T23:30:00"),
    ("3/9/2024, 11:30 PM", "2024-03-09T23:30:00"),
    ("3/9/2024 12:05 AM", "2024-03-09T00:05:00"),
    ("3/9/2024 12:05 PM", "2024-03-09T12:05:00"),
    ("3/9/2024 7:05:09 AM", "2024-03-09T07:05:09"),
    ("3/9/2024 19:05", "2024-03-09T19:05:00"),
    ("2024-03-10 00:00:00", "2024-03-10T00:00:00"),  # an Excel date cell as read
    ("  2024-03-10  ", "2024-03-10T00:00:00"),
    ("2024-02-29", "2024-02-29T00:00:00"),
]

UNPARSEABLE = [
    "2024-02-30",
    "2023-02-29",
    "2024-13-01",
    "13/45/2024",
    "2024-03-10T24:00",
    "2024-03-10T11:60",
    "3/9/2024 13:00 PM",
    "3/9/2024 0:30 AM",
    "last spring",
    "2024-03-10T11:00:00+2500",
    "3/9/24",
    "45361",
    "2024/03/10",
]


def _boundary(raw: str | None, timezone: str = "UTC", fmt: str | None = None) -> dict:
    return parse_consent(pl.Series([raw], dtype=pl.String), timezone, fmt).row(0, named=True)


@pytest.mark.parametrize(("raw", "expected"), PARSED)
def test_parsed(raw, expected):
    row = _boundary(raw)
    assert row["consent_status"] == "parsed"
    assert row["consent_boundary"].isoformat() == expected + "+00:00"


@pytest.mark.parametrize("raw", UNPARSEABLE)
def test_unparseable(raw):
    row = _boundary(raw)
    assert row == {"consent_boundary": None, "consent_status": "unparseable"}


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_missing(raw):
    assert _boundary(raw) == {"consent_boundary": None, "consent_status": "missing"}


def test_naive_values_are_in_the_consent_timezone():
    row = _boundary("3/9/2024 11:30 PM", "America/New_York")
    assert row["consent_boundary"].isoformat() == "2024-03-10T04:30:00+00:00"
    # an explicit offset is not moved by the time zone option
    row = _boundary("2024-03-10T06:00:00-05:00", "Asia/Tokyo")
    assert row["consent_boundary"].isoformat() == "2024-03-10T11:00:00+00:00"


def test_ambiguous_wall_time_takes_the_earlier_instant():
    # 01:30 happens twice in New York on 2024-11-03: 05:30Z and 06:30Z.
    row = _boundary("2024-11-03 01:30", "America/New_York")
    assert row["consent_boundary"].isoformat() == "2024-11-03T05:30:00+00:00"


def test_wall_time_that_never_existed_is_unparseable():
    assert _boundary("2024-03-10 02:30", "America/New_York")["consent_status"] == "unparseable"


def test_custom_format_reads_day_first_dates():
    row = _boundary("10/03/2024", fmt="%d/%m/%Y")
    assert row["consent_boundary"].isoformat() == "2024-03-10T00:00:00+00:00"
    # ISO stays accepted beside a custom format; US month-first does not
    assert _boundary("2024-03-10", fmt="%d/%m/%Y")["consent_status"] == "parsed"
    assert _boundary("31/12/2024", fmt="%d/%m/%Y")["consent_status"] == "parsed"


def test_unknown_timezone_is_an_option_error():
    with pytest.raises(OptionError, match="Mars/Olympus"):
        _boundary("2024-03-10", "Mars/Olympus")


def test_api_dates_in_both_metadata_shapes():
    values = parse_utc_instants(pl.Series(["2024-03-19", "2024-03-19T00:00:00Z", "junk"]))
    assert [value.isoformat() if value else None for value in values] == [
        "2024-03-19T00:00:00+00:00",
        "2024-03-19T00:00:00+00:00",
        None,
    ]


@pytest.mark.parametrize(
    ("timezone", "value", "expected"),
    [
        ("America/Santiago", "2024-09-08", "2024-09-08T04:00:00+00:00"),  # 00:00 -> 01:00
        ("America/Havana", "2024-03-10", "2024-03-10T05:00:00+00:00"),
        ("America/Santiago", "9/8/2024", "2024-09-08T04:00:00+00:00"),
    ],
)
def test_a_date_whose_midnight_never_existed_starts_when_the_clocks_jump(timezone, value, expected):
    from tests import oracle

    parsed = parse_consent(pl.Series([value]), timezone).row(0)
    assert parsed[1] == "parsed" and parsed[0].isoformat() == expected
    assert oracle.consent_boundary(value, timezone).isoformat() == expected
    # a time written in the skipped hour stays unparseable
    assert parse_consent(pl.Series([value + " 00:30"]), timezone).row(0)[1] == "unparseable"


def _tally_over(values: list[str], cuts: list[int]) -> ConsentTally:
    """A tally fed ``values`` in pieces cut at ``cuts``, as a clean would feed it."""
    tally = ConsentTally("UTC", None)
    bounds = [0, *sorted(set(cuts)), len(values)]
    for start, end in itertools.pairwise(bounds):
        piece = pl.Series(values[start:end], dtype=pl.String)
        tally.add(piece, parse_consent(piece).get_column("consent_status"))
    return tally


@settings(max_examples=60, deadline=None)
@given(
    month_first=st.integers(0, 40),
    ambiguous=st.integers(0, 40),
    day_first=st.integers(1, 40),
    other=st.integers(0, 5),
    seed=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(0, 130), max_size=4),
)
def test_the_day_first_hint_does_not_depend_on_where_pieces_are_cut(
    month_first, ambiguous, day_first, other, seed, cuts
):
    """The hint, the count and the examples are the same for every cut of the file, and
    the hint is given exactly when most dated values read day-first and the format reads
    more values than the default rules (SPEC: the summary names the format)."""
    values = (
        ["12/25/2023"] * month_first
        + ["01/02/2023"] * ambiguous
        + ["13/10/2023"] * day_first
        + ["n/a"] * other
        + ["2099-01-01", "1/2/2099"] * other
    )
    seed.shuffle(values)
    whole = _tally_over(values, [])
    cut = _tally_over(values, [c for c in cuts if c < len(values)])
    assert (cut.hint, cut.unreadable, cut.shown_examples()) == (
        whole.hint,
        whole.unreadable,
        whole.shown_examples(),
    )
    # the future values: the ISO one read both ways, 1/2/2099 too (as February 1st)
    read_then = ambiguous + day_first + 2 * other
    read_now = month_first + ambiguous + 2 * other
    dated_read = ambiguous + day_first + other
    expected = read_then > read_now and dated_read * 2 > month_first + dated_read
    assert whole.hint == ("--consent-format '%d/%m/%Y'" if expected else None)


def test_the_hint_is_not_misled_by_month_first_values_in_earlier_pieces():
    """250 month-first values past the 12th, then 100 day-first ones: the format would
    leave 250 unreadable in place of 100, so no hint, whichever comes first."""
    values = ["12/25/2023"] * 250 + ["13/10/2023"] * 100
    assert _tally_over(values, [250]).hint is None
    assert _tally_over(values[::-1], [100]).hint is None
    assert _tally_over(["13/10/2023"] * 3 + ["01/02/2023"] * 2, [3]).hint == (
        "--consent-format '%d/%m/%Y'"
    )


def test_no_format_is_named_when_the_first_day_first_value_lies_past_the_held_rows(
    monkeypatch,
):
    """The rows between those held and the first day-first value are not kept: the
    format is not judged on part of the column (100 month-first values there would be
    left unreadable by it), whatever the cuts."""
    monkeypatch.setattr(consent, "_HELD_ROWS", 4)
    values = ["2024-01-01"] * 4 + ["12/25/2023"] * 6 + ["13/10/2023"] * 3
    for cuts in ([], [2], [5], [11], [3, 12]):
        tally = _tally_over(values, cuts)
        assert (tally.hint, tally.unreadable) == (None, 3)
    early = ["13/10/2023"] + ["2024-01-01"] * 3 + ["01/02/2023"] * 6 + ["14/10/2023"]
    assert {_tally_over(early, cuts).hint for cuts in ([], [2], [5])} == {
        "--consent-format '%d/%m/%Y'"
    }


def test_future_and_twelve_hour_values_count_as_read_by_the_default_rules():
    """A date in the future was read (and set aside), and a US time with AM/PM is a
    value with a day and a month: neither turns the hint on."""
    future = ["13/10/2023", "10/25/2023", "10/25/2023", "1/2/2099", "1/2/2099"]
    assert _tally_over(future, []).hint is None
    twelve_hour = ["13/10/2023"] * 3 + ["25.10.2023"] * 2 + ["10/25/2023 2:30 PM"] * 2
    assert _tally_over(twelve_hour, []).hint is None
    day_first_pm = ["13/10/2023 2:30 PM", "14/10/2023 11:05 AM", "n/a"]
    tally = _tally_over(day_first_pm, [])
    assert tally.hint == "--consent-format '%d/%m/%Y %I:%M %p'"
    read = parse_consent(pl.Series(day_first_pm), "UTC", "%d/%m/%Y %I:%M %p")
    assert read.get_column("consent_boundary").null_count() == 1
