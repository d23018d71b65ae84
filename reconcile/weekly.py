"""The history's deactivations per week and operator, each event counted once however
many reports or files hold it, in memory that does not grow with the history: the
workbook's Deactivations sheet and chart are drawn from these counts.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from reconcile.history import DEACTIVATING_TYPES, Coverage, History

__all__ = ["TWIN_PASS_EVENTS", "weekly_counts", "weekly_deactivations"]


# Deactivations whose copies are looked for in one pass of `weekly_counts`.
TWIN_PASS_EVENTS = 4_000_000


def weekly_counts(history: History) -> pl.DataFrame:
    """Deactivations per week (Monday, UTC) and operator (``op:NAME``), each event
    counted once however many reports or files hold it; weeks without one are absent.

    The slow half of `weekly_deactivations` (millions of events are deduplicated):
    `clean_files` starts it while the contacts are being decided."""
    days = pl.col("occurred_at").dt.epoch("d")
    # the Monday of each event's week (UTC), as days since 1970-01-01, a Thursday
    week = [(days - (days + 3) % 7).alias("monday"), "network_name"]
    event = ["number", "occurred_at", "type", "new_number"]
    events = (
        history.lazy_events()
        .filter(pl.col("type").is_in(DEACTIVATING_TYPES))
        .select("number", "occurred_at", "new_number", "network_name", "type")
    )
    # Every event is counted in one streaming pass; then the copies of an event held by
    # several reports or files are taken off. Copies share a hash of the whole event:
    # only events whose hash is seen twice are compared exactly. The hashes are counted
    # a slice of the numbers at a time (about TWIN_PASS_EVENTS events a pass), so that
    # memory does not grow with the history (10M-contact benchmark: 2.4 GiB in one pass).
    totals = events.group_by(week).agg(count=pl.len()).collect(engine="streaming")
    key = pl.struct(event).hash(seed=0).alias("key")
    passes = max(1, -(-int(totals.get_column("count").sum()) // TWIN_PASS_EVENTS))
    twins = pl.concat(
        [
            # copies share their number: a pass takes a slice of the numbers
            events.filter(pl.col("number") % passes == part)
            .select(key)
            .group_by("key")
            .agg(copies=pl.len())
            .filter(pl.col("copies") > 1)
            .select("key")
            .collect(engine="streaming")
            for part in range(passes)
        ]
    )
    copies = (
        events.with_columns(key)
        .join(twins.lazy(), on="key", how="semi")
        .filter(pl.int_range(pl.len()).over(event) > 0)  # every copy after the first
        .group_by(week)
        .agg(copies=pl.len())
        .collect()
    )
    return (
        totals.join(copies, on=["monday", "network_name"], how="left", nulls_equal=True)
        .select(
            week=pl.col("monday").cast(pl.Int32).cast(pl.Date),
            # prefixed, so that no operator name (say "week") meets the index column
            network=pl.lit("op:") + pl.col("network_name").fill_null("(operator not named)"),
            count=(pl.col("count") - pl.col("copies").fill_null(0)).cast(pl.UInt32),
        )
        .filter(pl.col("count") > 0)
    )


def weekly_deactivations(
    history: History, coverage: Coverage, counts: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Deactivations per week (Monday, UTC) and operator: one row per week from the
    first covered week to the last (weeks without one are zeros), each event counted
    once however many reports or files hold it. ``counts``: `weekly_counts` of
    ``history``, when it is known already."""
    events = weekly_counts(history) if counts is None else counts
    starts = [moment for moment in (coverage.start,) if moment is not None]
    ends = [moment for moment in (coverage.end,) if moment is not None]
    if events.height:
        starts.append(events.get_column("week").min())  # type: ignore[arg-type]
        ends.append(events.get_column("week").max())  # type: ignore[arg-type]
    if not starts:
        return pl.DataFrame({"week": pl.Series([], dtype=pl.Date)})
    first = min(_as_date(moment) for moment in starts)
    last = max(_as_date(moment) for moment in ends)
    weeks = pl.DataFrame(
        {
            "week": pl.date_range(
                first - dt.timedelta(days=first.weekday()),
                last - dt.timedelta(days=last.weekday()),
                "1w",
                eager=True,
            )
        }
    )
    if not events.height:
        return weeks
    table = events.pivot(on="network", index="week", values="count")
    networks = sorted(name for name in table.columns if name != "week")
    return (
        weeks.join(table, on="week", how="left")
        .with_columns(pl.col(networks).fill_null(0).cast(pl.Int64))
        .select("week", *networks)
        .sort("week")
    )


def _as_date(moment: object) -> dt.date:
    if isinstance(moment, dt.datetime):
        return moment.date()
    if isinstance(moment, dt.date):
        return moment
    raise TypeError(f"not a date: {moment!r}")
