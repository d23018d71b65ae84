"""What the commands print for a person: each result in a few lines of text.

``--json`` prints the results themselves; these are their human forms, kept apart from
the command line so that each can be read (and tested) on its own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from reconcile import EXPIRY_WARNING, describe_phone_columns

if TYPE_CHECKING:
    from reconcile.check import CheckAnswer
    from reconcile.ledger_import import ImportSummary
    from reconcile.ledger_io import LedgerStatus, RebuildSummary, VerifyReport
    from reconcile.results import CleanResult, CleanSummary
    from reconcile.runs import RunChanges, RunReport
    from reconcile.sync import FetchResult, Progress, ProgressEvent

__all__ = [
    "changes_line",
    "check_lines",
    "clean_lines",
    "fetch_lines",
    "fetch_progress",
    "import_lines",
    "rebuild_lines",
    "run_lines",
    "status_lines",
    "summary_lines",
    "verify_lines",
]


def clean_lines(result: CleanResult, written: bool = True) -> list[str]:
    """The short summary of one reconciled file (``written``: its outputs were)."""
    return summary_lines(result.summary(), written)


def summary_lines(summary: CleanSummary, written: bool = True) -> list[str]:
    """`clean_lines` of a summary (a Spark clean has no `CleanResult`)."""
    if summary["mode"] == "flag":
        head = (
            f"{summary['input']}: {summary['rows']} rows flagged (all stay in the file): "
            f"{summary['kept']} to keep ({summary['review']} to review), "
            f"{summary['removed']} to remove, {summary['suppressed']} to suppress"
        )
    elif summary["mode"] == "blank":
        head = (
            f"{summary['input']}: {summary['rows']} rows, all kept: "
            f"{summary['removed'] + summary['suppressed']} with numbers emptied "
            f"({summary['removed']} removed, {summary['suppressed']} suppressed), "
            f"{summary['review']} to review"
        )
    else:
        head = (
            f"{summary['input']}: {summary['rows']} rows -> {summary['kept']} kept "
            f"({summary['review']} to review), {summary['removed']} removed, "
            f"{summary['suppressed']} suppressed"
        )
    lines = [
        head,
        "  " + ", ".join(f"{verdict} {count}" for verdict, count in summary["verdicts"].items()),
    ]
    lines.append(
        f"  checked {summary['numbers']['checked']} numbers in "
        + describe_phone_columns(
            summary["columns"]["phone"],
            summary["columns"]["phone_by_content"],
            summary["columns"]["not_checked"].items(),
        )
    )
    coverage = summary["coverage"]
    if coverage["start"]:
        lines.append(
            f"  history covers {coverage['start']} to {coverage['end']}; "
            "verdicts hold as of its end"
        )
    else:
        lines.append("  no history: every consent is unverified")
    if summary["blank_rows_skipped"]:
        lines.append(f"  {summary['blank_rows_skipped']} blank row(s) skipped")
    lines.extend(f"  warning: {warning}" for warning in summary["warnings"])
    if written:
        outputs = summary["outputs"]
        paths = [outputs["cleaned"], outputs["changes"]]
        if outputs["report"]:
            paths.append(outputs["report"])
        lines.append(f"  wrote {', '.join(paths[:-1])} and {paths[-1]}")
    else:
        lines.append("  nothing written (dry run)")
    return lines


def changes_line(changes: RunChanges) -> str:
    """What changed since the previous run of one input, in one line."""
    if changes["previous_run"] is None and not changes["changed"]:
        return "first run of this input: nothing to compare with"

    def named(keys: list[str]) -> str:
        shown = ", ".join(key.split(":", 1)[1] for key in keys[:10])
        return f"{len(keys)}" + (f" ({shown}{', …' if len(keys) > 10 else ''})" if keys else "")

    return (
        f"since the run of {changes['previous_run']}: "
        f"{len(changes['changed'])} changed verdict(s); "
        f"newly removed {named(changes['newly_removed'])}, "
        f"newly suppressed {named(changes['newly_suppressed'])}, "
        f"no longer suppressed {named(changes['no_longer_suppressed'])}; "
        f"{changes['new_contacts']} new contact(s)"
    )


def run_lines(report: RunReport) -> list[str]:
    """One run: the fetch, each input's summary and changes, what needs attention."""
    summary = report.to_json()
    lines = [f"run {summary['run_at']}" + (" (dry run: nothing written)" if report.dry_run else "")]
    fetched = summary["fetch"]
    if fetched is not None:
        lines.append(f"  fetched {len(fetched['fetched'])} report(s) of {fetched['listed']} listed")
    for item in report.inputs:
        lines.extend(clean_lines(item.result, written=not report.dry_run))
        lines.append("  " + changes_line(item.changes))
    lines.extend(f"attention: {line}" for line in summary["attention"])
    return lines


def fetch_lines(result: FetchResult) -> list[str]:
    """What one fetch did, and its warnings."""
    records = sum(count for _, count, _ in result.fetched)
    # Infobip alone reads as it always has; other sources are named first
    named = "" if result.sources == ["infobip"] else f"{', '.join(result.sources)}: "
    return [
        f"{named}{result.listed} reports listed, {len(result.fetched)} fetched "
        f"({records} records), "
        f"{len(result.gone)} gone, {len(result.failed)} failed"
        + (f", {len(result.incomplete)} incomplete" if result.incomplete else "")
        + f"; {result.requests} requests",
        *(f"  warning: {warning}" for warning in result.warnings()),
    ]


def status_lines(info: LedgerStatus) -> list[str]:
    """`ledger status`: reports, events, coverage per operator, warnings."""
    coverage = info["coverage"]
    by_status = ", ".join(f"{count} {name}" for name, count in info["by_status"].items())
    lines = [
        f"ledger {info['ledger']}",
        f"  {info['reports']} reports ({by_status or 'none'}), {info['events']} events",
        f"  last sync: {info['last_sync'] or 'never'}",
    ]
    if coverage["start"]:
        lines.append(f"  coverage {coverage['start']} to {coverage['end']}")
    else:
        lines.append("  no coverage yet: run `reconcile fetch` or `reconcile ledger import`")
    for operator in coverage["operators"]:
        gaps = "; ".join(f"{start} to {end}" for start, end in operator["gaps"]) or "none"
        lines.append(
            f"  {operator['network']}: {operator['start']} to {operator['end']}, "
            f"{operator['reports']} report(s), gaps: {gaps}"
        )
    lines.extend(
        f"  warning: no source covers {start} to {end}: a deactivation then would be missed"
        for start, end in coverage["holes"]
    )
    lines.extend(
        f"  {source['network']}: {source['reports']} report(s), {source['events']} event(s) "
        "(events only: they count, they cover nothing)"
        for source in info["evidence_only"]
    )
    lines.extend(
        f"  warning: report {report_id} expired before it was fetched"
        for report_id in info["expired_unfetched"]
    )
    lines.extend(
        f"  warning: report {report_id} expires within {EXPIRY_WARNING.days} days and is "
        "not fetched"
        for report_id in info["expiring_soon"]
    )
    if info["replaced_files"]:
        lines.append(
            f"  {len(info['replaced_files'])} replaced events file(s) kept (an older manifest "
            "may name them)"
        )
    lines.extend(
        f"  note: {name} is not named by the manifest; it is left alone "
        "(`reconcile ledger rebuild` reads it)"
        for name in info["unknown_files"]
    )
    return lines


def verify_lines(found: VerifyReport) -> list[str]:
    """`ledger verify`: consistent or not, and why."""
    head = (
        f"ledger {found['ledger']}: manifest and files agree ({found['reports']} reports, "
        f"{found['files_named']} files)"
        if found["ok"]
        else f"ledger {found['ledger']}: {len(found['problems'])} problem(s)"
    )
    return [
        head,
        *(f"  problem: {problem}" for problem in found["problems"]),
        *(f"  note: {name} is not named by the manifest" for name in found["unknown_files"]),
        *(
            ["  run `reconcile ledger rebuild` to restore the manifest from the files"]
            if not found["ok"]
            else []
        ),
    ]


def rebuild_lines(done: RebuildSummary) -> list[str]:
    """`ledger rebuild`: what the rebuilt manifest holds."""
    by_status = ", ".join(f"{count} {name}" for name, count in done["by_status"].items())
    return [
        f"rebuilt the manifest of {done['ledger']}: {done['reports']} reports "
        f"({by_status or 'none'}), {done['events']} events from {done['files_used']} file(s)",
        *(
            [f"  {len(done['files_kept'])} other file(s) kept (older versions, not chosen)"]
            if done["files_kept"]
            else []
        ),
        *(f"  warning: {name} cannot be read; left alone" for name in done["files_unreadable"]),
    ]


def check_lines(answer: CheckAnswer) -> list[str]:
    """One number's answer with its evidence."""
    lines = [f"{answer['answer']}: {answer['e164']} ({answer['verdict']})"]
    if answer["reason"]:
        lines.append(f"  {answer['reason']}")
    evidence = answer["evidence"]
    if evidence:
        lines.append(
            f"  evidence: {evidence['event_type']} {evidence['event_date']}, "
            f"{evidence['network'] or 'operator not named'}, report {evidence['report_id']}"
        )
    lines.extend(f"  note: {note}" for note in answer["notes"])
    span = answer["coverage"]
    lines.append(
        f"  history covers {span['start']} to {span['end']}" if span["start"] else "  no history"
    )
    return lines


def import_lines(info: ImportSummary) -> list[str]:
    """What one `ledger import` imported, and its warnings."""
    return [
        f"imported {info['reports']} report(s), {info['events']} events from "
        f"{info['files']} file(s) as import:{info['label']}",
        *(f"  warning: {warning}" for warning in info["warnings"]),
    ]


@contextmanager
def fetch_progress(enabled: bool) -> Iterator[Progress]:
    """A progress bar on a terminal (``enabled``); one log line per report otherwise."""
    import click  # the command line's own library, loaded only by the command line

    bar: Any = None

    def report(event: ProgressEvent) -> None:
        nonlocal bar
        if event.kind == "plan" and enabled and event.reports:
            if bar is not None:  # the next source's plan: the last source's bar is done
                bar.__exit__(None, None, None)
            bar = click.progressbar(length=event.reports, label="fetching reports", file=sys.stderr)
            bar.__enter__()
        elif event.kind == "page" and bar is not None:
            bar.label = f"report {event.report_id} page {event.page + 1}/{event.total_pages}"
            bar.render_progress()
        elif event.kind in ("report", "gone", "failed"):
            if bar is not None:
                bar.update(1)
            elif event.kind == "report" and event.entry is not None:
                entry = event.entry
                click.echo(
                    f"fetched report {entry.report_id} ({entry.network_name}, "
                    f"{entry.date_from:%Y-%m-%d} to {entry.date_to:%Y-%m-%d}): "
                    f"{event.records} records in {event.pages} page(s)",
                    err=True,
                )
            elif event.kind == "gone":
                click.echo(f"report {event.report_id} is gone (HTTP 404)", err=True)
            elif event.kind == "failed":
                click.echo(f"report {event.report_id} failed: {event.error}", err=True)

    try:
        yield report
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
