"""Moving history in and out of the ledger: import change files, export events, status."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Literal, TypedDict

import polars as pl

from reconcile._atomic import OutputBatch
from reconcile._text import first_line as _first_line
from reconcile._text import iso_instant
from reconcile._text import iso_utc as _iso
from reconcile.api_pages import date_bounds
from reconcile.errors import ChangeFileError, LedgerError, OutputError
from reconcile.history import EVENT_SCHEMA, EVENT_TYPES
from reconcile.history_files import change_file_batches, load_change_files
from reconcile.ledger import Ledger, ReportEntry, expiry_of_unfetched
from reconcile.ledger_files import describe_file, entries_in, file_problem, read_file_metadata
from reconcile.lifecycle import ReportStatus, rank_of

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
    """Import change files as reports, through the ledger's one commit path (which never
    lowers what it holds: `lifecycle.merge_entry`). Metadata alone only names operators
    and dates; a record file whose name contains a report id the ledger knows from its
    metadata joins that report; the same content imported twice changes nothing. Record
    files without metadata are one report per content (or ``report_id``)."""
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
            totals["warnings"] += done["warnings"]
        return totals
    known = ledger.entries()
    known_ids = [
        entry.report_id
        for entry in known.values()
        if entry.status != ReportStatus.ASSUMED and entry.date_from is not None
    ]
    batches = change_file_batches(paths, report_id=report_id, now=now, known_report_ids=known_ids)
    summary: ImportSummary = {"label": label, "files": 0, "reports": 0, "events": 0, "warnings": []}
    seen: set[str] = set()
    changed: set[str] = set()
    for batch in batches:
        # a batch at a time (every metadata page, whole reports' record files), so that
        # an import of many files holds one batch in memory
        try:
            history = load_change_files(
                batch, report_id=report_id, now=now, known_report_ids=known_ids
            )
        except ChangeFileError as error:
            if not seen:
                raise
            raise ChangeFileError(
                f"{error} (the {len(seen)} file(s) read before it were imported; importing "
                "again once it is fixed adds only what is missing)"
            ) from None
        source = f"import:{label}"
        reports: list[tuple[ReportEntry, pl.DataFrame | None]] = []
        metadata: list[ReportEntry] = []
        for row in history.reports.iter_rows(named=True):
            entry = ReportEntry.from_row(row)
            if entry.status == ReportStatus.LISTED:
                metadata.append(entry)
                continue
            events = history.events.filter(pl.col("report_id") == entry.report_id)
            reports.append((replace(entry, source=source, fetched_at=now), events))
        done = _commit_import(ledger, label, 0, reports, metadata, history.warnings, changed)
        seen.update(history.sources)
        summary["reports"] += done["reports"]
        summary["events"] += done["events"]
        summary["warnings"] += [
            line for line in done["warnings"] if line not in summary["warnings"]
        ]
    summary["files"] = len(seen)
    return summary


def _commit_import(
    ledger: Ledger,
    label: str,
    files: int,
    reports: list[tuple[ReportEntry, pl.DataFrame | None]],
    metadata: list[ReportEntry],
    warnings: list[str],
    changed_before: set[str] | None = None,
) -> ImportSummary:
    """Commit an import and say what it changed, and where the ledger kept more
    (``changed_before``: the reports earlier batches of the same import changed, which
    are counted once; this batch's are added to it)."""
    before = ledger.entries()
    changed = set(ledger.commit(reports, metadata=metadata)) if reports or metadata else set()
    counted = changed
    if changed_before is not None:
        counted = changed - changed_before
        changed_before |= changed
    after = ledger.entries()
    warnings = list(warnings)
    events_added = 0
    for entry, events in reports:
        old, new = before.get(entry.report_id), after[entry.report_id]
        if old is not None and events is not None and old.records > events.height:
            warnings.append(
                f"report {entry.report_id}: the import holds {events.height} event(s) "
                f"({entry.status}); the ledger keeps its {new.status} copy of {new.records}"
            )
        if entry.report_id in changed:
            events_added += new.records - (old.records if old is not None else 0)
    return {
        "label": label,
        "files": files,
        "reports": len(counted),
        "events": events_added,
        "warnings": warnings,
    }


# An import commits its reports in batches of about this many events (each report whole),
# so that its memory does not grow with the file; a file naming more reports than
# MAX_IMPORT_REPORTS is refused (Infobip publishes a few reports per operator a day).
IMPORT_BATCH_EVENTS = 4_000_000
MAX_IMPORT_REPORTS = 100_000


def import_parquet(ledger: Ledger, path: Path, label: str, now: datetime) -> ImportSummary:
    """Import events saved as Parquet with the ledger's own columns (``ledger export``).

    Every report in the file becomes one report of the ledger; reports without metadata
    are assumed to cover from their earliest event to their latest; a report the ledger
    already knows keeps its metadata and every event it holds (the one commit path).

    The file is read lazily: checked in one streaming pass, then committed a batch of
    whole reports (about IMPORT_BATCH_EVENTS events) at a time. An import cut short
    keeps the batches committed; importing the file again adds only what is missing.
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
    events = _ledger_columns(path, schema)
    earliest, latest = date_bounds(now)
    try:
        bad = (
            events.with_row_index("index")
            .filter(
                pl.col("number").is_null()
                | pl.col("occurred_at").is_null()
                | pl.col("report_id").is_null()
                | ~pl.col("type").is_in(list(EVENT_TYPES)).fill_null(False)
                | (pl.col("occurred_at") < earliest)
                | (pl.col("occurred_at") > latest)
            )
            .head(1)
            .collect(engine="streaming")
        )
        if bad.height:
            row = bad.row(0, named=True)
            raise ChangeFileError(
                f"{path}: row {row['index'] + 1}: needs a number, a date between "
                f"{earliest:%Y-%m-%d} and {latest:%Y-%m-%d}, a report id and a type among "
                f"{', '.join(EVENT_TYPES)} (found {row['occurred_at']}, type {row['type']!r})."
            )
        reports = events.select(pl.col("report_id").n_unique()).collect(engine="streaming").item()
        if reports > MAX_IMPORT_REPORTS:
            raise ChangeFileError(
                f"{path}: the file names {reports:,} reports; a ledger import takes at most "
                f"{MAX_IMPORT_REPORTS:,} (Infobip publishes a few per operator a day): check "
                "its report_id column."
            )
        spans = (
            events.group_by("report_id")
            .agg(
                events=pl.len(),
                start=pl.col("occurred_at").min(),
                end=pl.col("occurred_at").max(),
                network_id=pl.col("network_id").first(),
                network_name=pl.col("network_name").first(),
            )
            .sort("report_id")
            .collect(engine="streaming")
        )
    except pl.exceptions.PolarsError as error:
        raise _wrong_type(path, error) from None
    totals: ImportSummary = {"label": label, "files": 1, "reports": 0, "events": 0, "warnings": []}
    for batch in _batches(spans):
        try:
            read = (
                events.filter(pl.col("report_id").is_in(batch.get_column("report_id").implode()))
                .collect(engine="streaming")
                .partition_by("report_id", as_dict=True)
            )
        except pl.exceptions.PolarsError as error:
            raise _wrong_type(path, error) from None
        reports_done: list[tuple[ReportEntry, pl.DataFrame | None]] = []
        for report_id, start, end, network_id, network_name in batch.select(
            "report_id", "start", "end", "network_id", "network_name"
        ).iter_rows():
            entry = ReportEntry(
                report_id=report_id,
                status=ReportStatus.ASSUMED,
                network_id=network_id,
                network_name=network_name,
                date_from=start,
                date_to=end,
                source=f"import:{label}",
                fetched_at=now,
            )
            reports_done.append((entry, read.pop((report_id,))))
        del read
        done = _commit_import(ledger, label, 1, reports_done, [], [])
        totals["reports"] += done["reports"]
        totals["events"] += done["events"]
        totals["warnings"] += done["warnings"]
    return totals


def _ledger_columns(path: Path, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """The file's events in the ledger's columns and types, read lazily."""
    events = pl.scan_parquet(path).select(list(EVENT_SCHEMA))
    events = events.with_columns(
        pl.col("number").cast(pl.UInt64),
        pl.col("new_number").cast(pl.UInt64),
        pl.col("network_id").cast(pl.Int64),
    )
    if schema["occurred_at"] == pl.Datetime("us"):
        return events.with_columns(pl.col("occurred_at").dt.replace_time_zone("UTC"))
    if schema["occurred_at"] != EVENT_SCHEMA["occurred_at"]:
        return events.with_columns(pl.col("occurred_at").cast(EVENT_SCHEMA["occurred_at"]))
    return events


def _wrong_type(path: Path, error: Exception) -> ChangeFileError:
    return ChangeFileError(
        f"{path}: a column has the wrong type ({_first_line(error)}); the ledger's columns "
        "are number UInt64, type, occurred_at UTC datetime, new_number, report_id, "
        "network_id, network_name."
    )


def _batches(spans: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """The reports in batches of about IMPORT_BATCH_EVENTS events (a larger report is a
    batch of its own)."""
    counts = spans.get_column("events").to_list()
    begin, total = 0, 0
    for index, count in enumerate(counts):
        if index > begin and total + count > IMPORT_BATCH_EVENTS:
            yield spans.slice(begin, index - begin)
            begin, total = index, 0
        total += count
    if begin < len(counts):
        yield spans.slice(begin, len(counts) - begin)


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
        # every digit of the instant: a truncated one could read as before a consent
        events.with_columns(iso_instant(pl.col("occurred_at"))).write_csv(buffer)
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
    """Restore the manifest from the events files: every report they hold, from every
    file that reads whole (and matches the checksum a readable manifest keeps), with
    what a readable manifest adds (reports listed but never fetched). Each report takes
    its most complete, largest and latest version; every other whole version then goes
    through the one commit path, which keeps each event it adds. Nothing is deleted;
    the files not chosen are kept."""
    with ledger.locked(wait, rebuilding=True):
        try:
            current = ledger.entries()
            last_sync = ledger.last_sync()
            described = ledger.file_descriptions()
        except LedgerError:
            current, last_sync, described = {}, None, {}
        candidates: dict[str, list[tuple[tuple[int, int, int, str, int], ReportEntry]]] = {}
        file_reports: dict[str, int] = {}
        unreadable: list[str] = []
        whole: dict[str, bool] = {}

        def is_whole(name: str) -> bool:
            if name not in whole:
                whole[name] = file_problem(ledger.root / name, described.get(name)) is None
            return whole[name]

        def offer(entry: ReportEntry, when: str, order: int) -> None:
            rank = (rank_of(entry.status), 1 if entry.file else 0, entry.records, when, order)
            candidates.setdefault(entry.report_id, []).append((rank, entry))

        for order, entry in enumerate(current.values()):
            # a manifest entry whose file is gone or damaged is not offered: the files
            # that are whole decide (the report drops out if none holds it)
            if entry.file is None or is_whole(entry.file):
                # a readable manifest knows more than the files (metadata imported later):
                # among equals its entry wins; any other version's events are merged
                offer(entry, "~", order)
        for order, path in enumerate(ledger.event_files_on_disk()):
            name = f"events/{path.name}"
            try:
                if not is_whole(name):
                    raise LedgerError(name)
                metadata = read_file_metadata(path)
                entries = _file_entries(ledger, path, name, metadata, current)
            except LedgerError:
                unreadable.append(name)
                continue
            file_reports[name] = len(entries)
            when = str(metadata.get("committed_at") or "") if metadata else ""
            for entry in entries:
                offer(entry, when, order)
            # the reports each file's commit knew without events (listed, gone): every
            # file's, since an older manifest restored may have written the newest
            for known in entries_in(metadata.get("without_files") if metadata else None):
                offer(replace(known, file=None, records=0), when, -1)
        chosen: dict[str, ReportEntry] = {}
        others: list[ReportEntry] = []
        for report_id, offers in candidates.items():
            ranked = sorted(offers, key=lambda offer: offer[0], reverse=True)
            chosen[report_id] = ranked[0][1]
            seen = {ranked[0][1].file}
            for _rank, entry in ranked[1:]:
                if entry.file is not None and entry.file not in seen:
                    seen.add(entry.file)
                    others.append(entry)
        named = {entry.file for entry in chosen.values() if entry.file}
        ledger.commit_rebuilt(
            dict(sorted(chosen.items())),
            last_sync,
            {
                name: describe_file(ledger.root / name, count)
                for name, count in file_reports.items()
                if name in named
            },
            sorted(set(file_reports) - named),
        )
        # the versions not chosen: any event they hold that the chosen one lacks is kept
        ledger.commit([(replace(entry, file=None), ledger.events_of(entry)) for entry in others])
        ledger.carry_metadata()  # files of 0.1 learn their reports' status and span
        restored = ledger.entries()
        kept = sorted(set(file_reports) - {e.file for e in restored.values() if e.file})
    statuses: dict[str, int] = {}
    for entry in restored.values():
        statuses[entry.status] = statuses.get(entry.status, 0) + 1
    return {
        "ledger": str(ledger.root),
        "reports": len(restored),
        "by_status": dict(sorted(statuses.items())),
        "events": sum(entry.records for entry in restored.values() if entry.file),
        "files_used": len({entry.file for entry in restored.values() if entry.file}),
        "files_kept": kept,
        "files_unreadable": sorted(unreadable),
    }


def _file_entries(
    ledger: Ledger,
    path: Path,
    name: str,
    metadata: dict[str, object] | None,
    current: dict[str, ReportEntry],
) -> list[ReportEntry]:
    """The reports one events file holds, as entries naming it."""
    if metadata is not None:
        return [replace(entry, file=name) for entry in entries_in(metadata.get("reports"))]
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
            status=ReportStatus.ASSUMED,
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
    described = ledger.file_descriptions()
    for file, report_ids in sorted(files.items()):
        path = ledger.root / file
        if not path.is_file():
            problems.append(f"{file} is named by the manifest but missing")
            continue
        # read whole, against the checksum the manifest keeps
        problem = file_problem(path, described.get(file))
        if problem is not None:
            problems.append(f"{file} is {problem}")
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
            {entry.report_id for entry in entries_in(metadata.get("reports"))} if metadata else None
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
