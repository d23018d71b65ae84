"""The samples and the README: the quick start prints what the README shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.conftest import tree_snapshot

ROOT = Path(__file__).resolve().parent.parent


def _readme_block(after_heading: str, language: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(after_heading, 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def _assert_printed(result, shown: list[str], out: Path) -> None:
    """The command printed the README's lines, on any day (the output folder aside)."""
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip().splitlines()
    assert len(printed) == len(shown)
    for line, expected in zip(printed, shown, strict=True):
        if expected.strip().startswith("wrote"):
            assert line.strip() == expected.strip().replace("demo-output", str(out))
        else:
            assert line == expected


def test_quick_start_has_exactly_two_commands():
    commands = _readme_block("## Quick start", "sh").strip().splitlines()
    assert len(commands) == 2
    assert "reconcile clean samples/" in commands[0] and "--changes samples/" in commands[0]
    # CI installs what the README's test command installs: the Spark tests run there too
    extras = "'.[test,spark]'"
    assert f"pip install -e {extras}" in commands[1] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"pip install --quiet -e {extras}" in ci and "python -m pytest" in ci


def test_sample_run_prints_what_the_readme_shows(run_cli, tmp_path, monkeypatch):
    first_command = _readme_block("## Quick start", "sh").strip().splitlines()[0]
    args = shlex.split(first_command.split("&& reconcile ", 1)[1])
    shown = _readme_block("It prints:", "text").strip().splitlines()
    monkeypatch.chdir(ROOT)
    before = tree_snapshot(ROOT / "samples")
    args[args.index("--out-dir") + 1] = str(tmp_path / "demo-output")
    _assert_printed(run_cli(*args), shown, tmp_path / "demo-output")
    assert tree_snapshot(ROOT / "samples") == before


def test_samples_produce_every_verdict_in_both_formats(run_cli, tmp_path):
    import json

    for name in ("contacts.csv", "contacts.xlsx"):
        result = run_cli(
            "clean",
            ROOT / "samples" / name,
            "--changes",
            ROOT / "samples" / "changes",
            "--out-dir",
            tmp_path / name,
            "--json",
        )
        assert result.exit_code == 0, result.output
        [summary] = json.loads(result.stdout)
        assert all(count > 0 for count in summary["verdicts"].values()), summary["verdicts"]
        assert summary["rows"] == 200


def test_readme_config_example_is_a_valid_config(tmp_path):
    from reconcile.config import load_config

    body = _readme_block("## The weekly run", "toml")
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "contacts.csv").write_text("Mobile Phone,Opt-In Date\n")
    (tmp_path / "reconcile.toml").write_text(body)
    config = load_config(tmp_path / "reconcile.toml")
    assert config.infobip is not None and config.infobip.api_key_env == "INFOBIP_API_KEY"
    assert config.inputs[0].options.actions["unverified"] == "review"


def test_readme_change_list_example_is_what_the_samples_give(run_cli, tmp_path):
    shown = _readme_block("the change list reads like this", "text").strip().splitlines()
    result = run_cli(
        "clean",
        ROOT / "samples" / "contacts.csv",
        "--changes",
        ROOT / "samples" / "changes",
        "--out-dir",
        tmp_path,
        "--no-report",
    )
    assert result.exit_code == 0
    written = (tmp_path / "contacts.changes.csv").read_text().splitlines()
    assert written[: len(shown)] == shown


def test_the_second_example_prints_what_the_readme_shows(run_cli, tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text.split("A second example:", 1)[1]
    command = re.search(r"```sh\n(.*?)```", section, re.S).group(1).strip()
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1).strip().splitlines()
    args = shlex.split(command.removeprefix("reconcile "))
    args[args.index("--out-dir") + 1] = str(tmp_path / "demo-output")
    monkeypatch.chdir(ROOT)
    _assert_printed(run_cli(*args), shown, tmp_path / "demo-output")
    footer = (ROOT / "samples" / "salesforce-report.csv").read_bytes().split(b"\r\n\r\n", 1)[1]
    cleaned = (tmp_path / "demo-output" / "salesforce-report.cleaned.csv").read_bytes()
    assert cleaned.endswith(b"\r\n\r\n" + footer)


def test_the_check_example_prints_what_the_readme_shows(run_cli, monkeypatch):
    """The `check` example runs as written on a fresh install (no ledger needed)."""
    block = _readme_block("## One number: `reconcile check`", "sh").strip()
    args = shlex.split(block.split("reconcile ", 1)[1])
    shown = _readme_block("## One number: `reconcile check`", "text").strip().splitlines()
    monkeypatch.chdir(ROOT)
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == shown
