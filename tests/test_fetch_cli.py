"""`reconcile fetch` and `reconcile ledger` end to end: secrets, locks, kills, import/export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

from reconcile.ledger import Ledger
from tests.conftest import CLI_KEY, RECENT
from tests.fake_infobip import FakeInfobip, make_reports, records_of
from tests.test_fetch import contents, snapshot

SECRET = CLI_KEY  # planted, then searched for in every byte written


def every_byte_under(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def test_fetch_command_prints_a_summary_and_fills_the_ledger(run_cli, api_env, server, tmp_path):
    result = run_cli("fetch", "--data-dir", tmp_path, "--rate", "1000")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("4 reports listed, 4 fetched (89 records), 0 gone, 0 failed;")
    # one log line per report when not on a terminal (cron)
    assert result.stderr.count("fetched report ") == 4
    assert Ledger(tmp_path).history().events.height == 89


def test_the_key_appears_nowhere(run_cli, api_env, server, tmp_path):
    outputs = []
    for args in (
        ["fetch", "--data-dir", tmp_path, "--rate", "1000"],
        ["-v", "fetch", "--data-dir", tmp_path, "--rate", "1000", "--json"],
        ["ledger", "status", "--data-dir", tmp_path, "--json"],
        ["ledger", "export", tmp_path / "out.csv", "--data-dir", tmp_path],
    ):
        result = run_cli(*args)
        outputs.append(result.stdout + result.stderr)
    server.key = "rotated"  # now the planted key is refused: the error must not echo it
    refused = run_cli("-v", "fetch", "--data-dir", tmp_path, "--rate", "1000")
    assert refused.exit_code == 1
    assert "the API refused the key (HTTP 401" in refused.stderr
    outputs.append(refused.stdout + refused.stderr)
    text = "\n".join(outputs)
    assert SECRET not in text
    assert SECRET.encode() not in every_byte_under(tmp_path)


def test_missing_key_and_bad_base_url(run_cli, tmp_path, monkeypatch):
    result = run_cli("fetch", "--data-dir", tmp_path)
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: error: INFOBIP_API_KEY is not set; export your Infobip API key in that variable.\n"
    )
    monkeypatch.setenv("INFOBIP_API_KEY", SECRET)
    monkeypatch.setenv("INFOBIP_BASE_URL", "api.infobip.com")
    result = run_cli("fetch", "--data-dir", tmp_path)
    assert result.exit_code == 1
    assert "INFOBIP_BASE_URL 'api.infobip.com' must be https://HOST" in result.stderr
    assert SECRET not in result.stderr


def test_a_second_run_on_a_held_ledger_fails_with_a_clear_line(run_cli, api_env, server, tmp_path):
    assert run_cli("fetch", "--data-dir", tmp_path, "--rate", "1000").exit_code == 0
    before = snapshot(tmp_path)
    ledger = Ledger(tmp_path)
    with ledger.locked():
        result = run_cli("fetch", "--data-dir", tmp_path, "--rate", "1000")
        also = run_cli("ledger", "import", tmp_path / "x.csv", "--data-dir", tmp_path)
    assert result.exit_code == 1
    assert result.stderr == (
        f"reconcile: error: {ledger.root} is in use by another reconcile run; wait for it to "
        "finish (or pass --wait SECONDS).\n"
    )
    assert also.exit_code == 1 and "in use by another reconcile run" in also.stderr
    after = snapshot(tmp_path)
    assert after[0] == before[0] and after[1].equals(before[1])


def _fetch_process(server: FakeInfobip, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "INFOBIP_API_KEY": SECRET, "INFOBIP_BASE_URL": server.base_url}
    return subprocess.Popen(
        [sys.executable, "-m", "reconcile", "fetch", "--data-dir", str(data_dir), "--rate", "1000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)  # reap it and close its pipes


def _finish(process: subprocess.Popen[bytes]) -> int:
    process.communicate(timeout=120)
    return process.returncode


def test_two_fetch_processes_at_once(server, tmp_path):
    busy_report = next(
        report_id for report_id, r in server.reports.items() if len(r["records"]) > 20
    )
    server.fail(records_of(busy_report, page=1), "hold")
    first = _fetch_process(server, tmp_path)
    assert server.held.wait(timeout=30)
    second = _fetch_process(server, tmp_path)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 1
    assert b"is in use by another reconcile run" in err
    _kill(first)
    server.release.set()


# (report, page) where the fetch is killed. With 4 records a page the reports have 6, 1,
# 15 and 3 pages: CI kills at 3 of them, RECONCILE_KILL_POINTS=all at all 25.
KILL_PAGE_SIZE = 4
_ALL_PAGES = (
    [(0, page) for page in range(6)]
    + [(1, 0)]
    + [(2, page) for page in range(15)]
    + [(3, page) for page in range(3)]
)
KILL_POINTS = (
    _ALL_PAGES if os.environ.get("RECONCILE_KILL_POINTS") == "all" else [(0, 0), (2, 1), (2, 9)]
)


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_sigkill_mid_report_leaves_the_ledger_as_before_and_the_next_fetch_completes(
    tmp_path, kill_at
):
    """Killed while a report's page is in flight: the manifest is byte-equal to before."""
    reports = make_reports(start=RECENT)
    order = sorted(reports, key=lambda report_id: reports[report_id]["metadata"]["dateTo"])
    with FakeInfobip(reports, key=SECRET, max_page_size=KILL_PAGE_SIZE) as clean_server:
        assert _finish(_fetch_process(clean_server, tmp_path / "clean")) == 0
    with FakeInfobip(reports, key=SECRET, max_page_size=KILL_PAGE_SIZE) as server:
        # a first, complete fetch of the earlier reports, then new state to fetch
        report_index, page = kill_at
        target = order[report_index]
        before_reports = {
            key: value for key, value in reports.items() if key in order[:report_index]
        }
        server.reports = before_reports
        if before_reports:
            assert _finish(_fetch_process(server, tmp_path / "killed")) == 0
        before = snapshot(tmp_path / "killed")
        server.reports = reports
        server.fail(records_of(target, page=page), "hold")
        process = _fetch_process(server, tmp_path / "killed")
        assert server.held.wait(timeout=30)
        _kill(process)
        server.release.set()
        after = snapshot(tmp_path / "killed")
        assert after[0] == before[0]  # byte-equal manifest
        assert after[1].equals(before[1])  # the same events
        assert _finish(_fetch_process(server, tmp_path / "killed")) == 0
    clean, resumed = contents(tmp_path / "clean"), contents(tmp_path / "killed")
    assert resumed[1].equals(clean[1])
    assert resumed[0].drop("source").equals(clean[0].drop("source"))
    leftovers = list((tmp_path / "killed" / "ledger" / "staging").iterdir())
    assert leftovers == []


def test_import_status_export_and_clean_from_the_ledger(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    result = run_cli("ledger", "import", history_dir, "--label", "vendor", "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "imported 2 report(s), 4 events from 3 file(s) as import:vendor"
    )
    status = json.loads(run_cli("ledger", "status", "--json", "--data-dir", data).stdout)
    assert status["reports"] == 2 and status["events"] == 4
    assert status["coverage"]["start"] == "2024-03-01T00:00:00Z"
    assert {operator["network"] for operator in status["coverage"]["operators"]} == {
        "Verizon Wireless",
        "AT&T Mobility",
    }
    text = run_cli("ledger", "status", "--data-dir", data).stdout
    assert "2 reports (2 complete), 4 events" in text
    # importing the same files again replaces, never duplicates
    run_cli("ledger", "import", history_dir, "--label", "vendor", "--data-dir", data)
    assert Ledger(data).history().events.height == 4
    for name in ("events.parquet", "events.csv"):
        exported = run_cli("ledger", "export", tmp_path / name, "--data-dir", data)
        assert exported.exit_code == 0 and "wrote 4 events" in exported.stdout
    assert pl.read_parquet(tmp_path / "events.parquet").columns == [
        "number",
        "type",
        "occurred_at",
        "new_number",
        "report_id",
        "network_id",
        "network_name",
        "day_only",
        "detail",
    ]
    assert pl.read_csv(tmp_path / "events.csv").height == 4
    assert run_cli("ledger", "export", tmp_path / "events.csv", "--data-dir", data).exit_code == 1
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("Phone,Opt-In Date\n4155550101,2024-03-09\n4155550104,2024-04-01\n")
    from_ledger = run_cli("clean", contacts, "--data-dir", data, "--json")
    from_files = run_cli("clean", contacts, "--changes", history_dir, "--json", "--force")
    assert from_ledger.exit_code == 0 and from_files.exit_code == 0
    ledger_summary, files_summary = (
        json.loads(from_ledger.stdout)[0],
        json.loads(from_files.stdout)[0],
    )
    assert ledger_summary["verdicts"] == files_summary["verdicts"]
    assert ledger_summary["verdicts"]["deactivated"] == 1


def test_a_damaged_manifest_is_a_clear_error(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    run_cli("ledger", "import", history_dir, "--data-dir", data)
    Ledger(data).manifest_path.write_text("{")
    result = run_cli("ledger", "status", "--data-dir", data)
    assert result.exit_code == 1
    assert (
        "manifest.json is damaged (not JSON); nothing was changed. Run `reconcile ledger rebuild`"
        in result.stderr
    )


def test_progress_thread_safety_of_the_fake_clock():
    from tests.fake_infobip import FakeClock

    clock = FakeClock()
    threads = [threading.Thread(target=clock.sleep, args=(0.5,)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.monotonic() == 1005.0


def test_progress_bar_on_a_terminal_and_log_lines_under_cron(capsys):
    from datetime import UTC, datetime

    from reconcile.ledger import ReportEntry
    from reconcile.printed import fetch_progress
    from reconcile.sync import ProgressEvent

    entry = ReportEntry(
        "r1",
        "complete",
        network_name="Verizon Wireless",
        date_from=datetime(2024, 3, 1, tzinfo=UTC),
        date_to=datetime(2024, 3, 2, tzinfo=UTC),
    )
    for enabled in (True, False):
        with fetch_progress(enabled) as progress:
            progress(ProgressEvent("plan", reports=2))
            progress(ProgressEvent("page", "r1", page=0, total_pages=2))
            progress(ProgressEvent("report", "r1", entry=entry, records=12, pages=2))
            progress(ProgressEvent("gone", "r2"))
    err = capsys.readouterr().err
    assert "fetching reports" in err  # the bar's label (click draws no bar off a terminal)
    assert (
        "fetched report r1 (Verizon Wireless, 2024-03-01 to 2024-03-02): 12 records in 2 page(s)"
        in err
    )
    assert "report r2 is gone (HTTP 404)" in err
