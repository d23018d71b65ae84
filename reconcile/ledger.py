"""The ledger: the durable local history of operator reports.

Infobip deletes reports after about 60 days, so this is the only long-term history.

Layout under the data directory::

    ledger/manifest.json          report metadata and fetch state (the commit point)
    ledger/events/*.parquet       one file per committed report, never rewritten
    ledger/staging/               files being written; never read
    ledger/lock                   held by the one process that may change the ledger

A report becomes visible only when complete: its events are written to staging,
fsynced, moved into ``events/`` under a new name, and then the manifest that names the
file replaces the old one atomically (``os.replace``). A crash at any point leaves the
old manifest, which names only old files; files nobody names are removed by the next
run that holds the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import filelock
import polars as pl

from reconcile.errors import LedgerBusyError, LedgerError
from reconcile.history import EVENT_SCHEMA, REPORT_SCHEMA, History, empty_events

__all__ = [
    "EXPIRY_WARNING",
    "MANIFEST_FORMAT",
    "Ledger",
    "ReportEntry",
    "expiry_of_unfetched",
]

MANIFEST_FORMAT = 1
# reports that expire unfetched within this long are warned about
EXPIRY_WARNING = timedelta(days=7)
_DATE_FIELDS = ("generated_date", "date_from", "date_to", "expiry_date")


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment is not None else None


def _parse(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@dataclass(frozen=True)
class ReportEntry:
    """One report's line in the manifest."""

    report_id: str
    status: str  # complete, assumed, incomplete, listed, gone
    network_id: int | None = None
    network_name: str | None = None
    generated_date: datetime | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    expiry_date: datetime | None = None
    records: int = 0
    file: str | None = None
    source: str = "api"
    fetched_at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        """The manifest's line for this report."""
        return {
            "report_id": self.report_id,
            "status": self.status,
            "network_id": self.network_id,
            "network_name": self.network_name,
            "records": self.records,
            "file": self.file,
            "source": self.source,
            "fetched_at": _iso(self.fetched_at),
            **{name: _iso(getattr(self, name)) for name in _DATE_FIELDS},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ReportEntry:
        """An entry from its manifest line."""
        return cls(
            report_id=str(data["report_id"]),
            status=str(data["status"]),
            network_id=_whole(data.get("network_id")),
            network_name=_text(data.get("network_name")),
            records=_whole(data.get("records")) or 0,
            file=_text(data.get("file")),
            source=_text(data.get("source")) or "api",
            fetched_at=_parse(_text(data.get("fetched_at"))),
            generated_date=_parse(_text(data.get("generated_date"))),
            date_from=_parse(_text(data.get("date_from"))),
            date_to=_parse(_text(data.get("date_to"))),
            expiry_date=_parse(_text(data.get("expiry_date"))),
        )

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> ReportEntry:
        """From a REPORT_SCHEMA row (change files, API metadata), status ``listed`` if
        the row has none."""
        return cls(
            report_id=str(row["report_id"]),
            status=_text(row.get("status")) or "listed",
            network_id=_whole(row.get("network_id")),
            network_name=_text(row.get("network_name")),
            generated_date=_moment(row.get("generated_date")),
            date_from=_moment(row.get("date_from")),
            date_to=_moment(row.get("date_to")),
            expiry_date=_moment(row.get("expiry_date")),
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _moment(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


def expiry_of_unfetched(
    entries: Iterable[ReportEntry], now: datetime
) -> tuple[list[ReportEntry], list[ReportEntry]]:
    """Reports listed but never fetched: those already expired (a gap in the history),
    and those that expire within EXPIRY_WARNING."""
    expired: list[ReportEntry] = []
    expiring: list[ReportEntry] = []
    for entry in entries:
        if entry.status != "listed" or entry.expiry_date is None:
            continue
        if entry.expiry_date <= now:
            expired.append(entry)
        elif entry.expiry_date <= now + EXPIRY_WARNING:
            expiring.append(entry)
    return expired, expiring


class Ledger:
    """The ledger in ``data_dir / "ledger"``; all writes happen under `locked`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.root = data_dir / "ledger"
        self.manifest_path = self.root / "manifest.json"
        self.events_dir = self.root / "events"
        self.staging_dir = self.root / "staging"
        self._lock_path = self.root / "lock"
        self._held = False
        self._cached: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self._cached_entries: tuple[dict[str, Any], dict[str, ReportEntry]] | None = None

    # -- the lock ----------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, wait: float = 0.0) -> Iterator[Ledger]:
        """Hold the ledger's lock; raise LedgerBusyError if another run holds it."""
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
        self._held = True
        try:
            self._collect_garbage()
            yield self
        finally:
            self._held = False
            lock.release()

    def _require_lock(self) -> None:
        if not self._held:
            raise LedgerError("internal: the ledger was changed without holding its lock.")

    # -- reading -------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Any]:
        # Parsed once per version of the file: a large ledger's manifest is read by every
        # step of a run. The file is only ever replaced whole, so its identity says it all.
        try:
            stat = self.manifest_path.stat()
        except FileNotFoundError:
            stat = None
        if stat is not None:
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._cached is not None and self._cached[0] == identity:
                return self._cached[1]
        manifest = self._parse_manifest()
        if stat is not None:
            self._cached = (identity, manifest)
        return manifest

    def _parse_manifest(self) -> dict[str, Any]:
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"format": MANIFEST_FORMAT, "last_sync": None, "reports": {}}
        except OSError as error:
            raise LedgerError(f"{self.manifest_path}: cannot read ({error.strerror}).") from None
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError:
            raise LedgerError(
                f"{self.manifest_path} is damaged (not JSON); restore it from a backup."
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise LedgerError(
                f"{self.manifest_path}: unknown manifest format; this reconcile reads format "
                f"{MANIFEST_FORMAT}."
            )
        return manifest

    def entries(self) -> dict[str, ReportEntry]:
        """Every report the manifest knows, by id."""
        manifest = self._read_manifest()
        # Entries are frozen: one parse per manifest version serves every caller.
        if self._cached_entries is None or self._cached_entries[0] is not manifest:
            reports = manifest.get("reports", {})
            parsed = {report_id: ReportEntry.from_json(data) for report_id, data in reports.items()}
            self._cached_entries = (manifest, parsed)
        return dict(self._cached_entries[1])

    def last_sync(self) -> datetime | None:
        """When a fetch last finished."""
        return _parse(self._read_manifest().get("last_sync"))

    def reports_frame(self) -> pl.DataFrame:
        """The manifest as a REPORT_SCHEMA frame."""
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
            for entry in self.entries().values()
        ]
        return pl.DataFrame(rows, schema=REPORT_SCHEMA)

    def event_files(self) -> dict[str, list[str]]:
        """Each Parquet file of committed events, with the reports it currently holds."""
        files: dict[str, list[str]] = {}
        for entry in self.entries().values():
            if entry.file is not None and entry.status != "gone":
                files.setdefault(entry.file, []).append(entry.report_id)
        return files

    def scan_events(self) -> pl.LazyFrame:
        """Every committed event, lazily (each file sorted by number, for fast lookups)."""
        files = self.event_files()
        if not files:
            return empty_events().lazy()
        written = self._read_manifest().get("files", {})
        scans = []
        for file, report_ids in sorted(files.items()):
            path = self.root / file
            if not path.exists():
                raise LedgerError(
                    f"{path} is named by the manifest but missing; the ledger is damaged "
                    "(restore the folder from a backup, or re-import the reports)."
                )
            scan = pl.scan_parquet(path, schema=EVENT_SCHEMA)
            # A file written for several reports, some of which were replaced since,
            # still holds their old rows: read only the reports it currently stands for.
            if int(written.get(file, {}).get("reports", 1)) > len(report_ids):
                scan = scan.filter(pl.col("report_id").is_in(report_ids))
            scans.append(scan)
        return pl.concat(scans, how="vertical") if len(scans) > 1 else scans[0]

    def history(self) -> History:
        """Events and report metadata, as the verdicts consume them."""
        return History(
            events=self.scan_events(),
            reports=self.reports_frame(),
            sources=[str(self.root)],
            description=f"ledger {self.root}",
            last_sync=self.last_sync(),
        )

    def read_history(self, wait: float = 0.0) -> History:
        """`history` under the lock, with a warning when the ledger holds no report."""
        with self.locked(wait):
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
        new_files: dict[str, int] | None = None,
    ) -> None:
        named = {entry.file for entry in entries.values() if entry.file}
        files = {
            name: info
            for name, info in self._read_manifest().get("files", {}).items()
            if name in named
        }
        files.update({name: {"reports": count} for name, count in (new_files or {}).items()})
        manifest = {
            "format": MANIFEST_FORMAT,
            "last_sync": _iso(last_sync),
            "reports": {key: entries[key].to_json() for key in sorted(entries)},
            "files": dict(sorted(files.items())),
        }
        temporary = self.staging_dir / f"manifest-{uuid.uuid4().hex}.json"
        with temporary.open("w", encoding="utf-8") as stream:
            json.dump(manifest, stream, indent=1, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(self.manifest_path)  # the commit point
        _fsync_directory(self.root)

    def _stage_events(self, report_id: str, events: pl.DataFrame) -> str:
        """Write events to a new file under events/; return its path relative to root."""
        digest = hashlib.sha256(report_id.encode()).hexdigest()[:16]
        name = f"{digest}-{uuid.uuid4().hex[:12]}.parquet"
        temporary = self.staging_dir / (name + ".tmp")
        (
            events.select(list(EVENT_SCHEMA))
            .cast(EVENT_SCHEMA)  # type: ignore[arg-type]
            .sort("number", "occurred_at")
            # LZ4: every clean reads the whole history, and LZ4 reads faster than zstd
            # (measured in docs/performance.md); files of either kind are read alike
            .write_parquet(temporary, compression="lz4", statistics=True, row_group_size=256_000)
        )
        with temporary.open("rb+") as stream:
            os.fsync(stream.fileno())
        final = self.events_dir / name
        temporary.replace(final)
        _fsync_directory(self.events_dir)
        return f"events/{name}"

    def commit(
        self,
        reports: Sequence[tuple[ReportEntry, pl.DataFrame | None]] = (),
        *,
        metadata: Sequence[ReportEntry] = (),
        last_sync: datetime | None = None,
    ) -> None:
        """Make reports visible at once; a report given again replaces its old rows.

        ``None`` for a report's events keeps the rows the ledger has (a status change).
        ``metadata`` entries only update the operator and dates of known reports (their
        status and rows stay) and add unknown ones as they are.
        """
        self._require_lock()
        try:
            entries = self.entries()
            new_files: dict[str, int] = {}
            for listed in metadata:
                old = entries.get(listed.report_id)
                if old is None:
                    entries[listed.report_id] = listed
                else:
                    entries[listed.report_id] = replace(
                        old,
                        network_id=listed.network_id,
                        network_name=listed.network_name,
                        generated_date=listed.generated_date,
                        date_from=listed.date_from,
                        date_to=listed.date_to,
                        expiry_date=listed.expiry_date,
                    )
            replaced: list[str] = []
            for entry, events in reports:
                old = entries.get(entry.report_id)
                if events is not None:
                    file = self._stage_events(entry.report_id, events)
                    new_files[file] = 1
                    entry = replace(entry, file=file, records=events.height)
                    if old is not None and old.file is not None:
                        replaced.append(old.file)
                elif old is not None:
                    entry = replace(entry, file=old.file, records=old.records)
                entries[entry.report_id] = entry
            self._write_manifest(entries, last_sync or self.last_sync(), new_files)
        except OSError as error:
            raise LedgerError(
                f"{self.root}: cannot write the ledger ({error.strerror}); it is unchanged."
            ) from None
        self._remove_unnamed(replaced, entries)

    def commit_segment(self, reports: Sequence[ReportEntry], events: pl.DataFrame) -> None:
        """Commit many reports whose events are in one frame as one file (bulk imports)."""
        self._require_lock()
        try:
            entries = self.entries()
            file = self._stage_events(f"segment-{len(reports)}", events)
            counts = dict(events.group_by("report_id").agg(count=pl.len()).iter_rows())
            replaced: list[str] = []
            for entry in reports:
                old = entries.get(entry.report_id)
                if old is not None and old.file is not None:
                    replaced.append(old.file)
                records = int(counts.get(entry.report_id, 0))
                entries[entry.report_id] = replace(entry, file=file, records=records)
            self._write_manifest(entries, self.last_sync(), {file: len(reports)})
        except OSError as error:
            raise LedgerError(
                f"{self.root}: cannot write the ledger ({error.strerror}); it is unchanged."
            ) from None
        self._remove_unnamed(replaced, entries)

    def _remove_unnamed(self, candidates: list[str], entries: dict[str, ReportEntry]) -> None:
        """Delete replaced files that no report names any more."""
        named = {entry.file for entry in entries.values() if entry.file}
        for file in set(candidates) - named:
            with contextlib.suppress(OSError):
                (self.root / file).unlink()

    def _collect_garbage(self) -> None:
        """Remove files no manifest names: leftovers of a run that was killed."""
        named = {entry.file for entry in self.entries().values() if entry.file}
        for path in self.staging_dir.glob("*"):
            with contextlib.suppress(OSError):
                path.unlink()
        for path in self.events_dir.glob("*.parquet"):
            if f"events/{path.name}" not in named:
                with contextlib.suppress(OSError):
                    path.unlink()
