"""Report writers: the change list (CSV). The audit workbook joins them later."""

from __future__ import annotations

from typing import BinaryIO

import polars as pl

__all__ = ["CHANGE_COLUMNS", "changes_frame", "write_changes"]

CHANGE_COLUMNS = (
    "row",
    "id",
    "phone_column",
    "phone",
    "phone_e164",
    "consent",
    "verdict",
    "action",
    "reason",
    "event_type",
    "event_date",
    "network",
    "report_id",
    "suggested_number",
)


def changes_frame(decisions: pl.DataFrame) -> pl.DataFrame:
    """One row per number that is not ``ok``, with SPEC's change-list columns."""
    return decisions.filter(pl.col("verdict") != "ok").select(CHANGE_COLUMNS)


def write_changes(stream: BinaryIO, decisions: pl.DataFrame, header: bool) -> None:
    """Append the change-list rows of ``decisions`` to ``stream`` (after the header)."""
    changes_frame(decisions).write_csv(stream, include_header=header)
