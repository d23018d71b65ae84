"""CSV in and out: encodings, BOM, delimiters, quoting, byte-identical kept rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from reconcile.contacts import ColumnChoice, read_contacts
from tests.helpers import FLAG_COLUMNS, run_clean

HEADER = ["Contact ID", "Name", "Mobile Phone", "Opt-In Date", "Zip", "Notes"]
ROWS = [
    ["C1", "Ana", "(415) 555-0101", "2024-03-09", "02134", "deactivated after consent"],
    ["C2", "Ben", "415.555.0102", "2024-03-20", "00501", "suspended"],
    ["C3", "Chloé", "+1 415 555 0104", "2024-04-01", "07302", "ok, with a comma"],
    ["C4", "Dev", "", "2024-04-01", "94110", "invalid: no phone"],
    ["C5", "Eli", "4155550103", "2024-03-06", "10001", 'says "hi"\nand a second line'],
    ["C6", "Fatima", "4155550105", "2024-01-15", "60614", "consent before coverage"],
]
KEPT_IDS = ["C3", "C4", "C5", "C6"]


def write_csv(
    path: Path,
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    bom: bool = False,
    newline: str = "\r\n",
    rows: list[list[str]] = ROWS,
    quoting: int = csv.QUOTE_MINIMAL,
) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(HEADER)
    writer.writerows(rows)
    content = (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode(encoding)
    path.write_bytes(content)
    return content


def records_of(content: bytes, delimiter: str, encoding: str) -> list[list[str]]:
    text = content.decode(encoding).removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize(
    ("encoding", "bom"), [("utf-8", False), ("utf-8", True), ("cp1252", False)]
)
def test_cleaned_csv_keeps_encoding_bom_delimiter_and_bytes(
    tmp_path, history_dir, delimiter, encoding, bom
):
    source = tmp_path / "contacts.csv"
    original = write_csv(source, delimiter=delimiter, encoding=encoding, bom=bom)
    [result] = run_clean(source, history_dir)
    assert result.table.encoding == encoding
    assert result.table.delimiter == delimiter
    cleaned = result.cleaned_path.read_bytes()
    assert cleaned.startswith(b"\xef\xbb\xbf") == bom
    # byte-identical: the cleaned file is exactly the original minus the dropped records
    expected = write_csv(
        tmp_path / "expected.csv",
        delimiter=delimiter,
        encoding=encoding,
        bom=bom,
        rows=[row for row in ROWS if row[0] in KEPT_IDS],
    )
    assert cleaned == expected
    assert source.read_bytes() == original  # the input is never modified
    assert [row[0] for row in records_of(cleaned, delimiter, encoding)[1:]] == KEPT_IDS


def test_zip_codes_and_odd_quoting_survive_byte_for_byte(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    write_csv(source, quoting=csv.QUOTE_ALL, newline="\n")
    [result] = run_clean(source, history_dir)
    cleaned = result.cleaned_path.read_text()
    assert '"02134"' not in cleaned  # C1 was removed
    assert '"07302"' in cleaned and '"00501"' not in cleaned
    assert '"says ""hi""\nand a second line"' in cleaned  # quoted newline kept as written


def test_quoted_newlines_do_not_split_rows(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    write_csv(source)
    table = read_contacts(source, ColumnChoice())
    assert table.row_count == len(ROWS)
    assert table.all_values().get_column("id").to_list() == [row[0] for row in ROWS]


def test_last_row_without_newline_and_blank_lines(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    body = "Contact ID,Mobile Phone,Opt-In Date\nC1,4155550104,2024-04-01\n\nC2,4155550101,2024-03-01\nC3,4155550106,2024-04-02"
    source.write_text(body)
    [result] = run_clean(source, history_dir)
    assert result.summary()["rows"] == 3
    assert result.summary()["blank_rows_skipped"] == 1
    assert result.cleaned_path.read_text() == (
        "Contact ID,Mobile Phone,Opt-In Date\nC1,4155550104,2024-04-01\nC3,4155550106,2024-04-02"
    )


def test_windows_1252_names_are_read_and_written_back_unchanged(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    original = write_csv(source, encoding="cp1252")
    assert "Chloé".encode("cp1252") in original
    [result] = run_clean(source, history_dir)
    assert "Chloé".encode("cp1252") in result.cleaned_path.read_bytes()
    assert result.table.encoding == "cp1252"


def test_flag_mode_keeps_every_row_and_appends_columns(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    write_csv(source, delimiter=";")
    [result] = run_clean(source, history_dir, mode="flag")
    records = records_of(result.cleaned_path.read_bytes(), ";", "utf-8")
    assert records[0] == [*HEADER, *FLAG_COLUMNS]
    assert [record[:6] for record in records[1:]] == ROWS
    by_id = {record[0]: record[6:] for record in records[1:]}
    assert by_id["C1"][:2] == ["deactivated", "remove"]
    assert by_id["C1"][3:] == ["+14155550101", "2024-03-10T11:00:00Z", "+14155550999"]
    assert by_id["C2"][:2] == ["suspended", "suppress"]
    assert by_id["C3"] == ["ok", "keep", "", "+14155550104", "", ""]
    assert by_id["C4"][:2] == ["invalid_number", "review"]
    assert by_id["C5"][:3] == ["ok", "keep", "deactivated before consent (re-consented)"]
    assert by_id["C6"][:2] == ["unverified", "review"]


def test_changes_csv_columns_and_rows(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    write_csv(source)
    [result] = run_clean(source, history_dir, columns=ColumnChoice(id="Contact ID"))
    rows = list(csv.DictReader(io.StringIO(result.changes_path.read_text())))
    assert list(rows[0]) == [
        "row",
        "id",
        "phone_column",
        "phone",
        "phone_e164",
        "consent",
        "verdict",
        "action",
        "reason",
        "event_type",
        "event_date",
        "network",
        "report_id",
        "suggested_number",
    ]
    assert [(row["row"], row["id"], row["verdict"]) for row in rows] == [
        ("1", "C1", "deactivated"),
        ("2", "C2", "suspended"),
        ("4", "C4", "invalid_number"),
        ("6", "C6", "unverified"),
    ]
    first = rows[0]
    assert first["phone"] == "(415) 555-0101"
    assert first["consent"] == "2024-03-09"
    assert first["event_type"] == "DEACTIVATION"
    assert first["event_date"] == "2024-03-10T11:00:00Z"
    assert first["network"] in {"Verizon Wireless", "AT&T Mobility"}
    assert first["suggested_number"] == "+14155550999"


def test_single_column_file(tmp_path, history_dir):
    source = tmp_path / "numbers.csv"
    source.write_text("phone,consent_date\n4155550101,2024-03-01\n4155550104,2024-03-02\n")
    [result] = run_clean(source, history_dir)
    assert result.cleaned_path.read_text() == "phone,consent_date\n4155550104,2024-03-02\n"


def test_out_dir_receives_outputs(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    write_csv(source)
    [result] = run_clean(source, history_dir, out_dir=tmp_path / "out" / "nested")
    assert result.cleaned_path == tmp_path / "out" / "nested" / "contacts.cleaned.csv"
    assert result.cleaned_path.exists() and result.changes_path.exists()
    assert not (tmp_path / "contacts.cleaned.csv").exists()


def test_the_parallel_byte_scan_finds_what_the_serial_one_does(tmp_path, history_dir, monkeypatch):
    import reconcile._csvstructure as shape

    source = tmp_path / "contacts.csv"
    write_csv(source, rows=ROWS * 40)
    serial = run_clean(source, history_dir, out_dir=tmp_path / "serial")[0]
    monkeypatch.setattr(shape, "_PARALLEL_FROM", 16)  # every file is "big" now
    monkeypatch.setattr(shape.os, "cpu_count", lambda: 3)
    parallel = run_clean(source, history_dir, out_dir=tmp_path / "parallel")[0]
    assert parallel.cleaned_path.read_bytes() == serial.cleaned_path.read_bytes()
    assert parallel.decisions.equals(serial.decisions)


@pytest.mark.parametrize("mode", ["strip", "flag"])
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5])
def test_chunked_runs_write_the_same_bytes(tmp_path, history_dir, monkeypatch, mode, chunk_rows):
    import reconcile._pipeline as clean_module

    # blank lines between and after rows, a quoted newline, no newline at the very end
    content = (
        b"Contact ID,Mobile Phone,Opt-In Date,Notes\r\n"
        b"C1,(415) 555-0101,2024-03-09,a\r\n"
        b"\r\n"
        b'C2,415.555.0102,2024-03-20,"two\r\nlines"\r\n'
        b"C3,+1 415 555 0104,2024-04-01,\r\n"
        b"\r\n\r\n"
        b"C4,,2024-04-01,no phone\r\n"
        b"C5,4155550103,2024-03-06,b\r\n"
        b"C6,4155550105,2024-01-15,last"
    )
    source = tmp_path / "contacts.csv"
    source.write_bytes(content)
    whole = run_clean(source, history_dir, mode=mode, out_dir=tmp_path / "whole")[0]
    monkeypatch.setattr(clean_module, "PIECE_ROWS", chunk_rows)
    monkeypatch.setattr(clean_module, "DECIDE_ROWS", max(1, chunk_rows - 1))
    chunked = run_clean(source, history_dir, mode=mode, out_dir=tmp_path / "chunked")[0]
    assert chunked.cleaned_path.read_bytes() == whole.cleaned_path.read_bytes()
    assert chunked.changes_path.read_bytes() == whole.changes_path.read_bytes()
    assert chunked.decisions.equals(whole.decisions)
    assert chunked.summary()["blank_rows_skipped"] == 3
    kept_ids = [record[0] for record in records_of(chunked.cleaned_path.read_bytes(), ",", "utf-8")]
    if mode == "strip":
        assert kept_ids == ["Contact ID", "C3", "C4", "C5", "C6"]
    else:
        assert kept_ids == ["Contact ID", "C1", "C2", "C3", "C4", "C5", "C6"]
    assert source.read_bytes() == content


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_the_byte_scan_does_not_depend_on_where_its_blocks_end(monkeypatch, block):
    import reconcile._csvscan as scanner
    import reconcile._csvstructure as shape
    from reconcile.errors import MalformedCSVError

    body = (
        b'id,phone,"notes, quoted"\n'
        b'1,"(415) 555-0101","a ""b"", c"\n'
        b'2,415.555.0102,"two\nlines, ""q"""\n'
        b'"3","",""\r\n'
        b"\n"
        b'4,"4155550104",plain\n'
    ) * 5
    whole = scanner.scan_csv("body.csv", body)
    monkeypatch.setattr(shape, "_BLOCK", block)
    monkeypatch.setattr(shape, "_PARALLEL_FROM", 16)
    monkeypatch.setattr(shape.os, "cpu_count", lambda: 3)
    cut = scanner.scan_csv("body.csv", body)
    for name in ("record_start", "content_end", "record_end", "data_records", "first_delimiter"):
        assert getattr(cut, name).tolist() == getattr(whole, name).tolist(), name
    assert cut.delimiters.tolist() == whole.delimiters.tolist()
    # a quote inside an unquoted field, found whichever quote parity its block starts with
    for stray_at, line in ((body.index(b"plain") + 1, 7), (body.rindex(b"plain") + 2, 35)):
        broken = body[:stray_at] + b'""' + body[stray_at:]
        with pytest.raises(MalformedCSVError, match=f"line {line}: a quote inside a field"):
            scanner.scan_csv("body.csv", broken)


def test_outputs_sent_to_disk_slice_by_slice_are_the_same_bytes(tmp_path, history_dir, monkeypatch):
    import reconcile._pipeline as clean_module

    source = tmp_path / "contacts.csv"
    write_csv(source, rows=ROWS * 20)
    whole = run_clean(source, history_dir, out_dir=tmp_path / "whole")[0]
    monkeypatch.setattr(clean_module, "DECIDE_ROWS", 7)
    monkeypatch.setattr(clean_module, "SETTLE_BYTES", 100)
    sliced = run_clean(source, history_dir, out_dir=tmp_path / "sliced")[0]
    assert sliced.cleaned_path.read_bytes() == whole.cleaned_path.read_bytes()
    assert sliced.changes_path.read_bytes() == whole.changes_path.read_bytes()


def test_the_columns_read_are_the_cells_of_the_file(tmp_path):
    source = tmp_path / "contacts.csv"
    write_csv(source, rows=ROWS * 3)
    values = read_contacts(source, ColumnChoice()).all_values()
    with source.open(newline="", encoding="utf-8") as stream:
        records = list(csv.DictReader(stream))
    assert values.get_column("phone_0").to_list() == [record["Mobile Phone"] for record in records]
    assert values.get_column("consent").to_list() == [record["Opt-In Date"] for record in records]


def test_reading_ahead_does_not_change_which_error_is_reported(tmp_path):
    from reconcile.errors import MalformedCSVError

    # no phone column and a ragged row: the scan's error comes first, as it always has
    source = tmp_path / "contacts.csv"
    source.write_bytes(b"Name,Opt-In Date\nAna,2024-03-09\nBen,2024-03-20,extra\n")
    with pytest.raises(MalformedCSVError, match="line 3 has 3 fields"):
        read_contacts(source, ColumnChoice())
