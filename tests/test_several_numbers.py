"""Every number of every contact (SPEC "Several numbers per contact"), row by row, in
strip, blank and flag mode; and the CSV shapes real CRM exports have."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import openpyxl
import pytest

from reconcile.clean import CleanOptions, clean_files
from reconcile.columns import ColumnChoice
from reconcile.errors import ColumnError, MalformedCSVError
from tests.helpers import NOW

METADATA = {
    "results": [
        {
            "reportId": "spec-1",
            "networkName": "Verizon Wireless",
            "networkId": 1717,
            "generatedDate": "2024-06-01",
            "dateFrom": "2024-03-01",
            "dateTo": "2024-06-01",
            "expiryDate": "2024-07-31",
        }
    ],
    "paging": {"page": 0, "size": 20, "totalPages": 1, "totalResults": 1},
}
RECORDS = {
    "results": [
        {
            "date": "2024-03-10T11:00:00.000+0000",
            "destination": "14155550123",
            "type": "DEACTIVATION",
        }
    ],
    "paging": {"page": 0, "size": 20, "totalPages": 1, "totalResults": 1},
}

# SPEC's worked examples for several numbers per row: +14155550123 deactivated
# 2024-03-10T11:00Z, +12125550143 without events, consent 2024-03-05.
EXAMPLES = [
    # Phone, Mobile, verdict, action, kept by strip, blank mode empties
    ("(212) 555-0143", "(415) 555-0123", "deactivated", "remove", False, {"Mobile"}),
    ("(415) 555-0123", "", "deactivated", "remove", False, {"Phone"}),
    ("", "Mobile: 212-555-0143", "ok", "keep", True, set()),
    ("", "", "invalid_number", "review", True, set()),
    ("call after 5", "212-555-0143", "invalid_number", "review", True, set()),
    ("212-555-0143 / 415-555-0123", "", "deactivated", "remove", False, {"Phone"}),
]


@pytest.fixture
def spec_history(tmp_path: Path) -> Path:
    folder = tmp_path / "history"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps(METADATA))
    (folder / "spec-1.json").write_text(json.dumps(RECORDS))
    return folder


def _write_examples(path: Path) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["Id", "Phone", "Mobile", "Opt-In Date", "Notes"])
    for index, (phone, mobile, *_rest) in enumerate(EXAMPLES, start=1):
        writer.writerow([f"C{index}", phone, mobile, "2024-03-05", f"note, {index}"])
    content = buffer.getvalue().encode()
    path.write_bytes(content)
    return content


def _clean(path: Path, history: Path, **options: object):
    from reconcile.history_files import load_change_files

    [result] = clean_files(
        [path],
        load_change_files([history]),
        CleanOptions(**options),
        NOW,  # type: ignore[arg-type]
        keep_decisions=True,
    )
    return result


def _records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_spec_examples_row_by_row_in_strip_mode(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    content = _write_examples(source)
    result = _clean(source, spec_history, out_dir=tmp_path / "strip")
    decisions = result.decisions
    assert decisions["verdict"].to_list() == [example[2] for example in EXAMPLES]
    assert decisions["action"].to_list() == [example[3] for example in EXAMPLES]
    header, *rows = _records(content)
    kept = [row for row, example in zip(rows, EXAMPLES, strict=True) if example[4]]
    assert _records(result.cleaned_path.read_bytes()) == [header, *kept]
    summary = result.summary()
    assert summary["columns"]["phone"] == ["Phone", "Mobile"]
    assert summary["rows"] == 6 and summary["numbers"]["checked"] == 8  # 7 numbers, 1 note
    assert summary["kept"] + summary["removed"] + summary["suppressed"] == 6


def test_the_change_list_has_a_line_per_number_that_is_not_ok(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    _write_examples(source)
    result = _clean(source, spec_history, out_dir=tmp_path)
    lines = list(csv.DictReader(io.StringIO(result.changes_path.read_text())))
    by_row: dict[str, list[dict[str, str]]] = {}
    for line in lines:
        by_row.setdefault(line["row"], []).append(line)
    # the first row: one line, for Mobile
    assert [(line["phone_column"], line["phone_e164"]) for line in by_row["1"]] == [
        ("Mobile", "+14155550123")
    ]
    # the row with no number at all, and the one whose Phone cell holds no number
    assert [line["reason"] for line in by_row["4"]] == ["invalid number: no phone number"]
    assert [(line["phone_column"], line["phone"], line["verdict"]) for line in by_row["5"]] == [
        ("Phone", "call after 5", "invalid_number")
    ]
    assert "'call after 5'" in by_row["5"][0]["reason"]
    # the last row: one line for +14155550123, none for the ok number beside it
    assert [(line["phone_column"], line["phone_e164"]) for line in by_row["6"]] == [
        ("Phone", "+14155550123")
    ]
    assert "3" not in by_row


def test_spec_examples_in_blank_mode_empty_only_the_cells(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    content = _write_examples(source)
    result = _clean(source, spec_history, out_dir=tmp_path, mode="blank")
    written = result.cleaned_path.read_bytes()
    original_lines = content.split(b"\r\n")
    written_lines = written.split(b"\r\n")
    assert len(written_lines) == len(original_lines)  # every row kept
    header, *rows = _records(content)
    expected = [header]
    for row, example in zip(rows, EXAMPLES, strict=True):
        emptied = example[5]
        expected.append(
            ["" if name in emptied else value for name, value in zip(header, row, strict=True)]
        )
    assert _records(written) == expected
    # every other byte of a record is unchanged: the emptied field stays in its place
    for before, after, example in zip(
        original_lines[1:-1], written_lines[1:-1], EXAMPLES, strict=True
    ):
        if not example[5]:
            assert before == after
    assert written_lines[1] == b'C1,(212) 555-0143,,2024-03-05,"note, 1"'
    summary = result.summary()
    assert summary["mode"] == "blank" and summary["removed"] == 3


def test_spec_examples_in_flag_mode(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    _write_examples(source)
    result = _clean(source, spec_history, out_dir=tmp_path, mode="flag")
    records = list(csv.DictReader(io.StringIO(result.cleaned_path.read_text())))
    assert [record["reconcile_verdict"] for record in records] == [e[2] for e in EXAMPLES]
    assert [record["reconcile_phone_e164"] for record in records] == [
        "+12125550143;+14155550123",
        "+14155550123",
        "+12125550143",
        "",
        "+12125550143",
        "+12125550143;+14155550123",
    ]
    assert records[0]["reconcile_event_date"] == "2024-03-10T11:00:00Z"
    assert records[0]["reconcile_reason"].startswith("DEACTIVATION on 2024-03-10T11:00:00Z")


def test_blank_mode_in_a_workbook_empties_the_cell_and_keeps_the_others(tmp_path, spec_history):
    source = tmp_path / "contacts.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    sheet.append(["Id", "Phone", "Mobile", "Opt-In Date", "Score"])
    for index, (phone, mobile, *_rest) in enumerate(EXAMPLES, start=1):
        sheet.append([f"C{index}", phone or None, mobile or None, "2024-03-05", index * 1.5])
    workbook.save(source)
    result = _clean(source, spec_history, out_dir=tmp_path, mode="blank")
    cleaned = openpyxl.load_workbook(result.cleaned_path).active
    values = [[cell.value for cell in row] for row in cleaned.iter_rows(min_row=2)]
    assert len(values) == len(EXAMPLES)
    assert values[0] == ["C1", "(212) 555-0143", None, "2024-03-05", 1.5]
    assert values[1] == ["C2", None, None, "2024-03-05", 3.0]
    assert values[2] == ["C3", None, "Mobile: 212-555-0143", "2024-03-05", 4.5]
    assert values[5][1] is None and values[5][4] == 9.0


def test_phone_column_option_checks_exactly_the_columns_named(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    _write_examples(source)
    result = _clean(source, spec_history, out_dir=tmp_path, columns=ColumnChoice(phones=("phone",)))
    assert result.summary()["columns"]["phone"] == ["Phone"]
    # the first row's deactivated Mobile is not checked when only Phone is asked for
    assert result.decisions["verdict"][0] == "ok"


@pytest.mark.parametrize(
    "header",
    [
        "Phone,MobilePhone,SMS Consent Timestamp",
        "Phone Number,Mobile Phone Number,Opt-In Date",
        "phone_number,mobile_number,SMS_Opt_In_Date__c",
        "Home Phone,Cell,Date Subscribed",
    ],
)
def test_every_phone_column_and_the_consent_column_are_found(tmp_path, spec_history, header):
    source = tmp_path / "contacts.csv"
    source.write_text(f"{header}\n2125550143,4155550123,2024-03-05\n")
    result = _clean(source, spec_history, out_dir=tmp_path)
    assert result.summary()["columns"]["phone"] == header.split(",")[:2]
    assert result.summary()["columns"]["consent"] == header.split(",")[2]
    assert result.decisions["verdict"].to_list() == ["deactivated"]


def test_without_a_consent_column_the_error_names_the_columns_holding_dates(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    source.write_text("Phone,Created,Signed up,Notes\n4155550123,2024-01-02,3/4/2024,hi\n")
    with pytest.raises(ColumnError) as caught:
        _clean(source, spec_history, out_dir=tmp_path)
    assert str(caught.value) == (
        "contacts.csv: no consent date column found; name it with --consent-column "
        "(the columns holding dates: 'Created', 'Signed up')."
    )


def test_day_first_consent_values_are_counted_with_the_format_that_reads_them(
    tmp_path, spec_history
):
    source = tmp_path / "contacts.csv"
    source.write_text("Phone,Opt-In Date\n4155550123,13/03/2024\n2125550143,25/03/2024\n")
    result = _clean(source, spec_history, out_dir=tmp_path)
    problems = result.summary()["consent"]
    assert problems == {
        "unreadable": 2,
        "examples": ["13/03/2024", "25/03/2024"],
        "hint": "--consent-format '%d/%m/%Y'",
    }
    assert any("--consent-format '%d/%m/%Y'" in warning for warning in result.warnings)
    fixed = _clean(source, spec_history, out_dir=tmp_path / "fixed", consent_format="%d/%m/%Y")
    assert fixed.summary()["consent"]["unreadable"] == 0


SALESFORCE_FOOTER = (
    b'\r\n"Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."\r\n'
    b'"Confidential Information - Do Not Distribute"\r\n'
    b'"Generated By:  Ana Admin  11/30/2026 6:34 AM"\r\n'
    b'"Acme, Inc."\r\n'
)


def test_a_salesforce_report_footer_is_reported_and_copied(tmp_path, spec_history):
    source = tmp_path / "report.csv"
    body = (
        b'"Contact ID","Phone","Mobile","Opt-In Date"\r\n'
        b'"0035e00000AbCdE","(212) 555-0143","(415) 555-0123","2024-03-05"\r\n'
        b'"0035e00000AbCdF","(212) 555-0143","","2024-03-05"\r\n'
    )
    source.write_bytes(body + SALESFORCE_FOOTER)
    for mode in ("strip", "blank", "flag"):
        result = _clean(source, spec_history, out_dir=tmp_path / mode, mode=mode)
        written = result.cleaned_path.read_bytes()
        assert written.endswith(SALESFORCE_FOOTER), mode
        assert result.summary()["rows"] == 2
        assert result.summary()["footer_lines"] == 4
        assert any("report footer of 4 line(s)" in warning for warning in result.warnings)
    strip = (tmp_path / "strip" / "report.cleaned.csv").read_bytes()
    assert strip == body.splitlines(keepends=True)[0] + body.splitlines(keepends=True)[2] + (
        SALESFORCE_FOOTER
    )


def test_a_single_field_line_elsewhere_is_still_a_ragged_row(tmp_path, spec_history):
    source = tmp_path / "report.csv"
    source.write_bytes(b"Phone,Opt-In Date\r\nGenerated By: Ana\r\n4155550123,2024-03-05\r\n")
    with pytest.raises(MalformedCSVError, match="line 2 has 1 fields"):
        _clean(source, spec_history, out_dir=tmp_path)


def test_cr_only_line_ends_are_read_and_written_back(tmp_path, spec_history):
    source = tmp_path / "mac.csv"
    content = b"Phone,Opt-In Date,Notes\r4155550123,2024-03-05,a\r2125550143,2024-03-05,b\r"
    source.write_bytes(content)
    result = _clean(source, spec_history, out_dir=tmp_path)
    assert result.decisions["verdict"].to_list() == ["deactivated", "ok"]
    assert result.cleaned_path.read_bytes() == b"Phone,Opt-In Date,Notes\r2125550143,2024-03-05,b\r"
    flagged = _clean(source, spec_history, out_dir=tmp_path / "flag", mode="flag")
    assert flagged.cleaned_path.read_bytes().count(b"\r") == 3
    assert b"\n" not in flagged.cleaned_path.read_bytes()


def test_a_semicolon_file_with_unquoted_commas_is_a_semicolon_file(tmp_path, spec_history):
    source = tmp_path / "european.csv"
    source.write_bytes(
        b"Phone;Name, as written (last, first);consent_date\r\n"
        b"4155550123;Doe, Jane;2024-03-05\r\n"
        b"2125550143;Roe, Richard;2024-03-05\r\n"
    )
    result = _clean(source, spec_history, out_dir=tmp_path)
    assert result.table.delimiter == ";"
    assert result.decisions["verdict"].to_list() == ["deactivated", "ok"]
    forced = _clean(source, spec_history, out_dir=tmp_path / "forced", delimiter=";")
    assert forced.decisions["verdict"].to_list() == ["deactivated", "ok"]


def test_row_numbers_count_blank_lines_as_a_spreadsheet_shows_them(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    source.write_bytes(b"Phone,Opt-In Date\n2125550143,2024-03-05\n\n\n4155550123,2024-03-05\n")
    result = _clean(source, spec_history, out_dir=tmp_path)
    [line] = list(csv.DictReader(io.StringIO(result.changes_path.read_text())))
    assert line["row"] == "4"  # the file's fifth record
    assert result.summary()["blank_rows_skipped"] == 2


def test_evidence_keeps_its_fraction_of_a_second(tmp_path):
    folder = tmp_path / "history"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps(METADATA))
    records = {
        "results": [
            {
                "date": "2024-03-10T11:00:00.250+0000",
                "destination": "14155550123",
                "type": "DEACTIVATION",
            }
        ],
        "paging": {"page": 0, "size": 20, "totalPages": 1, "totalResults": 1},
    }
    (folder / "spec-1.json").write_text(json.dumps(records))
    source = tmp_path / "contacts.csv"
    source.write_text("Phone,Opt-In Date\n4155550123,2024-03-10T11:00:00.25Z\n")
    result = _clean(source, folder, out_dir=tmp_path)
    [line] = list(csv.DictReader(io.StringIO(result.changes_path.read_text())))
    assert line["verdict"] == "deactivated"  # a tie counts
    assert line["event_date"] == "2024-03-10T11:00:00.250Z"
    assert "at or after consent 2024-03-10T11:00:00.250Z" in line["reason"]


@pytest.mark.parametrize(
    "cell",
    [
        "415-555-0123 (9am-5pm)",
        "415-555-0123 (24/7)",
        "415-555-0123 - 2nd line",
        "4155550123 (2)",
        "212-555-0143\t415-555-0123",
        "(212) 555-0143 (415) 555-0123",
        "415-555-0123 - 212-555-0143",
        "415\u2013555\u20130123",
        "212 555 0143 415 555 0123",
    ],
)
def test_a_number_beside_a_note_or_another_number_is_found(tmp_path, spec_history, cell):
    source = tmp_path / "contacts.csv"
    source.write_text(f'Phone,Opt-In Date\n"{cell}",2024-03-05\n')
    result = _clean(source, spec_history, out_dir=tmp_path)
    assert result.decisions["verdict"].to_list() == ["deactivated"], cell
    blank = _clean(source, spec_history, out_dir=tmp_path / "blank", mode="blank")
    assert blank.cleaned_path.read_text() == "Phone,Opt-In Date\n,2024-03-05\n"


@pytest.mark.parametrize(
    "header",
    ["Asst. Phone", "Phone #", "Mobile No.", "Phone (Mobile)", "Phone - Mobile", "Tél", "Handy"],
)
def test_phone_columns_named_as_crms_and_countries_write_them(tmp_path, spec_history, header):
    source = tmp_path / "contacts.csv"
    source.write_text(f'Phone,"{header}",Opt-In Date\n212-555-0143,415-555-0123,2024-03-05\n')
    result = _clean(source, spec_history, out_dir=tmp_path)
    assert result.summary()["columns"]["phone"] == ["Phone", header]
    assert result.decisions["verdict"].to_list() == ["deactivated"]


def test_blank_mode_with_more_than_64_phone_columns(tmp_path, spec_history):
    names = [f"P{index}" for index in range(70)]
    source = tmp_path / "wide.csv"
    cells = [""] * 69 + ["415-555-0123"]
    source.write_text(
        ",".join([*names, "Opt-In Date"]) + "\n" + ",".join([*cells, "2024-03-05"]) + "\n"
    )
    result = _clean(
        source,
        spec_history,
        out_dir=tmp_path,
        mode="blank",
        columns=ColumnChoice(phones=tuple(names)),
    )
    assert result.cleaned_path.read_text().splitlines()[1] == "," * 70 + "2024-03-05"


def test_an_id_column_that_is_also_a_phone_column(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    source.write_text("Phone,Opt-In Date\n415-555-0123,2024-03-05\n")
    result = _clean(source, spec_history, out_dir=tmp_path, columns=ColumnChoice(id="Phone"))
    assert result.decisions["id"].to_list() == ["415-555-0123"]
    assert result.decisions["verdict"].to_list() == ["deactivated"]


def test_a_cr_only_file_with_a_line_break_inside_a_cell(tmp_path, spec_history):
    source = tmp_path / "mac.csv"
    source.write_bytes(
        b'Id,Phone,Opt-In Date\r1,"Mobile: 415-555-0123\nHome: 212-555-0143",2024-03-05\r'
        b"2,212-555-0143,2024-03-05\r"
    )
    result = _clean(source, spec_history, out_dir=tmp_path)
    assert result.decisions["verdict"].to_list() == ["deactivated", "ok"]
    assert result.cleaned_path.read_bytes() == b"Id,Phone,Opt-In Date\r2,212-555-0143,2024-03-05\r"


def test_change_list_cells_that_look_like_formulas_are_neutralized(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    source.write_text(
        'Id,Phone,Opt-In Date\n"=HYPERLINK(""http://x"",""c"")",=4155550123,2024-03-05\n'
        "@SUM(1),+1 (415) 555-0123,2024-03-05\n"
        '"+cmd|\' /C calc\'!A0","-415-555-0123",2024-03-05\n'
    )
    result = _clean(source, spec_history, out_dir=tmp_path, columns=ColumnChoice(id="Id"))
    lines = list(csv.DictReader(io.StringIO(result.changes_path.read_text())))
    assert [line["id"] for line in lines] == [
        '\'=HYPERLINK("http://x","c")',
        "'@SUM(1)",
        "'+cmd|' /C calc'!A0",
    ]
    assert [line["phone"] for line in lines] == [
        "'=4155550123",
        "+1 (415) 555-0123",
        "-415-555-0123",
    ]


def test_the_day_first_hint_reads_values_with_a_time(tmp_path, spec_history):
    source = tmp_path / "contacts.csv"
    source.write_text(
        "Phone,Opt-In Date\n4155550123,13/03/2024 14:30\n4155550123,n/a\n4155550123,n/a\n"
    )
    problems = _clean(source, spec_history, out_dir=tmp_path).summary()["consent"]
    assert problems["hint"] == "--consent-format '%d/%m/%Y %H:%M'"
    assert problems["examples"] == ["13/03/2024 14:30", "n/a"]
    fixed = _clean(
        source, spec_history, out_dir=tmp_path / "fixed", consent_format="%d/%m/%Y %H:%M"
    )
    assert fixed.summary()["consent"]["unreadable"] == 2  # the two n/a


def test_the_day_first_hint_is_given_only_when_it_reads_more_values(tmp_path, spec_history):
    """Two day-first values among 63 month-first ones: the hint would leave the month-
    first values past the 12th unreadable and re-read the others (11/1 as January 11th),
    so it is not given; the two values are still counted unreadable."""
    source = tmp_path / "contacts.csv"
    month_first = [f"{month}/{day}/2024" for month in (1, 2, 3) for day in range(1, 22)]
    rows = [*month_first, "25/03/2024", "13/02/2024"]
    source.write_text(
        "Phone,Opt-In Date\n" + "".join(f"41555501{i % 100:02d},{v}\n" for i, v in enumerate(rows))
    )
    problems = _clean(source, spec_history, out_dir=tmp_path).summary()["consent"]
    assert problems["unreadable"] == 2
    assert problems["hint"] is None
