"""The ledger: the durable local history of operator reports.

Infobip deletes reports after about 60 days, so this is the only long-term history.

Layout under the data directory::

    ledger/manifest.json          report metadata and fetch state (the commit point)
    ledger/events/*.parquet       the committed events; each file carries the metadata
                                  of the reports it holds, so the manifest can be rebuilt
    ledger/staging/               files being written; never read
    ledger/pending.json           the files of a commit in progress
    ledger/lock                   held by the one process that may change the ledger

A report becomes visible only when complete: its events are written to staging and
fsynced, their names are written to ``pending.json``, they are moved into ``events/``,
and the manifest that names them replaces the old one atomically (``os.replace``). A
crash at any point leaves the old manifest; the next writer rolls the commit forward:
the reports of every whole file ``pending.json`` lists go through `Ledger.commit`, which
never lowers what is held, so a commit cut short, or a copy taken mid-commit and
restored in any order, loses no event it had written.

The ledger never deletes what it did not write, and never a file that a manifest it
committed may name: a replaced file stays (an older manifest restored from a backup can
still read it), and a file it does not know is left alone and listed by `status`.
Readers take no lock and write nothing: they read one manifest, whose files stay.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import filelock
import polars as pl

from reconcile._ledger_recovery import carry_metadata, publish, roll_forward
from reconcile._text import first_line, read_manifest_instant
from reconcile.errors import LedgerBusyError, LedgerError
from reconcile.history import EVENT_SCHEMA, REPORT_SCHEMA, History, conform_events, empty_events
from reconcile.ledger_files import (
    MANIFEST_FORMAT,
    check_events_file,
    damaged_file,
    empty_manifest,
    fsync_directory,
    next_manifest,
    read_manifest,
    stage_events,
)
from reconcile.lifecycle import (
    ReportEntry,
    after_listed,
    merge_entry,
    merged_events,
    rank_of,
    text_or_none,
)

__all__ = ["MANIFEST_FORMAT", "Ledger", "ReportEntry"]


@dataclass(frozen=True)
class _Snapshot:
    """One manifest as read: its entries, last sync, and the files it names."""

    manifest: dict[str, Any]
    entries: dict[str, ReportEntry]


class Ledger:
    """The ledger in ``data_dir / "ledger"``; all writes happen under `locked`, reads take
    no lock and write nothing."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.root = data_dir / "ledger"
        self.manifest_path = self.root / "manifest.json"
        self.events_dir = self.root / "events"
        self.staging_dir = self.root / "staging"
        self.pending_path = self.root / "pending.json"
        self._lock_path = self.root / "lock"
        self._held = False
        self._cached: tuple[tuple[int, int, int], _Snapshot] | None = None

    # -- the lock ----------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, wait: float = 0.0, *, rebuilding: bool = False) -> Iterator[Ledger]:
        """Hold the ledger's lock; raise LedgerBusyError if another run holds it.

        A missing or damaged manifest stops every writer, except the one ``rebuilding``
        it from the events files.
        """
        try:
            for folder in (self.root, self.events_dir, self.staging_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LedgerError(
                f"{self.root}: cannot create the ledger ({error.strerror})."
            ) from None
        lock = filelock.FileLock(self._lock_path, timeout=wait)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LedgerBusyError(
                f"{self.root} is in use by another reconcile run; wait for it to finish "
                "(or pass --wait SECONDS)."
            ) from None
        except OSError as error:
            raise LedgerError(
                f"{self._lock_path}: cannot lock the ledger ({error.strerror}); "
                "changing it needs write permission on its folder."
            ) from None
        self._held = True
        try:
            # a rebuild too first removes what a killed commit left, when the manifest
            # it was to replace is still there and untouched (a commit that never
            # happened); with the manifest lost, every file stays for the rebuild
            self._recover()
            if not rebuilding:
                self._snapshot()  # a missing or damaged manifest stops every writer here
                self.carry_metadata()
            yield self
        finally:
            self._held = False
            lock.release()

    def _require_lock(self) -> None:
        if not self._held:
            raise LedgerError("internal: the ledger was changed without holding its lock.")

    # -- reading -------------------------------------------------------------------

    def _snapshot(self) -> _Snapshot:
        """The manifest, parsed once per version of the file (it is only ever replaced
        whole, so its identity says it all)."""
        try:
            stat = self.manifest_path.stat()
        except FileNotFoundError:
            stat = None
        except OSError as error:
            raise LedgerError(f"{self.manifest_path}: cannot read ({error.strerror}).") from None
        if stat is None:
            self._cached = None
            if not self.event_files_on_disk():
                return _Snapshot(empty_manifest(), {})  # a new ledger
            # files without a manifest are never read as an empty ledger: a reader says
            # so; a writer first rolls a first commit forward (`_recover`)
            return self._missing_manifest()
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cached is not None and self._cached[0] == identity:
            return self._cached[1]
        manifest, entries = read_manifest(self.manifest_path)
        snapshot = _Snapshot(manifest, entries)
        self._cached = (identity, snapshot)
        return snapshot

    def nothing_committed(self) -> _Snapshot:
        """The snapshot of a ledger nothing was ever committed to."""
        return _Snapshot(empty_manifest(), {})

    def _missing_manifest(self) -> _Snapshot:
        count = len(self.event_files_on_disk())
        raise LedgerError(
            f"{self.manifest_path} is missing, but the ledger holds {count} events file(s); "
            "nothing was changed. Run `reconcile ledger rebuild` to restore the manifest "
            'from them (see the README, "Recovering the ledger").'
        )

    def event_files_on_disk(self) -> list[Path]:
        """Every ``*.parquet`` file in ``events/``, named by the manifest or not."""
        try:
            return sorted(self.events_dir.glob("*.parquet"))
        except OSError:
            return []

    def entries(self) -> dict[str, ReportEntry]:
        """Every report the manifest knows, by id."""
        return dict(self._snapshot().entries)

    def last_sync(self) -> datetime | None:
        """When a fetch last finished."""
        value = self._snapshot().manifest.get("last_sync")
        return read_manifest_instant(value if isinstance(value, str) else None)

    def reports_frame(self, snapshot: _Snapshot | None = None) -> pl.DataFrame:
        """The manifest as a REPORT_SCHEMA frame."""
        entries = (snapshot or self._snapshot()).entries
        rows = [
            {
                "report_id": entry.report_id,
                "network_id": entry.network_id,
                "network_name": entry.network_name,
                "generated_date": entry.generated_date,
                "date_from": entry.date_from,
                "date_to": entry.date_to,
                "expiry_date": entry.expiry_date,
                "status": entry.status,
                "records": entry.records,
                "source": entry.source,
            }
            for entry in entries.values()
        ]
        return pl.DataFrame(rows, schema=REPORT_SCHEMA)

    def event_files(self, snapshot: _Snapshot | None = None) -> dict[str, list[str]]:
        """Each Parquet file of committed events, with the reports it currently holds."""
        files: dict[str, list[str]] = {}
        for entry in (snapshot or self._snapshot()).entries.values():
            # a gone report's events still count: only its span is not coverage
            if entry.file is not None:
                files.setdefault(entry.file, []).append(entry.report_id)
        return files

    def unknown_files(self) -> list[str]:
        """Files in ``events/`` the manifest does not name (left alone), by name."""
        snapshot = self._snapshot()
        named = {entry.file for entry in snapshot.entries.values() if entry.file}
        return [
            f"events/{path.name}"
            for path in self.event_files_on_disk()
            if f"events/{path.name}" not in named
        ]

    def replaced_files(self) -> list[str]:
        """Files the ledger replaced and keeps (an older manifest may still name them)."""
        replaced = self._snapshot().manifest.get("replaced", [])
        return [name for name in replaced if isinstance(name, str)]

    def scan_events(
        self,
        snapshot: _Snapshot | None = None,
        parts: list[tuple[Path, list[str] | None]] | None = None,
    ) -> pl.LazyFrame:
        """Every committed event, lazily (each file sorted by number, for fast lookups);
        ``parts``: `event_parts` of the snapshot, when they were worked out already."""
        scans = []
        for path, report_ids in parts if parts is not None else self.event_parts(snapshot):
            scan = pl.scan_parquet(path, schema=EVENT_SCHEMA, missing_columns="insert")
            if report_ids is not None:
                scan = scan.filter(pl.col("report_id").is_in(report_ids))
            scans.append(scan)
        if not scans:
            return empty_events().lazy()
        return pl.concat(scans, how="vertical") if len(scans) > 1 else scans[0]

    def event_parts(self, snapshot: _Snapshot | None = None) -> list[tuple[Path, list[str] | None]]:
        """The committed events files, in the order they are read, each with the reports
        it still stands for when it holds others too (None: every row counts)."""
        snapshot = snapshot or self._snapshot()
        files = self.event_files(snapshot)
        written = snapshot.manifest.get("files", {})
        parts: list[tuple[Path, list[str] | None]] = []
        for file, report_ids in sorted(files.items()):
            path = self.root / file
            if not path.is_file():
                raise LedgerError(
                    f"{path} is named by the manifest but missing; nothing was changed. Run "
                    "`reconcile ledger verify`, then restore the file from a backup or run "
                    '`reconcile ledger rebuild` (see the README, "Recovering the ledger").'
                )
            info = written.get(file, {}) if isinstance(written, dict) else {}
            # a file changed in place since its commit is named here, never met later as
            # an error naming no file
            check_events_file(path, info)
            # A file written for several reports, some of which were replaced since,
            # still holds their old rows: read only the reports it currently stands for.
            replaced = int(info.get("reports", 1)) > len(report_ids)
            parts.append((path, list(report_ids) if replaced else None))
        return parts

    def history(self) -> History:
        """Events and report metadata of one manifest, as the verdicts consume them."""
        snapshot = self._snapshot()
        last_sync = snapshot.manifest.get("last_sync")
        parts = self.event_parts(snapshot)  # each file checked once
        return History(
            events=self.scan_events(snapshot, parts),
            event_parts=parts,
            reports=self.reports_frame(snapshot),
            sources=[str(self.root)],
            description=f"ledger {self.root}",
            last_sync=read_manifest_instant(last_sync if isinstance(last_sync, str) else None),
        )

    def history_warning_if_empty(self) -> History:
        """`history`, with a warning when the ledger holds no report (no lock: the files
        a manifest names are never removed, so one snapshot stays readable)."""
        history = self.history()
        if history.reports.height == 0:
            history.warnings.append(
                f"the ledger at {self.root} is empty: run `reconcile fetch` "
                "(or pass --changes PATH)"
            )
        return history

    # -- writing -------------------------------------------------------------------

    def _write_manifest(
        self,
        entries: dict[str, ReportEntry],
        last_sync: datetime | None,
        new_files: dict[str, dict[str, object]] | None = None,
        commit: str | None = None,
        rebuilt: tuple[dict[str, dict[str, object]], list[str]] | None = None,
        snapshot: _Snapshot | None = None,
        keep_files: Sequence[str] = (),
    ) -> None:
        previous: tuple[dict[str, Any], Iterable[ReportEntry]] | None = None
        if rebuilt is None:
            snapshot = snapshot or self._snapshot()
            previous = (snapshot.manifest, snapshot.entries.values())
        manifest = next_manifest(
            entries, last_sync, previous, new_files, commit, rebuilt, keep_files
        )
        temporary = self.staging_dir / f"manifest-{uuid.uuid4().hex}.json.tmp"
        with temporary.open("w", encoding="utf-8") as stream:
            json.dump(manifest, stream, indent=1, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(self.manifest_path)  # the commit point
        fsync_directory(self.root)

    def _publish(self, staged: list[tuple[Path, str]], commit: str, base: object) -> None:
        publish(self, staged, commit, base)

    def _finish(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pending_path.unlink()

    def _recover(self) -> None:
        roll_forward(self)

    def carry_metadata(self) -> None:
        """Make every file the manifest names self-describing and checksummed
        (`_ledger_recovery.carry_metadata`)."""
        carry_metadata(self)

    def _fail(self, error: BaseException, staged: list[tuple[Path, str]]) -> LedgerError:
        for path, _name in staged:
            with contextlib.suppress(OSError):
                path.unlink()
        reason = error.strerror if isinstance(error, OSError) else first_line(error)
        return LedgerError(
            f"{self.root}: cannot write the ledger ({reason}); it is as it was after its "
            "last commit."
        )

    def file_descriptions(self) -> dict[str, dict[str, object]]:
        """Each events file the manifest describes: reports written, bytes, SHA-256."""
        files = self._snapshot().manifest.get("files", {})
        return {
            str(name): info
            for name, info in (files.items() if isinstance(files, dict) else [])
            if isinstance(info, dict)
        }

    def events_of(self, entry: ReportEntry) -> pl.DataFrame:
        """The events one entry's file holds for its report."""
        held = self._held_events(entry)
        return empty_events() if held is None else held

    def _held_events(
        self, entry: ReportEntry, checked: set[str] | None = None
    ) -> pl.DataFrame | None:
        """The events the ledger holds for one report (None when it holds none).
        ``checked``: the files hashed whole already in this commit (each once)."""
        if entry.file is None:
            return None
        path = self.root / entry.file
        if checked is None or entry.file not in checked:
            # hashed whole: a damaged file is never merged into a new one (which would
            # carry the damage under a fresh checksum)
            check_events_file(path, self.file_descriptions().get(entry.file), whole=True)
            if checked is not None:
                checked.add(entry.file)
        try:
            return (
                pl.scan_parquet(path, schema=EVENT_SCHEMA, missing_columns="insert")
                .filter(pl.col("report_id") == entry.report_id)
                .collect()
            )
        except pl.exceptions.PolarsError as error:
            raise damaged_file(path, f"not readable ({first_line(error)})") from None

    def commit(
        self,
        reports: Sequence[tuple[ReportEntry, pl.DataFrame | None]] = (),
        *,
        metadata: Sequence[ReportEntry] = (),
        last_sync: datetime | None = None,
        rewrite: bool = False,
        keep_files: Sequence[str] = (),
    ) -> list[str]:
        """The one commit path (fetch, import, rebuild): make reports visible at once,
        never lowering what is held; return the ids of the reports it changed.

        A report given with events meets its held copy through `lifecycle.merge_entry`
        and `lifecycle.merged_events`: the higher status, and every held event kept.
        ``None`` for a report's events is a status change (`lifecycle.after_gone`) that
        keeps the rows held. ``metadata`` entries pass through `lifecycle.after_listed`.
        All new rows of one commit go into one events file (``rewrite``: the reports'
        held rows too, when nothing is new, so that the file carries their metadata).
        """
        self._require_lock()
        commit = uuid.uuid4().hex
        staged: list[tuple[Path, str]] = []
        changed: list[str] = []
        checked: set[str] = set()
        try:
            snapshot = self._snapshot()
            entries = dict(snapshot.entries)
            for listed in metadata:
                updated = after_listed(entries.get(listed.report_id), listed)
                if updated != entries.get(listed.report_id):
                    entries[listed.report_id] = updated
                    changed.append(listed.report_id)
            writing: list[tuple[ReportEntry, pl.DataFrame]] = []
            for entry, events in reports:
                old = entries.get(entry.report_id)
                if events is None:
                    kept = (
                        entry if old is None else replace(entry, file=old.file, records=old.records)
                    )
                    if kept != old:
                        entries[entry.report_id] = kept
                        changed.append(entry.report_id)
                    continue
                kept = merge_entry(old, replace(entry, file=None, records=0))
                held = self._held_events(old, checked) if old is not None else None
                merged = merged_events(
                    held,
                    conform_events(events),
                )
                if merged is None and old is not None and held is not None and not rewrite:
                    # nothing new (merged_events says so only of a held copy)
                    if rank_of(kept.status) <= rank_of(old.status):
                        kept = replace(kept, file=old.file, records=old.records)
                        if kept != old:  # metadata the held entry lacked
                            entries[entry.report_id] = kept
                            changed.append(entry.report_id)
                        continue
                    # a higher status: the file is written again so that it carries the
                    # report's status (a rebuild reads it there)
                    merged = held
                if merged is None:
                    if held is None:
                        continue
                    merged = held  # rewritten as held, now with its metadata
                if kept.network_name is not None or kept.network_id is not None:
                    merged = merged.with_columns(
                        network_id=pl.lit(kept.network_id, pl.Int64),
                        network_name=pl.lit(kept.network_name, pl.String),
                    )
                writing.append((replace(kept, records=merged.height), merged))
                changed.append(entry.report_id)
            new_files: dict[str, dict[str, object]] = {}
            if writing:
                without_files = [entry for entry in entries.values() if entry.file is None]
                label = writing[0][0].report_id if len(writing) == 1 else f"commit-{len(writing)}"
                path, file, info = stage_events(
                    self.staging_dir,
                    label,
                    pl.concat([events for _entry, events in writing], how="vertical"),
                    [entry for entry, _events in writing],
                    commit,
                    without_files,
                )
                staged.append((path, file))
                new_files[file] = info
                for entry, _events in writing:
                    entries[entry.report_id] = replace(entry, file=file)
            if not changed and last_sync is None and not keep_files:
                return []  # nothing new: the manifest stays byte for byte
            self._publish(staged, commit, snapshot.manifest.get("commit"))
            previous_sync = read_manifest_instant(text_or_none(snapshot.manifest.get("last_sync")))
            self._write_manifest(
                entries,
                last_sync or previous_sync,
                new_files,
                commit,
                snapshot=snapshot,
                keep_files=keep_files,
            )
        except (OSError, pl.exceptions.PolarsError) as error:
            raise self._fail(error, staged) from None
        self._finish()
        return list(dict.fromkeys(changed))

    def commit_rebuilt(
        self,
        entries: dict[str, ReportEntry],
        last_sync: datetime | None,
        file_reports: dict[str, dict[str, object]],
        replaced: list[str],
    ) -> None:
        """Write a manifest rebuilt from the events files (`reconcile ledger rebuild`):
        ``entries`` as they are, ``file_reports`` each file's manifest description,
        ``replaced`` the files holding versions that were not chosen. The versions not
        chosen then go through `commit`, which keeps every event they add."""
        self._require_lock()
        try:
            self._write_manifest(entries, last_sync, rebuilt=(file_reports, replaced))
        except OSError as error:
            raise self._fail(error, []) from None
        self._cached = None
        self._finish()  # a rebuild read every file, those of a commit cut short too
