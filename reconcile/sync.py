"""`reconcile fetch` as a library: list reports, fetch the ones not yet complete, commit.

Each report is fetched whole into memory, validated, and committed to the ledger on its
own together with the metadata listed so far; a run killed in the middle of a report
leaves the ledger exactly as after the previous commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, TypedDict

import polars as pl

from reconcile._text import day as _day
from reconcile.api import DeadlineReached, InfobipClient, PagingError, open_client
from reconcile.api_pages import parse_metadata_page, parse_records_page
from reconcile.consent import check_since
from reconcile.errors import (
    ApiError,
    AuthError,
    LedgerError,
    MalformedResponseError,
    ReportGoneError,
)
from reconcile.ledger import Ledger, ReportEntry
from reconcile.lifecycle import (
    ReportStatus,
    after_gone,
    after_listed,
    expiry_of_unfetched,
    needs_fetch,
)
from reconcile.settings import ApiSettings

__all__ = [
    "FetchResult",
    "FetchSummary",
    "Progress",
    "ProgressEvent",
    "commit_fetched",
    "fetch",
    "fetch_with_settings",
]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a fetch, for a progress bar or a log line.

    ``plan``: ``reports`` will be fetched; ``page``: one page of ``report_id`` arrived;
    ``restart``: the report is read again; ``report``: ``entry`` was committed with
    ``records`` in ``pages``; ``gone``: 404; ``failed``: ``error``.
    """

    kind: Literal["plan", "page", "restart", "report", "gone", "failed"]
    report_id: str | None = None
    reports: int = 0
    page: int = 0
    total_pages: int = 0
    records: int = 0
    pages: int = 0
    entry: ReportEntry | None = None
    error: str | None = None


Progress = Callable[[ProgressEvent], None]


class FetchedReport(TypedDict):
    report_id: str
    records: int
    pages: int


class FailedReport(TypedDict):
    report_id: str
    error: str


class FetchSummary(TypedDict):
    """`FetchResult` as JSON (``reconcile fetch --json``)."""

    listed: int
    fetched: list[FetchedReport]
    gone: list[str]
    failed: list[FailedReport]
    incomplete: list[FailedReport]
    late: list[str]
    list_cut_short: str | None
    sources: list[str]
    not_ready: list[str]
    requests: int
    complete: bool
    warnings: list[str]


@dataclass
class FetchResult:
    """What one fetch did."""

    listed: int = 0
    fetched: list[tuple[str, int, int]] = field(default_factory=list)  # id, records, pages
    gone: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    # reports whose paging did not add up: kept as incomplete, tried again next time
    incomplete: list[tuple[str, str]] = field(default_factory=list)
    # reports not started before the deadline
    late: list[str] = field(default_factory=list)
    # why the report list was not read to its end (its pages did not add up)
    list_cut_short: str | None = None
    expired_unfetched: list[ReportEntry] = field(default_factory=list)
    expiring_soon: list[ReportEntry] = field(default_factory=list)
    requests: int = 0
    retry_waits: list[float] = field(default_factory=list)
    # the sources fetched (infobip, twilio, vonage)
    sources: list[str] = field(default_factory=lambda: ["infobip"])
    # a day-list source whose next day is not made yet (fetched again next time; not a
    # failure)
    not_ready: list[str] = field(default_factory=list)
    # what the answers held that was skipped (a day list's lines that are not numbers)
    warnings_seen: list[str] = field(default_factory=list)

    def absorb(self, other: FetchResult) -> None:
        """Add another source's fetch to this one (`reconcile fetch` over every source)."""
        self.listed += other.listed
        self.fetched += other.fetched
        self.gone += other.gone
        self.failed += other.failed
        self.incomplete += other.incomplete
        self.late += other.late
        self.list_cut_short = self.list_cut_short or other.list_cut_short
        self.expired_unfetched += other.expired_unfetched
        self.expiring_soon += other.expiring_soon
        self.requests += other.requests
        self.retry_waits += other.retry_waits
        self.sources += [source for source in other.sources if source not in self.sources]
        self.not_ready += other.not_ready
        self.warnings_seen += other.warnings_seen

    @property
    def complete(self) -> bool:
        """Whether the fetch kept everything it was to fetch: no report failed, came
        incomplete or was left for later, and the report list was read to its end.
        `reconcile fetch` exits 3 otherwise."""
        return not (self.failed or self.incomplete or self.late or self.list_cut_short)

    def warnings(self) -> list[str]:
        lines: list[str] = []
        if self.list_cut_short:
            lines.append(
                f"the report list was cut short ({self.list_cut_short}); the reports on the "
                "pages read were fetched, the rest waits for the next fetch"
            )
        lines += [
            f"report {report_id} is gone upstream (HTTP 404): the events held for it still "
            "count, its days are a gap in the history"
            for report_id in self.gone
        ]
        lines += [
            f"report {report_id} was not fetched: {message}" for report_id, message in self.failed
        ]
        lines += self.not_ready + self.warnings_seen
        lines += [
            f"report {report_id} is kept incomplete (its events count, its days are not "
            f"coverage) and fetched again next time: {message}"
            for report_id, message in self.incomplete
        ]
        if self.late:
            lines.append(
                f"the deadline passed: {len(self.late)} report(s) not fetched this time "
                f"({', '.join(self.late[:5])}{' …' if len(self.late) > 5 else ''})"
            )
        lines += [
            f"report {entry.report_id} ({entry.network_name}, {_day(entry.date_from)} to "
            f"{_day(entry.date_to)}) expired {_day(entry.expiry_date)} before it was fetched: "
            "a gap in the history"
            for entry in self.expired_unfetched
        ]
        lines += [
            f"report {entry.report_id} ({entry.network_name}) expires {_day(entry.expiry_date)} "
            "and is not fetched yet: run `reconcile fetch` again before then"
            for entry in self.expiring_soon
        ]
        return lines

    def summary(self) -> FetchSummary:
        """Counts and warnings, ready for JSON."""
        return {
            "listed": self.listed,
            "fetched": [{"report_id": r, "records": n, "pages": p} for r, n, p in self.fetched],
            "gone": self.gone,
            "failed": [{"report_id": r, "error": m} for r, m in self.failed],
            "incomplete": [{"report_id": r, "error": m} for r, m in self.incomplete],
            "late": self.late,
            "list_cut_short": self.list_cut_short,
            "sources": self.sources,
            "not_ready": self.not_ready,
            "requests": self.requests,
            "complete": self.complete,
            "warnings": self.warnings(),
        }


def _no_progress(_event: ProgressEvent) -> None:
    return None


def _list_reports(
    client: InfobipClient, page_size: int, filters: dict[str, str], now: datetime
) -> tuple[pl.DataFrame, str | None]:
    """The reports the API lists, and why the list was cut short (its paging did not add
    up, or the deadline passed): the reports on the pages read are fetched all the same."""
    pages: list[list[object]] = []
    problem: str | None = None
    try:
        for page in client.report_pages(page_size, **filters):
            pages.append(page.results)
    except (PagingError, DeadlineReached) as error:
        problem = str(error)  # only the pages that added up are used
    frames = [
        parse_metadata_page("report list", results, MalformedResponseError, now)
        for results in pages
        if results
    ]
    if not frames:
        return pl.DataFrame(), problem
    listing = pl.concat(frames).unique("report_id", keep="last", maintain_order=True)
    return listing, problem


def _fetch_records(
    client: InfobipClient,
    entry: ReportEntry,
    page_size: int,
    progress: Progress,
    now: datetime,
) -> tuple[pl.DataFrame, int, str | None]:
    """The records of one report, the pages read, and what did not add up when the
    server's paging did not (the records received are kept all the same)."""
    records: list[object] = []
    pages = 0
    declared = 0
    problem: str | None = None
    try:
        for page in client.record_pages(entry.report_id, page_size):
            declared = page.total_results
            records.extend(page.results)
            pages += 1
            progress(
                ProgressEvent("page", entry.report_id, page=page.page, total_pages=page.total_pages)
            )
    except PagingError as error:
        problem = str(error)
        records.extend(error.results)  # what came is evidence all the same
        if not records:
            raise MalformedResponseError(problem) from None
    except DeadlineReached as error:
        problem = str(error)
        if not records:
            raise
    if problem is None and len(records) != declared:
        problem = (
            f"report {entry.report_id}: {declared} results were declared, "
            f"{len(records)} came in {pages} page(s)"
        )
    events = parse_records_page(
        f"report {entry.report_id}", records, entry.report_id, MalformedResponseError, now
    )
    if problem is not None:  # the same record answered again counts once
        events = events.unique(maintain_order=True)
    events = events.with_columns(
        network_id=pl.lit(entry.network_id, pl.Int64),
        network_name=pl.lit(entry.network_name, pl.String),
    )
    return events, pages, problem


def fetch(
    ledger: Ledger,
    client: InfobipClient,
    *,
    now: datetime,
    page_size: int = 10_000,
    since: str | None = None,
    progress: Progress = _no_progress,
    deadline: float | None = None,
) -> FetchResult:
    """Sync the ledger with the API; the caller holds the ledger's lock.

    ``deadline`` (seconds, on the client's clock) bounds the whole fetch: it is checked
    before every request, while an answer arrives and before every retry's wait; what
    was received of a report by then is kept as incomplete, and the reports not started
    wait for the next fetch. Which reports are fetched, and what a 404 does, are
    `lifecycle.needs_fetch` and `lifecycle.after_gone`.
    """
    result = FetchResult()
    client.start_deadline(deadline)
    filters = {"generatedDateFrom": since} if since else {}
    listing, result.list_cut_short = _list_reports(client, page_size, filters, now)
    result.listed = listing.height
    # the listing's metadata is committed with each report (and at the end), so a kill
    # mid-report leaves the ledger exactly as after the previous commit
    metadata = [ReportEntry.from_row(row) for row in listing.iter_rows(named=True)]
    listed_ids = {entry.report_id for entry in metadata}
    known = ledger.entries()
    for listed in metadata:
        known[listed.report_id] = after_listed(known.get(listed.report_id), listed)
    pending = sorted(
        (entry for entry in known.values() if needs_fetch(entry, entry.report_id in listed_ids)),
        key=lambda entry: (entry.date_from or now, entry.report_id),
    )
    progress(ProgressEvent("plan", reports=len(pending)))
    for position, entry in enumerate(pending):
        left = client.time_left()
        if left is not None and left <= 0:
            result.late = [late.report_id for late in pending[position:]]
            break
        # Past its expiry date but still listed: try anyway, it may not be deleted yet.
        try:
            events, pages, problem = _fetch_records(client, entry, page_size, progress, now)
        except ReportGoneError:
            result.gone.append(entry.report_id)
            commit_fetched(ledger, result, [(after_gone(entry), None)], metadata)
            progress(ProgressEvent("gone", entry.report_id))
            continue
        except DeadlineReached as error:
            left = client.time_left()
            if left is not None and left > 0:
                # its next retry would end past the deadline: the others may still fit
                result.failed.append((entry.report_id, str(error)))
                progress(ProgressEvent("failed", entry.report_id, error=str(error)))
                continue
            result.late = [late.report_id for late in pending[position:]]
            break
        except AuthError:
            raise  # a refused key refuses every report: stop at once
        except ApiError as error:  # malformed answers, 5xx after the retries: the others go on
            result.failed.append((entry.report_id, str(error)))
            progress(ProgressEvent("failed", entry.report_id, error=str(error)))
            continue
        if problem is not None:
            result.incomplete.append((entry.report_id, problem))
        status = ReportStatus.COMPLETE if problem is None else ReportStatus.INCOMPLETE
        done = replace(entry, status=status, source="api", fetched_at=now)
        commit_fetched(ledger, result, [(done, events)], metadata)
        held = ledger.entries()[entry.report_id]
        result.fetched.append((entry.report_id, events.height, pages))
        progress(
            ProgressEvent("report", done.report_id, entry=held, records=events.height, pages=pages)
        )
        left = client.time_left()
        if problem is not None and left is not None and left <= 0:
            result.late = [late.report_id for late in pending[position + 1 :]]
            break
    commit_fetched(ledger, result, [], metadata, last_sync=now)
    result.expired_unfetched, result.expiring_soon = expiry_of_unfetched(
        ledger.entries().values(), now
    )
    result.requests = client.requests
    result.retry_waits = list(client.retry_waits)
    return result


def commit_fetched(
    ledger: Ledger,
    result: FetchResult,
    reports: list[tuple[ReportEntry, pl.DataFrame | None]],
    metadata: list[ReportEntry],
    last_sync: datetime | None = None,
) -> None:
    """`Ledger.commit`; a failure (a full disk) says which reports are already kept."""
    try:
        ledger.commit(reports, metadata=metadata, last_sync=last_sync)
    except LedgerError as error:
        kept = ", ".join(report_id for report_id, _records, _pages in result.fetched[:5])
        more = " …" if len(result.fetched) > 5 else ""
        raise LedgerError(
            f"{error} The {len(result.fetched)} report(s) fetched before it are committed "
            f"and kept{f' ({kept}{more})' if kept else ''}; run `reconcile fetch` again "
            "once the cause is fixed."
        ) from None


def fetch_with_settings(
    ledger: Ledger,
    settings: ApiSettings,
    *,
    now: datetime,
    wait: float = 0,
    progress: Progress = _no_progress,
) -> FetchResult:
    """`fetch` with a client built from ``settings``, holding the ledger's lock."""
    with open_client(settings) as client, ledger.locked(wait):
        return fetch(
            ledger,
            client,
            now=now,
            page_size=settings.page_size,
            since=check_since(settings.since),
            progress=progress,
            deadline=settings.deadline,
        )
