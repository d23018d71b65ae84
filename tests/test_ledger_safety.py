"""The ledger never loses history (SPEC "The ledger"): each test is an accident that
lost history or broke every command before."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from reconcile.errors import ChangeFileError, LedgerError
from reconcile.ledger import Ledger
from reconcile.ledger_import import import_change_files
from reconcile.ledger_io import rebuild_ledger
from tests.conftest import METADATA, RECORDS_ATT, RECORDS_VZ
from tests.helpers import NOW


def _files(ledger: Ledger) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in ledger.events_dir.glob("*")}


def _import(ledger: Ledger, *paths: Path, **options: object):
    with ledger.locked():
        return import_change_files(ledger, list(paths), "test", NOW, **options)  # type: ignore[arg-type]


def _export(run_cli, data: Path, target: Path) -> bytes:
    result = run_cli("ledger", "export", target, "--data-dir", data, "--force")
    assert result.exit_code == 0, result.output
    return target.read_bytes()


def test_a_missing_manifest_is_an_error_and_nothing_is_deleted(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    ledger = Ledger(data)
    files = _files(ledger)
    assert files
    ledger.manifest_path.unlink()
    for command in (
        ["ledger", "status"],
        ["ledger", "import", history_dir],
        ["ledger", "export", tmp_path / "out.parquet"],
        ["check", "4155550101"],
    ):
        result = run_cli(*command, "--data-dir", data)
        assert result.exit_code == 1, command
        assert "manifest.json is missing, but the ledger holds 1 events file(s)" in result.stderr
        assert result.stderr.count("\n") == 1
    assert _files(ledger) == files  # every events file is still there


def test_rebuild_after_deleting_the_manifest_gives_back_every_report_and_event(
    run_cli, history_dir, tmp_path
):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    before = _export(run_cli, data, tmp_path / "before.csv")
    coverage = Ledger(data).history().coverage()
    Ledger(data).manifest_path.unlink()
    rebuilt = run_cli("ledger", "rebuild", "--data-dir", data)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert rebuilt.stdout.startswith("rebuilt the manifest of ")
    assert _export(run_cli, data, tmp_path / "after.csv") == before
    assert Ledger(data).history().coverage() == coverage
    assert run_cli("ledger", "verify", "--data-dir", data).exit_code == 0


def test_an_older_manifest_restored_loses_nothing_committed_later(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    ledger = Ledger(data)
    _import(ledger, history_dir)
    backup = tmp_path / "manifest.backup.json"
    shutil.copy(ledger.manifest_path, backup)
    # later: a new report, and a report re-imported with one more event (its file replaced)
    later = tmp_path / "later"
    later.mkdir()
    (later / "metadata.json").write_text(json.dumps(METADATA))
    more = dict(RECORDS_VZ)
    more["results"] = [
        *RECORDS_VZ["results"],
        {
            "date": "2024-03-20T08:00:00.000+0000",
            "destination": "14155550177",
            "type": "DEACTIVATION",
        },
    ]
    (later / "rep-vz-1.json").write_text(json.dumps(more))
    (later / "records-rep-att-1-page0.json").write_text(json.dumps(RECORDS_ATT))
    (later / "extra.csv").write_text(
        "destination,date,type\n14155550188,2024-04-01T00:00:00Z,SUSPENSION\n"
    )
    _import(ledger, later)
    expected = _export(run_cli, data, tmp_path / "expected.csv")
    shutil.copy(backup, ledger.manifest_path)  # the user restores the backup
    # a command now reads the older manifest: its files are all still there
    assert Ledger(data).history().events.height == 4
    assert run_cli("ledger", "status", "--data-dir", data).exit_code == 0
    done = rebuild_ledger(Ledger(data))
    assert done["files_unreadable"] == []
    assert _export(run_cli, data, tmp_path / "after.csv") == expected


def test_files_the_manifest_does_not_name_are_left_alone_and_listed(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    mine = Ledger(data).events_dir / "my-backup.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(mine)
    content = mine.read_bytes()
    more = tmp_path / "more.csv"
    more.write_text("destination,date,type\n14155550177,2024-03-20T10:00:00Z,DEACTIVATION\n")
    assert run_cli("ledger", "import", more, "--data-dir", data).exit_code == 0
    assert mine.read_bytes() == content
    status = run_cli("ledger", "status", "--data-dir", data)
    assert "note: events/my-backup.parquet is not named by the manifest; it is left alone" in (
        status.stdout
    )
    assert json.loads(run_cli("ledger", "status", "--json", "--data-dir", data).stdout)[
        "unknown_files"
    ] == ["events/my-backup.parquet"]


def test_metadata_alone_never_lowers_what_the_ledger_holds(tmp_path, history_dir):
    ledger = Ledger(tmp_path / "data")
    _import(ledger, history_dir)
    before = {key: entry.status for key, entry in ledger.entries().items()}
    coverage = ledger.history().coverage()
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps(METADATA))
    _import(ledger, listing)
    assert {key: entry.status for key, entry in ledger.entries().items()} == before
    assert {entry.source for entry in ledger.entries().values()} == {"import:test"}
    assert ledger.history().coverage() == coverage


def test_a_partial_set_of_pages_never_replaces_a_complete_report(tmp_path, history_dir):
    ledger = Ledger(tmp_path / "data")
    _import(ledger, history_dir)
    events = ledger.history().events.height
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "metadata.json").write_text(json.dumps(METADATA))
    one_page = dict(RECORDS_VZ, paging={"page": 0, "size": 1, "totalPages": 4, "totalResults": 4})
    one_page["results"] = RECORDS_VZ["results"][:1]
    (partial / "rep-vz-1.json").write_text(json.dumps(one_page))
    summary = _import(ledger, partial)
    assert any("the ledger keeps its complete copy" in warning for warning in summary["warnings"])
    assert ledger.entries()["rep-vz-1"].status == "complete"
    assert ledger.history().events.height == events


def test_two_files_of_one_name_are_two_reports_and_the_same_content_twice_changes_nothing(
    tmp_path,
):
    ledger = Ledger(tmp_path / "data")
    for week, number in (("week1", "14155550101"), ("week2", "14155550102")):
        folder = tmp_path / week
        folder.mkdir()
        (folder / "provider.csv").write_text(
            f"destination,date,type\n{number},2024-03-10T11:00:00Z,DEACTIVATION\n"
        )
    _import(ledger, tmp_path / "week1" / "provider.csv")
    _import(ledger, tmp_path / "week2" / "provider.csv")
    assert len(ledger.entries()) == 2
    assert ledger.history().events.height == 2
    manifest = ledger.manifest_path.read_bytes()
    _import(ledger, tmp_path / "week1" / "provider.csv")
    assert ledger.manifest_path.read_bytes() == manifest
    _import(ledger, tmp_path / "week1" / "provider.csv", report_id="vendor-week-1")
    assert "vendor-week-1" in ledger.entries()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "old.json",
            json.dumps(
                {"results": [{"reportId": "x", "dateFrom": "0999-01-01", "dateTo": "2024-03-01"}]}
            ),
            "old.json: results[0] (report x): dateFrom and dateTo must be dates",
        ),
        (
            "old.csv",
            "destination,date,type\n14155550101,0026-03-10T11:00:00Z,DEACTIVATION\n",
            "old.csv: data row 1: date '0026-03-10T11:00:00Z' is outside 2000-01-01 .. ",
        ),
        (
            "future.csv",
            "destination,date,type\n14155550101,2031-03-10T11:00:00Z,DEACTIVATION\n",
            "future.csv: data row 1: date '2031-03-10T11:00:00Z' is outside 2000-01-01 .. ",
        ),
    ],
)
def test_dates_outside_2000_and_the_run_day_are_refused(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    ledger = Ledger(tmp_path / "data")
    with pytest.raises(ChangeFileError, match=re.escape(message)):
        _import(ledger, path)
    assert ledger.entries() == {}


def test_a_reader_keeps_its_snapshot_while_a_report_is_replaced(tmp_path, history_dir):
    ledger = Ledger(tmp_path / "data")
    _import(ledger, history_dir)
    history = Ledger(tmp_path / "data").history()  # lazy: files read at collect
    more = dict(RECORDS_VZ)
    more["results"] = [
        *RECORDS_VZ["results"],
        RECORDS_VZ["results"][0] | {"destination": "14155550111"},
    ]
    replacement = tmp_path / "replacement"
    replacement.mkdir()
    (replacement / "metadata.json").write_text(json.dumps(METADATA))
    (replacement / "rep-vz-1.json").write_text(json.dumps(more))
    _import(ledger, replacement)
    assert history.lazy_events().collect().height == 4  # the old snapshot, still readable
    assert ledger.history().events.height == 5


def test_readers_write_nothing_and_need_no_lock(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    (data / "ledger" / "lock").unlink()
    before = sorted(str(path) for path in data.rglob("*"))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("Phone,Opt-In Date\n4155550101,2024-03-09\n")
    for command in (
        ["clean", contacts, "--out-dir", tmp_path / "out"],
        ["ledger", "status"],
        ["ledger", "verify"],
        ["ledger", "export", tmp_path / "events.csv"],
        ["check", "4155550101"],
    ):
        result = run_cli(*command, "--data-dir", data)
        assert result.exit_code == 0, (command, result.output)
    assert sorted(str(path) for path in data.rglob("*")) == before
    fresh = tmp_path / "never-made"
    assert run_cli("ledger", "status", "--data-dir", fresh).exit_code == 0
    assert not fresh.exists()


def test_a_full_disk_during_a_fetch_commit_says_what_was_kept(tmp_path, monkeypatch):
    from reconcile.ledger import ReportEntry
    from reconcile.sync import FetchResult, commit_fetched

    ledger = Ledger(tmp_path / "data")

    def full(*_args, **_kwargs):
        raise pl.exceptions.ComputeError("No space left on device (os error 28)")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    result = FetchResult(fetched=[("r1", 10, 1), ("r2", 5, 1)])
    from reconcile.history import empty_events

    events = empty_events()
    with ledger.locked(), pytest.raises(LedgerError) as caught:
        commit_fetched(ledger, result, [(ReportEntry("r3", "complete"), events)], [])
    assert "cannot write the ledger (No space left on device (os error 28))" in str(caught.value)
    assert "The 2 report(s) fetched before it are committed and kept (r1, r2)" in str(caught.value)
    assert list(ledger.staging_dir.iterdir()) == []


def test_verify_names_a_missing_file(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    ledger = Ledger(data)
    victim = next(iter(ledger.events_dir.glob("*.parquet")))
    victim.unlink()
    result = run_cli("ledger", "verify", "--data-dir", data)
    assert result.exit_code == 1
    assert f"problem: events/{victim.name} is named by the manifest but missing" in result.stdout


@pytest.mark.parametrize(
    "damage",
    [b"", b"PAR1garbagePAR1", b"not parquet at all"],
)
def test_a_damaged_events_file_is_one_line_naming_it(run_cli, history_dir, tmp_path, damage):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    victim = next(iter(Ledger(data).events_dir.glob("*.parquet")))
    victim.write_bytes(damage)
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("Phone,Opt-In Date\n4155550101,2024-03-09\n")
    result = run_cli("clean", contacts, "--data-dir", data, "--out-dir", tmp_path / "out")
    assert result.exit_code == 1
    assert f"{victim}: not a readable events file" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_commit_killed_after_its_manifest_loses_nothing_when_a_backup_is_restored(
    tmp_path, history_dir, monkeypatch, run_cli
):
    data = tmp_path / "data"
    ledger = Ledger(data)
    _import(ledger, history_dir)
    backup = tmp_path / "manifest.backup.json"
    shutil.copy(ledger.manifest_path, backup)
    extra = tmp_path / "extra.csv"
    extra.write_text("destination,date,type\n14155550777,2024-05-01T00:00:00Z,DEACTIVATION\n")

    class Killed(BaseException):
        pass

    def killed(_self):  # the process dies after its manifest, before pending.json goes
        raise Killed

    monkeypatch.setattr(Ledger, "_finish", killed)
    with pytest.raises(Killed):
        _import(Ledger(data), extra)
    monkeypatch.undo()
    expected = _export(run_cli, data, tmp_path / "expected.csv")
    shutil.copy(backup, Ledger(data).manifest_path)  # the user restores the backup
    _import(Ledger(data), history_dir)  # a writer runs: it must remove nothing
    rebuild_ledger(Ledger(data))
    assert _export(run_cli, data, tmp_path / "after.csv") == expected


def test_rebuild_drops_a_report_whose_file_is_gone(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    # two imports, two files: the AT&T records, then the rest
    att = tmp_path / "att"
    att.mkdir()
    (history_dir / "records-rep-att-1-page0.json").rename(att / "records-rep-att-1-page0.json")
    (history_dir / "metadata.json").rename(att / "metadata.json")
    assert run_cli("ledger", "import", att, "--data-dir", data).exit_code == 0
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    ledger = Ledger(data)
    victim = ledger.root / ledger.entries()["rep-vz-1"].file
    victim.unlink()
    assert run_cli("ledger", "verify", "--data-dir", data).exit_code == 1
    assert run_cli("ledger", "rebuild", "--data-dir", data).exit_code == 0
    assert run_cli("ledger", "verify", "--data-dir", data).exit_code == 0
    assert Ledger(data).history().events.height == 2


def test_no_import_lowers_a_report_the_ledger_holds(run_cli, history_dir, tmp_path):
    data = tmp_path / "data"
    ledger = Ledger(data)
    _import(ledger, history_dir)
    full = tmp_path / "full.parquet"
    assert run_cli("ledger", "export", full, "--data-dir", data).exit_code == 0
    one = tmp_path / "one.parquet"
    pl.read_parquet(full).filter(pl.col("report_id") == "rep-vz-1").head(1).write_parquet(one)
    assert run_cli("ledger", "import", one, "--data-dir", data).exit_code == 0
    assert ledger.history().events.height == 4
    manifest = ledger.manifest_path.read_bytes()
    assert run_cli("ledger", "import", full, "--data-dir", data).exit_code == 0
    assert ledger.manifest_path.read_bytes() == manifest  # the same content: nothing
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    (fewer / "metadata.json").write_text(json.dumps(METADATA))
    page = dict(RECORDS_VZ, paging={"page": 0, "size": 1, "totalPages": 1, "totalResults": 1})
    page["results"] = RECORDS_VZ["results"][:1]
    (fewer / "rep-vz-1.json").write_text(json.dumps(page))
    _import(ledger, fewer)
    assert ledger.history().events.height == 4


def test_metadata_alone_never_narrows_coverage(tmp_path, history_dir):
    ledger = Ledger(tmp_path / "data")
    _import(ledger, history_dir)
    coverage = ledger.history().coverage()
    narrowed = json.loads(json.dumps(METADATA))
    narrowed["results"][0]["dateFrom"] = "2024-03-20T00:00:00Z"
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps(narrowed))
    _import(ledger, listing)
    assert ledger.history().coverage() == coverage
