"""Change files: API records and metadata pages, bare CSV, folders, and bad files."""

from __future__ import annotations

import json

import polars as pl
import pytest

from reconcile.errors import ChangeFileError
from reconcile.history_files import load_change_files
from tests.conftest import METADATA, RECORDS_VZ


def test_folder_gives_events_reports_and_coverage(history_dir):
    history = load_change_files([history_dir])
    assert history.events.height == 4
    assert history.events.schema["number"].__class__.__name__ == "UInt64"
    by_report = dict(zip(history.reports["report_id"], history.reports["status"], strict=True))
    assert by_report == {"rep-vz-1": "complete", "rep-att-1": "complete"}
    # the records file named records-rep-att-1-page0.json belongs to report rep-att-1
    networks = set(
        history.events.filter(history.events["report_id"] == "rep-att-1")["network_name"]
    )
    assert networks == {"AT&T Mobility"}
    coverage = history.coverage()
    assert coverage.start.isoformat() == "2024-03-01T00:00:00+00:00"
    assert coverage.end.isoformat() == "2024-06-01T00:00:00+00:00"
    assert {operator.network for operator in coverage.operators} == {
        "Verizon Wireless",
        "AT&T Mobility",
    }


def test_records_without_metadata_assume_coverage_from_their_earliest_event(tmp_path):
    page = tmp_path / "some-report.json"
    page.write_text(json.dumps(RECORDS_VZ))
    history = load_change_files([page])
    assert history.reports.row(0, named=True)["status"] == "assumed"
    [report_id] = history.events["report_id"].unique().to_list()
    assert report_id.startswith("some-report-")  # the stem and a digest of the content
    coverage = history.coverage()
    assert coverage.start.isoformat() == "2024-03-10T11:00:00+00:00"
    assert any("assumed to cover from their earliest event" in note for note in coverage.notes)


def test_bare_csv_with_and_without_header(tmp_path):
    with_header = tmp_path / "a.csv"
    with_header.write_text(
        "destination,date,type,newDestination\n14155550101,2024-03-10T11:00:00.000+0000,DEACTIVATION,14155550999\n"
    )
    without = tmp_path / "b.csv"
    without.write_text("14155550102,2024-03-11T11:00:00Z,suspension\n")
    history = load_change_files([with_header, without])
    rows = history.events.sort("number").select("number", "type", "new_number").rows()
    assert rows == [(14155550101, "DEACTIVATION", 14155550999), (14155550102, "SUSPENSION", None)]
    ids = history.events.sort("number")["report_id"].to_list()
    assert ids[0].startswith("a-") and ids[1].startswith("b-")
    assert load_change_files([with_header], report_id="vendor-1").events["report_id"][0] == (
        "vendor-1"
    )


def test_missing_record_pages_make_a_report_incomplete(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps(METADATA))
    page = dict(RECORDS_VZ, paging={"page": 0, "size": 1, "totalPages": 3, "totalResults": 3})
    (tmp_path / "rep-vz-1-p0.json").write_text(json.dumps(page))
    history = load_change_files([tmp_path])
    statuses = dict(zip(history.reports["report_id"], history.reports["status"], strict=True))
    assert statuses == {"rep-vz-1": "incomplete", "rep-att-1": "listed"}
    assert history.events.height == 2  # the events still count
    assert history.coverage().start is None  # but nothing is complete
    assert any("page(s) 1, 2 of 3 missing" in warning for warning in history.warnings)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", "{not json", "bad.json: not valid JSON (line 1, column 2"),
        (
            "list.json",
            "[1, 2]",
            'list.json: not an API page: expected an object with a "results" list.',
        ),
        (
            "r.json",
            json.dumps({"results": [{"date": "2024-03-10T11:00:00Z", "type": "DEACTIVATION"}]}),
            "r.json: results[0] has no 'destination'.",
        ),
        (
            "r.json",
            json.dumps(
                {
                    "results": [
                        {"destination": 14155550101, "date": "2024-03-10", "type": "DEACTIVATION"}
                    ]
                }
            ),
            "r.json: results[0].destination is int 14155550101, expected text.",
        ),
        (
            "r.json",
            json.dumps(
                {
                    "results": [
                        {
                            "destination": "+14155550101",
                            "date": "2024-03-10",
                            "type": "DEACTIVATION",
                        }
                    ]
                }
            ),
            "r.json: results[0]: destination '+14155550101' is not country code and number in digits only.",
        ),
        (
            "r.json",
            json.dumps(
                {
                    "results": [
                        {"destination": "14155550101", "date": "yesterday", "type": "DEACTIVATION"}
                    ]
                }
            ),
            "r.json: results[0]: date 'yesterday' is not an ISO 8601 date and time.",
        ),
        (
            "r.json",
            json.dumps(
                {
                    "results": [
                        {"destination": "14155550101", "date": "2024-03-10", "type": "PORTED"}
                    ]
                }
            ),
            "r.json: results[0]: type 'PORTED' is not one of DEACTIVATION, ACTIVATION, SUSPENSION, REACTIVATION.",
        ),
        (
            "m.json",
            json.dumps(
                {"results": [{"reportId": "x", "dateFrom": "2024-03-02", "dateTo": "2024-03-01"}]}
            ),
            "m.json: results[0] (report x): dateFrom and dateTo must be dates, dateFrom not after dateTo, and every date between 2000-01-01 and",
        ),
        ("c.csv", "destination,when\n1,2\n", "c.csv: the header lacks date, type"),
        (
            "c.csv",
            "14155550101,2024-03-10\n",
            "c.csv: expected the columns destination,date,type[,newDestination]",
        ),
        (
            "c.csv",
            "destination,date,type\n"
            + "14155550101,2024-03-10,DEACTIVATION\n" * 3
            + "14155550102,2024-03-10,DEACTIVATION,extra\n",
            "c.csv: line 5 has 4 fields but the header has 3",
        ),
        (
            "c.csv",
            "destination,date,type\n"
            + "14155550101,2024-03-10,DEACTIVATION\n" * 3
            + '"14155550102,2024-03-10,DEACTIVATION\n',
            "c.csv: line 5: a quoted field is never closed",
        ),
        (
            "c.csv",
            "destination,date,type\n"
            + "14155550101,2024-03-10,DEACTIVATION\n" * 2
            + "14155550102,2024-03-10\n",
            "c.csv: line 4 has 2 fields but the header has 3",
        ),
    ],
)
def test_bad_change_files_name_the_file_and_the_record(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ChangeFileError) as caught:
        load_change_files([path])
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(ChangeFileError, match="no such change file or folder"):
        load_change_files([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChangeFileError, match="holds no change files"):
        load_change_files([tmp_path / "empty"])


def test_gap_between_reports_of_one_operator(tmp_path):
    metadata = {
        "results": [
            {
                "reportId": "d1",
                "networkName": "Verizon Wireless",
                "networkId": 1,
                "dateFrom": "2024-03-01",
                "dateTo": "2024-03-02",
            },
            {
                "reportId": "d2",
                "networkName": "Verizon Wireless",
                "networkId": 1,
                "dateFrom": "2024-03-02",
                "dateTo": "2024-03-03",
            },
            {
                "reportId": "d3",
                "networkName": "Verizon Wireless",
                "networkId": 1,
                "dateFrom": "2024-03-03",
                "dateTo": "2024-03-04",
            },
        ]
    }
    (tmp_path / "meta.json").write_text(json.dumps(metadata))
    for report_id in ("d1", "d3"):
        (tmp_path / f"{report_id}.json").write_text(json.dumps({"results": []}))
    coverage = load_change_files([tmp_path]).coverage()
    [operator] = coverage.operators
    assert [(start.day, end.day) for start, end in operator.gaps] == [(2, 3)]
    assert coverage.incomplete_report_notes == []  # d2 is the gap itself: reported once


def test_holes_follow_the_gaps_rule_for_spans_known_from_events_alone():
    from datetime import UTC, datetime

    from reconcile.history import _holes

    def day(number: int, hour: int = 0) -> datetime:
        return datetime(2024, 3, number, hour, tzinfo=UTC)

    spans = pl.DataFrame(
        {
            # two days known only from their events (first to last), two reports with
            # metadata with a day between them, one more day known from events
            "start": [day(1, 1), day(2, 1), day(4), day(6), day(8, 1)],
            "end": [day(1, 23), day(2, 23), day(5), day(7), day(8, 23)],
            "assumed": [True, True, False, False, True],
        }
    )
    # next to a span known from events nothing is known: only the day between the two
    # reports with metadata is a hole, as it would be one of an operator's gaps
    assert _holes(spans) == [(day(5), day(6))]
