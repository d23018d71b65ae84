"""`reconcile run` (config, dated outputs, run history, changes since the last run) and
`reconcile check` (yes / no / no data, agreeing with `clean`)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.fake_infobip import FakeInfobip, make_reports

CONTACTS = (
    "Contact ID,Mobile Phone,Opt-In Date\n"
    "C1,4155550101,2024-03-09\n"  # deactivated 03-10 after consent
    "C2,4155550102,2024-03-20\n"  # suspended
    "C3,4155550104,2024-04-01\n"  # ok
    "C4,4155550105,2024-01-15\n"  # unverified (before coverage)
    "C5,4155550103,2024-03-06\n"  # ok, deactivated before consent
)


def write_config(folder: Path, body: str) -> Path:
    path = folder / "reconcile.toml"
    path.write_text(body)
    return path


@pytest.fixture
def setup(tmp_path, history_dir, run_cli, monkeypatch):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    # the config names the ledger; RECONCILE_DATA_DIR would take precedence over it
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
id_column = "Contact ID"
""",
    )
    return tmp_path, data, config


# --- check ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "since", "answer"),
    [
        ("4155550101", "2024-03-09", "yes"),
        ("(415) 555-0101", "2024-03-10", "yes"),  # same day counts
        ("4155550101", "2024-03-10T11:00:01Z", "no"),
        ("4155550104", "2024-04-01", "no"),
        ("4155550105", "2024-01-15", "no data"),
        ("4155550104", None, "no data"),
        ("4155550101", None, "yes"),
        ("4155550102", "2024-03-20", "no"),  # suspended, not deactivated
    ],
)
def test_check_answers(run_cli, history_dir, number, since, answer):
    args = ["check", number, "--changes", history_dir, "--json"] + (
        ["--since", since] if since else []
    )
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answer"] == answer


def test_check_text_shows_the_evidence(run_cli, history_dir):
    result = run_cli("check", "4155550101", "--since", "2024-03-09", "--changes", history_dir)
    assert result.stdout.splitlines()[0] == "yes: +14155550101 (deactivated)"
    assert "evidence: DEACTIVATION 2024-03-10T11:00:00Z" in result.stdout
    suspended = run_cli("check", "4155550102", "--since", "2024-03-20", "--changes", history_dir)
    assert "note: the number is suspended" in suspended.stdout


def test_check_refuses_an_invalid_number_or_date(run_cli, history_dir):
    result = run_cli("check", "555-0199", "--changes", history_dir)
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: error: '555-0199' is not a valid phone number (not 10 digits (or 11 starting with 1)).\n"
    )
    for since in ("yesterday", "13/45/2026"):
        result = run_cli("check", "4155550101", "--since", since, "--changes", history_dir)
        assert result.exit_code == 2  # a usage error
        assert "Invalid value for '--since': is not a date (use YYYY-MM-DD)." in result.stderr


def test_check_agrees_with_clean_on_every_contact(run_cli, setup):
    folder, data, _config = setup
    cleaned = run_cli(
        "clean",
        folder / "contacts.csv",
        "--data-dir",
        data,
        "--mode",
        "flag",
        "--out-dir",
        folder / "flag",
    )
    assert cleaned.exit_code == 0
    rows = list(csv.DictReader(io.StringIO((folder / "flag" / "contacts.cleaned.csv").read_text())))
    answers = {"deactivated": "yes", "ok": "no", "suspended": "no", "unverified": "no data"}
    for row in rows:
        result = run_cli(
            "check",
            row["Mobile Phone"],
            "--since",
            row["Opt-In Date"],
            "--data-dir",
            data,
            "--json",
        )
        answer = json.loads(result.stdout)
        assert answer["verdict"] == row["reconcile_verdict"]
        assert answer["answer"] == answers[row["reconcile_verdict"]]


# --- run ----------------------------------------------------------------------------


def test_run_writes_a_dated_folder_and_a_history(run_cli, setup):
    folder, data, config = setup
    result = run_cli("run", "--config", config)
    assert result.exit_code == 3  # done, but the 2024 history is stale: cron should look
    assert "attention: the history is stale" in result.stdout
    assert "first run of this input: nothing to compare with" in result.stdout
    [dated] = list((folder / "out").iterdir())
    assert sorted(path.name for path in dated.iterdir()) == [
        "contacts.changes.csv",
        "contacts.cleaned.csv",
        "contacts.report.xlsx",
    ]
    history = (data / "runs" / "history.jsonl").read_text().splitlines()
    assert len(history) == 1 and json.loads(history[0])["output"] == str(dated)


def test_second_run_names_exactly_the_contacts_whose_verdict_changed(run_cli, setup, tmp_path):
    _folder, data, config = setup
    run_cli("run", "--config", config)
    more = tmp_path / "more"
    more.mkdir()
    (more / "late.csv").write_text(
        "destination,date,type\n"
        "14155550104,2024-05-01T00:00:00Z,DEACTIVATION\n"  # C3: ok -> deactivated
        "14155550102,2024-05-02T00:00:00Z,REACTIVATION\n"  # C2: suspended -> ok
        "14155550109,2024-05-02T00:00:00Z,DEACTIVATION\n"  # not a contact
    )
    assert run_cli("ledger", "import", more, "--data-dir", data).exit_code == 0
    result = run_cli("run", "--config", config, "--json")
    [item] = json.loads(result.stdout)["inputs"]
    changes = item["changes"]
    assert sorted((c["contact"], c["before"], c["now"]) for c in changes["changed"]) == [
        ("id:C2", "suspended", "ok"),
        ("id:C3", "ok", "deactivated"),
    ]
    assert changes["newly_removed"] == ["id:C3"]
    assert changes["newly_suppressed"] == []
    assert changes["no_longer_suppressed"] == ["id:C2"]
    assert changes["new_contacts"] == 0
    text = run_cli("run", "--config", config).stdout
    assert "0 changed verdict(s)" in text


def test_dry_run_writes_nothing(run_cli, setup):
    folder, data, config = setup
    result = run_cli("run", "--config", config, "--dry-run")
    assert result.exit_code == 3
    assert "(dry run: nothing written)" in result.stdout
    assert not (folder / "out").exists()
    assert not (data / "runs").exists()


def test_run_fetches_with_the_key_from_the_named_variable(run_cli, tmp_path, monkeypatch):
    recent = date.today() - timedelta(days=3)
    with FakeInfobip(make_reports(start=recent, sizes=(5, 3)), key="k-123") as server:
        monkeypatch.setenv("MY_INFOBIP_KEY", "k-123")
        (tmp_path / "contacts.csv").write_text("Phone,Opt-In Date\n4155550104,2024-04-01\n")
        config = write_config(
            tmp_path,
            f"""
[infobip]
base_url = "{server.base_url}"
api_key_env = "MY_INFOBIP_KEY"
rate = 1000
[ledger]
data_dir = "data"
[[inputs]]
path = "contacts.csv"
""",
        )
        result = run_cli("run", "--config", config, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["fetch"]["fetched"]) == 2
    assert summary["attention"] == []
    assert summary["inputs"][0]["verdicts"]["unverified"] == 1  # consent before coverage


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[inputs]]\npath = "missing.csv"\n', "[inputs][1].path: no such file"),
        (
            '[[inputs]]\npath = "contacts.csv"\ncolour = "red"\n',
            "[inputs][1].colour: unknown key (known keys:",
        ),
        (
            '[[inputs]]\npath = "contacts.csv"\nmode = 3\n',
            "[inputs][1].mode: expected text, got a whole number 3.",
        ),
        (
            '[[inputs]]\npath = "contacts.csv"\nmode = "delete"\n',
            "[inputs][1].mode: expected one of strip, blank, flag, got 'delete'.",
        ),
        (
            '[[inputs]]\npath = "contacts.csv"\n[inputs.actions]\nok = "drop"\n',
            "[inputs][1].actions.ok: expected one of",
        ),
        (
            '[infobip]\napi_key = "abc123"\n[[inputs]]\npath = "contacts.csv"\n',
            "[infobip].api_key: an API key written in the config file can be read by anyone",
        ),
        (
            '[infobip]\nrate = "fast"\n[[inputs]]\npath = "contacts.csv"\n',
            "[infobip].rate: expected a whole number or a number",
        ),
        (
            '[ledger]\ndata_dir = 5\n[[inputs]]\npath = "contacts.csv"\n',
            "[ledger].data_dir: expected text",
        ),
        ("inputs = []\n", "inputs: no [[inputs]]"),
        ("[[inputs]\n", "not valid TOML"),
    ],
)
def test_bad_configs_are_one_line_and_exit_1(run_cli, tmp_path, body, message):
    (tmp_path / "contacts.csv").write_text(CONTACTS)
    config = write_config(tmp_path, body)
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"reconcile: error: {config}: "), result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "abc123" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["contacts.csv", "reconcile.toml"]


def test_missing_config_file(run_cli, tmp_path):
    result = run_cli("run", "--config", tmp_path / "nope.toml")
    assert result.exit_code == 1
    assert result.stderr == f"reconcile: error: {tmp_path / 'nope.toml'}: no such config file.\n"


def test_run_says_why_it_needs_attention(setup):
    from datetime import UTC, datetime

    from reconcile.config import load_config
    from reconcile.runs import Attention, run_once

    _folder, data, config_path = setup
    config_path.write_text(
        config_path.read_text()
        + '\n[infobip]\nbase_url = "https://127.0.0.1:9"\napi_key_env = "NO_SUCH_KEY_HERE"\n'
    )
    config = load_config(config_path)
    fresh = run_once(config, datetime(2024, 6, 2, tzinfo=UTC), data_dir=data)
    assert [notice.kind for notice in fresh.attention] == [Attention.FETCH_FAILED]
    assert "NO_SUCH_KEY_HERE is not set" in fresh.attention[0].text
    later = run_once(config, datetime(2024, 7, 1, tzinfo=UTC), data_dir=data)
    assert [notice.kind for notice in later.attention] == [
        Attention.FETCH_FAILED,
        Attention.STALE_HISTORY,
    ]


def test_a_run_without_history_needs_attention_and_a_dry_run_says_it_wrote_nothing(
    run_cli, tmp_path, monkeypatch
):
    (tmp_path / "contacts.csv").write_text(CONTACTS)
    monkeypatch.delenv("RECONCILE_DATA_DIR")
    config = write_config(
        tmp_path, '[ledger]\ndata_dir = "typo-dir"\n[[inputs]]\npath = "contacts.csv"\n'
    )
    result = run_cli("run", "--config", config)
    assert result.exit_code == 3
    assert "holds no history: every contact is unverified" in result.stdout
    dry = run_cli("run", "--config", config, "--dry-run")
    assert "nothing written (dry run)" in dry.stdout and "wrote" not in dry.stdout
    empty = write_config(tmp_path, '[ledger]\ndata_dir = ""\n[[inputs]]\npath = "contacts.csv"\n')
    refused = run_cli("run", "--config", empty)
    assert refused.exit_code == 1 and "[ledger].data_dir: empty" in refused.stderr


def test_two_inputs_with_one_file_name_are_refused(run_cli, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "contacts.csv").write_text(CONTACTS)
    config = write_config(
        tmp_path, '[[inputs]]\npath = "a/contacts.csv"\n[[inputs]]\npath = "b/contacts.csv"\n'
    )
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1
    assert "[inputs][1] and [inputs][2] are both named 'contacts.csv'" in result.stderr


def test_a_failing_second_input_leaves_no_output_of_the_first(run_cli, setup):
    folder, _data, config = setup
    (folder / "broken.csv").write_text("Name,Opt-In Date\nAna,2024-03-09\n")
    config.write_text(config.read_text() + '[[inputs]]\npath = "broken.csv"\n')
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1
    assert "broken.csv: no phone column found" in result.stderr
    assert not (folder / "out").exists() or list((folder / "out").iterdir()) == []


def test_one_line_errors_for_odd_inputs_and_options(run_cli, tmp_path, history_dir):
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    result = run_cli("clean", fifo, "--changes", history_dir)
    assert result.exit_code == 1 and "not a regular file (a pipe or a device)" in result.stderr
    result = run_cli("clean", "/dev/zero", "--changes", history_dir)
    assert result.exit_code == 1
    verbose = run_cli("clean", "-v", tmp_path / "absent.csv", "--changes", history_dir)
    assert verbose.exit_code == 1 and "Traceback" in verbose.stderr
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    exported = run_cli("ledger", "export", tmp_path / "x.txt", "--data-dir", data)
    assert exported.exit_code == 1
    assert "x.txt: name the file .parquet or .csv, or say which with --format." in exported.stderr
    config = tmp_path / "bom.toml"
    (tmp_path / "contacts.csv").write_text(CONTACTS)
    config.write_bytes(b"\xef\xbb\xbf" + b'[[inputs]]\npath = "contacts.csv"\n')
    assert run_cli("run", "--config", config, "--dry-run").exit_code in (0, 3)
    nan = tmp_path / "nan.toml"
    nan.write_text('[infobip]\nrate = nan\n[[inputs]]\npath = "contacts.csv"\n')
    refused = run_cli("run", "--config", nan)
    assert refused.exit_code == 1 and "[infobip].rate: expected a positive number" in refused.stderr
