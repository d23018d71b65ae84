"""Property tests over generated files: no row lost, none twice, kept cells unchanged,
and every verdict equal to a plain-Python oracle of SPEC's rules."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reconcile.clean as clean_module
from reconcile.clean import CleanOptions, clean_files
from reconcile.history import History, empty_reports
from reconcile.verdicts import decide
from tests.helpers import NOW, contacts_frame, events_frame

NUMBERS = [14155550100 + offset for offset in range(6)]
START = datetime(2024, 3, 1, tzinfo=UTC)
PHONE_CELLS = st.sampled_from(
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
    st.just(""),
    st.just("2024-02-30"),
    INSTANT.map(lambda moment: moment.strftime("%Y-%m-%d")),
    INSTANT.map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")),
    INSTANT.map(lambda moment: f"{moment.month}/{moment.day}/{moment.year}"),
)
EVENT = st.tuples(
    st.sampled_from(NUMBERS),
    st.sampled_from(["DEACTIVATION", "ACTIVATION", "SUSPENSION", "REACTIVATION"]),
    INSTANT,
    st.sampled_from(["r1", "r2"]),
)


def oracle(phone_key, boundary, consent_status, events, coverage_start) -> str:
    """SPEC's verdict table, written as plainly as possible."""
    if phone_key is None:
        return "invalid_number"
    mine = {(kind, moment) for number, kind, moment, _ in events if number == phone_key}
    deactivations = [moment for kind, moment in mine if kind in ("DEACTIVATION", "ACTIVATION")]
    if any(boundary is None or moment >= boundary for moment in deactivations):
        return "deactivated"
    if mine:
        latest = max(moment for _, moment in mine)
        if ("SUSPENSION", latest) in mine:
            return "suspended"
    if coverage_start is None or boundary is None or boundary < coverage_start:
        return "unverified"
    return "ok"


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
    result = decide(contacts, frame, coverage_start)
    assert result.height == len(rows)
    for decision in result.iter_rows(named=True):
        expected = oracle(
            decision["phone_key"],
            decision["consent_boundary"],
            decision["consent_status"],
            events,
            coverage_start,
        )
        assert decision["verdict"] == expected, decision


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
        reports=empty_reports(),
    )
    [result] = clean_files([source], history, CleanOptions(mode=mode), NOW)
    summary = result.summary()
    assert summary["rows"] == len(rows)
    assert summary["kept"] + summary["removed"] + summary["suppressed"] == len(rows)
    # The output is the input's own bytes, so it decodes with the encoding it was made in,
    # even where detection read a cp1252 file whose bytes also happen to be valid UTF-8.
    text = result.cleaned_path.read_bytes().decode(encoding).removeprefix("\ufeff")
    written = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    keep = result.keep if mode == "strip" else [True] * len(rows)
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
    original = clean_module.CHUNK_ROWS, clean_module.DECIDE_ROWS
    # read in chunks, and decided in slices of those chunks
    clean_module.CHUNK_ROWS, clean_module.DECIDE_ROWS = chunk_rows, max(1, chunk_rows // 2)
    try:
        [chunked] = clean_files(
            [source], history, CleanOptions(mode=mode, out_dir=chunked_dir, report=False), NOW
        )
    finally:
        clean_module.CHUNK_ROWS, clean_module.DECIDE_ROWS = original
    assert chunked.cleaned_path.read_bytes() == result.cleaned_path.read_bytes()
    assert chunked.changes_path.read_bytes() == result.changes_path.read_bytes()
    assert chunked.decisions.equals(result.decisions)
