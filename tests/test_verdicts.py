"""The verdict rules, row by row from SPEC's worked examples, and their edges."""

from __future__ import annotations

import polars as pl
import pytest

from reconcile.errors import OptionError
from reconcile.verdicts import RECONSENTED, decide, resolve_actions
from tests.helpers import contacts_frame, decide_one, events_frame, utc

N = 14155550123

# SPEC "Worked examples": coverage from 2024-03-01T00:00Z, consent time zone UTC.
WORKED_EXAMPLES = [
    (
        "(415) 555-0123",
        "2024-03-10",
        [(N, "DEACTIVATION", "2024-03-10T11:00:00Z")],
        "deactivated",
        None,
    ),
    (
        "415.555.0123",
        "2024-03-10T11:00:01Z",
        [(N, "DEACTIVATION", "2024-03-10T11:00:00Z")],
        "ok",
        RECONSENTED,
    ),
    (
        "4155550123",
        "2024-03-10T11:00:00Z",
        [(N, "DEACTIVATION", "2024-03-10T11:00:00Z")],
        "deactivated",
        None,
    ),
    (
        "+1 415 555 0123",
        "2024-03-10T06:00:00-05:00",
        [(N, "DEACTIVATION", "2024-03-10T11:00:00Z")],
        "deactivated",
        None,
    ),
    (
        "1-415-555-0123",
        "3/9/2024 11:30 PM",
        [(N, "DEACTIVATION", "2024-03-10T11:00:00Z")],
        "deactivated",
        None,
    ),
    (
        "4155550123",
        "2024-03-15",
        [(N, "SUSPENSION", "2024-04-01"), (N, "REACTIVATION", "2024-04-05")],
        "ok",
        None,
    ),
    (
        "4155550123",
        "2024-03-15",
        [(N, "REACTIVATION", "2024-04-01"), (N, "SUSPENSION", "2024-04-05")],
        "suspended",
        None,
    ),
    ("4155550123", "2024-03-20", [(N, "SUSPENSION", "2024-03-05")], "suspended", None),
    ("4155550123", None, [(N, "DEACTIVATION", "2024-04-02")], "deactivated", "no consent date"),
    ("4155550123", None, [], "unverified", "no consent date"),
    ("4155550123", "2024-02-30", [], "unverified", "2024-02-30"),
    ("4155550123", "2024-02-15", [], "unverified", "before coverage"),
    ("4155550123", "2024-03-01", [], "ok", None),
    ("415-555-0123 ext. 45", "2024-05-01", [], "ok", None),
    ("4155550123.0", "2024-05-01", [], "ok", None),
    ("(123) 555-0123", "2024-05-01", [], "invalid_number", None),
    ("4.15555E+09", "2024-05-01", [], "invalid_number", "scientific notation"),
    ("011 44 20 7946 0958", "2024-05-01", [], "ok", None),
    ("+44 20 7946 095", "2024-05-01", [], "invalid_number", None),
]


@pytest.mark.parametrize(("phone", "consent", "events", "verdict", "reason_part"), WORKED_EXAMPLES)
def test_worked_examples(phone, consent, events, verdict, reason_part):
    row = decide_one(phone, consent, events)
    assert row["verdict"] == verdict, row
    if reason_part is None and verdict == "ok":
        assert row["reason"] is None
    elif reason_part is not None:
        assert reason_part in row["reason"], row


def test_same_day_deactivation_against_date_only_consent_is_deactivated():
    row = decide_one("4155550123", "2024-03-10", [(N, "DEACTIVATION", "2024-03-10T23:59:59Z")])
    assert row["verdict"] == "deactivated"
    assert row["action"] == "remove"


def test_deactivation_one_second_before_timestamp_consent_is_ok_with_note():
    row = decide_one(
        "4155550123", "2024-03-10T11:00:01Z", [(N, "DEACTIVATION", "2024-03-10T11:00:00Z")]
    )
    assert (row["verdict"], row["action"], row["reason"]) == ("ok", "keep", RECONSENTED)


def test_activation_counts_like_a_deactivation():
    row = decide_one("4155550123", "2024-03-10", [(N, "ACTIVATION", "2024-03-11")])
    assert row["verdict"] == "deactivated"
    assert row["event_type"] == "ACTIVATION"


def test_deactivation_wins_over_a_later_suspension():
    events = [(N, "DEACTIVATION", "2024-03-11"), (N, "SUSPENSION", "2024-03-12")]
    assert decide_one("4155550123", "2024-03-10", events)["verdict"] == "deactivated"


def test_suspension_sharing_the_latest_instant_makes_suspended():
    events = [
        (N, "REACTIVATION", "2024-04-05T10:00:00Z"),
        (N, "SUSPENSION", "2024-04-05T10:00:00Z"),
    ]
    assert decide_one("4155550123", "2024-03-15", events)["verdict"] == "suspended"


def test_suspended_even_when_consent_is_before_coverage():
    row = decide_one("4155550123", "2023-01-01", [(N, "SUSPENSION", "2024-03-05")])
    assert row["verdict"] == "suspended"


def test_deactivated_even_when_consent_is_before_coverage():
    row = decide_one("4155550123", "2023-01-01", [(N, "DEACTIVATION", "2024-03-05")])
    assert row["verdict"] == "deactivated"


def test_unparseable_consent_with_a_deactivation_is_deactivated_and_quotes_the_value():
    row = decide_one("4155550123", "2024-02-30", [(N, "DEACTIVATION", "2020-01-01")])
    assert row["verdict"] == "deactivated"
    assert "'2024-02-30'" in row["reason"]


def test_no_history_makes_every_valid_row_unverified():
    row = decide_one("4155550123", "2024-05-01", [], coverage_start=None)
    assert row["verdict"] == "unverified"
    assert "no history" in row["reason"]


def test_invalid_number_comes_first():
    row = decide_one("", "2024-05-01", [], coverage_start=None)
    assert row["verdict"] == "invalid_number"
    assert row["reason"] == "invalid number: empty phone cell"


def test_consent_timezone_moves_the_boundary():
    # 2024-03-10 in New York starts at 05:00Z: an event at 04:00Z is before consent.
    events = [(N, "DEACTIVATION", "2024-03-10T04:00:00Z")]
    assert decide_one("4155550123", "2024-03-10", events)["verdict"] == "deactivated"
    ny = decide_one("4155550123", "2024-03-10", events, timezone="America/New_York")
    assert (ny["verdict"], ny["reason"]) == ("ok", RECONSENTED)


def test_duplicate_events_across_two_reports_count_once():
    events = events_frame(
        [
            (N, "DEACTIVATION", "2024-03-12T08:00:00Z", "report-a", None, "Verizon Wireless"),
            (N, "DEACTIVATION", "2024-03-12T08:00:00Z", "report-b", None, "Verizon Wireless"),
        ]
    )
    contacts = contacts_frame([("4155550123", "2024-03-10"), ("4155550123", "2024-03-13")])
    result = decide(contacts, events, utc("2024-03-01"))
    assert result.height == 2  # one row per contact, never one per event
    assert result.get_column("verdict").to_list() == ["deactivated", "ok"]
    assert result.row(0, named=True)["report_id"] == "report-a"


def test_evidence_is_the_latest_qualifying_event_with_its_suggested_number():
    events = events_frame(
        [
            (N, "DEACTIVATION", "2024-03-11T08:00:00Z", "r1", None, "AT&T Mobility"),
            (N, "DEACTIVATION", "2024-04-11T08:00:00Z", "r2", 14155550999, "Verizon Wireless"),
            (N, "SUSPENSION", "2024-03-20T08:00:00Z", "r3"),
        ]
    )
    row = decide(contacts_frame([("4155550123", "2024-03-10")]), events, utc("2024-03-01")).row(
        0, named=True
    )
    assert row["verdict"] == "deactivated"
    assert row["event_date"] == "2024-04-11T08:00:00Z"
    assert row["network"] == "Verizon Wireless"
    assert row["report_id"] == "r2"
    assert row["suggested_number"] == "+14155550999"
    assert "+14155550999" in row["reason"]


def test_events_of_other_numbers_do_not_matter():
    row = decide_one("4155550123", "2024-03-10", [(14155550124, "DEACTIVATION", "2024-03-11")])
    assert row["verdict"] == "ok"


def test_rows_keep_their_order_and_count():
    rows = [("4155550123", "2024-03-10"), ("", None), ("4155550124", "2024-01-01")] * 50
    result = decide(
        contacts_frame(rows), events_frame([(N, "DEACTIVATION", "2024-03-11")]), utc("2024-03-01")
    )
    assert result.get_column("row").to_list() == list(range(1, 151))
    assert result.get_column("verdict").to_list()[:3] == [
        "deactivated",
        "invalid_number",
        "unverified",
    ]


def test_action_overrides_apply_per_verdict():
    actions = resolve_actions({"unverified": "remove", "suspended": "review"})
    contacts = contacts_frame([("4155550123", "2023-01-01"), ("4155550124", "2024-03-10")])
    events = events_frame([(14155550124, "SUSPENSION", "2024-03-11")])
    result = decide(contacts, events, utc("2024-03-01"), actions)
    assert result.select("verdict", "action").rows() == [
        ("unverified", "remove"),
        ("suspended", "review"),
    ]


def test_resolve_actions_refuses_unknown_names():
    with pytest.raises(OptionError, match="'bogus' is not a verdict"):
        resolve_actions({"bogus": "remove"})
    with pytest.raises(OptionError, match="--unverified 'drop' is not an action"):
        resolve_actions({"unverified": "drop"})


def test_decide_accepts_empty_events():
    result = decide(
        contacts_frame([("4155550123", "2024-03-10")]), events_frame([]), utc("2024-03-01")
    )
    assert result.get_column("verdict").to_list() == ["ok"]
    assert isinstance(result, pl.DataFrame)


def test_a_consent_date_in_the_future_counts_as_no_consent():
    from datetime import UTC, datetime

    from reconcile.consent import reject_future

    contacts = contacts_frame([("4155550123", "2099-01-01"), ("4155550124", "2099-01-01")])
    fixed = reject_future(
        contacts.select("consent_boundary", "consent_status"), datetime(2024, 6, 1, tzinfo=UTC)
    )
    contacts = contacts.with_columns(fixed)
    events = events_frame([(N, "DEACTIVATION", "2024-03-11")])
    rows = decide(contacts, events, utc("2024-03-01")).rows(named=True)
    assert rows[0]["verdict"] == "deactivated"  # 2099 would otherwise keep it as re-consented
    assert "consent date in the future '2099-01-01'" in rows[0]["reason"]
    assert rows[1]["verdict"] == "unverified"


def _other_evidence(rows: list[tuple[str, str, bool, str | None, str]]) -> pl.DataFrame:
    """Events of +14155550123 from (type, ISO instant or day, day_only, detail, network)."""
    frame = events_frame(
        [(N, kind, when, f"r-{index}") for index, (kind, when, *_r) in enumerate(rows)]
    )
    return frame.with_columns(
        day_only=pl.Series([row[2] for row in rows], dtype=pl.Boolean),
        detail=pl.Series([row[3] for row in rows], dtype=pl.String),
        network_name=pl.Series([row[4] for row in rows], dtype=pl.String),
    )


# SPEC's worked examples with day-only events (a day list names 2024-03-10: compared at
# 2024-03-11T12:00Z) and delivery failures (counted like a DEACTIVATION at their instant)
DAY_ONLY = ("DEACTIVATION", "2024-03-10", True, None, "Twilio")
VONAGE_DAY = ("DEACTIVATION", "2024-03-10", True, "may be a port", "Vonage")
FAILED = (
    "DELIVERY_FAILED",
    "2024-03-10T11:00:00Z",
    False,
    "error 3041 EC_DEACTIVATED_NUMBER, message id m-1",
    "Infobip delivery reports",
)
OTHER_EVIDENCE_EXAMPLES = [
    ("2024-03-10", [DAY_ONLY], "deactivated", "DEACTIVATION on 2024-03-10 (day only)"),
    ("2024-03-09", [DAY_ONLY], "deactivated", "compared as 2024-03-11T12:00:00Z"),
    ("2024-03-10T23:59:59-08:00", [DAY_ONLY], "deactivated", None),  # 03-11 07:59Z
    ("2024-03-11T11:59:59Z", [DAY_ONLY], "deactivated", None),  # the next morning UTC
    ("2024-03-11T12:00:00Z", [DAY_ONLY], "deactivated", None),  # the tie counts
    ("2024-03-11T12:00:01Z", [DAY_ONLY], "ok", RECONSENTED),
    ("2024-03-12", [DAY_ONLY], "ok", RECONSENTED),
    (None, [DAY_ONLY], "deactivated", "no consent date"),
    (
        "2024-03-10",
        [VONAGE_DAY],
        "deactivated",
        "(day only), compared as 2024-03-11T12:00:00Z (may be a port)",
    ),
    ("2024-03-10", [FAILED], "deactivated", "(error 3041 EC_DEACTIVATED_NUMBER, message id m-1)"),
    ("2024-03-10T11:00:00Z", [FAILED], "deactivated", "DELIVERY_FAILED on 2024-03-10T11:00:00Z"),
    ("2024-03-10T11:00:01Z", [FAILED], "ok", RECONSENTED),
    # a later suspension is still the latest event after a day-only deactivation compared
    # earlier, but the deactivation after consent comes first in the table
    (
        "2024-03-10",
        [DAY_ONLY, ("SUSPENSION", "2024-03-12T00:00:00Z", False, None, "X")],
        "deactivated",
        None,
    ),
    # a suspension on 03-11 may be after the deactivation (any time on 03-10): for "the
    # most recent event" the day-only one counts from its earliest start, 03-09 10:00Z, so
    # the suspension is the latest (suppress, not keep)
    (
        "2024-03-12",
        [DAY_ONLY, ("SUSPENSION", "2024-03-11T09:00:00Z", False, None, "X")],
        "suspended",
        "SUSPENSION on 2024-03-11T09:00:00Z is the latest event",
    ),
    (
        "2024-03-11T13:00:00Z",
        [DAY_ONLY, ("SUSPENSION", "2024-03-10T06:00:00Z", False, None, "X")],
        "suspended",
        None,
    ),
    # a suspension before the day can have started anywhere is not the latest
    (
        "2024-03-12",
        [DAY_ONLY, ("SUSPENSION", "2024-03-09T09:59:59Z", False, None, "X")],
        "ok",
        RECONSENTED,
    ),
]


@pytest.mark.parametrize(("consent", "events", "verdict", "reason_part"), OTHER_EVIDENCE_EXAMPLES)
def test_worked_examples_with_day_lists_and_delivery_failures(
    consent, events, verdict, reason_part
):
    result = decide(
        contacts_frame([("(415) 555-0123", consent)]), _other_evidence(events), utc("2024-03-01")
    )
    row = result.row(0, named=True)
    assert row["verdict"] == verdict, row
    if reason_part is not None:
        assert reason_part in row["reason"], row
    if verdict == "deactivated" and events[0][2]:
        assert row["event_date"] == "2024-03-10 (day only)"
        assert row["network"] == events[0][4]


def test_the_same_day_in_two_lists_counts_once_and_cites_the_first():
    both = _other_evidence([DAY_ONLY, VONAGE_DAY])
    row = decide(contacts_frame([("4155550123", "2024-03-10")]), both, utc("2024-03-01")).row(
        0, named=True
    )
    assert (row["verdict"], row["network"], row["report_id"]) == ("deactivated", "Twilio", "r-0")
