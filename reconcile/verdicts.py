"""The verdicts: a pure function from contacts, events and coverage to decisions.

First rule that applies, per contact row (SPEC "Verdicts"):

    invalid_number  the phone cell is empty or not a valid E.164 number    review
    deactivated     a DEACTIVATION or ACTIVATION at or after consent        remove
    suspended       the number's most recent event is a SUSPENSION          suppress
    unverified      consent (or a missing one) is before coverage start    review
    ok              none of the above                                      keep

No I/O happens here; every rule is one polars expression over the whole file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import polars as pl

from reconcile.consent import MISSING, UNPARSEABLE
from reconcile.history import ACTIVATION, DEACTIVATION, SUSPENSION

__all__ = [
    "ACTIONS",
    "DEFAULT_ACTIONS",
    "DROPPED_ACTIONS",
    "RESULT_COLUMNS",
    "VERDICTS",
    "decide",
    "resolve_actions",
]

VERDICTS = ("invalid_number", "deactivated", "suspended", "unverified", "ok")
ACTIONS = ("remove", "suppress", "review", "keep")
DEFAULT_ACTIONS: Mapping[str, str] = {
    "invalid_number": "review",
    "deactivated": "remove",
    "suspended": "suppress",
    "unverified": "review",
    "ok": "keep",
}
DROPPED_ACTIONS = frozenset({"remove", "suppress"})
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
RECONSENTED = "deactivated before consent (re-consented)"
_ISO = "%Y-%m-%dT%H:%M:%SZ"


def resolve_actions(overrides: Mapping[str, str | None]) -> dict[str, str]:
    """The default action per verdict, with the given overrides applied."""
    actions = dict(DEFAULT_ACTIONS)
    for verdict, action in overrides.items():
        if action is not None:
            if verdict not in actions or action not in ACTIONS:
                raise ValueError(f"no verdict {verdict!r} or action {action!r}")
            actions[verdict] = action
    return actions


def _iso(expr: pl.Expr) -> pl.Expr:
    return expr.dt.strftime(_ISO)


def decide(
    contacts: pl.DataFrame,
    events: pl.DataFrame | pl.LazyFrame,
    coverage_start: datetime | None,
    actions: Mapping[str, str] = DEFAULT_ACTIONS,
) -> pl.DataFrame:
    """Classify every contact row.

    ``contacts`` holds ``phone_key`` (UInt64, null when invalid), ``phone_e164``,
    ``phone_error``, ``consent_boundary`` (UTC), ``consent_status`` and ``consent``
    (the raw cell). ``events`` has the ledger's event columns. Returns ``contacts``
    with the columns of RESULT_COLUMNS added, in the same row order.
    """
    numbers = contacts.select(number=pl.col("phone_key")).drop_nulls().unique()
    relevant = (
        events.lazy()
        .join(numbers.lazy(), on="number", how="semi", maintain_order="left")
        # the same event reported twice (two reports, or a re-import) counts once
        .unique(
            subset=["number", "type", "occurred_at", "new_number"],
            keep="first",
            maintain_order=True,
        )
    )
    latest = relevant.group_by("number").agg(
        latest_at=pl.col("occurred_at").max(),
        suspended=(
            (pl.col("type") == SUSPENSION) & (pl.col("occurred_at") == pl.col("occurred_at").max())
        ).any(),
        suspended_report=pl.col("report_id")
        .filter(
            (pl.col("type") == SUSPENSION) & (pl.col("occurred_at") == pl.col("occurred_at").max())
        )
        .first(),
        suspended_network=pl.col("network_name")
        .filter(
            (pl.col("type") == SUSPENSION) & (pl.col("occurred_at") == pl.col("occurred_at").max())
        )
        .first(),
    )
    # Evidence: the latest deactivation; on a tie DEACTIVATION sorts after ACTIVATION.
    deactivation = (
        relevant.filter(pl.col("type").is_in([DEACTIVATION, ACTIVATION]))
        .sort(["number", "occurred_at", "type", "report_id"], nulls_last=False)
        .unique(subset="number", keep="last", maintain_order=True)
        .select(
            "number",
            deact_type="type",
            deact_at="occurred_at",
            deact_new="new_number",
            deact_report="report_id",
            deact_network="network_name",
        )
    )
    joined = (
        contacts.lazy()
        .join(latest, left_on="phone_key", right_on="number", how="left", maintain_order="left")
        .join(
            deactivation, left_on="phone_key", right_on="number", how="left", maintain_order="left"
        )
    )

    boundary = pl.col("consent_boundary")
    no_consent = boundary.is_null()
    coverage = pl.lit(coverage_start, pl.Datetime("us", "UTC"))
    is_invalid = pl.col("phone_error").is_not_null()
    is_deactivated = pl.col("deact_at").is_not_null() & (
        no_consent | (pl.col("deact_at") >= boundary)
    )
    is_suspended = pl.col("suspended").fill_null(False)
    is_unverified = coverage.is_null() | no_consent | (boundary < coverage)
    verdict = (
        pl.when(is_invalid)
        .then(pl.lit("invalid_number"))
        .when(is_deactivated)
        .then(pl.lit("deactivated"))
        .when(is_suspended)
        .then(pl.lit("suspended"))
        .when(is_unverified)
        .then(pl.lit("unverified"))
        .otherwise(pl.lit("ok"))
    )
    consent_text = (
        pl.when(pl.col("consent_status") == MISSING)
        .then(pl.lit("no consent date"))
        .when(pl.col("consent_status") == UNPARSEABLE)
        .then(
            pl.lit("unparseable consent date '") + pl.col("consent").str.strip_chars() + pl.lit("'")
        )
        .otherwise(pl.lit("consent ") + _iso(boundary))
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
                    _iso(pl.col("deact_at")),
                    pl.when(no_consent).then(pl.lit(", ")).otherwise(pl.lit(", at or after ")),
                    consent_text,
                    pl.when(suggestion.is_not_null())
                    .then(pl.lit("; replaced by ") + suggestion + pl.lit(" (needs fresh consent)"))
                    .otherwise(pl.lit("")),
                ]
            )
        )
        .when(pl.col("verdict") == "suspended")
        .then(pl.lit("SUSPENSION on ") + _iso(pl.col("latest_at")) + pl.lit(" is the latest event"))
        .when(pl.col("verdict") == "unverified")
        .then(
            pl.when(coverage.is_null())
            .then(pl.lit("no history covers this number: ") + consent_text)
            .when(no_consent)
            .then(
                consent_text
                + pl.lit(": a deactivation before coverage starts ")
                + _iso(coverage)
                + pl.lit(" cannot be ruled out")
            )
            .otherwise(consent_text + pl.lit(" is before coverage starts ") + _iso(coverage))
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
    return (
        joined.with_columns(verdict=verdict)
        .with_columns(
            action=pl.col("verdict").replace_strict(dict(actions), return_dtype=pl.String),
            reason=reason,
            event_type=evidence_type,
            event_date=_iso(evidence_date),
            network=pl.when(pl.col("verdict") == "deactivated")
            .then(pl.col("deact_network"))
            .when(pl.col("verdict") == "suspended")
            .then(pl.col("suspended_network")),
            report_id=pl.when(pl.col("verdict") == "deactivated")
            .then(pl.col("deact_report"))
            .when(pl.col("verdict") == "suspended")
            .then(pl.col("suspended_report")),
            suggested_number=pl.when(pl.col("verdict") == "deactivated").then(suggestion),
        )
        .select([*contacts.columns, *(c for c in RESULT_COLUMNS if c not in contacts.columns)])
        .collect()
    )
