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
from reconcile.changefiles import load_change_files
from reconcile.errors import ChangeFileError, OutputError
from reconcile.history import EVENT_SCHEMA, EVENT_TYPES
from reconcile.ledger import Ledger, ReportEntry, expiry_of_unfetched

__all__ = [
    "ImportSummary",
    "LedgerStatus",
    "export_events",
    "import_change_files",
    "ledger_status",
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


def import_change_files(
    ledger: Ledger, paths: Sequence[Path], label: str, now: datetime
) -> ImportSummary:
    """Import change files as reports; a report imported again replaces its rows."""
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
    history = load_change_files(paths)
    source = f"import:{label}"
    reports: list[tuple[ReportEntry, pl.DataFrame | None]] = []
    for row in history.reports.iter_rows(named=True):
        events = history.events.filter(pl.col("report_id") == row["report_id"])
        has_records = row["status"] != "listed"
        entry = replace(
            ReportEntry.from_row(row), source=source, fetched_at=now if has_records else None
        )
        reports.append((entry, events if has_records else None))
    ledger.commit(reports)
    return {
        "label": label,
        "files": len(history.sources),
        "reports": len(reports),
        "events": history.events.height,
        "warnings": history.warnings,
    }


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
    bad = events.with_row_index("index").filter(
        pl.col("number").is_null()
        | pl.col("occurred_at").is_null()
        | pl.col("report_id").is_null()
        | ~pl.col("type").is_in(list(EVENT_TYPES)).fill_null(False)
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise ChangeFileError(
            f"{path}: row {row['index'] + 1}: needs a number, a date, a report id and a type "
            f"among {', '.join(EVENT_TYPES)} (found type {row['type']!r})."
        )
    spans = events.group_by("report_id").agg(
        start=pl.col("occurred_at").min(),
        end=pl.col("occurred_at").max(),
        network_id=pl.col("network_id").first(),
        network_name=pl.col("network_name").first(),
    )
    known = ledger.entries()
    entries = []
    for report_id, start, end, network_id, network_name in spans.iter_rows():
        old = known.get(report_id)
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
    ledger.commit_segment(entries, events)
    return {
        "label": label,
        "files": 1,
        "reports": len(entries),
        "events": events.height,
        "warnings": [],
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
        fmt = "csv" if target.suffix.lower() == ".csv" else "parquet"
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
    }
