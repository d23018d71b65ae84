"""A report's life in the ledger: its status, and every rule that changes it.

Each rule is one pure function here; `Ledger.commit` (fetch, import and rebuild alike)
and `sync.fetch` call them, so the rules are written once::

    listed ──fetch, every page──▶ complete
      │  └──fetch, pages not adding up / deadline──▶ incomplete ──fetch again──▶ complete
      │                                                  │
      └──404 / no longer listed──▶ gone ◀──404───────────┘   (events held stay counted)
    records without metadata (import) ──▶ assumed ──metadata known──▶ complete
    delivery failures (import) ──▶ evidence                (events only, never coverage)

- ``complete``: metadata and every record page; its span ``[dateFrom, dateTo)`` is
  coverage.
- ``assumed``: records without metadata (a change file); assumed to cover from its
  earliest event to its latest.
- ``incomplete``: some record pages; its events count, its span is not coverage; fetched
  again while the API lists it.
- ``gone``: not complete, and the API answered 404 or stopped listing it; its events
  (if any) still count, its span is not coverage. Listed again, it is fetched again.
- ``listed``: metadata only, nothing held yet.
- ``evidence``: events that say nothing of the numbers they do not name (a sender's
  delivery failures): they count, they give no coverage, and nothing is missing.

The ledger never lowers what it holds (`merge_status`, `merged_events`): a report's
events only grow, and its status only rises, whatever a later fetch or import brings.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from reconcile._text import manifest_instant, read_manifest_instant

__all__ = [
    "EVENTS_FILE_NAME",
    "EVENT_KEY",
    "EXPIRY_WARNING",
    "NOT_COVERAGE",
    "ReportEntry",
    "ReportStatus",
    "after_gone",
    "after_listed",
    "counts_as_coverage",
    "expiry_of_unfetched",
    "merge_entry",
    "merged_events",
    "needs_fetch",
    "parse_status",
    "rank_of",
    "text_or_none",
]


class ReportStatus(enum.StrEnum):
    """What the ledger holds of one report (see the module's drawing)."""

    LISTED = "listed"
    INCOMPLETE = "incomplete"
    GONE = "gone"
    ASSUMED = "assumed"
    EVIDENCE = "evidence"
    COMPLETE = "complete"


# the statuses whose span is not coverage (their days are gaps)
NOT_COVERAGE = [
    ReportStatus.LISTED.value,
    ReportStatus.INCOMPLETE.value,
    ReportStatus.GONE.value,
]

# how much of a report each status holds: a merge keeps the higher
_RANK = {
    ReportStatus.LISTED: 0,
    ReportStatus.GONE: 1,
    ReportStatus.INCOMPLETE: 2,
    ReportStatus.ASSUMED: 3,
    ReportStatus.EVIDENCE: 3,
    ReportStatus.COMPLETE: 4,
}

# the columns that make two events the same event (the operator names come from the
# report's metadata, which may arrive later)
EVENT_KEY = ("number", "type", "occurred_at", "new_number")


_DATE_FIELDS = ("generated_date", "date_from", "date_to", "expiry_date")


@dataclass(frozen=True)
class ReportEntry:
    """One report's line in the manifest."""

    report_id: str
    status: ReportStatus  # see reconcile.lifecycle
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
    # digests of the change files imported into it (`history_files.content_digest`): the
    # same content under another name joins this report
    contents: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The manifest's line for this report."""
        line: dict[str, object] = {
            "report_id": self.report_id,
            "status": str(self.status),
            "network_id": self.network_id,
            "network_name": self.network_name,
            "records": self.records,
            "file": self.file,
            "source": self.source,
            "fetched_at": manifest_instant(self.fetched_at),
            **{name: manifest_instant(getattr(self, name)) for name in _DATE_FIELDS},
        }
        if self.contents:
            line["contents"] = list(self.contents)
        return line

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ReportEntry:
        """An entry from its manifest line."""
        return cls(
            report_id=str(data["report_id"]),
            status=parse_status(data["status"]),
            network_id=_whole(data.get("network_id")),
            network_name=text_or_none(data.get("network_name")),
            records=_whole(data.get("records")) or 0,
            file=_events_name(data.get("file")),
            source=text_or_none(data.get("source")) or "api",
            fetched_at=read_manifest_instant(text_or_none(data.get("fetched_at"))),
            contents=_contents(data.get("contents")),
            generated_date=read_manifest_instant(text_or_none(data.get("generated_date"))),
            date_from=read_manifest_instant(text_or_none(data.get("date_from"))),
            date_to=read_manifest_instant(text_or_none(data.get("date_to"))),
            expiry_date=read_manifest_instant(text_or_none(data.get("expiry_date"))),
        )

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> ReportEntry:
        """From a REPORT_SCHEMA row (change files, API metadata), status ``listed`` if
        the row has none."""
        return cls(
            report_id=str(row["report_id"]),
            status=parse_status(text_or_none(row.get("status")) or ReportStatus.LISTED),
            network_id=_whole(row.get("network_id")),
            network_name=text_or_none(row.get("network_name")),
            generated_date=_moment(row.get("generated_date")),
            date_from=_moment(row.get("date_from")),
            date_to=_moment(row.get("date_to")),
            expiry_date=_moment(row.get("expiry_date")),
        )


def text_or_none(value: object) -> str | None:
    """``value`` when it is text."""
    return value if isinstance(value, str) else None


EVENTS_FILE_NAME = re.compile(r"events/[A-Za-z0-9_-][A-Za-z0-9._-]*\.parquet")


def _events_name(value: object) -> str | None:
    """An entry's file: None, or a name inside ``events/`` (a manifest never makes the
    tool read or delete a path outside the ledger folder)."""
    if value is None:
        return None
    if not isinstance(value, str) or not EVENTS_FILE_NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"an events file name that is not the ledger's: {value!r}")
    return value


_DIGEST = re.compile(r"[0-9a-f]{10}")


def is_content_digest(text: str) -> bool:
    """Whether ``text`` is a change file's content digest (ten hex digits)."""
    return _DIGEST.fullmatch(text) is not None


def _contents(value: object) -> tuple[str, ...]:
    """An entry's content digests: none, or a list of ten hex digits each."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(item, str) and is_content_digest(item) for item in value
    ):
        raise ValueError("contents that are not the ledger's digests")
    return tuple(value)


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _moment(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


def rank_of(status: ReportStatus) -> int:
    """How much of a report a status holds (a merge, and a rebuild, keep the higher)."""
    return _RANK[status]


def parse_status(text: object) -> ReportStatus:
    """A status from its manifest text; ValueError for anything else."""
    return ReportStatus(str(text))


def counts_as_coverage(status: ReportStatus) -> bool:
    """Whether a report's span counts as coverage (an incomplete, gone or evidence-only
    one never)."""
    return status not in NOT_COVERAGE and status != ReportStatus.EVIDENCE


def needs_fetch(entry: ReportEntry, listed_now: bool) -> bool:
    """Whether a fetch asks for this report's records: any report the API lists that is
    not complete (whoever left it so: a fetch or an import), and a report a fetch
    listed earlier that is neither complete nor gone (a 404 then marks it gone)."""
    if entry.status == ReportStatus.COMPLETE:
        return False
    if listed_now:
        return True
    return entry.source == "api" and entry.status in (
        ReportStatus.LISTED,
        ReportStatus.INCOMPLETE,
    )


def after_listed(old: ReportEntry | None, listed: ReportEntry) -> ReportEntry:
    """A report as the ledger keeps it once its metadata is known (from the API's list or
    an imported metadata page). Metadata alone never lowers a report: a complete or
    assumed one keeps its span and status."""
    if old is None:
        return replace(listed, status=ReportStatus.LISTED, file=None, records=0)
    named = replace(
        old,
        network_id=listed.network_id if listed.network_id is not None else old.network_id,
        network_name=listed.network_name or old.network_name,
        generated_date=listed.generated_date or old.generated_date,
        expiry_date=listed.expiry_date or old.expiry_date,
    )
    if counts_as_coverage(old.status):
        return named  # the span stays as committed
    # a gone report stays gone (its span is not coverage); still listed, it is fetched
    # again (`needs_fetch`), and a complete answer makes it complete
    return replace(
        named,
        date_from=listed.date_from or old.date_from,
        date_to=listed.date_to or old.date_to,
    )


def after_gone(old: ReportEntry) -> ReportEntry:
    """A report the API answers 404 for: what is held stays (and counts); a complete or
    assumed one keeps its coverage, anything else is gone."""
    if counts_as_coverage(old.status):
        return old
    return replace(old, status=ReportStatus.GONE)


def merge_entry(old: ReportEntry | None, new: ReportEntry) -> ReportEntry:
    """The entry a commit keeps when ``new`` (a fetch's or an import's copy) meets the
    held ``old``: the higher status, and the span of the copy that has it. Records
    without metadata (assumed) joined to a report whose metadata the ledger knows make
    it complete with that metadata's span."""
    if old is None:
        return new
    kept = new if _RANK[new.status] > _RANK[old.status] else old
    if (
        kept.status == ReportStatus.ASSUMED
        and old.status != ReportStatus.ASSUMED
        and old.date_from is not None
        and old.date_to is not None
    ):
        kept = replace(
            kept, status=ReportStatus.COMPLETE, date_from=old.date_from, date_to=old.date_to
        )
    return replace(
        kept,
        date_from=kept.date_from or old.date_from,
        date_to=kept.date_to or old.date_to,
        network_id=kept.network_id if kept.network_id is not None else old.network_id,
        network_name=kept.network_name or old.network_name,
        generated_date=kept.generated_date or old.generated_date,
        expiry_date=kept.expiry_date or old.expiry_date,
        contents=tuple(sorted({*old.contents, *new.contents})),
    )


def merged_events(held: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame | None:
    """The events a commit keeps for one report: the new copy's, and every held event it
    lacks (never fewer than held). None when the new copy adds nothing to what is held,
    so nothing needs writing."""
    if held is None or held.height == 0:
        return new
    added = new.join(held.select(EVENT_KEY), on=list(EVENT_KEY), how="anti", nulls_equal=True)
    if added.height == 0:
        return None  # the new copy is the held one again, or a part of it
    missing = held.join(new.select(EVENT_KEY), on=list(EVENT_KEY), how="anti", nulls_equal=True)
    return pl.concat([new, missing.select(new.columns)], how="vertical")


# reports that expire unfetched within this long are warned about
EXPIRY_WARNING = timedelta(days=7)


def expiry_of_unfetched(
    entries: Iterable[ReportEntry], now: datetime
) -> tuple[list[ReportEntry], list[ReportEntry]]:
    """Reports listed but never fetched: those already expired (a gap in the history),
    and those that expire within EXPIRY_WARNING."""
    expired: list[ReportEntry] = []
    expiring: list[ReportEntry] = []
    for entry in entries:
        if entry.status != ReportStatus.LISTED or entry.expiry_date is None:
            continue
        if entry.expiry_date <= now:
            expired.append(entry)
        elif entry.expiry_date <= now + EXPIRY_WARNING:
            expiring.append(entry)
    return expired, expiring
