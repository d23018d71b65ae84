"""XLSX in and out: typed cells survive, numeric phones do not grow digits, sheets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.contacts import ColumnChoice, read_contacts
from reconcile.errors import InputError, UnsupportedFormatError
from tests.helpers import FLAG_COLUMNS, rewrite_sheet, run_clean

HEADER = ["ID", "Phone", "Consent Date", "Zip", "Score", "Active", "Link"]


def typed_rows() -> list[list[object]]:
    return [
        ["C1", 4155550101, dt.datetime(2024, 3, 9), "02134", 1.5, True, '=HYPERLINK("x")'],
        ["C2", 4155550104.0, dt.datetime(2024, 4, 1, 9, 30), "00501", 2, False, "+1 415 555 0104"],
        ["C3", "(415) 555-0102", "2024-03-20", "07302", None, True, "plain"],
        ["C4", 14155550106, dt.date(2024, 4, 2), "94110", 3, None, None],
        ["C5", "4.15555E+09", "4/1/2024", "10001", 4, True, "x"],
    ]


def write_xlsx(
    path: Path,
    rows: list[list[object]] | None = None,
    *,
    title: str = "Contacts",
    extra_sheets: tuple[str, ...] = (),
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(HEADER)
    for row in rows if rows is not None else typed_rows():
        sheet.append(row)
        if isinstance(row[-1], str) and row[-1].startswith("="):
            sheet.cell(sheet.max_row, len(row)).data_type = "s"  # text, not a formula
    for cell in sheet["C"][1:]:
        if isinstance(cell.value, dt.datetime | dt.date):
            cell.number_format = "yyyy-mm-dd hh:mm"
    for name in extra_sheets:
        workbook.create_sheet(name).append(["Phone", "Opt-In Date"])
    workbook.save(path)


def test_numeric_cells_are_read_without_growing_a_digit(tmp_path):
    source = tmp_path / "contacts.xlsx"
    write_xlsx(source)
    table = read_contacts(source, ColumnChoice())
    assert table.all_values().get_column("phone_0").to_list() == [
        "4155550101",
        "4155550104",
        "(415) 555-0102",
        "14155550106",
        "4.15555E+09",
    ]


def test_cleaned_workbook_keeps_values_and_types(tmp_path, history_dir):
    source = tmp_path / "contacts.xlsx"
    write_xlsx(source)
    before = source.read_bytes()
    [result] = run_clean(source, history_dir)
    decisions = dict(zip(result.decisions["id"], result.decisions["verdict"], strict=True))
    assert decisions == {
        "C1": "deactivated",
        "C2": "ok",
        "C3": "suspended",
        "C4": "ok",
        "C5": "invalid_number",
    }
    assert source.read_bytes() == before
    workbook = openpyxl.load_workbook(result.cleaned_path)
    sheet = workbook["Contacts"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == tuple(HEADER)
    assert [row[0] for row in rows[1:]] == ["C2", "C4", "C5"]
    c2 = next(iter(sheet.iter_rows(min_row=2, max_row=2)))
    assert c2[1].value == 4155550104 and c2[1].data_type == "n"
    assert c2[2].value == dt.datetime(2024, 4, 1, 9, 30) and c2[2].is_date
    assert c2[3].value == "00501" and c2[3].data_type == "s"
    assert c2[4].value == 2 and c2[5].value is False
    assert c2[6].value == "+1 415 555 0104" and c2[6].data_type == "s"
    c4 = next(iter(sheet.iter_rows(min_row=3, max_row=3)))
    assert c4[1].value == 14155550106
    assert c4[2].is_date


def test_text_that_looks_like_a_formula_stays_text(tmp_path, history_dir):
    source = tmp_path / "contacts.xlsx"
    rows = typed_rows()
    rows[1][6] = '=HYPERLINK("http://example.com")'
    write_xlsx(source, rows)
    [result] = run_clean(source, history_dir)
    sheet = openpyxl.load_workbook(result.cleaned_path)["Contacts"]
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert not [cell for cell in cells if cell.data_type == "f"]
    assert sheet.cell(2, 7).value == '=HYPERLINK("http://example.com")'


def test_flag_mode_appends_columns_in_the_workbook(tmp_path, history_dir):
    source = tmp_path / "contacts.xlsx"
    write_xlsx(source)
    [result] = run_clean(source, history_dir, mode="flag")
    rows = list(openpyxl.load_workbook(result.cleaned_path)["Contacts"].iter_rows(values_only=True))
    assert len(rows) == 6
    assert rows[0][len(HEADER) :] == FLAG_COLUMNS
    assert rows[1][len(HEADER) : len(HEADER) + 2] == ("deactivated", "remove")
    assert rows[5][len(HEADER)] == "invalid_number"


def test_sheet_option_by_name_and_number(tmp_path, history_dir):
    source = tmp_path / "contacts.xlsx"
    write_xlsx(source, title="Summary", extra_sheets=("Contacts",))
    # the first sheet has the contacts, the second only a header
    assert read_contacts(source, ColumnChoice(phones=("Phone",))).sheet == "Summary"
    with pytest.raises(InputError, match="has a header but no rows"):
        read_contacts(source, ColumnChoice(phones=("Phone",)), sheet="2")
    with pytest.raises(
        InputError, match=r"no sheet 'Nope' \(--sheet\); the workbook has: 'Summary', 'Contacts'"
    ):
        read_contacts(source, ColumnChoice(), sheet="Nope")


def test_hidden_first_sheet_is_skipped_by_default(tmp_path):
    source = tmp_path / "contacts.xlsx"
    workbook = openpyxl.Workbook()
    hidden = workbook.active
    hidden.title = "Lookup"
    hidden.append(["x"])
    hidden.sheet_state = "hidden"
    visible = workbook.create_sheet("Contacts")
    visible.append(["Phone", "Opt-In Date"])
    visible.append(["4155550104", "2024-04-01"])
    workbook.save(source)
    assert read_contacts(source, ColumnChoice()).sheet == "Contacts"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("old.xls", b"\xd0\xcf\x11\xe0" + b"\0" * 100, "old.xls is the old Excel 97-2003 format"),
        ("sheet.ods", b"PK\x03\x04whatever", "sheet.ods is an OpenDocument spreadsheet"),
        (
            "broken.xlsx",
            b"PK\x03\x04 this is not really a zip",
            "broken.xlsx cannot be read as an Excel workbook",
        ),
        ("text.xlsx", b"Phone,Opt-In Date\n", "text.xlsx is not an Excel .xlsx workbook"),
        ("empty.xlsx", b"", "empty.xlsx: the file is empty"),
    ],
)
def test_unreadable_workbooks_are_refused(tmp_path, name, content, message):
    source = tmp_path / name
    source.write_bytes(content)
    with pytest.raises((InputError, UnsupportedFormatError)) as caught:
        read_contacts(source, ColumnChoice())
    assert message in str(caught.value)


def test_offset_table_and_blank_rows_stay_aligned(tmp_path, history_dir):
    source = tmp_path / "offset.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet["B3"], sheet["C3"], sheet["D3"] = "Phone", "Opt-In Date", "Zip"
    sheet["B4"], sheet["C4"], sheet["D4"] = "4155550104", "2024-04-01", "02134"
    sheet["B6"], sheet["C6"] = "4155550101", "2024-03-01"  # row 5 is blank
    sheet["B7"], sheet["C7"], sheet["D7"] = "4155550105", "2024-04-01", 7
    workbook.save(source)
    [result] = run_clean(source, history_dir)
    assert result.summary()["blank_rows_skipped"] == 1
    assert result.decisions["verdict"].to_list() == ["ok", "deactivated", "ok"]
    # the input workbook with the decided row removed: the table stays at B3, the blank
    # row 5 stays, row 7 moves up to row 6
    sheet = openpyxl.load_workbook(result.cleaned_path).active
    assert [[cell.value for cell in row] for row in sheet["B3:D6"]] == [
        ["Phone", "Opt-In Date", "Zip"],
        ["4155550104", "2024-04-01", "02134"],
        [None, None, None],
        ["4155550105", "2024-04-01", 7],
    ]
    assert sheet.max_row == 6


CELL = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    # text starting with "=" would be stored by openpyxl as a formula with no cached value
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=8).filter(
        lambda text: not text.startswith("=")
    ),
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2030, 1, 1)).map(
        lambda moment: moment.replace(microsecond=0)
    ),
    st.booleans(),
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["4155550101", 4155550104, "bad", "", 4155550102.0]),
            st.sampled_from(["2024-03-01", "2024-04-01", ""]),
            CELL,
        ),
        min_size=1,
        max_size=15,
    ),
)
def test_workbook_rows_are_kept_with_their_values(tmp_path_factory, history_dir, rows):
    folder = tmp_path_factory.mktemp("xlsx")
    source = folder / "contacts.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Phone", "Opt-In Date", "Other"])
    rows = [(phone, consent, other if other != "" else "x") for phone, consent, other in rows]
    for row in rows:
        sheet.append(list(row))
    workbook.save(source)
    [result] = run_clean(source, history_dir)
    summary = result.summary()
    assert summary["kept"] + summary["removed"] + summary["suppressed"] == len(rows)
    written = list(openpyxl.load_workbook(result.cleaned_path).active.iter_rows(values_only=True))
    # compare with the input's values as Excel holds them (floats to 16 digits; a formula
    # cell by its cached value, since kept rows no longer sit where its references point)
    stored = list(
        openpyxl.load_workbook(source, data_only=True).active.iter_rows(values_only=True)
    )[1:]
    expected = [row for row, kept in zip(stored, result.kept_mask, strict=True) if kept]
    assert written[1:] == expected


def test_a_zip_bomb_disguised_as_xlsx_is_refused(tmp_path, monkeypatch):
    import zipfile

    import reconcile._xlsx_checks

    # 16 MiB in the test, 256 MiB for real: the rule, not the size, is what is shown
    monkeypatch.setattr(reconcile._xlsx_checks, "_BOMB_FROM", 16 << 20)
    source = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b" " * (40 << 20))
    with pytest.raises(UnsupportedFormatError, match=r"unpacks to more than 1\d MiB from 1 MiB"):
        read_contacts(source, ColumnChoice())


def test_a_zip_bomb_that_declares_small_sizes_is_refused_by_what_it_inflates(tmp_path, monkeypatch):
    import struct
    import zipfile

    import reconcile._xlsx_checks

    monkeypatch.setattr(reconcile._xlsx_checks, "_BOMB_FROM", 16 << 20)
    source = tmp_path / "liar.xlsx"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b" " * (40 << 20))
    data = bytearray(source.read_bytes())
    # declare 1 KiB for the sheet in its local header and in the central directory
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_length = struct.unpack("<H", data[start + (26 if offset == 22 else 28) :][:2])[0]
            name_at = start + (30 if offset == 22 else 46)
            if bytes(data[name_at : name_at + name_length]) == b"xl/worksheets/sheet1.xml":
                data[start + offset : start + offset + 4] = struct.pack("<I", 1024)
            start += 4
    source.write_bytes(bytes(data))
    with zipfile.ZipFile(source) as archive:
        assert archive.getinfo("xl/worksheets/sheet1.xml").file_size == 1024  # the lie
    with pytest.raises(UnsupportedFormatError, match="a zip bomb"):
        read_contacts(source, ColumnChoice())


def _spec_sheet(path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    sheet.append(["Id", "Opt-In Date", "Phone"])
    sheet.append(["A", "2024-03-20", "(415) 555-0103"])  # ok
    sheet.append(["B", "2024-03-09", "(415) 555-0101"])  # deactivated
    sheet.append(["C", "2024-03-20", "(415) 555-0104"])  # ok
    workbook.save(path)


@pytest.mark.parametrize("dimension", ["A1:C4", "A1:B4", "A1:C2", "A1:Z99"])
def test_a_lying_dimension_changes_nothing_decided_or_written(tmp_path, history_dir, dimension):
    import re as regex

    source = tmp_path / "contacts.xlsx"
    _spec_sheet(source)
    rewrite_sheet(
        source,
        lambda xml: regex.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="{dimension}"/>', xml),
    )
    [result] = run_clean(
        source, history_dir, columns=ColumnChoice(id="Id"), out_dir=tmp_path / "out"
    )
    assert result.decisions["verdict"].to_list() == ["ok", "deactivated", "ok"]
    cleaned = openpyxl.load_workbook(result.cleaned_path).active
    rows = [list(row) for row in cleaned.iter_rows(values_only=True)]
    assert rows == [
        ["Id", "Opt-In Date", "Phone"],
        ["A", "2024-03-20", "(415) 555-0103"],
        ["C", "2024-03-20", "(415) 555-0104"],
    ]


def test_a_row_of_error_cells_is_a_row_and_error_cells_stay_errors(tmp_path, history_dir):
    source = tmp_path / "contacts.xlsx"
    _spec_sheet(source)
    workbook = openpyxl.load_workbook(source)
    sheet = workbook.active
    sheet.append(["D", "2024-03-20", "(415) 555-0104"])
    sheet.append([None, None, None])
    for cell in ("A6", "B6", "C6"):
        sheet[cell] = "#N/A"
        sheet[cell].data_type = "e"
    workbook.save(source)
    [result] = run_clean(
        source, history_dir, columns=ColumnChoice(id="Id"), out_dir=tmp_path / "out"
    )
    assert result.summary()["rows"] == 5
    assert result.decisions["verdict"].to_list()[-1] == "invalid_number"
    cleaned = openpyxl.load_workbook(result.cleaned_path).active
    last = list(cleaned.iter_rows())[-1]
    assert [cell.value for cell in last] == ["#N/A", "#N/A", "#N/A"]
    assert [cell.data_type for cell in last] == ["e", "e", "e"]


@pytest.mark.parametrize("shape", ["out of order", "duplicate row numbers"])
def test_rows_out_of_order_or_numbered_twice_are_written_as_decided(tmp_path, history_dir, shape):
    import re as regex

    source = tmp_path / "contacts.xlsx"
    _spec_sheet(source)

    def change(xml: str) -> str:
        rows = regex.findall(r"<row [^>]*>.*?</row>", xml, flags=regex.S)
        if shape == "out of order":
            reordered = [rows[0], rows[2], rows[1], rows[3]]
        else:  # the fourth row claims the third's number
            reordered = [rows[0], rows[1], rows[2], rows[3].replace('r="4"', 'r="3"')]
            reordered[3] = regex.sub(r'r="([A-Z])4"', r'r="\g<1>3"', reordered[3])
        return xml.replace("".join(rows), "".join(reordered))

    rewrite_sheet(source, change)
    [result] = run_clean(
        source, history_dir, columns=ColumnChoice(id="Id"), out_dir=tmp_path / "out"
    )
    decided = dict(zip(result.decisions["id"], result.decisions["action"], strict=True))
    cleaned = openpyxl.load_workbook(result.cleaned_path).active
    written = [row[0] for row in cleaned.iter_rows(min_row=2, values_only=True)]
    assert written == [key for key, action in decided.items() if action in ("keep", "review")]


@pytest.mark.parametrize("far", ["XFD1048576", "AZ1048576"])
def test_a_stray_far_cell_is_refused_in_one_line_before_any_reader_allocates_its_area(
    tmp_path, run_cli, history_dir, far
):
    """One value at XFD1048576 made calamine allocate 512 GiB (an abort); AZ1048576 cost
    2.2 GiB. The sheet's area is judged against the cells it holds, first."""
    source = tmp_path / "contacts.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    sheet.append(["Phone", "Opt-In Date"])
    sheet.append(["4155550101", "2024-03-09"])
    sheet[far] = "stray"
    workbook.save(source)
    before = source.read_bytes()
    result = run_cli("clean", source, "--changes", history_dir, "--out-dir", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith("reconcile: error: contacts.xlsx: sheet 'Contacts' spans A1:")
    assert "delete the stray cells past your table" in result.stderr
    assert result.stderr.count("\n") == 1
    assert source.read_bytes() == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_far_cell_on_another_sheet_and_a_wide_table_are_read(tmp_path):
    """Only the sheet read is judged; a table 300 columns wide holds what it spans, and a
    sparse one (4 of 300 cells a row filled, the last column among them) is read too."""
    source = tmp_path / "wide.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    sheet.append(["Phone", "Opt-In Date", *(f"Field {index}" for index in range(298))])
    for number in range(101, 141):
        sheet.append([f"41555501{number % 100:02d}", "2024-03-09", *(["x"] * 298)])
    workbook.create_sheet("Notes")["XFD1048576"] = "far away"
    workbook.save(source)
    contacts = read_contacts(source, ColumnChoice())
    assert contacts.all_values().height == 40
    sparse = tmp_path / "sparse.xlsx"
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Contacts")
    sheet.append(["Phone", "Opt-In Date", *([None] * 297), "Last"])
    for number in range(7000):  # 2.1M cells spanned, 28,000 held
        sheet.append([f"212555{number % 10000:04d}", "2024-03-09", *([None] * 297), "x"])
    workbook.save(sparse)
    assert read_contacts(sparse, ColumnChoice()).all_values().height == 7000


@pytest.mark.parametrize(
    ("variant", "edit", "rename"),
    [
        ("single-quoted", lambda xml: xml.replace('r="XFD1048576"', "r='XFD1048576'"), None),
        (
            "spaces-around-equals",
            lambda xml: xml.replace('r="XFD1048576"', 'r = "XFD1048576"'),
            None,
        ),
        ("leading-zeros", lambda xml: xml.replace('r="XFD1048576"', 'r="XFD0001048576"'), None),
        ("lower-case", lambda xml: xml.replace('r="XFD1048576"', 'r="xfd1048576"'), None),
        ("stored-elsewhere", lambda xml: xml, "xl/elsewhere/contacts.xml"),
    ],
)
def test_a_far_cell_written_any_valid_way_is_refused(
    tmp_path, run_cli, history_dir, variant, edit, rename
):
    """Found by the adversarial review: each of these aborted the process."""
    plain = tmp_path / "plain.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Phone", "Opt-In Date"])
    sheet.append(["4155550101", "2024-03-09"])
    sheet["XFD1048576"] = "stray"
    workbook.save(plain)
    source = tmp_path / f"{variant}.xlsx"
    rewrite_sheet(plain, edit, target=source, rename=rename)
    result = run_cli("clean", source, "--changes", history_dir, "--out-dir", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert f"{variant}.xlsx: sheet 'Sheet' spans A1:XFD1048576" in result.stderr
    assert result.stderr.count("\n") == 1
