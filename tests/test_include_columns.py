"""`--include-columns` (issue 15): chosen contact columns echoed into the change list
and the workbook's action sheets, so a reviewer need not look contacts up. By default
no contact column beyond SPEC's is copied anywhere."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pytest

import reconcile._pipeline as clean_module
from reconcile.changelist import CHANGE_COLUMNS
from reconcile.clean import CleanOptions, clean_files
from reconcile.columns import ColumnChoice
from tests.helpers import NOW
from tests.test_run_check import write_config

# A Salesforce-shaped contact export without an id column (so the included columns
# follow the consent one directly in the reader).
CONTACTS = (
    "First Name,Last Name,Email,Mobile,Opt-In Date\n"
    "Ann,Lee,ann@example.com,4155550101,2024-03-09\n"  # deactivated after consent
    'Bob,"=HYPERLINK(""http://x"")",bob@example.com,4155550102,2024-03-20\n'  # suspended
    "Cat,Ng,cat@example.com,4155550104,2024-04-01\n"  # ok
    "Dan,Roe,dan@example.com,4155550105,2024-01-15\n"  # unverified
)


def _changes(path):
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def _action_rows(report, title):
    rows = list(openpyxl.load_workbook(report)[title].iter_rows(values_only=True))
    return rows[0], rows[1:]


def test_by_default_no_contact_column_is_copied(run_cli, tmp_path, history_dir):
    """Beyond SPEC's columns nothing is copied; without an id column the email is the id
    (SPEC "Contact files"), so a change list can be matched back to the CRM."""
    source = tmp_path / "contacts.csv"
    source.write_text(CONTACTS)
    result = run_cli("clean", source, "--changes", history_dir)
    assert result.exit_code == 0, result.output
    changes = tmp_path / "contacts.changes.csv"
    header = changes.read_text(encoding="utf-8-sig").splitlines()[0]
    assert tuple(header.split(",")) == CHANGE_COLUMNS
    headers, rows = _action_rows(tmp_path / "contacts.report.xlsx", "Remove")
    assert "Email" not in headers and "First Name" not in headers
    assert rows[0][headers.index("Contact id")] == "ann@example.com"
    text = (tmp_path / "contacts.changes.csv").read_text()
    assert "Ann" not in text and "Lee" not in text
    assert [row["id"] for row in _changes(changes)] == [
        "ann@example.com",
        "bob@example.com",
        "dan@example.com",
    ]


def test_included_columns_follow_each_row_into_both_outputs(run_cli, tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    source.write_text(CONTACTS)
    plain_dir, echo_dir = tmp_path / "plain", tmp_path / "echo"
    run_cli("clean", source, "--changes", history_dir, "--out-dir", plain_dir)
    result = run_cli(
        "clean",
        source,
        "--changes",
        history_dir,
        "--out-dir",
        echo_dir,
        # case-insensitive names, spaces around commas, repeated option, a duplicate
        "--include-columns",
        "email, first name",
        "--include-columns",
        "Last Name,EMAIL",
        "--json",
    )
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    assert summary["columns"]["include"] == ["Email", "First Name", "Last Name"]
    rows = _changes(echo_dir / "contacts.changes.csv")
    assert list(rows[0])[-3:] == ["Email", "First Name", "Last Name"]
    by_row = {row["row"]: (row["verdict"], row["Email"], row["First Name"]) for row in rows}
    assert by_row == {
        "1": ("deactivated", "ann@example.com", "Ann"),
        "2": ("suspended", "bob@example.com", "Bob"),
        "4": ("unverified", "dan@example.com", "Dan"),
    }
    # text a spreadsheet would run is neutralized like every other change-list cell
    assert rows[1]["Last Name"] == '\'=HYPERLINK("http://x")'
    # the SPEC columns are the same as without --include-columns; the cleaned list too
    plain = _changes(plain_dir / "contacts.changes.csv")
    assert [{k: row[k] for k in CHANGE_COLUMNS} for row in rows] == plain
    cleaned = "contacts.cleaned.csv"
    assert (echo_dir / cleaned).read_bytes() == (plain_dir / cleaned).read_bytes()

    report = echo_dir / "contacts.report.xlsx"
    headers, remove = _action_rows(report, "Remove")
    assert headers[:5] == ("Row", "Contact id", "Email", "First Name", "Last Name")
    # the email is the id too: no id column (SPEC "Contact files")
    assert [row[:5] for row in remove] == [(1, "ann@example.com", "ann@example.com", "Ann", "Lee")]
    _headers, suppress = _action_rows(report, "Suppress")
    assert suppress[0][4] == '=HYPERLINK("http://x")'
    cell = openpyxl.load_workbook(report)["Suppress"]["E2"]
    assert cell.data_type == "s"  # text, never a formula
    summary_sheet = dict(
        openpyxl.load_workbook(report)["Summary"].iter_rows(values_only=True, max_col=2)
    )
    assert summary_sheet["Included columns"] == "Email, First Name, Last Name"


def test_an_included_column_named_like_a_change_column_is_told_apart(tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    source.write_text("Id,Phone,Opt-In Date,reason\nA1,4155550101,2024-03-09,VIP\n")
    from reconcile.history_files import load_change_files

    options = CleanOptions(columns=ColumnChoice(include=("reason", "Id")), report=False)
    [result] = clean_files([source], load_change_files([history_dir]), options, NOW)
    [row] = _changes(result.changes_path)
    assert row["reason"].startswith("DEACTIVATION on")
    assert row["reason (contact)"] == "VIP"
    assert row["Id"] == "A1" and row["id"] == "A1"


def test_included_columns_stay_with_their_rows_across_slices(tmp_path, history_dir, monkeypatch):
    from reconcile.history_files import load_change_files

    lines = ["Name,Phone,Consent"]
    for index in range(60):
        number = 4155550101 + index % 5
        lines.append(f"N{index},{number},2024-03-0{1 + index % 9}")
    source = tmp_path / "many.csv"
    source.write_text("\n".join(lines) + "\n")
    history = load_change_files([history_dir])
    options = CleanOptions(columns=ColumnChoice(include=("Name",)), report=False)
    [whole] = clean_files([source], history, options, NOW)
    monkeypatch.setattr(clean_module, "PIECE_ROWS", 7)
    monkeypatch.setattr(clean_module, "DECIDE_ROWS", 3)
    options = CleanOptions(
        columns=ColumnChoice(include=("Name",)), report=False, out_dir=tmp_path / "sliced"
    )
    [sliced] = clean_files([source], history, options, NOW)
    rows = _changes(sliced.changes_path)
    assert rows and all(row["Name"] == f"N{int(row['row']) - 1}" for row in rows)
    assert sliced.changes_path.read_bytes() == whole.changes_path.read_bytes()


def test_included_columns_from_an_xlsx_sheet(tmp_path, history_dir):
    from reconcile.history_files import load_change_files

    book = openpyxl.Workbook()
    sheet = book.active
    for line in csv.reader(io.StringIO(CONTACTS)):
        sheet.append(line)
    source = tmp_path / "contacts.xlsx"
    book.save(source)
    options = CleanOptions(columns=ColumnChoice(include=("Email",)), report=True)
    [result] = clean_files([source], load_change_files([history_dir]), options, NOW)
    emails = {row["row"]: row["Email"] for row in _changes(result.changes_path)}
    assert emails == {"1": "ann@example.com", "2": "bob@example.com", "4": "dan@example.com"}
    assert result.report_path is not None
    _headers, remove = _action_rows(result.report_path, "Remove")
    assert remove[0][2] == "ann@example.com"


def test_an_unknown_included_column_is_one_clear_line(run_cli, tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    source.write_text(CONTACTS)
    result = run_cli(
        "clean", source, "--changes", history_dir, "--include-columns", "Email,Company"
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: error: contacts.csv: no column named 'Company' (--include-columns). "
        "The file has: 'First Name', 'Last Name', 'Email', 'Mobile', 'Opt-In Date'.\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["changes", "contacts.csv"]


def test_run_config_include_columns(run_cli, tmp_path, history_dir, monkeypatch):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    monkeypatch.delenv("RECONCILE_DATA_DIR")
    (tmp_path / "contacts.csv").write_text(CONTACTS)
    config = write_config(
        tmp_path,
        f"""
[ledger]
data_dir = "{data}"
[output]
dir = "out"
[[inputs]]
path = "contacts.csv"
include_columns = ["First Name", "Email"]
""",
    )
    result = run_cli("run", "--config", config)
    assert result.exit_code == 3, result.output  # the 2024 history is stale
    [dated] = list((tmp_path / "out").iterdir())
    rows = _changes(dated / "contacts.changes.csv")
    assert [(row["First Name"], row["Email"]) for row in rows] == [
        ("Ann", "ann@example.com"),
        ("Bob", "bob@example.com"),
        ("Dan", "dan@example.com"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3", "[inputs][1].include_columns: expected text or a list, got a whole number 3."),
        ('["Email", 3]', "[inputs][1].include_columns: expected a column name or a list"),
    ],
)
def test_run_config_include_columns_must_be_names(run_cli, tmp_path, value, message):
    (tmp_path / "contacts.csv").write_text(CONTACTS)
    config = write_config(
        tmp_path, f'[[inputs]]\npath = "contacts.csv"\ninclude_columns = {value}\n'
    )
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1
    assert message in result.stderr


def test_included_column_names_that_start_like_formulas_are_never_run(
    run_cli, tmp_path, history_dir
):
    """A header named ``=1+1`` or ``@SUM(A1)`` is written into the change list's header
    with a leading ``'``, as such cells are; the workbook shows it as text."""
    source = tmp_path / "contacts.csv"
    source.write_text(
        'Mobile,Opt-In Date,=1+1,@SUM(A1),"-2+3",+cmd|x,Plain\n4155550101,2024-03-09,a,b,c,d,e\n'
    )
    result = run_cli(
        "clean",
        source,
        "--changes",
        history_dir,
        "--include-columns",
        "=1+1,@SUM(A1),-2+3,+cmd|x,Plain",
    )
    assert result.exit_code == 0, result.output
    header = next(csv.reader(io.StringIO((tmp_path / "contacts.changes.csv").read_text())))
    assert header[len(CHANGE_COLUMNS) :] == ["'=1+1", "'@SUM(A1)", "'-2+3", "'+cmd|x", "Plain"]
    headers, _rows = _action_rows(tmp_path / "contacts.report.xlsx", "Remove")
    assert {"=1+1", "@SUM(A1)", "-2+3", "+cmd|x", "Plain"} <= set(headers)
