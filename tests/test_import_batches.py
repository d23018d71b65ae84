"""Issue 21: `ledger import` of many change files holds a batch of whole reports in
memory at a time, and refuses a file larger than a report's change file, in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import reconcile.history_files as history_files
from reconcile.ledger import Ledger


def _day_files(folder, days: int) -> None:
    """One CSV report per day, a few events each."""
    folder.mkdir(exist_ok=True)
    for day in range(1, days + 1):
        lines = ["destination,date,type"]
        for line in range(4):
            lines.append(
                f"1415555{day:02d}{line:02d},2024-03-{day:02d}T1{line}:00:00Z,DEACTIVATION"
            )
        (folder / f"day-{day:02d}.csv").write_text("\n".join(lines) + "\n")


def _held(data):
    ledger = Ledger(data)
    order = ("number", "occurred_at", "report_id")
    events = ledger.history().events.sort(order)
    entries = {key: (entry.status, entry.records) for key, entry in ledger.entries().items()}
    return events, entries


def test_many_change_files_import_in_batches_as_in_one(run_cli, history_dir, tmp_path, monkeypatch):
    _day_files(history_dir / "days", 12)
    whole = tmp_path / "whole"
    first = run_cli("ledger", "import", history_dir, "--data-dir", whole)
    assert first.exit_code == 0, first.output
    monkeypatch.setattr(history_files, "BATCH_BYTES", 200)
    batched = tmp_path / "batched"
    result = run_cli("ledger", "import", history_dir, "--data-dir", batched)
    assert result.exit_code == 0, result.output
    assert result.stdout == first.stdout
    assert len(list(Ledger(batched).events_dir.glob("*.parquet"))) > 3
    events, entries = _held(batched)
    expected_events, expected_entries = _held(whole)
    assert events.equals(expected_events)
    assert entries == expected_entries


def test_a_bad_file_in_a_later_batch_leaves_the_ledger_as_it_was(
    run_cli, history_dir, tmp_path, monkeypatch
):
    """Every batch is read before the first is committed, as an import of one batch is."""
    folder = tmp_path / "days"
    _day_files(folder, 6)
    (folder / "day-06.csv").write_text(
        "destination,date,type\n14155550100,yesterday,DEACTIVATION\n"
    )
    data = tmp_path / "ledger"
    kept = run_cli("ledger", "import", history_dir, "--data-dir", data)
    assert kept.exit_code == 0, kept.output
    before = _held(data)
    monkeypatch.setattr(history_files, "BATCH_BYTES", 200)
    assert len(history_files.change_file_batches([folder])) > 3
    result = run_cli("ledger", "import", folder, "--data-dir", data)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "day-06.csv" in line and "'yesterday'" in line
    assert "imported" not in line
    events, entries = _held(data)
    assert events.equals(before[0])
    assert entries == before[1]


def test_a_change_file_larger_than_a_report_is_refused_before_reading(
    run_cli, history_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(history_files, "MAX_CHANGE_FILE_BYTES", 100)
    folder = tmp_path / "days"
    _day_files(folder, 2)
    shutil.copy(folder / "day-01.csv", folder / "big.csv")
    with (folder / "big.csv").open("a") as stream:
        stream.write("14155550199,2024-03-01T10:00:00Z,DEACTIVATION\n" * 3)
    data = tmp_path / "ledger"
    result = run_cli("ledger", "import", folder, "--data-dir", data)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "big.csv: 0 MiB is more than one report's change file holds (at most 0 MiB)" in line
    assert line.endswith("(the columns `reconcile ledger export` writes).")
    assert not Ledger(data).entries()


def test_the_same_content_under_another_name_is_the_same_report(run_cli, tmp_path):
    """SPEC: an import is identified by its content; importing it twice changes nothing,
    whatever the file is called, in one import or in two."""
    content = (
        "destination,date,type\n"
        "14155550101,2024-03-10T00:00:00Z,DEACTIVATION\n"
        "14155550102,2024-03-11T00:00:00Z,DEACTIVATION\n"
    )
    first, renamed = tmp_path / "march.csv", tmp_path / "march (1).csv"
    first.write_text(content)
    renamed.write_text(content)
    other = tmp_path / "other" / "march.csv"  # the same name, another report
    other.parent.mkdir()
    other.write_text(content.replace("0102", "0103"))
    one_by_one = tmp_path / "one-by-one"
    for path in (first, renamed):
        assert run_cli("ledger", "import", path, "--data-dir", one_by_one).exit_code == 0
    second = run_cli("ledger", "import", renamed, "--data-dir", one_by_one)
    assert second.stdout.startswith("imported 0 report(s), 0 events from 1 file(s)")
    together = tmp_path / "together"
    result = run_cli("ledger", "import", first, renamed, other, "--data-dir", together)
    assert result.stdout.startswith("imported 2 report(s), 4 events from 3 file(s)")
    assert {entry.records for entry in Ledger(together).entries().values()} == {2}
    events, entries = _held(one_by_one)
    assert events.height == 2 and list(entries.values()) == [("assumed", 2)]


def test_a_copy_of_a_named_page_or_of_a_file_given_a_report_id_adds_nothing(run_cli, tmp_path):
    """In one import, a renamed copy of a page named by its report id joins that report,
    whichever comes first in the folder, and two identical files given one --report-id
    are read once."""
    samples = Path(__file__).resolve().parent.parent / "samples" / "changes"
    folder = tmp_path / "changes"
    shutil.copytree(samples, folder)
    [page] = sorted(folder.glob("*vz-1001*page0*.json"))
    shutil.copy(page, folder / "0-copy-of-page.json")  # sorted before the named page
    whole, copied = tmp_path / "whole", tmp_path / "copied"
    assert run_cli("ledger", "import", samples, "--data-dir", whole).exit_code == 0
    assert run_cli("ledger", "import", folder, "--data-dir", copied).exit_code == 0
    assert _held(copied)[0].equals(_held(whole)[0])
    assert _held(copied)[1] == _held(whole)[1]
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("a.csv", "b.csv"):
        (twins / name).write_text(
            "destination,date,type\n14155550101,2024-03-10T00:00:00Z,DEACTIVATION\n"
        )
    given = tmp_path / "given"
    result = run_cli("ledger", "import", twins, "--report-id", "R", "--data-dir", given)
    assert result.exit_code == 0, result.output
    assert {key: entry.records for key, entry in Ledger(given).entries().items()} == {"R": 1}


def test_a_renamed_copy_of_a_page_imported_before_changes_nothing(run_cli, tmp_path):
    """The ledger keeps the digests of what each report was imported from: a page named
    by its report id, imported again under another name later, adds no report."""
    samples = Path(__file__).resolve().parent.parent / "samples" / "changes"
    data = tmp_path / "ledger"
    assert run_cli("ledger", "import", samples, "--data-dir", data).exit_code == 0
    before = _held(data)
    [page] = sorted(samples.glob("*vz-1001*page0*.json"))
    copy = tmp_path / "vz.json"
    shutil.copy(page, copy)
    again = run_cli("ledger", "import", copy, "--data-dir", data)
    assert again.stdout.startswith("imported 0 report(s), 0 events from 1 file(s)")
    events, entries = _held(data)
    assert events.equals(before[0]) and entries == before[1]
    entry = Ledger(data).entries()["5d7c1a2e-vz-1001"]
    assert len(entry.contents) == 1
