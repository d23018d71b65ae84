"""Moving history in and out of the ledger: import change files, export events, status."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

from reconcile._atomic import OutputBatch
from reconcile.changefiles import load_change_files
from reconcile.errors import OutputError
from reconcile.ledger import Ledger, ReportEntry
from reconcile.sync import EXPIRY_WARNING

__all__ = ["export_events", "import_change_files", "ledger_status"]


def import_change_files(
    ledger: Ledger, paths: Sequence[Path], label: str, now: datetime
) -> dict[str, Any]:
    """Import change files as reports; a report imported again replaces its rows."""
    history = load_change_files(paths)
    source = f"import:{label}"
    reports: list[tuple[ReportEntry, pl.DataFrame | None]] = []
    for row in history.reports.iter_rows(named=True):
        events = history.events.filter(pl.col("report_id") == row["report_id"])
        has_records = row["status"] != "listed"
        entry = ReportEntry.from_row(row, source=source, fetched_at=now if has_records else None)
        reports.append((entry, events if has_records else None))
    ledger.commit(reports)
    return {
        "label": label,
        "files": len(history.sources),
        "reports": len(reports),
        "events": history.events.height,
        "warnings": history.warnings,
    }


def export_events(
    ledger: Ledger, target: Path, fmt: Literal["parquet", "csv"], force: bool = False
) -> int:
    """Write every event in the ledger to ``target``; return how many."""
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


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def ledger_status(ledger: Ledger, now: datetime) -> dict[str, Any]:
    """Reports by status, events, coverage per operator, last sync, expiry warnings."""
    entries = ledger.entries()
    history = ledger.history()
    coverage = history.coverage()
    statuses: dict[str, int] = {}
    for entry in entries.values():
        statuses[entry.status] = statuses.get(entry.status, 0) + 1
    listed = [entry for entry in entries.values() if entry.status == "listed"]
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
        "expired_unfetched": sorted(
            entry.report_id
            for entry in listed
            if entry.expiry_date is not None and entry.expiry_date <= now
        ),
        "expiring_soon": sorted(
            entry.report_id
            for entry in listed
            if entry.expiry_date is not None and now < entry.expiry_date <= now + EXPIRY_WARNING
        ),
    }
