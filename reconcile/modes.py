"""What each mode changes in the cleaned file, a decided piece at a time.

strip keeps the rows whose action drops nothing (`results.kept_mask`); blank empties the
phone cells that hold a removed or suppressed number (`blank_cells`); flag appends
FLAG_COLUMNS (`flag_columns`). `csv_writing.write_csv_rows` writes them into a CSV
block; a workbook's sheet is written once every piece is decided (`SheetChanges`,
then `xlsx_files.write_cleaned_workbook`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile.results import kept_mask
from reconcile.rows import DecidedPiece
from reconcile.verdicts import DROPPED_ACTIONS, with_details

__all__ = ["FLAG_COLUMNS", "SheetChanges", "blank_cells", "flag_columns", "number_lists"]

FLAG_COLUMNS = {
    "reconcile_verdict": "verdict",
    "reconcile_action": "action",
    "reconcile_reason": "reason",
    "reconcile_phone_e164": "phone_e164",
    "reconcile_event_date": "event_date",
    "reconcile_suggested_number": "suggested_number",
}


def number_lists(numbers: pl.DataFrame, rows: int) -> pl.Series:
    """Per row, every valid number checked as E.164, ``;``-separated, in column order
    (``numbers``: the entries of ``rows`` consecutive rows, each with its row's
    ``index``; a row's place, not its number, is the key: rows of several files may
    share a number)."""
    first = numbers.get_column("index")[0] if numbers.height else 0
    listed = (
        numbers.filter(pl.col("phone_key").is_not_null())
        .group_by("index", maintain_order=True)
        .agg(numbers=(pl.lit("+") + pl.col("phone_key").cast(pl.String)).str.join(";"))
    )
    places = pl.int_range(first, first + rows, eager=True, dtype=pl.UInt32)  # phones' index
    return (
        pl.DataFrame({"index": places})
        .join(listed, on="index", how="left", maintain_order="left")
        .get_column("numbers")
        .rename("phone_e164")
    )


def flag_columns(entries: pl.DataFrame, piece: DecidedPiece) -> pl.DataFrame:
    """The flag-mode columns of a piece's rows: the deciding number's verdict, action,
    reason, event date and suggested number, and every number checked."""
    detailed = with_details(entries.select("index"), piece.decided).gather(piece.deciding)
    rows = piece.rows
    return pl.DataFrame(
        {
            "reconcile_verdict": rows.get_column("verdict").cast(pl.String),
            "reconcile_action": rows.get_column("action").cast(pl.String),
            "reconcile_reason": detailed.get_column("reason"),
            "reconcile_phone_e164": number_lists(entries.select("index", "phone_key"), rows.height),
            "reconcile_event_date": detailed.get_column("event_date"),
            "reconcile_suggested_number": detailed.get_column("suggested_number"),
        }
    )


def blank_cells(entries: pl.DataFrame, piece: DecidedPiece) -> dict[int, list[int]]:
    """The phone columns to empty, by row of the piece (only the rows that have any):
    those holding a removed or suppressed number."""
    dropped = (
        piece.decided.action.is_in(list(DROPPED_ACTIONS))
        & entries.get_column("column").is_not_null()
    )
    if not bool(dropped.any()):
        return {}
    index = entries.get_column("index")
    rows = (index.filter(dropped) - index[0]).to_list()
    columns = entries.get_column("column").filter(dropped).to_list()
    emptied: dict[int, list[int]] = {}
    for row, column in zip(rows, columns, strict=True):
        if column not in emptied.setdefault(row, []):
            emptied[row].append(column)
    return emptied


@dataclass
class SheetChanges:
    """A workbook sheet's changes, gathered piece by piece (a sheet holds at most
    1,048,576 rows, so they stay small): the rows kept, the flag columns, the cells
    emptied (by the row's place in the sheet's data rows)."""

    mode: str
    keep: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    flags: list[pl.DataFrame] = field(default_factory=list)
    emptied: dict[int, list[int]] = field(default_factory=dict)

    def add(self, first: int, entries: pl.DataFrame, piece: DecidedPiece) -> None:
        """One piece's changes; ``first`` is its first row's place in the sheet."""
        if self.mode == "strip":
            self.keep.append(kept_mask(piece.rows))
        elif self.mode == "flag":
            self.flags.append(flag_columns(entries, piece))
        else:
            for row, columns in blank_cells(entries, piece).items():
                self.emptied[first + row] = columns

    def kept(self, rows: int) -> npt.NDArray[np.bool_]:
        if self.mode != "strip":
            return np.ones(rows, dtype=bool)
        return np.concatenate(self.keep) if self.keep else np.ones(0, dtype=bool)

    def flag_frame(self) -> pl.DataFrame | None:
        if self.mode != "flag":
            return None
        return pl.concat(self.flags) if self.flags else None
