"""The ledger's events files, one at a time: each file's line in the manifest (its size
and SHA-256), the metadata it carries (its reports, its commit), and the checks that name
a damaged file in one line. `ledger.Ledger` writes them; `ledger_io` verifies and
rebuilds from them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from reconcile._text import first_line, manifest_instant
from reconcile.errors import LedgerError
from reconcile.history import REQUIRED_EVENT_COLUMNS, conform_events
from reconcile.lifecycle import EVENTS_FILE_NAME, ReportEntry

__all__ = [
    "FILE_METADATA_KEY",
    "MANIFEST_FORMAT",
    "check_events_file",
    "damaged_file",
    "describe_file",
    "entries_in",
    "file_problem",
    "fsync_directory",
    "read_file_metadata",
    "readable_metadata",
    "stage_events",
]

MANIFEST_FORMAT = 2
# the Parquet key-value metadata that makes an events file self-describing
FILE_METADATA_KEY = "reconcile"


def fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def damaged_file(path: Path, what: str) -> LedgerError:
    """The one line that names a damaged events file and says what to do."""
    return LedgerError(
        f"{path}: {what}; nothing was changed. Run `reconcile ledger verify`, then restore "
        'the file from a backup or run `reconcile ledger rebuild` (see the README, "Recovering '
        'the ledger").'
    )


def check_events_file(
    path: Path, description: Mapping[str, object] | None = None, *, whole: bool = False
) -> None:
    """LedgerError naming ``path`` when it is not an events file the ledger can read: its
    footer, its columns, and its bytes against the manifest's checksum (``whole``: always
    hashed; else a file whose size and modification time are those committed is trusted,
    so that a read costs a ``stat``, and a file changed in place is hashed and named)."""
    try:
        schema = pl.read_parquet_schema(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise damaged_file(path, f"not a readable events file ({first_line(error)})") from None
    missing = [name for name in REQUIRED_EVENT_COLUMNS if name not in schema]
    if missing:
        raise damaged_file(path, f"an events file without the column(s) {', '.join(missing)}")
    problem = _checksum_problem(path, description or {}, trust_unchanged=not whole)
    if problem is None and not isinstance((description or {}).get("sha256"), str):
        # written before checksums (0.1): nothing to compare, so it is read whole, until
        # the next writer gives it a checksum (`Ledger.carry_metadata`)
        problem = file_problem(path)
    if problem is not None:
        raise damaged_file(path, problem)


def file_problem(path: Path, description: Mapping[str, object] | None = None) -> str | None:
    """What is wrong with an events file, read whole: missing, not the size or SHA-256
    the manifest keeps, not readable Parquet, without the ledger's columns; None when
    it is whole."""
    if not path.is_file():
        return "missing"
    problem = _checksum_problem(path, description or {})
    if problem is not None:
        return problem
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        return f"damaged: not readable Parquet ({first_line(error)})"
    missing = [name for name in REQUIRED_EVENT_COLUMNS if name not in frame.columns]
    if missing:
        return f"damaged: without the column(s) {', '.join(missing)}"
    return None


def _checksum_problem(
    path: Path, description: Mapping[str, object], *, trust_unchanged: bool = False
) -> str | None:
    """How ``path`` differs from the size and SHA-256 the manifest keeps (None: it does
    not, or the manifest, written before checksums, keeps none). ``trust_unchanged``: a
    file with the committed size and modification time is not hashed again."""
    if not isinstance(description.get("sha256"), str):
        return None
    try:
        stat = path.stat()
        if stat.st_size != description.get("bytes"):
            return "damaged: not the size the manifest names"
        if trust_unchanged and stat.st_mtime_ns == description.get("mtime_ns"):
            return None
        found = describe_file(path, 0)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if found["sha256"] != description["sha256"]:
        return "damaged: its bytes do not match the manifest's checksum"
    return None


def describe_file(path: Path, reports: int) -> dict[str, object]:
    """A file's line in the manifest: how many reports it was written for, its size and
    its SHA-256 (read whole)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    try:
        carries_metadata = read_file_metadata(path) is not None
    except LedgerError:
        carries_metadata = False
    return {
        "reports": reports,
        "bytes": size,
        "sha256": digest.hexdigest(),
        # whether a rebuild can read its reports' status and span from it
        "metadata": carries_metadata,
        # a rename keeps it: a read trusts a file whose size and time are as committed
        "mtime_ns": path.stat().st_mtime_ns,
    }


def read_file_metadata(path: Path) -> dict[str, object] | None:
    """The metadata an events file carries (its reports, its commit), or None for a file
    written before files carried it; LedgerError when the file is not readable Parquet."""
    try:
        metadata = pl.read_parquet_metadata(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise LedgerError(f"{path}: not a readable events file ({first_line(error)}).") from None
    text = metadata.get(FILE_METADATA_KEY)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def entries_in(values: object) -> list[ReportEntry]:
    """The report entries a file's metadata lists (what is not one is skipped)."""
    if not isinstance(values, list):
        return []
    found = []
    for value in values:
        if isinstance(value, dict):
            try:
                found.append(ReportEntry.from_json(value))
            except (KeyError, TypeError, ValueError):
                continue
    return found


def readable_metadata(path: Path) -> dict[str, object] | None:
    """The metadata of an events file that reads whole (None: damaged, or written before
    files carried their metadata)."""
    if file_problem(path) is not None:
        return None
    try:
        return read_file_metadata(path)
    except LedgerError:
        return None


def stage_events(
    staging_dir: Path,
    label: str,
    events: pl.DataFrame,
    entries: Sequence[ReportEntry],
    commit: str,
    without_files: Sequence[ReportEntry] = (),
) -> tuple[Path, str, dict[str, object]]:
    """Write events to staging with their reports' metadata; return the staged path,
    the name the file will have under ``events/`` and its manifest description (the
    reports it holds, its size and SHA-256, which `ledger verify` checks)."""
    digest = hashlib.sha256(label.encode()).hexdigest()[:16]
    name = f"{digest}-{uuid.uuid4().hex[:12]}.parquet"
    temporary = staging_dir / (name + ".tmp")
    metadata = {
        "format": MANIFEST_FORMAT,
        "commit": commit,
        "committed_at": manifest_instant(datetime.now(UTC)),
        "reports": [entry.to_json() for entry in entries],
        # the reports known then without events (listed, gone): a rebuilt manifest
        # knows them too
        "without_files": [entry.to_json() for entry in without_files],
    }
    (
        conform_events(events)
        .sort("number", "occurred_at")
        # LZ4: every clean reads the whole history, and LZ4 reads faster than zstd
        # (measured in docs/performance.md); files of either kind are read alike
        .write_parquet(
            temporary,
            compression="lz4",
            statistics=True,
            row_group_size=256_000,
            metadata={FILE_METADATA_KEY: json.dumps(metadata, sort_keys=True)},
        )
    )
    with temporary.open("rb+") as stream:
        os.fsync(stream.fileno())
    return temporary, f"events/{name}", describe_file(temporary, len(entries))


def next_manifest(
    entries: Mapping[str, ReportEntry],
    last_sync: datetime | None,
    previous: tuple[Mapping[str, Any], Iterable[ReportEntry]] | None,
    new_files: Mapping[str, dict[str, object]] | None = None,
    commit: str | None = None,
    rebuilt: tuple[dict[str, dict[str, object]], list[str]] | None = None,
    keep_files: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest that follows ``previous`` (the manifest as read and its entries):
    ``entries``, the files they name (with ``new_files``), and every file a manifest
    named before listed as replaced (``keep_files`` too), so that an older manifest
    restored from a backup still reads; ``rebuilt`` (a rebuild's file descriptions and
    versions not chosen) starts the sequence again."""
    named = {entry.file for entry in entries.values() if entry.file}
    if rebuilt is None:
        current, previous_entries = previous if previous is not None else ({}, ())
        old_files = current.get("files", {})
        files = {
            name: info
            for name, info in (old_files.items() if isinstance(old_files, dict) else [])
            if name in named
        }
        previously_named = {entry.file for entry in previous_entries if entry.file}
        kept = current.get("replaced", [])
        replaced = sorted(
            ({name for name in kept if isinstance(name, str)} | previously_named | set(keep_files))
            - named
        )
        sequence = int(current.get("sequence", 0) or 0) + 1
    else:  # a rebuilt manifest: the files' report counts and the versions not chosen
        described, replaced = rebuilt
        files = dict(described)
        sequence = 1
    files.update(new_files or {})
    return {
        "format": MANIFEST_FORMAT,
        "commit": commit or uuid.uuid4().hex,
        "sequence": sequence,
        "last_sync": manifest_instant(last_sync),
        "reports": {key: entries[key].to_json() for key in sorted(entries)},
        "files": dict(sorted(files.items())),
        "replaced": replaced,
    }


# manifests this version reads (format 1: before event files carried their metadata)
_READABLE_FORMATS = (1, 2)


def empty_manifest() -> dict[str, Any]:
    """The manifest of a ledger nothing was ever committed to."""
    return {"format": MANIFEST_FORMAT, "last_sync": None, "reports": {}}


def _damaged(path: Path, what: str) -> LedgerError:
    return LedgerError(
        f"{path} is damaged ({what}); nothing was changed. Run "
        "`reconcile ledger rebuild` to restore it from the events files (see the "
        'README, "Recovering the ledger").'
    )


def read_manifest(path: Path) -> tuple[dict[str, Any], dict[str, ReportEntry]]:
    """The manifest at ``path`` and its report entries, checked to be what the ledger
    writes (a damaged or unknown one is one line saying how to rebuild it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LedgerError(f"{path}: cannot read ({error.strerror}).") from None
    except UnicodeDecodeError:
        raise _damaged(path, "not UTF-8 text") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _damaged(path, "not JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("reports", {}), dict):
        raise _damaged(path, "not a manifest")
    if manifest.get("format") not in _READABLE_FORMATS:
        raise LedgerError(
            f"{path}: unknown manifest format {manifest.get('format')!r}; "
            f"this reconcile reads formats {', '.join(map(str, _READABLE_FORMATS))}."
        )
    reports = manifest.get("reports", {})
    try:
        entries = {str(key): ReportEntry.from_json(value) for key, value in reports.items()}
    except (AttributeError, KeyError, TypeError, ValueError):
        raise _damaged(path, "a report entry is not what the ledger writes") from None
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(name, str)
        and EVENTS_FILE_NAME.fullmatch(name)
        and isinstance(info, dict)
        and isinstance(info.get("reports", 1), int)
        and not isinstance(info.get("reports", 1), bool)
        and isinstance(info.get("bytes", 0), int)
        and isinstance(info.get("sha256", ""), str)
        and isinstance(info.get("mtime_ns", 0), int)
        and isinstance(info.get("metadata", False), bool)
        for name, info in files.items()
    ):
        raise _damaged(path, "its list of files is not what the ledger writes")
    return manifest, entries
