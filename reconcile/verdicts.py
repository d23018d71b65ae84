"""The verdicts: a pure function from contacts, events and coverage to decisions.

First rule that applies, per contact row (SPEC "Verdicts"):

    invalid_number  the phone cell is empty or not a valid E.164 number    review
    deactivated     a DEACTIVATION, ACTIVATION or DELIVERY_FAILED at or     remove
                    after consent (a day-only event compared at D+1 12:00 UTC)
    suspended       the number's most recent event is a SUSPENSION          suppress
    unverified      consent (or a missing one) is before coverage start    review
    ok              none of the above                                      keep

No I/O happens here; every rule is one polars expression over the whole file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from reconcile._text import iso_instant
from reconcile.consent import FUTURE, MISSING, UNPARSEABLE
from reconcile.errors import OptionError
from reconcile.evidence import (
    DAY_ONLY_COMPARED_AFTER,
    EVIDENCE_ROW,
    evidence_rows,
    number_evidence,
)
from reconcile.history import SUSPENSION
from reconcile.phones import add_e164

__all__ = [
    "ACTIONS",
    "ACTION_TYPE",
    "DEFAULT_ACTIONS",
    "DELIMITER_NAMES",
    "DETAIL_COLUMNS",
    "DROPPED_ACTIONS",
    "MODES",
    "RESULT_COLUMNS",
    "VERDICTS",
    "VERDICT_TYPE",
    "Decided",
    "decide",
    "decide_rows",
    "deciding_entries",
    "resolve_actions",
    "verdict_ladder",
    "with_details",
]

VERDICTS = ("invalid_number", "deactivated", "suspended", "unverified", "ok")
ACTIONS = ("remove", "suppress", "review", "keep")
# what the cleaned file does with a row whose action is remove or suppress: drop it,
# empty its phone cells, or keep it with flag columns (one spelling for every entry)
MODES = ("strip", "blank", "flag")
# the CSV delimiters an option or a config may name (``tab`` for a tab)
DELIMITER_NAMES = (",", ";", "|", "tab")
DEFAULT_ACTIONS: Mapping[str, str] = {
    "invalid_number": "review",
    "deactivated": "remove",
    "suspended": "suppress",
    "unverified": "review",
    "ok": "keep",
}
DROPPED_ACTIONS = frozenset({"remove", "suppress"})
# Inside a run verdicts and actions are enums, compared and counted as integers.
# Everything a user sees (files, `decide`, `CleanResult.decisions`) is text.
VERDICT_TYPE = pl.Enum(VERDICTS)
ACTION_TYPE = pl.Enum(ACTIONS)
RESULT_COLUMNS = (
    "verdict",
    "action",
    "reason",
    "phone_e164",
    "event_type",
    "event_date",
    "network",
    "report_id",
    "suggested_number",
)
# What only notable rows carry: the reason and the evidence.
DETAIL_COLUMNS = tuple(
    name for name in RESULT_COLUMNS if name not in ("verdict", "action", "phone_e164")
)
RECONSENTED = "deactivated before consent (re-consented)"


def resolve_actions(overrides: Mapping[str, str | None]) -> dict[str, str]:
    """The default action per verdict, with the given overrides applied (None: no change);
    OptionError naming the verdict's option (``--unverified``, ``actions.unverified``)."""
    actions = dict(DEFAULT_ACTIONS)
    for verdict, action in overrides.items():
        if action is None:
            continue
        if verdict not in actions:
            problem = f"{verdict!r} is not a verdict; the verdicts are {', '.join(VERDICTS)}."
            raise OptionError(problem, option="actions", detail=problem)
        if action not in ACTIONS:
            raise OptionError.of(
                verdict,
                action,
                f"is not an action; the actions are {', '.join(ACTIONS)}.",
                key=f"actions.{verdict}",
            )
        actions[verdict] = action
    return actions


def verdict_ladder(
    *, invalid: pl.Expr, deactivated: pl.Expr, suspended: pl.Expr, unverified: pl.Expr
) -> pl.Expr:
    """SPEC's table: the first verdict whose condition holds, in the table's order."""
    return (
        pl.when(invalid)
        .then(pl.lit("invalid_number", VERDICT_TYPE))
        .when(deactivated)
        .then(pl.lit("deactivated", VERDICT_TYPE))
        .when(suspended)
        .then(pl.lit("suspended", VERDICT_TYPE))
        .when(unverified)
        .then(pl.lit("unverified", VERDICT_TYPE))
        .otherwise(pl.lit("ok", VERDICT_TYPE))
    )


def _after_consent(event_at: pl.Expr, boundary: pl.Expr) -> pl.Expr:
    """SPEC's "after consent": at or after the boundary (ties count), and any event when
    there is no usable consent (a boundary of minus infinity)."""
    return event_at.is_not_null() & (boundary.is_null() | (event_at >= boundary))


def _unverified(boundary: pl.Expr, coverage: pl.Expr) -> pl.Expr:
    """SPEC's unverified rule: no history, no (usable) consent, or consent before coverage
    starts, so a deactivation in between cannot be ruled out."""
    return coverage.is_null() | boundary.is_null() | (boundary < coverage)


def deciding_entries(index: pl.Series, verdict: pl.Series, action: pl.Series) -> pl.Series:
    """For entries (numbers) sorted by their row ``index``, the one that decides each row.

    A row's verdict is that of its most severe number: actions rank remove > suppress >
    review > keep; within one action the verdict table's order decides, then the
    numbers' order (column, then place in the cell). Every row has at least one entry.
    """
    rows = index.to_numpy()
    starts = np.flatnonzero(np.diff(rows, prepend=-1))  # each row's first entry
    if starts.size == rows.size:  # one number per row: each decides its own
        return pl.int_range(index.len(), eager=True, dtype=pl.UInt32)
    severity = action.to_physical().to_numpy().astype(
        np.uint64
    ) * 8 + verdict.to_physical().to_numpy().astype(np.uint64)
    # the smallest (severity, entry) of each row's run of entries
    ranked = (severity << np.uint64(32)) | np.arange(rows.size, dtype=np.uint64)
    decisive = np.minimum.reduceat(ranked, starts) & np.uint64(0xFFFFFFFF)
    return pl.Series(decisive.astype(np.uint32), dtype=pl.UInt32)


@dataclass(frozen=True)
class Decided:
    """Every row's verdict, and the full decision of the notable rows only.

    Most rows are plainly ``ok``; their reasons and evidence are empty, so only the
    ``notable`` rows (``positions`` in the contacts, ascending) carry them.
    """

    verdict: pl.Series
    action: pl.Series
    positions: pl.Series
    # the contacts' columns at ``positions``, with RESULT_COLUMNS
    notable: pl.DataFrame


def decide_rows(
    contacts: pl.DataFrame,
    evidence: pl.DataFrame,
    coverage_start: datetime | None,
    actions: Mapping[str, str] = DEFAULT_ACTIONS,
    row_values: pl.DataFrame | None = None,
) -> Decided:
    """Classify every contact row (see `decide`), keeping details for notable rows only.

    ``row_values`` (when ``contacts`` are the numbers of rows, with their row's
    ``index``) holds text of those rows, such as the raw ``consent``: it is gathered for
    the notable numbers only.
    """
    boundary = pl.col("consent_boundary")
    coverage = pl.lit(coverage_start, pl.Datetime("us", "UTC"))
    # Without events a row can only be invalid, unverified or ok: that is settled for
    # every row at once. Rows with events, and rows that are not ok, are "notable": the
    # full rules, reasons and evidence are worked out for them alone.
    plain_verdict = verdict_ladder(
        invalid=pl.col("phone_error").is_not_null(),
        deactivated=pl.lit(False),
        suspended=pl.lit(False),
        unverified=_unverified(boundary, coverage),
    )
    if EVIDENCE_ROW in contacts.columns:
        found = contacts.get_column(EVIDENCE_ROW)
        contacts = contacts.drop(EVIDENCE_ROW)
    else:
        found = evidence_rows(contacts.get_column("phone_key"), evidence)
    plain = contacts.select(verdict=plain_verdict, has_events=found.is_not_null())
    notable_mask = (plain.get_column("verdict") != "ok") | plain.get_column("has_events")
    positions = notable_mask.arg_true()
    notable_contacts = contacts.gather(positions)
    if row_values is not None:
        notable_contacts = pl.concat(
            [notable_contacts, row_values.gather(notable_contacts.get_column("index"))],
            how="horizontal",
        )
    their_evidence = evidence.drop("number").gather(found.gather(positions))
    detailed = _detail(
        pl.concat([notable_contacts, their_evidence], how="horizontal"), coverage_start
    )
    verdict = plain.get_column("verdict").scatter(positions, detailed.get_column("verdict"))
    mapping = dict(actions)
    notable = add_e164(notable_contacts).with_columns(
        detailed.get_column("verdict"),
        action=detailed.get_column("verdict").replace_strict(mapping, return_dtype=ACTION_TYPE),
        **{name: detailed.get_column(name) for name in DETAIL_COLUMNS},
    )
    return Decided(
        verdict=verdict,
        action=verdict.replace_strict(mapping, return_dtype=ACTION_TYPE).rename("action"),
        positions=positions,
        notable=notable.select(
            [
                *notable_contacts.columns,
                *(c for c in RESULT_COLUMNS if c not in notable_contacts.columns),
            ]
        ),
    )


def with_details(rows: pl.DataFrame, decided: Decided) -> pl.DataFrame:
    """``rows`` (the decided contacts) with the notable rows' reasons and evidence
    scattered into place, null elsewhere."""
    return rows.with_columns(
        pl.repeat(None, rows.height, dtype=pl.String, eager=True)
        .rename(name)
        .scatter(decided.positions, decided.notable.get_column(name))
        for name in DETAIL_COLUMNS
    )


def decide(
    contacts: pl.DataFrame,
    events: pl.DataFrame | pl.LazyFrame | None,
    coverage_start: datetime | None,
    actions: Mapping[str, str] = DEFAULT_ACTIONS,
    evidence: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Classify every contact row.

    ``contacts`` holds ``phone_key`` (UInt64, null when invalid), ``phone_e164``,
    ``phone_error``, ``consent_boundary`` (UTC), ``consent_status`` and ``consent``
    (the raw cell). ``events`` has the ledger's event columns; ``evidence``, when given,
    is `number_evidence` of these contacts already worked out (the events are then not
    read). Returns ``contacts`` with the columns of RESULT_COLUMNS added, in row order.
    """
    if evidence is None:
        if events is None:
            raise TypeError("decide needs the events or their evidence")
        evidence = number_evidence(contacts.get_column("phone_key"), events)
    decided = decide_rows(contacts, evidence, coverage_start, actions)
    contacts = add_e164(contacts)
    result = with_details(
        contacts.with_columns(decided.verdict.cast(pl.String), decided.action.cast(pl.String)),
        decided,
    )
    return result.select(
        [*contacts.columns, *(c for c in RESULT_COLUMNS if c not in contacts.columns)]
    )


def _detail(notable: pl.DataFrame, coverage_start: datetime | None) -> pl.DataFrame:
    """Verdict, reason and evidence of the notable rows, by the full rules."""
    boundary = pl.col("consent_boundary")
    no_consent = boundary.is_null()
    coverage = pl.lit(coverage_start, pl.Datetime("us", "UTC"))
    verdict = verdict_ladder(
        invalid=pl.col("phone_error").is_not_null(),
        deactivated=_after_consent(pl.col("deact_at"), boundary),
        suspended=pl.col("suspended").fill_null(False),
        unverified=_unverified(boundary, coverage),
    )
    consent_text = (
        pl.when(pl.col("consent_status") == MISSING)
        .then(pl.lit("no consent date"))
        .when(pl.col("consent_status") == FUTURE)
        .then(
            pl.lit("consent date in the future '")
            + pl.col("consent").str.strip_chars()
            + pl.lit("'")
        )
        .when(pl.col("consent_status") == UNPARSEABLE)
        .then(
            pl.lit("unparseable consent date '") + pl.col("consent").str.strip_chars() + pl.lit("'")
        )
        .otherwise(pl.lit("consent ") + pl.col("boundary_text"))
    )
    suggestion = pl.when(pl.col("deact_new").is_not_null()).then(
        pl.lit("+") + pl.col("deact_new").cast(pl.String)
    )
    reason = (
        pl.when(pl.col("verdict") == "invalid_number")
        .then(pl.lit("invalid number: ") + pl.col("phone_error"))
        .when(pl.col("verdict") == "deactivated")
        .then(
            pl.concat_str(
                [
                    pl.col("deact_type"),
                    pl.lit(" on "),
                    pl.col("event_date"),  # the deactivation's date
                    pl.when(pl.col("deact_day_only").fill_null(False))
                    .then(pl.lit(", compared as ") + iso_instant(pl.col("deact_at")))
                    .otherwise(pl.lit("")),
                    pl.when(pl.col("deact_detail").is_not_null())
                    .then(pl.lit(" (") + pl.col("deact_detail") + pl.lit(")"))
                    .otherwise(pl.lit("")),
                    pl.when(no_consent).then(pl.lit(", ")).otherwise(pl.lit(", at or after ")),
                    consent_text,
                    pl.when(suggestion.is_not_null())
                    .then(pl.lit("; replaced by ") + suggestion + pl.lit(" (needs fresh consent)"))
                    .otherwise(pl.lit("")),
                ]
            )
        )
        .when(pl.col("verdict") == "suspended")
        .then(pl.lit("SUSPENSION on ") + pl.col("event_date") + pl.lit(" is the latest event"))
        .when(pl.col("verdict") == "unverified")
        .then(
            pl.when(coverage.is_null())
            .then(pl.lit("no history covers this number: ") + consent_text)
            .when(no_consent)
            .then(
                consent_text
                + pl.lit(": a deactivation before coverage starts ")
                + iso_instant(coverage)
                + pl.lit(" cannot be ruled out")
            )
            .otherwise(consent_text + pl.lit(" is before coverage starts ") + iso_instant(coverage))
        )
        .when(pl.col("deact_at").is_not_null())
        .then(pl.lit(RECONSENTED))
    )
    evidence_type = (
        pl.when(pl.col("verdict") == "deactivated")
        .then(pl.col("deact_type"))
        .when(pl.col("verdict") == "suspended")
        .then(pl.lit(SUSPENSION))
    )
    evidence_date = (
        pl.when(pl.col("verdict") == "deactivated")
        .then(pl.col("deact_at"))
        .when(pl.col("verdict") == "suspended")
        .then(pl.col("latest_at"))
    )
    # a day-only deactivation is shown as its day (the day it is compared at is the
    # rule's, not the source's)
    day_only_evidence = (pl.col("verdict") == "deactivated") & pl.col("deact_day_only").fill_null(
        False
    )
    event_date = (
        pl.when(day_only_evidence)
        .then(
            (pl.col("deact_at") - DAY_ONLY_COMPARED_AFTER).dt.strftime("%Y-%m-%d")
            + pl.lit(" (day only)")
        )
        .otherwise(iso_instant(evidence_date))
    )
    detail_columns = {
        "reason": reason,
        "event_type": evidence_type,
        "event_date": pl.col("event_date"),
        "network": pl.when(pl.col("verdict") == "deactivated")
        .then(pl.col("deact_network"))
        .when(pl.col("verdict") == "suspended")
        .then(pl.col("suspended_network")),
        "report_id": pl.when(pl.col("verdict") == "deactivated")
        .then(pl.col("deact_report"))
        .when(pl.col("verdict") == "suspended")
        .then(pl.col("suspended_report")),
        "suggested_number": pl.when(pl.col("verdict") == "deactivated").then(suggestion),
    }
    # Dates are formatted once (strftime is the costly part) and reused by the reason.
    return (
        notable.lazy()
        .with_columns(verdict=verdict)
        .with_columns(event_date=event_date, boundary_text=iso_instant(boundary))
        .select("verdict", **detail_columns)
        .collect()
    )
