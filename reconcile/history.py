"""The operator history reconcile reasons over: events, report metadata and coverage.

`History` is what both the ledger and change files (`--changes`) produce, and what the
verdicts consume. Coverage is computed here, purely, from the report metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypedDict, TypeVar

import polars as pl

from reconcile._text import day as _day
from reconcile.lifecycle import NOT_COVERAGE, ReportStatus

__all__ = [
    "ACTIVATION",
    "DEACTIVATING_TYPES",
    "DEACTIVATION",
    "DELIVERY_FAILED",
    "EVENT_SCHEMA",
    "EVENT_TYPES",
    "LEDGER_EVENT_TYPES",
    "REACTIVATION",
    "REPORT_SCHEMA",
    "REQUIRED_EVENT_COLUMNS",
    "SUSPENSION",
    "Coverage",
    "CoverageSpan",
    "History",
    "OperatorCoverage",
    "compute_coverage",
    "conform_events",
    "empty_events",
]

DEACTIVATION = "DEACTIVATION"
ACTIVATION = "ACTIVATION"
SUSPENSION = "SUSPENSION"
REACTIVATION = "REACTIVATION"
# the types an operator report (Infobip's records, a change file) may hold
EVENT_TYPES = (DEACTIVATION, ACTIVATION, SUSPENSION, REACTIVATION)
# a message failed because the number is on a deactivation list (Infobip's delivery
# reports, error 3041 or 15017): only `ledger import` of delivery reports makes one
DELIVERY_FAILED = "DELIVERY_FAILED"
LEDGER_EVENT_TYPES = (*EVENT_TYPES, DELIVERY_FAILED)
# the types that make a number `deactivated` when at or after consent
DEACTIVATING_TYPES = (DEACTIVATION, ACTIVATION, DELIVERY_FAILED)

_UTC = pl.Datetime("us", "UTC")
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "number": pl.UInt64(),
    "type": pl.String(),
    "occurred_at": _UTC,
    "new_number": pl.UInt64(),
    "report_id": pl.String(),
    "network_id": pl.Int64(),
    "network_name": pl.String(),
    # known by its day only (a day list): `occurred_at` is that day's 00:00 UTC, and the
    # verdicts compare it at the latest instant the day can end (`evidence.compared_at`)
    "day_only": pl.Boolean(),
    # what the source adds ("may be a port", a delivery failure's error and message id)
    "detail": pl.String(),
}
# the columns every events file has; files written before day lists lack the others,
# which read as null
REQUIRED_EVENT_COLUMNS = tuple(EVENT_SCHEMA)[:7]
# status: a `lifecycle.ReportStatus` value (complete, assumed, incomplete, gone, listed)
REPORT_SCHEMA: dict[str, pl.DataType] = {
    "report_id": pl.String(),
    "network_id": pl.Int64(),
    "network_name": pl.String(),
    "generated_date": _UTC,
    "date_from": _UTC,
    "date_to": _UTC,
    "expiry_date": _UTC,
    "status": pl.String(),
    "records": pl.Int64(),
    "source": pl.String(),
}


_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)


def empty_events() -> pl.DataFrame:
    """An event frame with no rows."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def conform_events(events: _Frame) -> _Frame:
    """``events`` in EVENT_SCHEMA's columns and types; the columns added since the first
    ledger (``day_only``, ``detail``) are null where missing."""
    present = events.collect_schema().names()
    return events.with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in EVENT_SCHEMA.items()
        if name not in present
    ).select(pl.col(name).cast(dtype) for name, dtype in EVENT_SCHEMA.items())


@dataclass(frozen=True)
class OperatorCoverage:
    """What the history covers for one operator."""

    network: str
    start: datetime
    end: datetime
    reports: int
    gaps: list[tuple[datetime, datetime]]
    assumed: bool


class CoverageSpan(TypedDict):
    """The span a history covers, as JSON answers give it (ISO 8601 UTC, or null)."""

    start: str | None
    end: str | None


@dataclass(frozen=True)
class Coverage:
    """The span ``[start, end)`` the history covers, per operator detail and notes."""

    start: datetime | None
    end: datetime | None
    operators: list[OperatorCoverage]
    notes: list[str]
    # a sentence for each report listed in metadata but never complete, outside every
    # operator gap (warnings, not reports)
    incomplete_report_notes: list[str] = field(default_factory=list)
    # spans inside [start, end) that no source covers and that are no one operator's gap
    # (a day list long before the reports): warnings, as gaps are
    holes: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.start is None


class History:
    """Events and report metadata, from the ledger or from change files.

    The events may be lazy (a scan of the ledger's Parquet files): `lazy_events` reads
    only what a query needs; `events` loads them all once.
    """

    def __init__(
        self,
        events: pl.DataFrame | pl.LazyFrame,
        reports: pl.DataFrame,
        sources: list[str] | None = None,
        warnings: list[str] | None = None,
        description: str = "change files",
        last_sync: datetime | None = None,
        event_parts: list[tuple[Path, list[str] | None]] | None = None,
    ) -> None:
        self._events = events
        # where a ledger's events are (`Ledger.event_parts`), for a reader other than
        # polars (Spark reads the files themselves)
        self.event_parts = event_parts
        self.reports = reports
        self.sources = sources or []
        # change files: each report's content digests, sorted (`history_files.content_digest`)
        self.contents: dict[str, tuple[str, ...]] = {}
        self.warnings = warnings or []
        self.description = description
        self.last_sync = last_sync

    def lazy_events(self) -> pl.LazyFrame:
        return self._events.lazy()

    @property
    def events(self) -> pl.DataFrame:
        if isinstance(self._events, pl.LazyFrame):
            self._events = self._events.collect()
        return self._events

    def coverage(self) -> Coverage:
        return compute_coverage(self.reports, self.lazy_events())


def _spans(reports: pl.DataFrame, events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One span per report that counts for coverage: complete or assumed."""
    complete = reports.filter(pl.col("status") == ReportStatus.COMPLETE).select(
        "report_id", "network_name", start="date_from", end="date_to", assumed=pl.lit(False)
    )
    # Assumed reports (records without metadata) span their earliest to latest event;
    # the ledger keeps that span in the manifest, change files compute it here.
    assumed_all = reports.filter(pl.col("status") == ReportStatus.ASSUMED)
    known = assumed_all.filter(pl.col("date_from").is_not_null()).select(
        "report_id", "network_name", start="date_from", end="date_to", assumed=pl.lit(True)
    )
    unknown_ids = assumed_all.filter(pl.col("date_from").is_null()).get_column("report_id")
    computed = (
        events.lazy()
        .filter(pl.col("report_id").is_in(unknown_ids.implode()))
        .group_by("report_id")
        .agg(
            network_name=pl.col("network_name").first(),
            start=pl.col("occurred_at").min(),
            end=pl.col("occurred_at").max(),
        )
        .with_columns(assumed=pl.lit(True))
        .select("report_id", "network_name", "start", "end", "assumed")
        .collect()
        if unknown_ids.len()
        else known.clear()
    )
    return pl.concat([complete, known, computed]).with_columns(
        pl.col("network_name").fill_null("(operator not named)")
    )


def compute_coverage(reports: pl.DataFrame, events: pl.DataFrame | pl.LazyFrame) -> Coverage:
    """Coverage of the history: overall span, and per operator span, reports and gaps.

    Complete reports cover ``[date_from, date_to)``; reports known only from their
    records are assumed to cover from their earliest event to their latest. Gaps are
    the holes inside one operator's span, including reports listed but never fetched.
    """
    spans = _spans(reports, events).drop_nulls(["start", "end"])
    notes: list[str] = []
    if spans.height == 0:
        return Coverage(None, None, [], ["no history: every consent is unverified"])
    operators: list[OperatorCoverage] = []
    for (network,), group in spans.sort("start").group_by("network_name", maintain_order=True):
        gaps = _holes(group)
        operators.append(
            OperatorCoverage(
                network=str(network),
                start=group.get_column("start").min(),  # type: ignore[arg-type]
                end=group.get_column("end").max(),  # type: ignore[arg-type]
                reports=group.height,
                gaps=gaps,
                assumed=bool(group.get_column("assumed").any()),
            )
        )
    assumed = spans.filter(pl.col("assumed"))
    if assumed.height:
        notes.append(
            f"{assumed.height} change file(s) without report metadata are assumed to cover "
            "from their earliest event"
        )
    operator_gaps = {
        (operator.network, gap_start, gap_end)
        for operator in operators
        for gap_start, gap_end in operator.gaps
    }
    missing: list[str] = []
    for report_id, network, date_from, date_to in (
        reports.filter(pl.col("status").is_in(NOT_COVERAGE))
        .select("report_id", "network_name", "date_from", "date_to")
        .iter_rows()
    ):
        inside_gap = any(
            gap_network == network and gap_start <= date_from and date_to <= gap_end
            for gap_network, gap_start, gap_end in operator_gaps
            if date_from is not None and date_to is not None
        )
        text = (
            f"report {report_id} ({network or 'operator not named'}, "
            f"{_day(date_from)} to {_day(date_to)}) was never fetched completely"
        )
        notes.append(text)
        if not inside_gap:
            missing.append(text + ": its days are not covered")
    every_gap = {gap for operator in operators for gap in operator.gaps}
    return Coverage(
        start=spans.get_column("start").min(),  # type: ignore[arg-type]
        end=spans.get_column("end").max(),  # type: ignore[arg-type]
        operators=operators,
        notes=notes,
        incomplete_report_notes=missing,
        holes=[hole for hole in _holes(spans) if hole not in every_gap],
    )


def _holes(spans: pl.DataFrame) -> list[tuple[datetime, datetime]]:
    """The spans between the first start and the last end that no report covers: one
    operator's gaps, or every source's holes.

    A span assumed from events alone says nothing of the time around it (it runs from
    its report's first event to its last, which a report's real span goes beyond), so
    only a hole between two reports with metadata counts.
    """
    holes: list[tuple[datetime, datetime]] = []
    reach: datetime | None = None
    previous_assumed = False
    for start, end, assumed in spans.sort("start").select("start", "end", "assumed").iter_rows():
        if reach is not None and start > reach and not (assumed or previous_assumed):
            holes.append((reach, start))
        reach = end if reach is None else max(reach, end)
        previous_assumed = assumed
    return holes
