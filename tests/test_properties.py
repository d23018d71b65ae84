"""Property tests over generated files: no row lost, none twice, kept cells unchanged,
and every verdict equal to a plain-Python oracle of SPEC's rules."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reconcile._pipeline as clean_module
from reconcile.clean import CleanOptions, clean_files
from reconcile.consent import reject_future
from reconcile.history import REPORT_SCHEMA, History
from reconcile.verdicts import decide
from tests import oracle
from tests.helpers import NANP_FORMATS, NOW, contacts_frame, events_frame

NUMBERS = [14155550100 + offset for offset in range(6)]
START = datetime(2024, 3, 1, tzinfo=UTC)
NANP_WRITTEN = st.tuples(
    st.sampled_from(NUMBERS),
    st.sampled_from(NANP_FORMATS),
).map(lambda pair: pair[1].format(a=str(pair[0])[1:4], b=str(pair[0])[4:7], c=str(pair[0])[7:]))
PHONE_CELLS = NANP_WRITTEN | st.sampled_from(
    [
        "4155550100",
        "(415) 555-0101",
        "+1 415 555 0102",
        "415.555.0103 x9",
        "1-415-555-0104",
        "tel:+14155550105",
        "",
        "N/A",
        "(123) 555-0100",
        "4.15555E+09",
        "+44 20 7946 0958",
    ]
)
# Printable ASCII, the delimiters, quotes and newlines, and accented letters whose
# Windows-1252 bytes can never form UTF-8 (so detection is not what is tested here).
TEXT = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126)
    | st.sampled_from([",", ";", "\t", "|", '"', "\n", " ", "0", "é", "ü", "ñ", "ç", "ø", "Å"]),
    max_size=12,
)
ZIP = st.from_regex(r"0[0-9]{4}", fullmatch=True)
INSTANT = st.integers(min_value=-40, max_value=90).flatmap(
    lambda day: st.integers(min_value=0, max_value=86399).map(
        lambda second: START + timedelta(days=day, seconds=second)
    )
)
CONSENT = st.one_of(
    st.sampled_from(["", "  ", "2024-02-30", "13/10/2024", "2024-03-10 25:00", "yesterday"]),
    INSTANT.map(lambda moment: moment.strftime("%Y-%m-%d")),
    INSTANT.map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")),
    INSTANT.map(lambda moment: moment.strftime("%Y-%m-%d %H:%M")),
    INSTANT.map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")),
    INSTANT.map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S-05:00")),
    INSTANT.map(lambda moment: f"{moment.month}/{moment.day}/{moment.year}"),
    INSTANT.map(lambda moment: moment.strftime(f"{moment.month}/{moment.day}/%Y %I:%M %p")),
    INSTANT.map(lambda moment: f" {moment:%Y-%m-%d} "),
)
EVENT = st.tuples(
    st.sampled_from(NUMBERS),
    st.sampled_from(["DEACTIVATION", "ACTIVATION", "SUSPENSION", "REACTIVATION"]),
    INSTANT,
    st.sampled_from(["r1", "r2"]),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(PHONE_CELLS, CONSENT), min_size=1, max_size=25),
    events=st.lists(EVENT, max_size=15),
    has_coverage=st.booleans(),
)
def test_verdicts_match_the_oracle(rows, events, has_coverage):
    coverage_start = START if has_coverage else None
    contacts = contacts_frame(rows)
    frame = events_frame(
        [
            (number, kind, moment.strftime("%Y-%m-%dT%H:%M:%SZ"), report)
            for number, kind, moment, report in events
        ]
    )
    consent = reject_future(contacts.select("consent_boundary", "consent_status"), NOW)
    result = decide(contacts.with_columns(consent), frame, coverage_start)
    assert result.height == len(rows)
    history = [(number, kind, moment) for number, kind, moment, _ in events]
    for (phone, consent_cell), decision in zip(rows, result.iter_rows(named=True), strict=True):
        expected = oracle.contact_verdict(phone, consent_cell, history, coverage_start, NOW)
        assert decision["verdict"] == expected, (phone, consent_cell, decision)


def test_the_oracle_reads_what_spec_says():
    # the oracle itself, on SPEC's own examples
    assert oracle.phone_key("+1 (415) 555-0123") == 14155550123
    assert oracle.phone_key("(415) 555-0123 ext. 12") == 14155550123
    assert oracle.phone_key("4155550123.0") == 14155550123
    assert oracle.phone_key("011 44 20 7946 0958") == 442079460958
    assert oracle.phone_key("(123) 555-0123") is None
    assert oracle.phone_key("4.15555E+09") is None
    assert oracle.phone_key("+44 20 7946 095") is None
    assert oracle.consent_boundary("2024-03-10T06:00:00-05:00") == datetime(
        2024, 3, 10, 11, tzinfo=UTC
    )
    assert oracle.consent_boundary("3/9/2024 11:30 PM") == datetime(2024, 3, 9, 23, 30, tzinfo=UTC)
    assert oracle.consent_boundary("2024-02-30") is None
    assert oracle.consent_boundary("12:30 AM") is None


def _csv_bytes(header, rows, delimiter, newline, encoding, bom) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode(encoding)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(TEXT, PHONE_CELLS, CONSENT, ZIP), min_size=1, max_size=30),
    events=st.lists(EVENT, max_size=15),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    encoding=st.sampled_from(["utf-8", "cp1252"]),
    bom=st.booleans(),
    mode=st.sampled_from(["strip", "flag"]),
    chunk_rows=st.integers(min_value=1, max_value=7),
)
def test_files_lose_no_row_and_keep_every_cell(
    tmp_path_factory, rows, events, delimiter, newline, encoding, bom, mode, chunk_rows
):
    folder = tmp_path_factory.mktemp("prop")
    header = ["Notes", "Phone", "Opt-In Date", "Zip"]
    rows = [["x" + note if note.strip() == "" else note, *rest] for note, *rest in rows]
    source = folder / "contacts.csv"
    encoding = "utf-8" if bom else encoding  # a BOM only ever precedes UTF-8
    source.write_bytes(_csv_bytes(header, rows, delimiter, newline, encoding, bom))
    history = History(
        events=events_frame([(n, k, m.strftime("%Y-%m-%dT%H:%M:%SZ"), r) for n, k, m, r in events]),
        reports=pl.DataFrame(schema=REPORT_SCHEMA),
    )
    [result] = clean_files([source], history, CleanOptions(mode=mode), NOW, keep_decisions=True)
    summary = result.summary()
    assert summary["rows"] == len(rows)
    assert summary["kept"] + summary["removed"] + summary["suppressed"] == len(rows)
    # The output is the input's own bytes, so it decodes with the encoding it was made in,
    # even where detection read a cp1252 file whose bytes also happen to be valid UTF-8.
    text = result.cleaned_path.read_bytes().decode(encoding).removeprefix("\ufeff")
    written = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    keep = result.kept_mask if mode == "strip" else [True] * len(rows)
    expected = [row for row, kept in zip(rows, keep, strict=True) if kept]
    width = len(header)
    assert written[0][:width] == header
    assert [record[:width] for record in written[1:]] == expected  # same cells, order, no twice
    if mode == "flag":
        assert [record[width] for record in written[1:]] == result.decisions["verdict"].to_list()
    changes = list(csv.DictReader(io.StringIO(result.changes_path.read_text())))
    assert len(changes) == summary["rows"] - summary["verdicts"]["ok"]
    # Decided and written a few rows at a time, the outputs are the same bytes.
    chunked_dir = folder / "chunked"
    original = clean_module.PIECE_ROWS, clean_module.DECIDE_ROWS
    # read in chunks, and decided in slices of those chunks
    clean_module.PIECE_ROWS, clean_module.DECIDE_ROWS = chunk_rows, max(1, chunk_rows // 2)
    try:
        [chunked] = clean_files(
            [source],
            history,
            CleanOptions(mode=mode, out_dir=chunked_dir, report=False),
            NOW,
            keep_decisions=True,
        )
    finally:
        clean_module.PIECE_ROWS, clean_module.DECIDE_ROWS = original
    assert chunked.cleaned_path.read_bytes() == result.cleaned_path.read_bytes()
    assert chunked.changes_path.read_bytes() == result.changes_path.read_bytes()
    assert chunked.decisions.equals(result.decisions)


NUMBER_IN_A_CELL = NANP_WRITTEN.flatmap(
    lambda written: st.sampled_from(
        [written, f"Mobile: {written}", f"{written} (cell)", f"home {written}"]
    )
)
PHONE_CELL = st.one_of(
    st.just(""),
    st.sampled_from(["N/A", "call after 5", "(123) 555-0100", "4.15555E+09"]),
    st.lists(NUMBER_IN_A_CELL, min_size=1, max_size=3).flatmap(
        lambda numbers: st.sampled_from([" / ", "; ", ", ", " or ", "\n"]).map(
            lambda separator: separator.join(numbers)
        )
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    columns=st.integers(min_value=1, max_value=3),
    data=st.data(),
    events=st.lists(EVENT, max_size=15),
    has_coverage=st.booleans(),
)
def test_no_deactivated_number_survives_and_blank_mode_touches_only_phone_fields(
    tmp_path_factory, columns, data, events, has_coverage
):
    folder = tmp_path_factory.mktemp("numbers")
    rows = data.draw(
        st.lists(
            st.tuples(st.lists(PHONE_CELL, min_size=columns, max_size=columns), CONSENT, TEXT),
            min_size=1,
            max_size=20,
        )
    )
    header = ["Notes", *[f"Phone {index}" for index in range(1, columns + 1)], "Opt-In Date"]
    records = [["x" + note, *cells, consent] for cells, consent, note in rows]
    source = folder / "contacts.csv"
    source.write_bytes(_csv_bytes(header, records, ",", "\r\n", "utf-8", False))
    coverage_start = START if has_coverage else None
    reports = pl.DataFrame(schema=REPORT_SCHEMA)
    if has_coverage:
        reports = (
            pl.DataFrame(
                {
                    "report_id": ["r1"],
                    "network_name": ["Verizon Wireless"],
                    "date_from": [START],
                    "date_to": [START + timedelta(days=200)],
                    "status": ["complete"],
                }
            )
            .with_columns(
                [
                    pl.lit(None, dtype).alias(name)
                    for name, dtype in REPORT_SCHEMA.items()
                    if name not in ("report_id", "network_name", "date_from", "date_to", "status")
                ]
            )
            .select(list(REPORT_SCHEMA))
            .cast(REPORT_SCHEMA)
        )
    history = History(
        events=events_frame([(n, k, m.strftime("%Y-%m-%dT%H:%M:%SZ"), r) for n, k, m, r in events]),
        reports=reports,
    )
    plain_events = [(number, kind, moment) for number, kind, moment, _ in events]
    expected = [
        oracle.row_decision(cells, consent, plain_events, coverage_start, NOW)
        for cells, consent, _note in rows
    ]
    strip = clean_files(
        [source], history, CleanOptions(out_dir=folder / "strip"), NOW, keep_decisions=True
    )[0]
    assert strip.decisions["verdict"].to_list() == [verdict for verdict, _a, _c in expected]
    summary = strip.summary()
    assert summary["kept"] + summary["removed"] + summary["suppressed"] == len(rows)
    kept_records = list(csv.reader(io.StringIO(strip.cleaned_path.read_text(), newline="")))
    assert kept_records[1:] == [
        record
        for record, (_verdict, action, _cells) in zip(records, expected, strict=True)
        if action not in ("remove", "suppress")
    ]
    for record, (_verdict, _action, per_cell) in zip(records, expected, strict=True):
        if any("deactivated" in cell for cell in per_cell):
            assert record not in kept_records[1:]  # (a) strip mode
    blank = clean_files(
        [source], history, CleanOptions(mode="blank", out_dir=folder / "blank"), NOW
    )[0]
    written = blank.cleaned_path.read_bytes()
    original = source.read_bytes()
    blanked = list(csv.reader(io.StringIO(written.decode(), newline="")))
    assert blanked[0] == header
    assert len(blanked) == len(records) + 1
    for before, after, (_verdict, _action, per_cell) in zip(
        records, blanked[1:], expected, strict=True
    ):
        for position, (old, new) in enumerate(zip(before, after, strict=True)):
            phone = 1 <= position <= columns
            cell_verdicts = per_cell[position - 1] if phone else []
            dropped = any(v in ("deactivated", "suspended") for v in cell_verdicts)
            # (a) no deactivated number survives; (b) only those phone fields change
            assert new == ("" if dropped else old), (position, old, new)
    # (b) byte for byte: a record without an emptied field is copied as it was
    original_records = original.split(b"\r\n")
    if all(
        not any(v in ("deactivated", "suspended") for cell in per_cell for v in cell)
        for _verdict, _action, per_cell in expected
    ) and not any("\n" in field for record in records for field in record):
        assert written == original
    assert len(written) <= len(original) and written.startswith(original_records[0])
