"""The audit statement: what the workbook's Summary states first, for an auditor.

What was checked, what was decided (per action), on what evidence, where every line
is, and what the run cannot answer; with what a run says of itself (`RunInfo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from reconcile.columns import describe_phone_columns
from reconcile.history import Coverage
from reconcile.lifecycle import ReportStatus

if TYPE_CHECKING:
    from reconcile.results import CleanResult

__all__ = ["RunInfo", "audit_statement", "evidence_only_sources"]


@dataclass(frozen=True)
class RunInfo:
    """What the Summary sheet says about the run itself."""

    tool_version: str
    run_at: datetime
    history_source: str
    ledger_last_sync: datetime | None = None
    options: dict[str, str] | None = None
    history_sources: tuple[str, ...] = ()
    # sources of events only (delivery failures): "NAME (N reports)", never coverage
    evidence_only: tuple[str, ...] = ()


def evidence_only_sources(reports: pl.DataFrame) -> tuple[str, ...]:
    """The sources whose reports are events only (status ``evidence``), as the Summary
    names them: ``Infobip delivery reports (2 reports)``."""
    counted = (
        reports.filter(pl.col("status") == ReportStatus.EVIDENCE)
        .group_by(pl.col("network_name").fill_null("(operator not named)"))
        .len()
        .sort("network_name")
    )
    return tuple(f"{name} ({count} report(s))" for name, count in counted.iter_rows())


def audit_statement(result: CleanResult, info: RunInfo) -> list[tuple[str, str]]:
    """What the Summary's first page states, for an auditor: what was checked, what was
    decided (per action), on what evidence, and what it cannot answer."""
    summary = result.summary()
    coverage: Coverage = result.coverage
    table = result.table
    where = f"{table.path.name}" + (f", sheet {table.sheet!r}" if table.sheet else "")
    phones = describe_phone_columns(table.phone_columns, table.phones_by_content, table.not_checked)
    checked = (
        f"{summary['rows']:,} contacts in {where}: {summary['numbers']['checked']:,} phone "
        f"numbers in {phones}, each against its consent in {table.consent_column!r}."
    )
    decided = (
        f"{summary['removed']:,} removed (deactivated since consent), "
        f"{summary['suppressed']:,} suppressed (suspended), {summary['review']:,} kept for "
        f"review (unverified or invalid), "
        f"{summary['actions']['keep']:,} kept as they were ({result.options.mode} mode)."
    )
    if coverage.start is None:
        evidence = f"No history ({info.history_source}): every consent is unverified."
        if info.evidence_only:
            evidence = (
                f"No coverage ({info.history_source}): a contact is deactivated only by the "
                "events below, else unverified."
            )
    else:
        operators = ", ".join(operator.network for operator in coverage.operators)
        evidence = (
            # operator reports and day lists alike: every source that gives coverage
            f"Deactivation history from {info.history_source.split(':', 1)[0]} covering "
            f"{coverage.start:%Y-%m-%d %H:%M} to {coverage.end:%Y-%m-%d %H:%M} UTC"
            + (f" ({operators})" if operators else "")
            + f"; the verdicts hold as of {coverage.end:%Y-%m-%d %H:%M} UTC."
        )
    if info.evidence_only:
        evidence += (
            f" Events only, which cover nothing (a number not named is not cleared): "
            f"{', '.join(info.evidence_only)}."
        )
    unanswered = [*summary["warnings"], *coverage.notes]
    if summary["verdicts"]["unverified"]:
        unanswered.append(
            f"{summary['verdicts']['unverified']:,} contact(s) consented before the history "
            "begins: a deactivation before then cannot be ruled out (review)."
        )
    if summary["verdicts"]["invalid_number"]:
        unanswered.append(
            f"{summary['verdicts']['invalid_number']:,} contact(s) hold no valid number to "
            "check (review)."
        )
    statement = [
        ("What was checked", checked),
        ("What was decided", decided),
        ("On what evidence", evidence),
    ]
    if result.action_rows_total > result.action_rows.height:
        statement.append(
            (
                "Where every line is",
                f"The action sheets show the first {result.action_rows.height:,} of "
                f"{result.action_rows_total:,} lines (one per number to remove, suppress or "
                f"review, in file order); every one is in {result.changes_path.name}.",
            )
        )
    statement += [("What it cannot answer", text) for text in unanswered] or [
        ("What it cannot answer", "nothing: every number was checked within the history.")
    ]
    return statement
