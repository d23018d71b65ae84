"""Golden files: exports shaped as Salesforce (report and Data Export), HubSpot, Zoho
(an XLSX re-saved by LibreOffice) and Klaviyo write them, against one small history.
The expected verdicts (`golden/expected.csv`) were worked out by hand from SPEC."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest

from reconcile.clean import CleanOptions, clean_files
from reconcile.columns import ColumnChoice
from reconcile.history_files import load_change_files
from tests.helpers import NOW

GOLDEN = Path(__file__).parent / "golden"
IDS = {
    "salesforce-report.csv": "Contact ID",
    "salesforce-contact-export.csv": "Id",
    "hubspot-contacts.csv": "Record ID",
    "klaviyo-profiles.csv": "Klaviyo ID",
    "zoho-contacts.xlsx": "Record Id",
}
PHONES = {
    "salesforce-report.csv": ["Phone", "Mobile"],
    "salesforce-contact-export.csv": ["Phone", "MobilePhone", "HomePhone", "OtherPhone"],
    "hubspot-contacts.csv": ["Phone Number", "Mobile Phone Number"],
    "klaviyo-profiles.csv": ["Phone Number"],
    "zoho-contacts.xlsx": ["Phone", "Mobile", "Home Phone"],
}


def _expected(name: str) -> list[tuple[int, str, str, str]]:
    with (GOLDEN / "expected.csv").open(newline="") as stream:
        return [
            (int(row["row"]), row["id"], row["verdict"], row["action"])
            for row in csv.DictReader(stream)
            if row["file"] == name
        ]


@pytest.mark.parametrize("name", sorted(IDS))
def test_golden_exports_get_the_verdicts_worked_out_by_hand(tmp_path, name):
    history = load_change_files([GOLDEN / "changes"])
    options = CleanOptions(columns=ColumnChoice(id=IDS[name]), out_dir=tmp_path)
    [result] = clean_files([GOLDEN / name], history, options, NOW, keep_decisions=True)
    decisions = result.decisions
    found = list(
        zip(
            decisions["row"].to_list(),
            decisions["id"].to_list(),
            decisions["verdict"].to_list(),
            decisions["action"].to_list(),
            strict=True,
        )
    )
    assert found == _expected(name)
    assert result.summary()["columns"]["phone"] == PHONES[name]
    kept_ids = [entry[1] for entry in _expected(name) if entry[3] in ("keep", "review")]
    if name.endswith(".csv"):
        text = result.cleaned_path.read_bytes().decode().split("\r\n\r\n", 1)[0]
        records = list(csv.DictReader(io.StringIO(text, newline="")))
        assert [record[IDS[name]] for record in records if record[IDS[name]]] == kept_ids
        source = (GOLDEN / name).read_bytes()
        if name == "salesforce-report.csv":
            footer = source[source.index(b"\r\n\r\n") :]
            assert result.cleaned_path.read_bytes().endswith(footer)
            assert result.summary()["footer_lines"] == 4
    else:
        sheet = openpyxl.load_workbook(result.cleaned_path).active
        rows = list(sheet.iter_rows(min_row=2, values_only=True))
        assert [row[0] for row in rows] == kept_ids
        # numbers stay numbers, dates stay dates
        by_id = {row[0]: row for row in rows}
        assert by_id["5725767000000412002"][4] == 3125550199
        assert by_id["5725767000000412002"][6].year == 2024
