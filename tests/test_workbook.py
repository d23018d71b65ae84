"""The audit workbook, opened as an auditor would: sheets, counts, evidence, no formulas."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json

import openpyxl
import pytest

import reconcile.workbook
from reconcile.columns import ColumnChoice
from tests.helpers import run_clean

CONTACTS = (
    "Contact ID,Mobile Phone,Opt-In Date,Note\n"
    "C1,4155550101,2024-03-09,deactivated\n"
    '"=HYPERLINK(""http://evil.example"")",4155550102,2024-03-20,suspended\n'
    "C3,+1 415 555 0104,2024-04-01,ok\n"
    "C4,,2024-04-01,invalid\n"
    "C5,4155550105,2024-01-15,unverified\n"
    "C6,+1 415 555 0106,,=1+1\n"
)


@pytest.fixture
def cleaned(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    source.write_text(CONTACTS)
    [result] = run_clean(source, history_dir)
    return result


def test_workbook_sheets_counts_and_evidence(cleaned):
    workbook = openpyxl.load_workbook(cleaned.report_path)
    assert workbook.sheetnames == [
        "Summary",
        "Remove",
        "Suppress",
        "Review",
        "Coverage",
        "Reports",
        "Deactivations",
    ]
    changes = list(csv.DictReader(io.StringIO(cleaned.changes_path.read_text())))
    action_rows = {
        name: list(workbook[name].iter_rows(min_row=2, values_only=True))
        for name in ("Remove", "Suppress", "Review")
    }
    assert sum(len(rows) for rows in action_rows.values()) == len(changes)
    for name, rows in action_rows.items():
        expected = [change for change in changes if change["action"] == name.lower()]
        assert [str(row[0]) for row in rows] == [change["row"] for change in expected]
    [removed] = action_rows["Remove"]
    header = [cell.value for cell in workbook["Remove"][1]]
    removed_row = dict(zip(header, removed, strict=True))
    assert removed_row["Contact id"] == "C1"
    assert removed_row["Event"] == "DEACTIVATION"
    assert removed_row["Event date (UTC)"] == dt.datetime(2024, 3, 10, 11, 0)
    assert removed_row["Operator"] in {"Verizon Wireless", "AT&T Mobility"}
    assert removed_row["Report id"] in {"rep-vz-1", "rep-att-1"}
    assert removed_row["Suggested number (needs consent)"] == "+14155550999"
    [suspended] = action_rows["Suppress"]
    assert suspended[1] == '=HYPERLINK("http://evil.example")'  # the id, kept as text


def test_no_cell_is_a_formula_and_dates_are_dates(cleaned):
    workbook = openpyxl.load_workbook(cleaned.report_path)
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    remove = workbook["Remove"]
    assert remove.cell(2, 10).is_date  # Event date (UTC)
    assert remove.freeze_panes == "A2" and remove.auto_filter.ref.startswith("A1:")
    phone_cells = [cell.value for cell in workbook["Review"]["D"][1:]]
    assert "+1 415 555 0106" in phone_cells  # text, not a number or a formula


def test_summary_names_inputs_hash_options_coverage_and_versions(cleaned):
    summary = dict(
        openpyxl.load_workbook(cleaned.report_path)["Summary"].iter_rows(
            min_row=2, values_only=True
        )
    )
    digest = hashlib.sha256(cleaned.table.path.read_bytes()).hexdigest()
    assert summary["Input SHA-256"] == digest
    assert summary["Rows"] == 6
    assert summary["Verdict: deactivated"] == 1 and summary["Verdict: invalid_number"] == 1
    assert summary["Action: remove"] == 1 and summary["Action: suppress"] == 1
    assert summary["Coverage start (UTC)"] == dt.datetime(2024, 3, 1)
    assert summary["Coverage end (UTC): verdicts hold as of"] == dt.datetime(2024, 6, 1)
    assert summary["Tool"].startswith("reconcile ")
    assert isinstance(summary["Run at (UTC)"], dt.datetime)
    assert summary["Option: consent_timezone"] == "UTC"
    assert summary["History"] == "change files"
    rows = list(
        openpyxl.load_workbook(cleaned.report_path)["Summary"].iter_rows(
            min_row=2, values_only=True
        )
    )
    sources = [value for field, value in rows if field == "History source"]
    assert len(sources) == 3 and all(source.endswith(".json") for source in sources)
    assert summary["Input encoding (detected)"] == "utf-8"
    assert summary["Input delimiter (detected)"] == ","
    assert summary["Phone columns checked"] == "'Mobile Phone'"
    assert summary["Consent values unreadable"] == 0


def test_coverage_reports_and_chart(cleaned):
    workbook = openpyxl.load_workbook(cleaned.report_path)
    coverage = list(workbook["Coverage"].iter_rows(min_row=2, values_only=True))
    assert {row[0] for row in coverage} == {"Verizon Wireless", "AT&T Mobility"}
    reports = list(workbook["Reports"].iter_rows(min_row=2, values_only=True))
    assert {row[0] for row in reports} == {"rep-vz-1", "rep-att-1"}
    deactivations = workbook["Deactivations"]
    assert len(deactivations._charts) == 1
    weeks = list(deactivations.iter_rows(min_row=2, values_only=True))
    assert all(isinstance(row[0], dt.datetime) for row in weeks)
    assert sum(sum(row[1:]) for row in weeks) == 3  # three deactivation events in the history


def test_a_sheet_past_the_row_limit_continues_on_a_next_sheet(tmp_path, history_dir, monkeypatch):
    monkeypatch.setattr(reconcile.workbook, "EXCEL_MAX_ROWS", 3)  # header + 2 rows a sheet
    source = tmp_path / "contacts.csv"
    source.write_text("Phone,Opt-In Date\n" + "".join(f"41555501{n:02d},\n" for n in range(50, 55)))
    [result] = run_clean(source, history_dir)
    workbook = openpyxl.load_workbook(result.report_path)
    review = [name for name in workbook.sheetnames if name.startswith("Review")]
    assert review == ["Review", "Review (2)", "Review (3)"]
    rows = [row for name in review for row in workbook[name].iter_rows(min_row=2, values_only=True)]
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5]


def test_no_report_option(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    source.write_text(CONTACTS)
    [result] = run_clean(source, history_dir, report=False)
    assert result.report_path is None
    assert not (tmp_path / "contacts.report.xlsx").exists()


def test_control_characters_and_an_operator_named_week_make_a_workbook(tmp_path):
    from reconcile.clean import CleanOptions, clean_files
    from reconcile.history_files import load_change_files
    from tests.helpers import NOW

    folder = tmp_path / "history"
    folder.mkdir()
    metadata = {
        "results": [
            {
                "reportId": "r1",
                "networkName": "week",
                "dateFrom": "2024-03-01",
                "dateTo": "2024-06-01",
            },
            {
                "reportId": "r2",
                "networkName": "Evil\x01\x1b[31m",
                "dateFrom": "2024-03-01",
                "dateTo": "2024-06-01",
            },
        ]
    }
    (folder / "meta.json").write_text(json.dumps(metadata))
    for report_id, number in (("r1", "14155550101"), ("r2", "14155550102")):
        (folder / f"{report_id}.json").write_text(
            json.dumps(
                {
                    "results": [
                        {
                            "date": "2024-03-10T11:00:00.000+0000",
                            "destination": number,
                            "type": "DEACTIVATION",
                        }
                    ]
                }
            )
        )
    source = tmp_path / "contacts.csv"
    source.write_text(
        'Id,Phone,Opt-In Date\n"a\x01b",4155550101,2024-03-05\nc,4155550102,2024-03-05\n'
    )
    [result] = clean_files(
        [source], load_change_files([folder]), CleanOptions(columns=ColumnChoice(id="Id")), NOW
    )
    workbook = openpyxl.load_workbook(result.report_path)
    # the id as the file has it, in the format's escape (Excel and calamine undo it)
    assert workbook["Remove"]["B2"].value == "a_x0001_b"
    assert workbook["Deactivations"]["B1"].value in ("week", "Evil\ufffd\ufffd[31m")


def test_the_weekly_chart_is_a_timeline_of_whole_numbers_counted_once():
    import polars as pl

    from reconcile.history import REPORT_SCHEMA, History, compute_coverage
    from reconcile.weekly import weekly_deactivations
    from tests.helpers import events_frame

    events = events_frame(
        [
            (14155550101, "DEACTIVATION", "2024-03-04T10:00:00Z", "r1"),
            # the same deactivation in a second report (or an imported CSV): once
            (14155550101, "DEACTIVATION", "2024-03-04T10:00:00Z", "r2"),
            (14155550102, "DEACTIVATION", "2024-03-27T10:00:00Z", "r1"),
        ]
    )
    history = History(events=events, reports=pl.DataFrame(schema=REPORT_SCHEMA))
    table = weekly_deactivations(history, compute_coverage(history.reports, events))
    assert table.get_column("week").to_list() == [
        dt.date(2024, 3, 4),
        dt.date(2024, 3, 11),  # no deactivation: a zero, the axis stays a timeline
        dt.date(2024, 3, 18),
        dt.date(2024, 3, 25),
    ]
    assert table.get_column("op:Verizon Wireless").to_list() == [1, 0, 0, 1]
    assert table.schema["week"] == pl.Date


def test_coverage_names_every_operator_of_the_metadata_and_each_gap_as_dates(tmp_path):
    from reconcile.history_files import load_change_files
    from reconcile.workbook import coverage_rows

    metadata = {
        "results": [
            {
                "reportId": "vz-1",
                "networkName": "Verizon Wireless",
                "dateFrom": "2024-03-01",
                "dateTo": "2024-03-02",
            },
            {
                "reportId": "vz-2",
                "networkName": "Verizon Wireless",
                "dateFrom": "2024-03-02",
                "dateTo": "2024-03-03",
            },
            {
                "reportId": "vz-3",
                "networkName": "Verizon Wireless",
                "dateFrom": "2024-03-03",
                "dateTo": "2024-03-04",
            },
            {
                "reportId": "tmo-1",
                "networkName": "T-Mobile USA",
                "dateFrom": "2024-03-01",
                "dateTo": "2024-03-02",
            },
        ]
    }
    (tmp_path / "meta.json").write_text(json.dumps(metadata))
    for report_id in ("vz-1", "vz-3"):
        (tmp_path / f"{report_id}.json").write_text(
            json.dumps(
                {
                    "results": [],
                    "paging": {"page": 0, "size": 10, "totalPages": 0, "totalResults": 0},
                }
            )
        )
    history = load_change_files([tmp_path])
    rows = coverage_rows(history.coverage(), history.reports)
    by_operator = {row[0]: row for row in rows}
    assert by_operator["Verizon Wireless"][3] == 3
    assert by_operator["Verizon Wireless"][4] == "2024-03-02 to 2024-03-02"
    assert by_operator["T-Mobile USA"][1:] == [
        None,
        None,
        1,
        "2024-03-01 to 2024-03-01 (report listed, not covered)",
        "none",
    ]
