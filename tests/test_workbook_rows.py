"""The action sheets' and Reports' rows, built as sheet XML by polars (issue 15, speed):
whatever a cell holds, the workbook is well-formed, every value reads back as written
(text as text, never a formula; numbers and dates as values; a CR, a control character
and ``_x0041_`` as they are: issue 20, case 6), in every reader."""

from __future__ import annotations

import csv
import datetime as dt
import xml.etree.ElementTree as ET
import zipfile

import openpyxl
import pytest
from openpyxl.utils.escape import unescape
from python_calamine import CalamineWorkbook

import reconcile._sheet_xml
from reconcile.clean import CleanOptions, clean_files
from reconcile.columns import ColumnChoice
from reconcile.history_files import load_change_files
from tests.helpers import NOW

NOTES = [
    "a & b <c> 'x' \"y\"",
    "  spaces at both ends  ",
    "=1+1",
    "tab\there, line\nbreak",
    "bell\x07, form feed\x0c, not a character \ufffe",
    "carriage\rreturn, and CRLF\r\n",
    "_x0041_ is not an A, nor _x005F_x0041_",
    "emoji \U0001f600 and accents éü",
    "x" * 40_000,
    "",
]


@pytest.fixture
def report(tmp_path, history_dir):
    """A workbook whose Remove sheet holds every note (one deactivated contact each)."""
    source = tmp_path / "contacts.csv"
    lines = ["Phone,Opt-In Date,Note"]
    for note in NOTES:
        quoted = '"' + note.replace('"', '""') + '"'
        lines.append(f"4155550101,2024-03-09,{quoted}")  # deactivated 2024-03-10
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = CleanOptions(columns=ColumnChoice(include=("Note",)))
    [result] = clean_files([source], load_change_files([history_dir]), options, NOW)
    assert result.report_path is not None
    return result.report_path


def _expected(note: str) -> str | None:
    # every character comes back as it was: a control character, a CR, text that reads
    # as the format's own escape (written as _xHHHH_ escapes); the non-character U+FFFE
    # no reader gives back is shown as U+FFFD
    return note[:32_767].replace("\ufffe", "\ufffd") or None


def _as_a_spreadsheet_reads(value: object) -> object:
    # openpyxl hands over a cell's text with the format's _xHHHH_ escapes undone only in
    # a few places; Excel, LibreOffice and calamine undo them everywhere
    return unescape(value) if isinstance(value, str) else value


def test_every_sheet_is_well_formed_xml(report):
    with zipfile.ZipFile(report) as package:
        for name in package.namelist():
            if name.endswith(".xml"):
                # the workbook this test just wrote: trusted; raises on anything malformed
                ET.fromstring(package.read(name))  # noqa: S314


def test_text_reads_back_as_written_in_openpyxl(report):
    workbook = openpyxl.load_workbook(report)
    sheet = workbook["Remove"]
    header = [cell.value for cell in sheet[1]]
    note_at = header.index("Note")
    rows = list(sheet.iter_rows(min_row=2))
    assert [_as_a_spreadsheet_reads(row[note_at].value) for row in rows] == [
        _expected(note) for note in NOTES
    ]
    for row in rows:
        assert row[0].value in range(1, len(NOTES) + 1) and row[0].data_type == "n"
        for cell in row:
            assert cell.data_type != "f"
        event = row[header.index("Event date (UTC)")]
        assert event.value == dt.datetime(2024, 3, 10, 11, 0)
        assert event.is_date
        reason = row[header.index("Reason")]
        assert reason.alignment.wrap_text  # a long reason wraps within its column
        assert not row[note_at].alignment.wrap_text
    formula = rows[NOTES.index("=1+1")][note_at]
    assert formula.data_type == "s" and formula.value == "=1+1"


def test_text_reads_back_as_written_in_calamine(report):
    sheet = CalamineWorkbook.from_path(str(report)).get_sheet_by_name("Remove").to_python()
    note_at = sheet[0].index("Note")
    assert [row[note_at] for row in sheet[1:]] == [_expected(note) or "" for note in NOTES]
    assert [row[0] for row in sheet[1:]] == list(range(1, len(NOTES) + 1))


def test_rows_built_in_pieces_are_the_same_rows(tmp_path, report, monkeypatch, history_dir):
    monkeypatch.setattr(reconcile._sheet_xml, "_XML_ROWS", 3)
    monkeypatch.setattr(reconcile._sheet_xml.RowBuilder, "AHEAD", 1)
    options = CleanOptions(columns=ColumnChoice(include=("Note",)), out_dir=tmp_path / "pieces")
    source = report.parent / "contacts.csv"
    [result] = clean_files([source], load_change_files([history_dir]), options, NOW)
    assert result.report_path is not None
    whole, pieces = openpyxl.load_workbook(report), openpyxl.load_workbook(result.report_path)
    assert whole.sheetnames == pieces.sheetnames
    for name in ("Remove", "Suppress", "Review", "Reports"):
        expected = list(whole[name].iter_rows(values_only=True))
        assert list(pieces[name].iter_rows(values_only=True)) == expected


def test_reports_sheet_holds_values_and_dates(report):
    rows = list(openpyxl.load_workbook(report)["Reports"].iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert header[:3] == ("Report id", "Operator", "Operator id")
    assert {row[0] for row in body} == {"rep-vz-1", "rep-att-1"}
    assert all(isinstance(row[header.index("From (UTC)")], dt.datetime) for row in body)
    # the filter covers every row
    sheet = openpyxl.load_workbook(report)["Reports"]
    assert sheet.auto_filter.ref == f"A1:J{len(rows)}"


@pytest.mark.parametrize("pass_events", [4_000_000, 7, 1])
def test_weekly_counts_take_off_exactly_the_copies(monkeypatch, pass_events):
    """Against the plain reading (unique() over whole events): random histories where
    many events are held by several reports, some with the same number and instant but
    another type or replacement, across operators and week boundaries; the copies found
    in one pass or a slice of the numbers at a time (bounded memory) alike."""
    import random

    import polars as pl

    import reconcile.weekly as weekly
    from reconcile.history import REPORT_SCHEMA, History
    from reconcile.weekly import weekly_counts

    monkeypatch.setattr(weekly, "TWIN_PASS_EVENTS", pass_events)
    generator = random.Random(15)
    for _round in range(20):
        rows = []
        for _event in range(generator.randint(0, 60)):
            number = 14155550100 + generator.randint(0, 6)
            moment = dt.datetime(2024, 3, generator.randint(1, 20), generator.choice([0, 23]))
            kind = generator.choice(["DEACTIVATION", "ACTIVATION", "SUSPENSION"])
            new_number = generator.choice([None, 14155559999])
            network = generator.choice(["Verizon Wireless", "AT&T Mobility", None])
            for copy in range(generator.choice([1, 1, 2, 3])):
                rows.append((number, kind, moment, new_number, network, f"r{copy}"))
        events = pl.DataFrame(
            rows,
            schema={
                "number": pl.UInt64,
                "type": pl.String,
                "occurred_at": pl.Datetime("us"),
                "new_number": pl.UInt64,
                "network_name": pl.String,
                "report_id": pl.String,
            },
            orient="row",
        ).with_columns(pl.col("occurred_at").dt.replace_time_zone("UTC"))
        history = History(events=events, reports=pl.DataFrame(schema=REPORT_SCHEMA))
        counted = weekly_counts(history)
        plain = (
            events.filter(pl.col("type").is_in(["DEACTIVATION", "ACTIVATION"]))
            .unique(subset=["number", "type", "occurred_at", "new_number"])
            .group_by(
                week=pl.col("occurred_at").dt.truncate("1w").dt.date(),
                network=pl.lit("op:") + pl.col("network_name").fill_null("(operator not named)"),
            )
            .agg(count=pl.len())
        )
        key = ["week", "network"]
        assert (
            counted.sort(key)
            .select(key, pl.col("count").cast(pl.Int64))
            .equals(plain.sort(key).select(key, pl.col("count").cast(pl.Int64)))
        )


def test_ids_are_never_cut_and_long_text_is_capped(tmp_path, history_dir):
    """A Salesforce 18-character id fits its column; the reason's column is capped and
    its text wraps (see above)."""
    source = tmp_path / "contacts.csv"
    salesforce_id = "0035e00000AbCdEfGH"
    long_id = "X" * 60
    source.write_text(
        "Id,Phone,Opt-In Date\n"
        f"{salesforce_id},4155550101,2024-03-09\n"
        f"{long_id},4155550101,2024-03-09\n"
    )
    [result] = clean_files([source], load_change_files([history_dir]), CleanOptions(), NOW)
    assert result.report_path is not None
    sheet = openpyxl.load_workbook(result.report_path)["Remove"]
    header = [cell.value for cell in sheet[1]]
    widths = {
        title: sheet.column_dimensions[openpyxl.utils.get_column_letter(index)].width
        for index, title in enumerate(header, start=1)
    }
    assert widths["Contact id"] >= len(long_id) + 1
    assert [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        salesforce_id,
        long_id,
    ]
    assert widths["Reason"] <= 72


def test_contact_ids_reach_the_action_sheets_as_the_file_has_them(tmp_path, history_dir, run_cli):
    """A CR inside an id stays a CR (an XML reader turns a raw one into LF), and an id
    that reads as the format's escape (``_x0041_``) is not read back as "A"."""
    ids = ["cr\rinside", "_x0041_", "crlf\r\nand_x005F_x0041_", "bell\x07"]
    source = tmp_path / "contacts.csv"
    rows = "".join(f'"{identifier}",4155550101,2024-03-09\n' for identifier in ids)
    source.write_bytes(("Contact ID,Phone,Opt-In Date\n" + rows).encode())
    result = run_cli(
        "clean",
        source,
        "--changes",
        history_dir,
        "--id-column",
        "Contact ID",
        "--out-dir",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.output
    report = tmp_path / "out" / "contacts.report.xlsx"
    sheet = CalamineWorkbook.from_path(str(report)).get_sheet_by_name("Remove").to_python()
    id_at = sheet[0].index("Contact id")
    assert [row[id_at] for row in sheet[1:]] == ids


def test_a_row_whose_reason_wraps_is_as_high_as_its_text(report):
    """Wrapped reasons drew over the next row in LibreOffice: a row is given the height
    its longest wrapped text needs."""
    import re

    with zipfile.ZipFile(report) as package:
        names = [name for name in package.namelist() if name.startswith("xl/worksheets/")]
        sheets = {name: package.read(name) for name in names}
    heights = [
        float(height)
        for xml in sheets.values()
        for height in re.findall(rb'<row r="[0-9]+" ht="([0-9.]+)" customHeight="1"', xml)
    ]
    assert heights and all(height >= 30 for height in heights)


def test_every_part_is_compressed_at_the_packages_fast_level(tmp_path, history_dir):
    # the bulk sheets are most of the workbook: at zlib's default level they cost five
    # times the CPU (a ZipInfo made by hand does not take the package's level)
    import zlib

    source = tmp_path / "contacts.csv"
    rows = [f"C-{n},4155550{n % 1000:03d},2023-03-09" for n in range(4000)]
    source.write_text("Id,Phone,Opt-In Date\n" + "\n".join(rows) + "\n")
    [result] = clean_files([source], load_change_files([history_dir]), CleanOptions(), NOW)
    assert result.report_path is not None
    with zipfile.ZipFile(result.report_path) as package:
        for info in package.infolist():
            content = package.read(info)
            if len(content) < 100_000:
                continue
            fast = zlib.compressobj(1, zlib.DEFLATED, -15)
            fast_size = len(fast.compress(content) + fast.flush())
            default_size = len(zlib.compress(content, 6)) - 6  # less zlib's header
            assert default_size < fast_size * 0.95, info.filename  # the levels differ here
            assert info.compress_size > (fast_size + default_size) / 2, info.filename


def test_the_action_sheets_hold_at_most_the_rows_shown_and_say_where_the_rest_is(
    tmp_path, history_dir, monkeypatch
):
    """Issue 21: a million action lines at most (here 4); the statement names the change
    list, which holds every line; the Summary's counts stay whole."""
    import reconcile.clean

    monkeypatch.setattr(reconcile.clean, "ACTION_ROWS_SHOWN", 4)
    source = tmp_path / "contacts.csv"
    # 3 deactivated (remove) and 4 unverified (review): 7 action lines
    lines = ["Phone,Opt-In Date"] + ["4155550101,2024-03-09"] * 3 + ["4155550103,2020-01-01"] * 4
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    [result] = clean_files([source], load_change_files([history_dir]), CleanOptions(), NOW)
    assert result.action_rows_total == 7
    assert result.report_path is not None
    book = openpyxl.load_workbook(result.report_path)
    shown = sum(book[title].max_row - 1 for title in ("Remove", "Suppress", "Review"))
    assert shown == 4
    changes = list(csv.DictReader(result.changes_path.read_text(encoding="utf-8").splitlines()))
    assert len(changes) == 7
    for title in ("Remove", "Suppress", "Review"):  # the first four lines, in file order
        first = [line["row"] for line in changes[:4] if line["action"] == title.lower()]
        assert [str(row[0].value) for row in book[title].iter_rows(min_row=2)] == first
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True)}
    assert summary["Where every line is"] == (
        "The action sheets show the first 4 of 7 lines (one per number to remove, suppress or "
        "review, in file order); every one is in contacts.changes.csv."
    )
    assert summary["Removed"] + summary["To review (kept)"] == 7
