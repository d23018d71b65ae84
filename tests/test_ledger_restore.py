"""Ledger accidents no verify used to see (issue 20, cases 10-13): a copy taken mid-commit
and restored in any order, a first commit's leftover with its manifest lost, an older
manifest restored before more imports, and a ledger written by 0.1. Each ends with every
event and every report's status as an uninterrupted ledger holds them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from reconcile.ledger import Ledger
from reconcile.ledger_files import read_file_metadata
from reconcile.lifecycle import ReportStatus, after_gone
from tests.conftest import METADATA


class Killed(BaseException):
    """The process dies: nothing catches it, nothing cleans up after it."""


def _extra(folder: Path, count: int = 40) -> Path:
    """A change file of ``count`` deactivations no other file holds."""
    path = folder / "extra.csv"
    rows = [
        f"1415556{index:04d},2024-05-01T{index % 24:02d}:00:00Z,DEACTIVATION"
        for index in range(count)
    ]
    path.write_text("destination,date,type\n" + "\n".join(rows) + "\n")
    return path


def _events(run_cli, data: Path, target: Path) -> pl.DataFrame:
    result = run_cli("ledger", "export", target, "--data-dir", data, "--force")
    assert result.exit_code == 0, result.output
    return pl.read_parquet(target).sort(pl.all())


def _statuses(data: Path) -> dict[str, str]:
    return {key: str(entry.status) for key, entry in Ledger(data).entries().items()}


def _kill_inside(monkeypatch, method: str, action) -> None:  # type: ignore[no-untyped-def]
    def killed(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise Killed

    monkeypatch.setattr(Ledger, method, killed)
    with pytest.raises(Killed):
        action()
    monkeypatch.undo()


@pytest.mark.parametrize("manifest_first", [True, False])
def test_a_copy_taken_mid_commit_loses_no_event_whatever_the_restore_order(
    run_cli, history_dir, tmp_path, monkeypatch, manifest_first
):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    extra = _extra(tmp_path)
    # the commit dies after its events file moved in, before the manifest names it
    _kill_inside(
        monkeypatch,
        "_write_manifest",
        lambda: run_cli("ledger", "import", extra, "--data-dir", data),
    )
    ledger = Ledger(data)
    assert ledger.pending_path.exists()
    # the copy, restored file by file: manifest first (rsync's order) or last
    copy = tmp_path / "copy"
    (copy / "ledger" / "events").mkdir(parents=True)
    names = (
        ["manifest.json", "pending.json"] if manifest_first else ["pending.json", "manifest.json"]
    )
    shutil.copytree(ledger.events_dir, copy / "ledger" / "events", dirs_exist_ok=True)
    for name in names:
        shutil.copy(ledger.root / name, copy / "ledger" / name)
    # any writer runs before a rebuild: the in-flight report's events are committed
    assert run_cli("ledger", "import", history_dir, "--data-dir", copy).exit_code == 0
    reference = tmp_path / "reference"
    for folder in (history_dir, extra):
        assert run_cli("ledger", "import", folder, "--data-dir", reference).exit_code == 0
    assert _events(run_cli, copy, tmp_path / "copy.parquet").equals(
        _events(run_cli, reference, tmp_path / "reference.parquet")
    )
    assert run_cli("ledger", "verify", "--data-dir", copy).exit_code == 0
    assert not Ledger(copy).pending_path.exists()


def test_a_killed_commit_is_rolled_forward_and_leaves_no_stray_file(
    run_cli, history_dir, tmp_path, monkeypatch
):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    extra = _extra(tmp_path)
    _kill_inside(
        monkeypatch,
        "_write_manifest",
        lambda: run_cli("ledger", "import", extra, "--data-dir", data),
    )
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    ledger = Ledger(data)
    assert ledger.history().events.height == 4 + 40  # history_dir's four, and the forty
    assert ledger.unknown_files() == []  # no manifest ever named the killed commit's file
    status = run_cli("ledger", "status", "--json", "--data-dir", data)
    assert json.loads(status.stdout)["unknown_files"] == []


def test_a_first_commits_leftover_and_a_lost_manifest_is_never_an_empty_ledger(
    run_cli, history_dir, tmp_path, monkeypatch
):
    data = tmp_path / "data"
    # the first commit dies after its manifest, before pending.json goes; then the
    # manifest is lost
    _kill_inside(
        monkeypatch, "_finish", lambda: run_cli("ledger", "import", history_dir, "--data-dir", data)
    )
    Ledger(data).manifest_path.unlink()
    for command in (["ledger", "status"], ["check", "4155550101"]):
        result = run_cli(*command, "--data-dir", data)
        assert result.exit_code == 1, command
        assert "manifest.json is missing, but the ledger holds 1 events file(s)" in result.stderr
    # the next writer keeps the only events file's reports
    extra = _extra(tmp_path, 5)
    assert run_cli("ledger", "import", extra, "--data-dir", data).exit_code == 0
    assert Ledger(data).history().events.height == 4 + 5  # history_dir's four, and five
    assert _statuses(data)["rep-vz-1"] == "complete"
    assert run_cli("ledger", "verify", "--data-dir", data).exit_code == 0


def _records_folder(folder: Path, records: list[dict[str, str]]) -> Path:
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"results": METADATA["results"][:1]}))
    (folder / "rep-vz-1.json").write_text(json.dumps({"results": records}))
    return folder


def test_an_older_manifest_restored_then_a_smaller_copy_reimported_keeps_the_larger(
    run_cli, tmp_path
):
    data = tmp_path / "data"
    more = [
        {
            "date": f"2024-03-{day:02d}T08:00:00.000+0000",
            "destination": f"141555503{day:02d}",
            "type": "DEACTIVATION",
        }
        for day in range(1, 21)
    ]
    smaller = _records_folder(tmp_path / "ten", more[:10])
    larger = _records_folder(tmp_path / "twenty", more)
    gone_only = tmp_path / "gone"
    gone_only.mkdir()
    (gone_only / "metadata.json").write_text(json.dumps({"results": METADATA["results"][1:]}))
    assert run_cli("ledger", "import", smaller, "--data-dir", data).exit_code == 0
    assert run_cli("ledger", "import", gone_only, "--data-dir", data).exit_code == 0
    backup = tmp_path / "manifest.backup.json"
    shutil.copy(Ledger(data).manifest_path, backup)
    # later: the AT&T report was answered 404 (gone), then the larger copy came
    ledger = Ledger(data)
    with ledger.locked():
        ledger.commit([(after_gone(ledger.entries()["rep-att-1"]), None)])
    assert run_cli("ledger", "import", larger, "--data-dir", data).exit_code == 0
    assert _statuses(data)["rep-att-1"] == "gone"
    # the older manifest restored, the smaller copy imported again, the manifest lost
    shutil.copy(backup, ledger.manifest_path)
    assert run_cli("ledger", "import", smaller, "--data-dir", data).exit_code == 0
    # the newest file is now written under the older manifest, which knows AT&T as listed
    assert run_cli("ledger", "import", _extra(tmp_path, 2), "--data-dir", data).exit_code == 0
    ledger.manifest_path.unlink()
    rebuilt = run_cli("ledger", "rebuild", "--data-dir", data)
    assert rebuilt.exit_code == 0, rebuilt.output
    entries = Ledger(data).entries()
    assert entries["rep-vz-1"].records == 20
    assert entries["rep-vz-1"].status == ReportStatus.COMPLETE
    assert entries["rep-att-1"].status == ReportStatus.GONE  # known to the lost manifest
    assert run_cli("ledger", "verify", "--data-dir", data).exit_code == 0


def _as_written_by_0_1(data: Path) -> None:
    """Turn a ledger into what 0.1 wrote: files without metadata, a format-1 manifest
    without checksums."""
    ledger = Ledger(data)
    for path in ledger.event_files_on_disk():
        frame = pl.read_parquet(path)
        path.unlink()
        frame.write_parquet(path)
        assert read_file_metadata(path) is None
    manifest = json.loads(ledger.manifest_path.read_text())
    manifest["format"] = 1
    for key in ("files", "replaced", "commit", "sequence"):
        manifest.pop(key, None)
    ledger.manifest_path.write_text(json.dumps(manifest))


def test_a_ledger_of_0_1_upgraded_by_its_first_writer_survives_a_lost_manifest(
    run_cli, history_dir, tmp_path
):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    _as_written_by_0_1(data)
    events = _events(run_cli, data, tmp_path / "before.parquet")
    # the first writer after the upgrade: an unrelated import
    extra = _extra(tmp_path, 3)
    assert run_cli("ledger", "import", extra, "--data-dir", data).exit_code == 0
    statuses = _statuses(data)
    coverage = Ledger(data).history().coverage()
    ledger = Ledger(data)
    named = {entry.file for entry in ledger.entries().values() if entry.file}
    for name in named:
        metadata = read_file_metadata(ledger.root / name)
        assert metadata is not None, name
    assert all(info["metadata"] is True for info in ledger.file_descriptions().values())
    ledger.manifest_path.unlink()
    assert run_cli("ledger", "rebuild", "--data-dir", data).exit_code == 0
    assert _statuses(data) == statuses  # complete stays complete, not assumed
    assert Ledger(data).history().coverage() == coverage  # not narrowed to the first event
    held = _events(run_cli, data, tmp_path / "after.parquet")
    assert set(events.rows()) <= set(held.rows())


def test_a_rebuild_of_a_0_1_ledger_writes_the_metadata_into_its_files(
    run_cli, history_dir, tmp_path
):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    _as_written_by_0_1(data)
    statuses = _statuses(data)
    assert run_cli("ledger", "rebuild", "--data-dir", data).exit_code == 0
    Ledger(data).manifest_path.unlink()
    assert run_cli("ledger", "rebuild", "--data-dir", data).exit_code == 0
    assert _statuses(data) == statuses


def test_a_backup_of_a_first_commits_manifest_still_reads_after_a_writer_ran(
    run_cli, history_dir, tmp_path, monkeypatch
):
    """The first commit dies after its manifest; the manifest is lost; a writer rolls the
    commit forward. The lost manifest, restored from a backup, still reads: the file it
    names was kept, not deleted (found by the adversarial review)."""
    data = tmp_path / "data"
    _kill_inside(
        monkeypatch, "_finish", lambda: run_cli("ledger", "import", history_dir, "--data-dir", data)
    )
    ledger = Ledger(data)
    backup = tmp_path / "manifest.backup.json"
    shutil.copy(ledger.manifest_path, backup)
    ledger.manifest_path.unlink()
    assert run_cli("ledger", "import", _extra(tmp_path, 5), "--data-dir", data).exit_code == 0
    assert (
        json.loads(run_cli("ledger", "status", "--json", "--data-dir", data).stdout)[
            "unknown_files"
        ]
        == []
    )
    shutil.copy(backup, ledger.manifest_path)
    for command in (["ledger", "status"], ["ledger", "verify"], ["check", "4155550101"]):
        assert run_cli(*command, "--data-dir", data).exit_code == 0, command


def test_a_damaged_file_of_a_ledger_without_checksums_is_named_by_every_read(
    run_cli, history_dir, tmp_path
):
    """A ledger of 0.1 keeps no checksums: a damaged file is read whole and named in one
    line, never an internal error (found by the adversarial review)."""
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    _as_written_by_0_1(data)
    [victim] = Ledger(data).event_files_on_disk()
    content = bytearray(victim.read_bytes())
    middle = len(content) // 3
    content[middle : middle + 64] = b"\xff" * 64
    victim.write_bytes(bytes(content))
    for command in (
        ["ledger", "status"],
        ["check", "4155550101"],
        ["ledger", "export", tmp_path / "out.csv"],
    ):
        result = run_cli(*command, "--data-dir", data)
        assert result.exit_code == 1, command
        assert result.stderr.startswith(f"reconcile: error: {victim}: damaged"), result.stderr
        assert result.stderr.count("\n") == 1
