"""History into the ledger: change files and Parquet, imported a batch of whole reports
at a time, so that an import's memory does not grow with what it imports."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TypedDict

import polars as pl

from reconcile._text import first_line as _first_line
from reconcile.api_pages import date_bounds
from reconcile.day_lists import day_of, read_day_list_file
from reconcile.delivery_reports import (
    DELIVERY_FAILURE_ERRORS,
    delivery_failures,
    is_delivery_report,
)
from reconcile.errors import ChangeFileError
from reconcile.history import (
    DELIVERY_FAILED,
    LEDGER_EVENT_TYPES,
    REQUIRED_EVENT_COLUMNS,
    conform_events,
)
from reconcile.history_files import change_file_batches, held_contents, load_change_files
from reconcile.ledger import Ledger, ReportEntry
from reconcile.lifecycle import ReportStatus

__all__ = [
    "IMPORT_BATCH_EVENTS",
    "MAX_IMPORT_REPORTS",
    "MAX_REPORT_EVENTS",
    "ImportSummary",
    "import_change_files",
    "import_day_lists",
    "import_delivery_reports",
    "import_parquet",
]


class ImportSummary(TypedDict):
    """What `import_change_files` imported."""

    label: str
    files: int
    reports: int
    events: int
    warnings: list[str]


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
    # a folder's files count one by one (a folder of webhook logs)
    files = [
        found
        for path in paths
        for found in (
            sorted(
                child
                for child in path.rglob("*")
                if child.is_file() and not child.name.startswith(".")
            )
            if path.is_dir()
            else [path]
        )
    ]
    delivery = [path for path in files if path.is_file() and is_delivery_report(path)]
    if delivery:
        if len(delivery) != len(files):
            raise ChangeFileError(
                "import Infobip delivery reports (.json with messageId, .jsonl) on their own, "
                "not mixed with change files."
            )
        return import_delivery_reports(ledger, delivery, label, now)
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
    # a file of content the ledger holds joins that report, whatever its name
    held = held_contents(list(known.values()))
    batches = change_file_batches(
        paths, report_id=report_id, now=now, known_report_ids=known_ids, held=held
    )
    load = functools.partial(
        load_change_files, report_id=report_id, now=now, known_report_ids=known_ids, held=held
    )
    summary: ImportSummary = {"label": label, "files": 0, "reports": 0, "events": 0, "warnings": []}
    if len(batches) > 1:
        # every batch is read once before the first is committed: a bad row in the last
        # file leaves the ledger as it was, as it does for an import of one batch
        for batch in batches:
            load(batch)
    seen: set[str] = set()
    changed: set[str] = set()
    for batch in batches:
        # a batch at a time (every metadata page, whole reports' record files), so that
        # an import of many files holds one batch in memory
        history = load(batch)
        source = f"import:{label}"
        reports: list[tuple[ReportEntry, pl.DataFrame | None]] = []
        metadata: list[ReportEntry] = []
        for row in history.reports.iter_rows(named=True):
            entry = ReportEntry.from_row(row)
            if entry.status == ReportStatus.LISTED:
                metadata.append(entry)
                continue
            events = history.events.filter(pl.col("report_id") == entry.report_id)
            contents = history.contents.get(entry.report_id, ())
            reports.append(
                (replace(entry, source=source, fetched_at=now, contents=contents), events)
            )
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
# MAX_IMPORT_REPORTS is refused (Infobip publishes a few reports per operator a day), and
# so is a report of more than MAX_REPORT_EVENTS events (one report is held whole, with
# the events the ledger holds for it: about 250 bytes an event, 10M took 2.5 GB).
IMPORT_BATCH_EVENTS = 4_000_000
MAX_IMPORT_REPORTS = 100_000
MAX_REPORT_EVENTS = 4_000_000


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
    missing = [name for name in REQUIRED_EVENT_COLUMNS if name not in schema]
    if missing:
        raise ChangeFileError(
            f"{path}: the Parquet file lacks the column(s) {', '.join(missing)}; it needs "
            f"{', '.join(REQUIRED_EVENT_COLUMNS)} (what `reconcile ledger export` writes)."
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
                | ~pl.col("type").is_in(list(LEDGER_EVENT_TYPES)).fill_null(False)
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
                f"{', '.join(LEDGER_EVENT_TYPES)} (found {row['occurred_at']}, type "
                f"{row['type']!r})."
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
                # a report of day-only events (a day list) spans its days whole
                end=pl.when(pl.col("day_only").fill_null(False).all())
                .then(pl.col("occurred_at").max() + pl.duration(days=1))
                .otherwise(pl.col("occurred_at").max()),
                network_id=pl.col("network_id").first(),
                network_name=pl.col("network_name").first(),
                # delivery failures name only the numbers messaged: never coverage
                evidence_only=(pl.col("type") == DELIVERY_FAILED).all(),
            )
            .sort("report_id")
            .collect(engine="streaming")
        )
    except pl.exceptions.PolarsError as error:
        raise _wrong_type(path, error) from None
    largest = spans.get_column("events").arg_max()
    if largest is not None and spans.item(largest, "events") > MAX_REPORT_EVENTS:
        raise ChangeFileError(
            f"{path}: report {spans.item(largest, 'report_id')!r} holds "
            f"{spans.item(largest, 'events'):,} events; a ledger import takes at most "
            f"{MAX_REPORT_EVENTS:,} in one report (a report is one operator's changes of a "
            "day or so): check the report_id column, or give the events of each day a "
            "report id of its own."
        )
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
        for report_id, start, end, network_id, network_name, evidence_only in batch.select(
            "report_id", "start", "end", "network_id", "network_name", "evidence_only"
        ).iter_rows():
            entry = ReportEntry(
                report_id=report_id,
                status=ReportStatus.EVIDENCE if evidence_only else ReportStatus.ASSUMED,
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
    events = pl.scan_parquet(path)
    if schema["occurred_at"] == pl.Datetime("us"):
        events = events.with_columns(pl.col("occurred_at").dt.replace_time_zone("UTC"))
    # the columns added since the first ledger (day_only, detail) are null where absent
    return conform_events(events)


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


def import_day_lists(
    ledger: Ledger,
    paths: Sequence[Path],
    *,
    source: str,
    deactivated_on: str,
    label: str,
    now: datetime,
) -> ImportSummary:
    """Import day list files (one number a line; text, CSV or a zip of them) as the
    report of ``source`` for the day ``deactivated_on``: every number a DEACTIVATION
    known by its day only. Importing the day a fetch brought (or the same file twice)
    joins that report, never lowering it."""
    day = day_of(deactivated_on, "--deactivated-on", now)
    lists = [
        read_day_list_file(path, source, day, origin=f"import:{label}", now=now) for path in paths
    ]
    events = pl.concat([found.events for found in lists]).unique("number", maintain_order=True)
    entry = replace(lists[0].entry, records=events.height)
    warnings = [
        line for path, found in zip(paths, lists, strict=True) for line in found.warnings(str(path))
    ]
    done = _commit_import(ledger, label, len(paths), [(entry, events)], [], warnings)
    done["files"] = len(paths)
    return done


def import_delivery_reports(
    ledger: Ledger, paths: Sequence[Path], label: str, now: datetime
) -> ImportSummary:
    """Import Infobip delivery reports: each file's results failed with error 3041 or
    15017 as DELIVERY_FAILED events (one ``evidence`` report per file's content); other
    errors are counted."""
    totals: ImportSummary = {"label": label, "files": 0, "reports": 0, "events": 0, "warnings": []}
    # every file is read before any is committed: a bad one leaves the ledger as it was
    read = [(path, delivery_failures(path, origin=f"import:{label}", now=now)) for path in paths]
    for path, found in read:
        warnings = found.warnings()
        warnings.append(
            f"{path}: {found.results} result(s): {found.events.height} delivery failure(s) "
            f"to a deactivated number (error {' or '.join(map(str, DELIVERY_FAILURE_ERRORS))}), "
            f"{found.other_errors} with another error or none (not evidence)"
        )
        reports: list[tuple[ReportEntry, pl.DataFrame | None]] = (
            [(found.entry, found.events)] if found.events.height else []
        )
        done = _commit_import(ledger, label, 1, reports, [], warnings)
        totals["files"] += 1
        totals["reports"] += done["reports"]
        totals["events"] += done["events"]
        totals["warnings"] += done["warnings"]
    return totals
