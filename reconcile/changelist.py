"""The change list (``NAME.changes.csv``): one line per number that is not ``ok``.

Most users open it in Excel, which runs a cell that starts like a formula; such cells
are written with a leading ``'`` (SPEC "Outputs"), and a phone value keeps its form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import polars as pl

__all__ = ["CHANGE_COLUMNS", "changes_frame", "included_names", "neutralized", "write_changes"]

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
# what a spreadsheet takes for a formula: =, @, a tab or a CR first, or + or - before
# anything but a plain number (+1 (415) 555-0123, -12.5)
_FORMULA_LIKE = r"^(?:[=@\t\r]|[+\-](?:[^0-9 (.]|.*[^0-9 ().\-/]))"


def neutralized(value: pl.Expr) -> pl.Expr:
    """``value`` with a leading ``'`` where a spreadsheet would run it as a formula."""
    return pl.when(value.str.contains(_FORMULA_LIKE)).then(pl.lit("'") + value).otherwise(value)


def included_names(include: Sequence[str]) -> list[str]:
    """The change-list names of the columns echoed from the contacts (``include_0``…):
    their own, unless that is a change-list column's name, and never one a spreadsheet
    runs as a formula (`neutralized`, as the cells are)."""
    names = [name if name not in CHANGE_COLUMNS else f"{name} (contact)" for name in include]
    if not names:
        return []
    safe = pl.select(neutralized(pl.lit(pl.Series(names, dtype=pl.String)))).to_series()
    return safe.to_list()


def changes_frame(decisions: pl.DataFrame, include: Sequence[str] = ()) -> pl.DataFrame:
    """One row per number that is not ``ok``, with SPEC's change-list columns and the
    contact columns asked for (``--include-columns``) after them."""
    echoed = [
        pl.col(f"include_{index}").alias(name) for index, name in enumerate(included_names(include))
    ]
    frame = decisions.filter(pl.col("verdict") != "ok").select(*CHANGE_COLUMNS, *echoed)
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(neutralized(pl.col(name)).alias(name) for name in text)


def write_changes(
    stream: BinaryIO, decisions: pl.DataFrame, header: bool, include: Sequence[str] = ()
) -> None:
    """Append the change-list rows of ``decisions`` to ``stream`` (after the header)."""
    changes_frame(decisions, include).write_csv(stream, include_header=header)
