"""Each number's evidence: what its events say, by SPEC's rules, for the verdicts.

One history per number: an event reported twice counts once, the latest qualifying
deactivation is the evidence, a SUSPENSION at the latest instant is the latest event;
an event known by its day only is compared at the safe end of its day (`compared_at`)
and ordered from the earliest its day can start (`ordered_at`). Pure: frames in,
frames out; both engines and `check` go through `events_evidence`.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from reconcile.history import DEACTIVATING_TYPES, SUSPENSION, conform_events

__all__ = [
    "DAY_ONLY_COMPARED_AFTER",
    "DAY_ONLY_STARTS_BEFORE",
    "EVIDENCE_EVENT_COLUMNS",
    "EVIDENCE_ROW",
    "compared_at",
    "events_evidence",
    "evidence_rows",
    "number_evidence",
    "ordered_at",
]

# the event columns the evidence is worked out from
EVIDENCE_EVENT_COLUMNS = (
    "number",
    "type",
    "occurred_at",
    "new_number",
    "report_id",
    "network_name",
    "day_only",
    "detail",
)
# a contacts column `decide_rows` may be given: the row's evidence (`evidence_rows`)
EVIDENCE_ROW = "evidence_row"


# A day-only event (a day list) may have happened at any time of its day in any time
# zone: it is compared at the latest instant that day ends anywhere, D+1 12:00 UTC, so
# a consent on that day or the next morning UTC counts as before it (the safe side).
DAY_ONLY_COMPARED_AFTER = timedelta(hours=36)


def compared_at(occurred_at: pl.Expr, day_only: pl.Expr) -> pl.Expr:
    """SPEC's "day-only events": the instant an event is compared at (its own, or for an
    event known by its day only, that day's 00:00 UTC plus DAY_ONLY_COMPARED_AFTER)."""
    return (
        pl.when(day_only.fill_null(False))
        .then(occurred_at + DAY_ONLY_COMPARED_AFTER)
        .otherwise(occurred_at)
    )


# For "the most recent event", the other side is the safe one: a day-only event may have
# happened as early as its day starts anywhere, D 00:00 at UTC+14 (D-1 10:00 UTC), so a
# SUSPENSION reported after that may be the latest event (suppress, not keep).
DAY_ONLY_STARTS_BEFORE = timedelta(hours=14)


def ordered_at(occurred_at: pl.Expr, day_only: pl.Expr) -> pl.Expr:
    """SPEC's "most recent event" for an event known by its day only: the earliest
    instant its day starts anywhere (that day's 00:00 UTC minus DAY_ONLY_STARTS_BEFORE)."""
    return (
        pl.when(day_only.fill_null(False))
        .then(occurred_at - DAY_ONLY_STARTS_BEFORE)
        .otherwise(occurred_at)
    )


def number_evidence(phone_keys: pl.Series, events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per number with events among ``phone_keys``: what the verdicts need, sorted by number.

    ``latest_at`` (the most recent event of any type), whether a SUSPENSION is that
    event (``suspended``, with its report and network) and the latest DEACTIVATION,
    ACTIVATION or DELIVERY_FAILED (``deact_*``, with whether it is known by its day only
    and what its source adds). Only events of the given numbers are read.
    """
    numbers = phone_keys.drop_nulls()  # is_in makes its own set: no unique() first
    relevant = (
        conform_events(events.lazy())
        .select(EVIDENCE_EVENT_COLUMNS)
        .filter(pl.col("number").is_in(numbers.implode()))
        .collect(engine="streaming")
    )
    return events_evidence(relevant)


def events_evidence(events: pl.DataFrame) -> pl.DataFrame:
    """`number_evidence` of every number in ``events`` (EVIDENCE_EVENT_COLUMNS, in the
    history's order: of an event reported twice, the first is the one cited). Every
    instant is the one the event is compared at (`compared_at`)."""
    relevant = (
        conform_events(events)
        .select(EVIDENCE_EVENT_COLUMNS)
        .with_columns(
            occurred_at=compared_at(pl.col("occurred_at"), pl.col("day_only")),
            ordered_at=ordered_at(pl.col("occurred_at"), pl.col("day_only")),
            day_only=pl.col("day_only").fill_null(False),
        )
        # the same event reported twice (two reports, or a re-import) counts once
        .unique(
            subset=["number", "type", "occurred_at", "new_number"],
            keep="first",
            maintain_order=True,
        )
        .sort("number", "occurred_at", "type", "report_id", nulls_last=False)
    )
    # "Most recent event" over all types (a day-only one at the earliest its day starts);
    # a SUSPENSION sharing that instant wins.
    relevant = relevant.with_columns(latest_at=pl.col("ordered_at").max().over("number"))
    suspensions = (
        relevant.filter(
            (pl.col("type") == SUSPENSION) & (pl.col("ordered_at") == pl.col("latest_at"))
        )
        .unique(subset="number", keep="first", maintain_order=True)
        .select(
            "number",
            suspended=pl.lit(True),
            suspended_report="report_id",
            suspended_network="network_name",
        )
    )
    latest = (
        relevant.unique(subset="number", keep="last", maintain_order=True)
        .select("number", "latest_at")
        .join(suspensions, on="number", how="left")
    )
    # Evidence: the latest deactivation; on a tie DEACTIVATION sorts after ACTIVATION,
    # and DELIVERY_FAILED after both.
    deactivation = (
        relevant.filter(pl.col("type").is_in(DEACTIVATING_TYPES))
        .unique(subset="number", keep="last", maintain_order=True)
        .select(
            "number",
            deact_type="type",
            deact_at="occurred_at",
            deact_new="new_number",
            deact_report="report_id",
            deact_network="network_name",
            deact_day_only="day_only",
            deact_detail="detail",
        )
    )
    return latest.join(deactivation, on="number", how="left").sort("number")


def evidence_rows(phone_keys: pl.Series, evidence: pl.DataFrame) -> pl.Series:
    """Each key's row in ``evidence`` (`number_evidence`), null when it has no events.

    One hash join: a large file looks its keys up once per chunk, and `decide_rows`
    then takes the rows from the ``evidence_row`` column instead of joining per slice.
    """
    return (
        pl.DataFrame({"number": phone_keys})
        .join(
            evidence.select("number").with_row_index(EVIDENCE_ROW),
            on="number",
            how="left",
            maintain_order="left",
        )
        .get_column(EVIDENCE_ROW)
    )
