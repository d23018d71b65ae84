"""Parquet in and out of the ledger, and the benchmark's generator at a small size."""

from __future__ import annotations

import json

import polars as pl
import pytest

from bench.generate import write_dataset
from reconcile.ledger import Ledger


def test_generated_history_imports_and_cleans(run_cli, tmp_path):
    contacts, events = write_dataset(tmp_path / "data", 2_000, 10_000)
    data = tmp_path / "ledger"
    result = run_cli("ledger", "import", events, "--label", "gen", "--data-dir", data)
    assert result.exit_code == 0, result.output
    ledger = Ledger(data)
    assert ledger.history().events.height == 10_000
    # one file for the whole import, sorted by number for fast lookups
    files = list(ledger.events_dir.glob("*.parquet"))
    assert len(files) == 1
    numbers = pl.read_parquet(files[0]).get_column("number")
    assert numbers.is_sorted()
    cleaned = run_cli(
        "clean",
        contacts,
        "--data-dir",
        data,
        "--out-dir",
        tmp_path / "out",
        "--json",
        "--no-report",
    )
    assert cleaned.exit_code == 0, cleaned.output
    [summary] = json.loads(cleaned.stdout)
    assert summary["rows"] == 2_000
    assert summary["kept"] + summary["removed"] + summary["suppressed"] == 2_000
    assert summary["verdicts"]["deactivated"] > 0 and summary["verdicts"]["invalid_number"] > 0


def test_export_then_import_round_trips_and_replaces(run_cli, history_dir, tmp_path):
    first = tmp_path / "first"
    run_cli("ledger", "import", history_dir, "--data-dir", first)
    run_cli("ledger", "export", tmp_path / "events.parquet", "--data-dir", first)
    second = tmp_path / "second"
    assert (
        run_cli("ledger", "import", tmp_path / "events.parquet", "--data-dir", second).exit_code
        == 0
    )
    assert (
        run_cli("ledger", "import", tmp_path / "events.parquet", "--data-dir", second).exit_code
        == 0
    )
    a = Ledger(first).history().events.sort("number", "occurred_at", "report_id")
    b = Ledger(second).history().events.sort("number", "occurred_at", "report_id")
    assert a.equals(b)  # imported twice: replaced, never duplicated
    statuses = {entry.status for entry in Ledger(second).entries().values()}
    assert statuses == {"assumed"}
    # a report re-imported from JSON replaces its rows inside the shared Parquet file
    run_cli("ledger", "import", history_dir, "--data-dir", second)
    assert Ledger(second).history().events.height == a.height


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"number": [1]}), "lacks the column(s) type, occurred_at"),
        (
            pl.DataFrame(
                {
                    "number": [14155550101],
                    "type": ["PORTED"],
                    "occurred_at": ["2024-03-01"],
                    "new_number": [None],
                    "report_id": ["r"],
                    "network_id": [1],
                    "network_name": ["x"],
                }
            ),
            "a column has the wrong type",
        ),
    ],
)
def test_bad_parquet_is_refused_and_the_ledger_unchanged(run_cli, tmp_path, frame, message):
    path = tmp_path / "bad.parquet"
    frame.write_parquet(path)
    result = run_cli("ledger", "import", path, "--data-dir", tmp_path / "ledger")
    assert result.exit_code == 1
    assert message in result.stderr
    assert not Ledger(tmp_path / "ledger").manifest_path.exists()


def test_ledger_files_are_lz4_and_older_zstd_files_still_read(run_cli, tmp_path, monkeypatch):
    _contacts, events = write_dataset(tmp_path / "data", 100, 1_000)
    written: list[dict[str, object]] = []
    original = pl.DataFrame.write_parquet

    def spy(frame, target, **options):
        written.append(options)
        return original(frame, target, **options)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", spy)
    data = tmp_path / "ledger"
    assert run_cli("ledger", "import", events, "--data-dir", data).exit_code == 0
    assert [options["compression"] for options in written] == ["lz4"]
    monkeypatch.undo()
    # a file written as earlier versions wrote it reads the same
    ledger = Ledger(data)
    [file] = ledger.events_dir.glob("*.parquet")
    before = ledger.history().events.sort("number", "occurred_at", "type")
    pl.read_parquet(file).write_parquet(file, compression="zstd")
    # as its manifest (written before checksums) would describe it
    manifest = json.loads(ledger.manifest_path.read_text())
    manifest["files"] = {
        name: {"reports": info["reports"]} for name, info in manifest["files"].items()
    }
    ledger.manifest_path.write_text(json.dumps(manifest))
    after = Ledger(data).history().events.sort("number", "occurred_at", "type")
    assert after.equals(before)


def test_a_large_import_commits_whole_reports_in_batches(run_cli, tmp_path, monkeypatch):
    """Issue 21: an import is read lazily and committed a batch of whole reports at a
    time; the ledger holds what one commit of the whole file would hold."""
    import reconcile.ledger_import as ledger_io

    _contacts, events = write_dataset(tmp_path / "data", 1_000, 6_000)
    whole = tmp_path / "whole"
    assert run_cli("ledger", "import", events, "--data-dir", whole).exit_code == 0
    monkeypatch.setattr(ledger_io, "IMPORT_BATCH_EVENTS", 1_000)
    batched = tmp_path / "batched"
    result = run_cli("ledger", "import", events, "--data-dir", batched)
    assert result.exit_code == 0, result.output
    assert "6000 events" in result.stdout
    assert len(list(Ledger(batched).events_dir.glob("*.parquet"))) > 5
    order = ("number", "occurred_at", "report_id")
    assert (
        Ledger(batched)
        .history()
        .events.sort(order)
        .equals(Ledger(whole).history().events.sort(order))
    )
    entries = {
        key: (entry.status, entry.records) for key, entry in Ledger(batched).entries().items()
    }
    assert entries == {
        key: (entry.status, entry.records) for key, entry in Ledger(whole).entries().items()
    }


def test_a_file_naming_too_many_reports_is_refused_in_one_line(run_cli, tmp_path, monkeypatch):
    import reconcile.ledger_import as ledger_io

    monkeypatch.setattr(ledger_io, "MAX_IMPORT_REPORTS", 10)
    _contacts, events = write_dataset(tmp_path / "data", 200, 2_000)
    data = tmp_path / "ledger"
    result = run_cli("ledger", "import", events, "--data-dir", data)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"reconcile: error: {events}: the file names ")
    assert "reports; a ledger import takes at most 10 (Infobip publishes" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(data.glob("**/*.parquet"))


def test_a_report_of_too_many_events_is_refused_before_anything_is_committed(
    run_cli, tmp_path, monkeypatch
):
    """Issue 21: a report is held whole while it is committed; one of more events than
    MAX_REPORT_EVENTS (50M events under one report id took 12 GB) is refused in one
    line, the ledger unchanged."""
    import reconcile.ledger_import as ledger_io

    _contacts, events = write_dataset(tmp_path / "data", 200, 2_000)
    frame = pl.read_parquet(events)
    largest = frame.group_by("report_id").len().get_column("len").max()
    data = tmp_path / "ledger"
    monkeypatch.setattr(ledger_io, "MAX_REPORT_EVENTS", largest)
    assert run_cli("ledger", "import", events, "--data-dir", data).exit_code == 0
    single = tmp_path / "single.parquet"
    frame.with_columns(report_id=pl.lit("one-report")).write_parquet(single)
    before = sorted(path.name for path in data.glob("**/*") if path.is_file())
    result = run_cli("ledger", "import", single, "--data-dir", data)
    assert result.exit_code == 1
    assert result.stderr == (
        f"reconcile: error: {single}: report 'one-report' holds {frame.height:,} events; a "
        f"ledger import takes at most {largest:,} in one report (a report is one operator's "
        "changes of a day or so): check the report_id column, or give the events of each "
        "day a report id of its own.\n"
    )
    assert sorted(path.name for path in data.glob("**/*") if path.is_file()) == before
