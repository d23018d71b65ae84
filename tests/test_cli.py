"""The command line: exit codes, exact one-line errors, nothing written on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from reconcile.cli import main
from tests.conftest import tree_snapshot

GOOD_CSV = (
    "Contact ID,Mobile Phone,Opt-In Date\nC1,4155550101,2024-03-09\nC2,4155550104,2024-04-01\n"
)


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(GOOD_CSV)
    return path


def test_clean_prints_a_summary_and_writes_outputs(run_cli, contacts, history_dir):
    result = run_cli("clean", contacts, "--changes", history_dir)
    assert result.exit_code == 0, result.output
    assert f"{contacts}: 2 rows -> 1 kept (0 to review), 1 removed, 0 suppressed" in result.stdout
    assert "history covers 2024-03-01T00:00:00Z to 2024-06-01T00:00:00Z" in result.stdout
    assert "warning: the history is stale" in result.stdout
    assert (contacts.parent / "contacts.cleaned.csv").read_text() == (
        "Contact ID,Mobile Phone,Opt-In Date\nC2,4155550104,2024-04-01\n"
    )
    assert (contacts.parent / "contacts.changes.csv").exists()


def test_json_summary(run_cli, contacts, history_dir):
    result = run_cli("clean", contacts, "--changes", history_dir, "--json")
    assert result.exit_code == 0
    [summary] = json.loads(result.stdout)
    assert summary["rows"] == summary["kept"] + summary["removed"] + summary["suppressed"] == 2
    assert summary["verdicts"] == {
        "invalid_number": 0,
        "deactivated": 1,
        "suspended": 0,
        "unverified": 0,
        "ok": 1,
    }
    assert summary["coverage"] == {"start": "2024-03-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}
    assert summary["columns"] == {
        "phone": ["Mobile Phone"],
        "phone_by_content": [],
        "not_checked": {},
        "consent": "Opt-In Date",
        "id": "Contact ID",
        "include": [],
    }


def test_action_override_from_the_command_line(run_cli, contacts, history_dir):
    result = run_cli(
        "clean", contacts, "--changes", history_dir, "--deactivated", "review", "--json"
    )
    [summary] = json.loads(result.stdout)
    assert summary["kept"] == 2 and summary["actions"]["review"] == 1


def test_existing_outputs_need_force(run_cli, contacts, history_dir):
    assert run_cli("clean", contacts, "--changes", history_dir).exit_code == 0
    cleaned = contacts.parent / "contacts.cleaned.csv"
    cleaned.write_text("mine")
    result = run_cli("clean", contacts, "--changes", history_dir)
    assert result.exit_code == 1
    assert result.stderr == (
        f"reconcile: error: output already exists: {cleaned}, "
        f"{contacts.parent / 'contacts.changes.csv'}, {contacts.parent / 'contacts.report.xlsx'}; "
        "pass --force to replace it.\n"
    )
    assert cleaned.read_text() == "mine"
    assert run_cli("clean", contacts, "--changes", history_dir, "--force").exit_code == 0
    assert cleaned.read_text() != "mine"


BAD_INPUTS = [
    ("missing.csv", None, "reconcile: error: {dir}/missing.csv: no such file."),
    (
        "empty.csv",
        b"",
        "reconcile: error: empty.csv: the file is empty; it needs a header line and rows.",
    ),
    (
        "header.csv",
        b"Phone,Opt-In Date\n",
        "reconcile: error: header.csv: the file has a header but no data rows.",
    ),
    (
        "ragged.csv",
        b"Phone,Opt-In Date\n4155550104,2024-04-01\n4155550105,2024-04-01,extra\n",
        "reconcile: error: ragged.csv: line 3 has 3 fields but the header has 2 (delimiter ','); fix that row or export the file again.",
    ),
    (
        "cols.csv",
        b"Name,Fax,Opt-In Date\nA,4155550104,2024-04-01\n",
        "reconcile: error: cols.csv: no phone column found; name it with --phone-column. The file has: 'Name', 'Fax', 'Opt-In Date'.",
    ),
    (
        "old.xls",
        b"\xd0\xcf\x11\xe0" + b"\0" * 64,
        "reconcile: error: old.xls is the old Excel 97-2003 format, which reconcile does not read; save it as .xlsx or .csv.",
    ),
    (
        "sheet.ods",
        b"PK\x03\x04",
        "reconcile: error: sheet.ods is an OpenDocument spreadsheet, which reconcile does not read; save it as .xlsx or .csv.",
    ),
    (
        "corrupt.xlsx",
        b"PK\x03\x04garbage",
        "reconcile: error: corrupt.xlsx cannot be read as an Excel workbook",
    ),
    (
        "mixed.csv",
        "Phone,Name\n4155550104,Chloé Zoë\n".encode() + b"4155550105,Jos\xe9\n",
        "reconcile: error: mixed.csv: line 3 is not valid UTF-8 although the file looks like UTF-8 elsewhere",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_1_and_nothing_written(
    run_cli, tmp_path, history_dir, name, content, message
):
    folder = tmp_path / "in"
    folder.mkdir()
    source = folder / name
    if content is not None:
        source.write_bytes(content)
    before = tree_snapshot(tmp_path)
    result = run_cli("clean", source, "--changes", history_dir)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message.format(dir=folder)), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert tree_snapshot(tmp_path) == before


def test_unknown_column_lists_the_columns(run_cli, contacts, history_dir):
    result = run_cli("clean", contacts, "--changes", history_dir, "--phone-column", "Cell")
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: error: contacts.csv: no column named 'Cell' (--phone-column). The file has: "
        "'Contact ID', 'Mobile Phone', 'Opt-In Date'.\n"
    )


def test_every_missing_column_is_said_in_one_error_with_the_closest_names(
    run_cli, contacts, history_dir
):
    result = run_cli(
        "clean",
        contacts,
        "--changes",
        history_dir,
        "--phone-column",
        "Mobile Phon",
        "--phone-column",
        "Fax",
        "--consent-column",
        "Optin Date",
        "--id-column",
        "Contact",
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: error: contacts.csv: no column named 'Optin Date' (--consent-column) "
        "(did you mean 'Opt-In Date'?); no column named 'Contact' (--id-column) (did you mean "
        "'Contact ID'?); no column named 'Mobile Phon' (--phone-column) (did you mean "
        "'Mobile Phone'?); no column named 'Fax' (--phone-column). The file has: "
        "'Contact ID', 'Mobile Phone', 'Opt-In Date'.\n"
    )


def test_a_file_without_phone_or_consent_column_says_both_at_once(run_cli, tmp_path, history_dir):
    source = tmp_path / "export.csv"
    source.write_text(
        "Name,Account,Created\n" + "".join(f"N{i},A-{i},2024-03-0{i % 9 + 1}\n" for i in range(10))
    )
    result = run_cli("clean", source, "--changes", history_dir)
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: error: export.csv: no phone column found (name it with --phone-column), "
        "and no consent date column found; name it with --consent-column (the columns holding "
        "dates: 'Created').\n"
    )


def test_unreadable_change_file(run_cli, contacts, tmp_path):
    bad = tmp_path / "rep.json"
    bad.write_text('{"results": [')
    before = tree_snapshot(tmp_path)
    result = run_cli("clean", contacts, "--changes", bad)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"reconcile: error: {bad}: not valid JSON (line 1")
    assert tree_snapshot(tmp_path) == before


def test_a_bad_second_file_writes_nothing_for_the_first(run_cli, contacts, tmp_path, history_dir):
    second = tmp_path / "second.csv"
    second.write_text("Name\nA\n")
    before = tree_snapshot(tmp_path)
    result = run_cli("clean", contacts, second, "--changes", history_dir)
    assert result.exit_code == 1
    assert "second.csv: no phone column found" in result.stderr
    assert tree_snapshot(tmp_path) == before


def test_verbose_shows_the_traceback(run_cli, tmp_path, history_dir):
    result = run_cli("-v", "clean", tmp_path / "missing.csv", "--changes", history_dir)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().endswith("missing.csv: no such file.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--default-region", "XX"], "--default-region 'XX' is not a region code"),
        (
            ["--consent-timezone", "Mars/Base"],
            "--consent-timezone 'Mars/Base' is not a time zone name",
        ),
        (["--encoding", "utf-16"], "--encoding 'utf-16' is not supported"),
    ],
)
def test_bad_option_values(run_cli, contacts, history_dir, args, message):
    result = run_cli("clean", contacts, "--changes", history_dir, *args)
    assert result.exit_code == 1
    assert message in result.stderr


def test_usage_errors_exit_2(run_cli, contacts, history_dir):
    assert run_cli("clean").exit_code == 2
    assert run_cli("clean", contacts, "--changes", history_dir, "--mode", "nope").exit_code == 2
    assert (
        run_cli("clean", contacts, "--changes", history_dir, "--unverified", "delete").exit_code
        == 2
    )


def test_clean_without_changes_uses_the_ledger_and_says_when_it_is_empty(
    run_cli, contacts, tmp_path
):
    result = run_cli("clean", contacts, "--data-dir", tmp_path / "data", "--json")
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    assert summary["verdicts"]["unverified"] == 2
    assert any("ledger at" in warning and "is empty" in warning for warning in summary["warnings"])


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize(("path", "command"), list(_commands(main)))
def test_every_command_has_help_ending_with_an_example(run_cli, path, command):
    result = run_cli(*path, "--help")
    assert result.exit_code == 0
    assert command.help and "Example" in command.help
    assert "reconcile " + " ".join(path) in command.help.split("Example", 1)[1]


def test_an_unexpected_failure_is_one_line_without_traceback(
    run_cli, contacts, history_dir, monkeypatch
):
    import reconcile.clean

    def explode(*_args, **_kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(reconcile.clean, "reconcile_file", explode)
    result = run_cli("clean", contacts, "--changes", history_dir)
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: internal error: RuntimeError: boom (run with -v for the traceback and "
        "report it)\n"
    )


def test_a_runs_folder_follows_the_users_umask(run_cli, contacts, history_dir, tmp_path):
    """mkdtemp makes folders 0700; the dated run folder gets the umask's permissions."""
    import os
    import stat

    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    config = tmp_path / "reconcile.toml"
    config.write_text(f'[output]\ndir = "runs"\n[[inputs]]\npath = "{contacts}"\n')
    for umask, expected in ((0o022, 0o755), (0o027, 0o750)):
        previous = os.umask(umask)
        try:
            result = run_cli("run", "--config", config, "--data-dir", data)
        finally:
            os.umask(previous)
        assert result.exit_code in (0, 3), result.output
        newest = max((tmp_path / "runs").iterdir(), key=lambda path: path.stat().st_mtime_ns)
        assert stat.S_IMODE(newest.stat().st_mode) == expected, (umask, newest)


def test_outputs_and_ledger_files_follow_the_users_umask(run_cli, contacts, history_dir, tmp_path):
    import os
    import stat

    previous = os.umask(0o027)
    try:
        assert (
            run_cli(
                "clean", contacts, "--changes", history_dir, "--out-dir", tmp_path / "out"
            ).exit_code
            == 0
        )
        assert (
            run_cli("ledger", "import", history_dir, "--data-dir", tmp_path / "data").exit_code == 0
        )
    finally:
        os.umask(previous)
    written = [*(tmp_path / "out").iterdir(), *(tmp_path / "data" / "ledger").rglob("*.*")]
    assert written
    for path in written:
        if path.is_file() and path.name != "lock":
            assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0, path  # nothing for others


def test_the_version_is_the_one_pyproject_declares():
    import tomllib
    from pathlib import Path

    import reconcile

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["version"]
    assert reconcile.__version__ == declared


def _process(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconcile", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_real_process_flushes_its_output_and_keeps_its_exit_code(
    tmp_path, contacts, history_dir
):
    # the process leaves with os._exit: what it printed must still arrive, codes intact
    done = _process("clean", contacts, "--changes", history_dir, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["removed"] == 1
    assert (contacts.parent / "contacts.cleaned.csv").exists()
    refused = _process("clean", tmp_path / "absent.csv", "--changes", history_dir, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("reconcile: error: ") and refused.stderr.count("\n") == 1
    assert refused.stdout == ""
    usage = _process("clean", "--no-such-option", cwd=tmp_path)
    assert usage.returncode == 2 and "No such option" in usage.stderr


def test_the_console_script_is_the_process_entry_point():
    from importlib.metadata import entry_points

    [script] = entry_points(group="console_scripts", name="reconcile")
    assert script.value == "reconcile._process:process_main"


def test_a_full_disk_for_the_run_history_says_the_outputs_were_written(
    run_cli, contacts, history_dir, tmp_path, monkeypatch
):
    """The run's folder is committed before its history is kept: a full disk then is one
    line naming the folder written, never "nothing was written"."""
    import errno
    import os

    import reconcile.run_history

    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    config = tmp_path / "reconcile.toml"
    config.write_text(f'[output]\ndir = "runs"\n[[inputs]]\npath = "{contacts}"\n')

    def full(_frame, _metadata):
        def write(_temporary):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return write

    monkeypatch.setattr(reconcile.run_history, "_parquet_writer", full)
    result = run_cli("run", "--config", config, "--data-dir", data)
    assert result.exit_code == 1
    [folder] = (tmp_path / "runs").iterdir()
    assert sorted(path.name for path in folder.iterdir()) == [
        f"{contacts.stem}.changes.csv",
        f"{contacts.stem}.cleaned.csv",
        f"{contacts.stem}.report.xlsx",
    ]
    assert result.stderr.endswith(
        f"the run's outputs were written whole to {folder}. Free space there and run again: "
        "the next run compares with the last history kept.\n"
    )
    assert result.stderr.startswith(
        f"reconcile: error: the run history was not kept ({data / 'runs'}/latest-"
    )
    assert "cannot be written (No space left on device))" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_missing_phone_and_consent_point_at_numbers_and_dates_and_typos_get_a_name(
    run_cli, tmp_path, history_dir
):
    source = tmp_path / "np.csv"
    source.write_text("Name,Numbers,Created\nA,12345678,2024-01-01\nB,23456789,2024-01-02\n")
    result = run_cli("clean", source, "--changes", history_dir)
    assert result.stderr == (
        "reconcile: error: np.csv: no phone column found (name it with --phone-column; the "
        "columns whose values look like numbers: 'Numbers'), and no consent date column "
        "found; name it with --consent-column (the columns holding dates: 'Created').\n"
    )
    source.write_text("Mobile Phone,Opt-In Date\n4155550101,2024-03-09\n")
    result = run_cli("clean", source, "--changes", history_dir, "--phone-column", "Mobil")
    assert "no column named 'Mobil' (--phone-column) (did you mean 'Mobile Phone'?)" in (
        result.stderr
    )


def test_the_help_ends_with_an_example_and_the_delimiter_reads(run_cli):
    top = run_cli("--help")
    assert "reconcile clean samples/contacts.csv --changes samples/changes" in top.stdout
    clean_help = run_cli("clean", "--help").stdout
    assert "--delimiter DELIMITER" in clean_help and "[,|;|||tab]" not in clean_help
