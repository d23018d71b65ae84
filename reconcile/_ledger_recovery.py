"""The ledger's commits cut short, and its oldest files: a killed commit is rolled
forward through `Ledger.commit` (`roll_forward`), never deleted, and every file the
manifest names is made self-describing and checksummed (`carry_metadata`). `publish`
moves a commit's staged files into place, noting them in ``pending.json`` first.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from reconcile.errors import LedgerError
from reconcile.history import EVENT_SCHEMA
from reconcile.ledger_files import (
    describe_file,
    entries_in,
    file_problem,
    fsync_directory,
    read_file_metadata,
    readable_metadata,
)
from reconcile.lifecycle import EVENTS_FILE_NAME, ReportEntry, ReportStatus

if TYPE_CHECKING:
    from reconcile.ledger import Ledger

__all__ = ["carry_metadata", "publish", "roll_forward"]


def publish(ledger: Ledger, staged: list[tuple[Path, str]], commit: str, base: object) -> None:
    """Move staged files into ``events/``, noting them in ``pending.json`` first, with
    the commit of the manifest they are meant to replace (``base``)."""
    if not staged:
        return
    temporary = ledger.staging_dir / f"pending-{uuid.uuid4().hex}.json.tmp"
    with temporary.open("w", encoding="utf-8") as stream:
        json.dump(
            {"commit": commit, "base": base, "files": [name for _path, name in staged]},
            stream,
        )
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(ledger.pending_path)
    for path, name in staged:
        path.replace(ledger.root / name)
    fsync_directory(ledger.events_dir)


def _untouched_since_pending(
    ledger: Ledger, pending: Mapping[str, object], current: object
) -> bool:
    """Whether the manifest (or its absence, for a first commit) is the one the
    pending commit was to replace, as it was then: not replaced since, not restored
    from a backup (a file's ctime changes with every replace or copy and cannot be
    set back). Then no manifest ever named the pending files."""
    if pending.get("base", "?") != current or pending.get("commit") == current:
        return False
    try:
        pending_changed = ledger.pending_path.stat().st_ctime_ns
        return ledger.manifest_path.stat().st_ctime_ns < pending_changed
    except OSError:
        # no manifest: the commit may have happened and its manifest been lost since
        # (a backup of it names these files), so they are kept
        return False


def _read_pending(ledger: Ledger) -> dict[str, object] | None:
    """``pending.json`` (None: there is none; empty: it is not what the ledger writes)."""
    try:
        pending = json.loads(ledger.pending_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return pending if isinstance(pending, dict) else {}


def roll_forward(ledger: Ledger) -> None:
    """Finish what a killed commit left: its staged files go, and the reports of each
    whole file it moved into ``events/`` are rolled forward through `commit` (which
    keeps the higher status and every event). A fetched report may be deleted by the
    API before a rerun, so an event written once is never thrown away. With a
    damaged manifest, or files beyond a first commit and no manifest, nothing is
    touched: `ledger rebuild` reads every file."""
    for path in ledger.staging_dir.glob("*.tmp"):
        with contextlib.suppress(OSError):
            path.unlink()
    pending = _read_pending(ledger)
    if pending is None:
        return
    listed_files = pending.get("files")
    files = [
        name
        for name in (listed_files if isinstance(listed_files, list) else [])
        if isinstance(name, str) and EVENTS_FILE_NAME.fullmatch(name)
    ]
    on_disk = {f"events/{path.name}" for path in ledger.event_files_on_disk()}
    if ledger.manifest_path.exists():
        try:
            snapshot = ledger._snapshot()
        except LedgerError:
            return  # a damaged manifest: pending.json stays for the rebuild
        current = snapshot.manifest.get("commit")
        named = {entry.file for entry in snapshot.entries.values()}
    elif on_disk <= set(files):
        # a first commit (or its manifest lost): nothing else to name; an empty
        # manifest first, so that the commit below has one to replace
        current, named, snapshot = None, set(), ledger.nothing_committed()
    else:
        return  # a lost manifest: `ledger rebuild` reads every file
    untouched = _untouched_since_pending(ledger, pending, current)
    forward = [name for name in files if name not in named and name in on_disk]
    reports: list[tuple[ReportEntry, pl.DataFrame | None]] = []
    listed: list[ReportEntry] = []
    whole: list[str] = []
    for name in forward:
        path = ledger.root / name
        metadata = readable_metadata(path)
        if metadata is None:
            continue  # not whole, or not ledger-describing: left for `ledger rebuild`
        events = pl.read_parquet(path, schema=EVENT_SCHEMA, missing_columns="insert")
        for entry in entries_in(metadata.get("reports")):
            mine = events.filter(pl.col("report_id") == entry.report_id)
            reports.append((replace(entry, file=None, records=0), mine))
        for entry in entries_in(metadata.get("without_files")):
            if entry.status == ReportStatus.GONE and entry.report_id not in snapshot.entries:
                reports.append((entry, None))
            else:
                listed.append(entry)
        whole.append(name)
    if reports or listed:
        if current is None and not ledger.manifest_path.exists():
            ledger._write_manifest({}, None, rebuilt=({}, []))
        # files kept are listed as replaced: an older manifest may name them
        ledger.commit(reports, metadata=listed, keep_files=() if untouched else whole)
    if untouched:
        # no manifest ever named these files, and their events are now committed
        for name in whole:
            with contextlib.suppress(OSError):
                (ledger.root / name).unlink()
    ledger._finish()


def carry_metadata(ledger: Ledger) -> None:
    """Make every file the manifest names ledger-describing and checksummed: a file
    written by an older version gets its checksum, and, written by 0.1 without its
    reports' metadata, is rewritten through `commit` with it, so that a rebuild after
    a lost manifest restores each report's status and span, not an assumed one.
    Once per file (its manifest line then says ``"metadata": true``)."""
    ledger._require_lock()
    snapshot = ledger._snapshot()
    described = snapshot.manifest.get("files", {})
    described = described if isinstance(described, dict) else {}
    old = sorted(
        {
            entry.file
            for entry in snapshot.entries.values()
            if entry.file is not None
            and not (
                isinstance(described.get(entry.file), dict)
                and isinstance(described[entry.file].get("sha256"), str)
                and described[entry.file].get("metadata") is True
            )
        }
    )
    checksums: dict[str, dict[str, object]] = {}
    for name in old:
        path = ledger.root / name
        if file_problem(path) is not None:
            continue  # damaged or missing: reads name it, a rebuild decides
        held = [entry for entry in snapshot.entries.values() if entry.file == name]
        metadata = read_file_metadata(path)
        if metadata is not None:  # its count of reports keeps replaced rows unread
            checksums[name] = describe_file(path, len(entries_in(metadata.get("reports"))))
            continue
        ledger.commit(
            [(replace(entry, file=None), ledger.events_of(entry)) for entry in held],
            rewrite=True,
        )
    if checksums:
        snapshot = ledger._snapshot()
        try:
            ledger._write_manifest(
                dict(snapshot.entries), ledger.last_sync(), checksums, snapshot=snapshot
            )
        except OSError as error:
            raise ledger._fail(error, []) from None
