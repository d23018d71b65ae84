"""Moving history in and out of the ledger: import change files, export events, status."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Literal, TypedDict

import polars as pl

from reconcile._atomic import OutputBatch
from reconcile._text import first_line as _first_line
from reconcile._text import iso_utc as _iso
from reconcile.api_pages import date_bounds
from reconcile.changefiles import load_change_files
from reconcile.errors import ChangeFileError, LedgerError, OutputError
from reconcile.history import EVENT_SCHEMA, EVENT_TYPES
from reconcile.ledger import Ledger, ReportEntry, expiry_of_unfetched, read_file_metadata

__all__ = [
    "ImportSummary",
    "LedgerStatus",
    "RebuildSummary",
    "VerifyReport",
    "export_events",
    "import_change_files",
    "ledger_status",
    "rebuild_ledger",
    "verify_ledger",
]


class ImportSummary(TypedDict):
    """What `import_change_files` imported."""

    label: str
    files: int
    reports: int
    events: int
    warnings: list[str]


class OperatorStatus(TypedDict):
    network: str
    start: str | None
    end: str | None
    reports: int
    gaps: list[list[str | None]]
    assumed: bool


class CoverageStatus(TypedDict):
    start: str | None
    end: str | None
    operators: list[OperatorStatus]
    notes: list[str]


class LedgerStatus(TypedDict):
    """`ledger status` as JSON."""

    ledger: str
    reports: int
    by_status: dict[str, int]
    events: int
    last_sync: str | None
    coverage: CoverageStatus
    expired_unfetched: list[str]
    expiring_soon: list[str]
    unknown_files: list[str]
    replaced_files: list[str]


def import_change_files(
    ledger: Ledger,
    paths: Sequence[Path],
    label: str,
    now: datetime,
    report_id: str | None = None,
) -> ImportSummary:
    """Import change files as reports. An import never lowers what the ledger holds:
    metadata alone only names operators and dates, a partial set of record pages never
    replaces a complete report, and the same content imported twice changes nothing.
    Record files without metadata are one report per content (or ``report_id``)."""
    parquet = [path for path in paths if path.suffix.lower() == ".parquet"]
    if parquet:
        if len(parquet) != len(paths):
            raise ChangeFileError("import Parquet files on their own, not mixed with JSON/CSV.")
        totals: ImportSummary = {
            "label": label,
            "files": 0,
            "reports": 0,
            "events": 0,
            "warnings": [],
        }
        for path in parquet:
            done = import_parquet(ledger, path, label, now)
            totals["files"] += done["files"]
            totals["reports"] += done["reports"]
            totals["events"] += done["events"]
        return totals
    history = load_change_files(paths, report_id=report_id, now=now)
    source = f"import:{label}"
    known = ledger.entries()
    reports: list[tuple[ReportEntry, pl.DataFrame | None]] = []
    metadata: list[ReportEntry] = []
    warnings = list(history.warnings)
    events_imported = 0
    for row in history.reports.iter_rows(named=True):
        entry = ReportEntry.from_row(row)
        old = known.get(entry.report_id)
        if entry.status == "listed":
            # metadata alone never lowers what the ledger holds: it only names operators
            # and dates, and adds reports the ledger does not know yet
            metadata.append(entry)
            continue
        events = history.events.filter(pl.col("report_id") == entry.report_id)
        if old is not None and _holds_more(old, entry, events.height):
            warnings.append(
                f"report {entry.report_id}: the import holds {events.height} event(s) "
                f"({entry.status}); the ledger keeps its {old.status} copy of {old.records}"
            )
            continue
        if old is not None and old.status == entry.status and _same_events(ledger, old, events):
            continue  # the same content imported again changes nothing
        if old is not None and old.date_from is not None and entry.date_from is None:
            # record pages of a report the ledger knows from its metadata: all of them
            # make it complete
            entry = replace(old, status="complete" if entry.status == "assumed" else entry.status)
        reports.append((replace(entry, source=source, fetched_at=now), events))
        events_imported += events.height
    if reports or metadata:
        ledger.commit(reports, metadata=metadata)
    return {
        "label": label,
        "files": len(history.sources),
        "reports": len(reports) + len(metadata),
        "events": events_imported,
        "warnings": warnings,
    }


_STATUS_RANK = {"complete": 4, "assumed": 3, "incomplete": 2, "gone": 1, "listed": 0}


def _holds_more(old: ReportEntry, new: ReportEntry, new_records: int) -> bool:
    """Whether the ledger's copy of a report is more than an import of it: a complete
    report is never replaced by a partial set of its pages, nor any copy by one with
    fewer records."""
    if old.status == "complete" and new.status != "complete":
        return True
    return old.file is not None and old.records > new_records


def _same_events(ledger: Ledger, old: ReportEntry, events: pl.DataFrame) -> bool:
    if old.records != events.height or old.file is None:
        return False
    held = (
        ledger.scan_events()
        .filter(pl.col("report_id") == old.report_id)
        .select("number", "type", "occurred_at", "new_number")
        .collect()
    )
    columns = ["number", "type", "occurred_at", "new_number"]
    return held.sort(columns).equals(events.select(columns).sort(columns))


def import_parquet(ledger: Ledger, path: Path, label: str, now: datetime) -> ImportSummary:
    """Import events saved as Parquet with the ledger's own columns (``ledger export``).

    Every report in the file becomes one report of the ledger, committed with the others
    as one file; reports without metadata are assumed to cover from their earliest event
    to their latest. A report the ledger already knows keeps its metadata and gets the
    file's rows in place of its own.
    """
    try:
        schema = pl.read_parquet_schema(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ChangeFileError(
            f"{path}: not a readable Parquet file ({_first_line(error)})."
        ) from None
    missing = [name for name in EVENT_SCHEMA if name not in schema]
    if missing:
        raise ChangeFileError(
            f"{path}: the Parquet file lacks the column(s) {', '.join(missing)}; it needs "
            f"{', '.join(EVENT_SCHEMA)} (what `reconcile ledger export` writes)."
        )
    try:
        events = pl.read_parquet(path, columns=list(EVENT_SCHEMA)).cast(
            {"number": pl.UInt64, "new_number": pl.UInt64, "network_id": pl.Int64}
        )
        if events.schema["occurred_at"] != EVENT_SCHEMA["occurred_at"]:
            events = events.with_columns(
                pl.col("occurred_at").dt.replace_time_zone("UTC")
                if events.schema["occurred_at"] == pl.Datetime("us")
                else pl.col("occurred_at").cast(EVENT_SCHEMA["occurred_at"])
            )
    except pl.exceptions.PolarsError as error:
        raise ChangeFileError(
            f"{path}: a column has the wrong type ({_first_line(error)}); the ledger's columns "
            "are number UInt64, type, occurred_at UTC datetime, new_number, report_id, "
            "network_id, network_name."
        ) from None
    earliest, latest = date_bounds(now)
    bad = events.with_row_index("index").filter(
        pl.col("number").is_null()
        | pl.col("occurred_at").is_null()
        | pl.col("report_id").is_null()
        | ~pl.col("type").is_in(list(EVENT_TYPES)).fill_null(False)
        | (pl.col("occurred_at") < earliest)
        | (pl.col("occurred_at") > latest)
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise ChangeFileError(
            f"{path}: row {row['index'] + 1}: needs a number, a date between "
            f"{earliest:%Y-%m-%d} and {latest:%Y-%m-%d}, a report id and a type among "
            f"{', '.join(EVENT_TYPES)} (found {row['occurred_at']}, type {row['type']!r})."
        )
    spans = events.group_by("report_id").agg(
        start=pl.col("occurred_at").min(),
        end=pl.col("occurred_at").max(),
        network_id=pl.col("network_id").first(),
        network_name=pl.col("network_name").first(),
    )
    known = ledger.entries()
    counts = dict(events.group_by("report_id").agg(pl.len()).iter_rows())
    warnings: list[str] = []
    kept_ids: list[str] = []
    entries = []
    for report_id, start, end, network_id, network_name in spans.iter_rows():
        old = known.get(report_id)
        if old is not None and old.file is not None and old.records >= counts[report_id]:
            # never lower what the ledger holds; the same content again changes nothing
            if old.records > counts[report_id]:
                warnings.append(
                    f"report {report_id}: the file holds {counts[report_id]} event(s); the "
                    f"ledger keeps its copy of {old.records}"
                )
            kept_ids.append(report_id)
            continue
        if old is not None and old.status == "complete":
            entries.append(replace(old, source=f"import:{label}"))
        else:
            entries.append(
                ReportEntry(
                    report_id=report_id,
                    status="assumed",
                    network_id=network_id,
                    network_name=network_name,
                    date_from=start,
                    date_to=end,
                    source=f"import:{label}",
                    fetched_at=now,
                )
            )
    events = events.filter(~pl.col("report_id").is_in(kept_ids))
    if entries:
        ledger.commit_segment(entries, events)
    return {
        "label": label,
        "files": 1,
        "reports": len(entries),
        "events": events.height,
        "warnings": warnings,
    }


def export_events(
    ledger: Ledger,
    target: Path,
    fmt: Literal["parquet", "csv"] | None = None,
    force: bool = False,
) -> int:
    """Write every event in the ledger to ``target`` (Parquet, or CSV when ``fmt`` says
    so or, without ``fmt``, the file name ends in ``.csv``); return how many."""
    if fmt is None:
        suffix = target.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise OutputError(
                f"{target}: name the file .parquet or .csv, or say which with --format."
            )
        fmt = "csv" if suffix == ".csv" else "parquet"
    if target.exists() and not force:
        raise OutputError(f"{target} already exists; pass --force to replace it.")
    events = ledger.scan_events().sort(["occurred_at", "number", "report_id"]).collect()
    buffer = io.BytesIO()
    if fmt == "parquet":
        events.write_parquet(buffer)
    else:
        events.with_columns(pl.col("occurred_at").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")).write_csv(
            buffer
        )
    batch = OutputBatch()
    batch.add_bytes(target, buffer.getvalue())
    batch.commit()
    return events.height


def ledger_status(ledger: Ledger, now: datetime) -> LedgerStatus:
    """Reports by status, events, coverage per operator, last sync, expiry warnings."""
    entries = ledger.entries()
    history = ledger.history()
    coverage = history.coverage()
    statuses: dict[str, int] = {}
    for entry in entries.values():
        statuses[entry.status] = statuses.get(entry.status, 0) + 1
    expired, expiring = expiry_of_unfetched(entries.values(), now)
    replaced = ledger.replaced_files()
    return {
        "ledger": str(ledger.root),
        "reports": len(entries),
        "by_status": dict(sorted(statuses.items())),
        "events": history.events.height,
        "last_sync": _iso(ledger.last_sync()),
        "coverage": {
            "start": _iso(coverage.start),
            "end": _iso(coverage.end),
            "operators": [
                {
                    "network": operator.network,
                    "start": _iso(operator.start),
                    "end": _iso(operator.end),
                    "reports": operator.reports,
                    "gaps": [[_iso(start), _iso(end)] for start, end in operator.gaps],
                    "assumed": operator.assumed,
                }
                for operator in coverage.operators
            ],
            "notes": coverage.notes,
        },
        "expired_unfetched": sorted(entry.report_id for entry in expired),
        "expiring_soon": sorted(entry.report_id for entry in expiring),
        "unknown_files": [name for name in ledger.unknown_files() if name not in replaced],
        "replaced_files": replaced,
    }


class RebuildSummary(TypedDict):
    """What `rebuild_ledger` restored."""

    ledger: str
    reports: int
    by_status: dict[str, int]
    events: int
    files_used: int
    files_kept: list[str]
    files_unreadable: list[str]


def rebuild_ledger(ledger: Ledger, wait: float = 0) -> RebuildSummary:
    """Restore the manifest from the events files: every report they hold, each in its
    most complete and latest version, with what a readable manifest adds (reports
    listed but never fetched). Nothing is deleted; the files not chosen are kept."""
    with ledger.locked(wait, rebuilding=True):
        try:
            current = ledger.entries()
            last_sync = ledger.last_sync()
        except LedgerError:
            current, last_sync = {}, None
        candidates: dict[str, list[tuple[tuple[int, str, int], ReportEntry]]] = {}
        file_reports: dict[str, int] = {}
        unreadable: list[str] = []
        newest_without_files: tuple[str, list[ReportEntry]] = ("", [])

        def offer(entry: ReportEntry, when: str, order: int) -> None:
            rank = (_STATUS_RANK.get(entry.status, 0) + (10 if entry.file else 0), when, order)
            candidates.setdefault(entry.report_id, []).append((rank, entry))

        for order, entry in enumerate(current.values()):
            # a manifest entry whose file is gone or unreadable is not offered: the files
            # that are there decide (the report drops out if none holds it)
            if entry.file is None or _readable(ledger.root / entry.file):
                offer(entry, _stamp(entry.fetched_at), order)
        for order, path in enumerate(ledger.event_files_on_disk()):
            name = f"events/{path.name}"
            try:
                metadata = read_file_metadata(path)
                entries = _file_entries(ledger, path, name, metadata, current)
            except LedgerError:
                unreadable.append(name)
                continue
            file_reports[name] = len(entries)
            when = str(metadata.get("committed_at") or "") if metadata else ""
            for entry in entries:
                offer(entry, when, order)
            if metadata and when >= newest_without_files[0]:
                newest_without_files = (when, _entries_of(metadata.get("without_files")))
        for entry in newest_without_files[1]:
            if entry.report_id not in candidates:
                offer(entry, "", -1)
        chosen = {
            report_id: max(offers, key=lambda offer: offer[0])[1]
            for report_id, offers in candidates.items()
        }
        named = {entry.file for entry in chosen.values() if entry.file}
        kept = sorted(set(file_reports) - named)
        ledger.commit_rebuilt(
            dict(sorted(chosen.items())),
            last_sync,
            {name: count for name, count in file_reports.items() if name in named},
            kept,
        )
    statuses: dict[str, int] = {}
    for entry in chosen.values():
        statuses[entry.status] = statuses.get(entry.status, 0) + 1
    return {
        "ledger": str(ledger.root),
        "reports": len(chosen),
        "by_status": dict(sorted(statuses.items())),
        "events": sum(entry.records for entry in chosen.values() if entry.file),
        "files_used": len(named),
        "files_kept": kept,
        "files_unreadable": sorted(unreadable),
    }


def _readable(path: Path) -> bool:
    try:
        read_file_metadata(path)
    except LedgerError:
        return False
    return path.is_file()


def _stamp(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


def _entries_of(values: object) -> list[ReportEntry]:
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


def _file_entries(
    ledger: Ledger,
    path: Path,
    name: str,
    metadata: dict[str, object] | None,
    current: dict[str, ReportEntry],
) -> list[ReportEntry]:
    """The reports one events file holds, as entries naming it."""
    if metadata is not None:
        return [replace(entry, file=name) for entry in _entries_of(metadata.get("reports"))]
    # a file written before files carried their metadata: the manifest's entries that
    # name it, else its reports as assumed from their events
    named = [entry for entry in current.values() if entry.file == name]
    if named:
        return named
    try:
        spans = (
            pl.scan_parquet(path)
            .group_by("report_id")
            .agg(
                records=pl.len(),
                start=pl.col("occurred_at").min(),
                end=pl.col("occurred_at").max(),
                network_id=pl.col("network_id").first(),
                network_name=pl.col("network_name").first(),
            )
            .collect()
        )
    except (OSError, pl.exceptions.PolarsError) as error:
        raise LedgerError(f"{path}: not a readable events file ({_first_line(error)}).") from None
    return [
        ReportEntry(
            report_id=str(report_id),
            status="assumed",
            network_id=network_id,
            network_name=network_name,
            date_from=start,
            date_to=end,
            records=int(records),
            file=name,
            source="rebuilt",
        )
        for report_id, records, start, end, network_id, network_name in spans.iter_rows()
    ]


class VerifyReport(TypedDict):
    """What `verify_ledger` found: problems make it fail; the rest is information."""

    ledger: str
    ok: bool
    reports: int
    files_named: int
    problems: list[str]
    unknown_files: list[str]
    replaced_files: list[str]


def verify_ledger(ledger: Ledger) -> VerifyReport:
    """Check the manifest and the events files against each other (reads only)."""
    problems: list[str] = []
    try:
        entries = ledger.entries()
    except LedgerError as error:
        return {
            "ledger": str(ledger.root),
            "ok": False,
            "reports": 0,
            "files_named": 0,
            "problems": [str(error)],
            "unknown_files": [f"events/{path.name}" for path in ledger.event_files_on_disk()],
            "replaced_files": [],
        }
    files = ledger.event_files()
    for file, report_ids in sorted(files.items()):
        path = ledger.root / file
        if not path.is_file():
            problems.append(f"{file} is named by the manifest but missing")
            continue
        try:
            metadata = read_file_metadata(path)
            counts = dict(
                pl.scan_parquet(path).group_by("report_id").agg(pl.len()).collect().iter_rows()
            )
        except (LedgerError, OSError, pl.exceptions.PolarsError) as error:
            problems.append(f"{file} cannot be read ({_first_line(error)})")
            continue
        held = (
            {entry.report_id for entry in _entries_of(metadata.get("reports"))}
            if metadata
            else None
        )
        for report_id in report_ids:
            entry = entries[report_id]
            if held is not None and report_id not in held:
                problems.append(f"{file} does not carry report {report_id}")
            if int(counts.get(report_id, 0)) != entry.records:
                problems.append(
                    f"report {report_id}: the manifest counts {entry.records} events, "
                    f"{file} holds {int(counts.get(report_id, 0))}"
                )
    return {
        "ledger": str(ledger.root),
        "ok": not problems,
        "reports": len(entries),
        "files_named": len(files),
        "problems": problems,
        "unknown_files": [
            name for name in ledger.unknown_files() if name not in set(ledger.replaced_files())
        ],
        "replaced_files": ledger.replaced_files(),
    }
