"""`reconcile fetch` over every source: Infobip's reports (`sync.fetch`) and the Twilio
and Vonage day lists, each day of each source one report committed on its own.

Which days are asked for (`days_to_fetch`): from the day after the latest day held
(else ``--since``, else the source's window: 30 days for Twilio, 31 for Vonage) up to
the last day the source has ready (yesterday; for Vonage, after 02:00 UTC), and every
day of the window that failed before. A day not processed yet (Twilio's 30114) ends the
source's fetch there, without failure; a day that fails after the retries is kept as a
listed report (a gap the coverage names) and asked for again next time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import polars as pl

from reconcile._client import DeadlineReached
from reconcile._http import Clock, SystemClock
from reconcile.api import open_client
from reconcile.consent import check_since, parse_utc_instants
from reconcile.day_lists import (
    day_list_entry,
    day_list_from_texts,
    day_list_report_id,
    source_display_name,
)
from reconcile.day_sources import DayListClient, DayNotReady, has_credentials, open_day_list_client
from reconcile.errors import ApiError, AuthError, ChangeFileError, OptionError
from reconcile.ledger import Ledger, ReportEntry
from reconcile.lifecycle import ReportStatus
from reconcile.settings import ApiSettings, DayListSettings
from reconcile.sync import FetchResult, Progress, ProgressEvent, commit_fetched, fetch

__all__ = ["days_to_fetch", "fetch_day_lists", "fetch_sources", "sources_to_fetch"]

# Vonage makes a day's list ready the next day after 02:00 UTC
_READY_AFTER = {"vonage": timedelta(hours=2)}


def days_to_fetch(
    entries: Mapping[str, ReportEntry],
    source: str,
    window_days: int,
    now: datetime,
    since: str | None = None,
) -> list[date]:
    """The days of ``source`` a fetch asks for, oldest first (see the module's doc)."""
    now = now.astimezone(UTC)
    today = now.date()
    last = (now - _READY_AFTER.get(source, timedelta(0))).date() - timedelta(days=1)
    first_kept = today - timedelta(days=window_days)
    held: set[date] = set()
    failed: set[date] = set()
    for entry in entries.values():
        if entry.date_from is None:
            continue
        day = entry.date_from.astimezone(UTC).date()
        if entry.report_id != day_list_report_id(source, day):
            continue
        if entry.status == ReportStatus.COMPLETE:
            held.add(day)
        elif first_kept <= day <= last:
            failed.add(day)
    if held:
        start = max(held) + timedelta(days=1)
    elif since is not None:
        # the day of the instant --since names, in UTC (check_since read it already)
        given = parse_utc_instants(pl.Series([since])).item()
        start = given.date() if isinstance(given, datetime) else first_kept
    else:
        start = first_kept
    start = max(start, first_kept)
    span = {start + timedelta(days=offset) for offset in range((last - start).days + 1)}
    return sorted((span | failed) - held)


def fetch_day_lists(
    ledger: Ledger,
    client: DayListClient,
    *,
    now: datetime,
    since: str | None = None,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> FetchResult:
    """Fetch a source's day lists not yet held into the ledger; the caller holds the
    ledger's lock. Each day is committed on its own (a kill loses at most the day)."""
    report = progress or (lambda _event: None)
    settings = client.settings
    name = source_display_name(settings.source)
    result = FetchResult(sources=[settings.source])
    client.start_deadline(deadline)
    days = days_to_fetch(ledger.entries(), settings.source, settings.window_days, now, since)
    result.listed = len(days)  # a day asked for is a report listed
    report(ProgressEvent("plan", reports=len(days)))
    for position, day in enumerate(days):
        report_id = day_list_report_id(settings.source, day)
        left = client.time_left()
        if left is not None and left <= 0:
            result.late = [day_list_report_id(settings.source, d) for d in days[position:]]
            break
        try:
            texts = client.day_list(day)
            found = day_list_from_texts(
                texts,
                settings.source,
                day,
                origin=settings.source,
                now=now,
                name=report_id,
                redact=client.redact,
            )
        except DayNotReady as error:
            result.not_ready.append(f"{name}: {error}; fetched up to the day before")
            break
        except DeadlineReached:
            result.late = [day_list_report_id(settings.source, d) for d in days[position:]]
            break
        except AuthError:
            raise
        except (ApiError, ChangeFileError) as error:
            # after the retries, or an answer that is no day list (junk, empty): the day
            # is a gap, asked for again next time; never complete coverage
            message = client.redact(str(error))
            result.failed.append((report_id, message))
            listed = day_list_entry(
                settings.source, day, ReportStatus.LISTED, origin=settings.source
            )
            commit_fetched(ledger, result, [], [listed])
            report(ProgressEvent("failed", report_id, error=message))
            continue
        result.warnings_seen += [client.redact(line) for line in found.warnings(report_id)]
        commit_fetched(ledger, result, [(found.entry, found.events)], [])
        result.fetched.append((report_id, found.events.height, 1))
        held = ledger.entries()[report_id]
        report(ProgressEvent("report", report_id, entry=held, records=found.events.height, pages=1))
    commit_fetched(ledger, result, [], [], last_sync=now)
    result.requests = client.requests
    result.retry_waits = list(client.retry_waits)
    return result


def sources_to_fetch(
    asked: Sequence[str],
    infobip: ApiSettings | None,
    day_lists: Sequence[DayListSettings],
    environment: Mapping[str, str] = os.environ,
) -> tuple[ApiSettings | None, list[DayListSettings]]:
    """The sources a fetch takes: those asked for (each must have its credentials), or
    without any asked, every source whose credentials are set."""
    chosen_lists = [settings for settings in day_lists if not asked or settings.source in asked]
    use_infobip = infobip is not None and (not asked or "infobip" in asked)
    if asked:
        for settings in chosen_lists:
            if not has_credentials(settings, environment):
                raise OptionError(
                    f"--source {settings.source}: {settings.user_env} and "
                    f"{settings.secret_env} must both be set."
                )
        return (infobip if use_infobip else None), chosen_lists
    ready_lists = [settings for settings in chosen_lists if has_credentials(settings, environment)]
    if infobip is not None and (environment.get(infobip.api_key_env) or not ready_lists):
        # Infobip is fetched when its key is set, and named as what is missing when no
        # source has credentials
        return infobip, ready_lists
    return None, ready_lists


def fetch_sources(
    ledger: Ledger,
    infobip: ApiSettings | None,
    day_lists: Sequence[DayListSettings],
    *,
    now: datetime,
    wait: float = 0,
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> FetchResult:
    """Fetch every source given, in turn, holding the ledger's lock once: Infobip's
    reports, then each day-list source. The deadline is the whole fetch's: a source
    started later has what the ones before it left. A refused credential stops the fetch
    (what the sources before it brought is committed)."""
    result = FetchResult(sources=[])
    clock = clock or SystemClock()
    started = clock.monotonic()
    with ledger.locked(wait):
        if infobip is not None:
            with open_client(infobip) as client:
                done = fetch(
                    ledger,
                    client,
                    now=now,
                    page_size=infobip.page_size,
                    since=check_since(infobip.since),
                    progress=progress or (lambda _event: None),
                    deadline=infobip.deadline,
                )
            done.sources = ["infobip"]
            result.absorb(done)
        for settings in day_lists:
            left = settings.deadline - (clock.monotonic() - started)
            if left <= 0:
                result.sources.append(settings.source)
                result.late.append(f"{settings.source} (not started)")
                continue
            with open_day_list_client(settings) as day_client:
                try:
                    done = fetch_day_lists(
                        ledger,
                        day_client,
                        now=now,
                        since=check_since(settings.since),
                        progress=progress,
                        deadline=left,
                    )
                except AuthError as error:
                    if result.fetched:
                        raise AuthError(
                            f"{error} (the {len(result.fetched)} report(s) fetched before it "
                            "are kept)"
                        ) from None
                    raise
            result.absorb(done)
    return result
