"""A piece of contact rows decided: pure functions on small frames.

`piece_entries` pairs each number found in a row's phone cells with its row's consent;
`decide_piece` decides every number (`verdicts.decide_rows`: the verdict ladder and its
evidence) and each row by its most severe number (`verdicts.deciding_entries`). Nothing
here reads or writes a file: `_pipeline` hands the pieces in and the outputs out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from reconcile.verdicts import Decided, decide_rows, deciding_entries

__all__ = ["NUMBER_COLUMNS", "DecidedPiece", "decide_piece", "piece_entries"]

# Every number keeps these, with its verdict and action.
NUMBER_COLUMNS = ("row", "column", "position", "phone_key")


def piece_entries(rows: pl.DataFrame, numbers: pl.DataFrame) -> pl.DataFrame:
    """Each number (`phones.find_numbers`) with its row's number and parsed consent
    (``rows``: ``row``, ``consent_boundary``, ``consent_status``); the row's text is
    gathered for the notable numbers only, by `decide_rows`."""
    index = numbers.get_column("index")
    row_values = rows.select("row", "consent_boundary", "consent_status")
    if numbers.height != rows.height:  # a row with several numbers (or none): gather
        row_values = row_values.gather(index)
    return pl.concat(
        [
            row_values,
            numbers.select("index", "column", "position", "phone_key", "phone_error", phone="cell"),
        ],
        how="horizontal",
    )


@dataclass(frozen=True)
class DecidedPiece:
    """Rows decided: ``rows`` (each row with its deciding number's key, column and
    position, verdict and action), ``numbers`` (every number's NUMBER_COLUMNS, verdict and
    action), ``details`` (every notable number in full, with its ``phone_column`` name),
    and what the cleaned file's writers need (``decided``, ``deciding``)."""

    rows: pl.DataFrame
    numbers: pl.DataFrame
    details: pl.DataFrame
    decided: Decided
    deciding: pl.Series

    @property
    def notable(self) -> pl.DataFrame:
        """The details of the numbers that are not plainly ok."""
        return self.details.filter((pl.col("verdict") != "ok") | pl.col("reason").is_not_null())


def decide_piece(
    rows: pl.DataFrame,
    entries: pl.DataFrame,
    row_text: pl.DataFrame,
    evidence: pl.DataFrame,
    coverage_start: datetime | None,
    actions: Mapping[str, str],
    phone_columns: Sequence[str],
) -> DecidedPiece:
    """Decide ``rows`` (``row``, ``consent``, ``id``) from their numbers (``entries``, from
    `piece_entries`, indexed into ``row_text``) and the numbers' ``evidence``
    (`evidence.number_evidence`, or with each entry's ``evidence_row`` found already)."""
    decided = decide_rows(entries, evidence, coverage_start, actions, row_text)
    index = entries.get_column("index")
    deciding = deciding_entries(index, decided.verdict, decided.action)
    decided_rows = rows.select("row", "consent", "id").with_columns(
        entries.select("phone_key", "column", "position").gather(deciding),
        verdict=decided.verdict.gather(deciding),
        action=decided.action.gather(deciding),
    )
    names = pl.Series(list(phone_columns), dtype=pl.String)
    details = decided.notable.with_columns(
        phone_column=pl.col("column")
        .replace_strict(pl.int_range(names.len(), eager=True).cast(pl.UInt16), names, default=None)
        # a row with no number at all: every phone column was looked at
        .fill_null(", ".join(phone_columns)),
    )
    numbers = entries.select(NUMBER_COLUMNS).with_columns(decided.verdict, decided.action)
    return DecidedPiece(decided_rows, numbers, details, decided, deciding)
