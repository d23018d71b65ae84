"""What one reconciled file came to: `CleanResult` and its JSON form, `CleanSummary`.

Below the jobs, so that the writers of its outputs (the workbook) and its readers (the
printed lines, `run`) take it from here, not from `clean`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile._text import iso_utc as _iso
from reconcile.contacts import ContactTable
from reconcile.history import Coverage, CoverageSpan
from reconcile.options import CleanOptions
from reconcile.phones import add_e164
from reconcile.verdicts import ACTIONS, DETAIL_COLUMNS, DROPPED_ACTIONS, VERDICTS

__all__ = [
    "ACTION_ROWS_SHOWN",
    "DECISION_COLUMNS",
    "CleanResult",
    "CleanSummary",
    "ConsentProblems",
    "DecisionCounts",
    "Decisions",
    "as_text",
    "kept_mask",
    "rows_with_details",
]


class ChosenColumnNames(TypedDict):
    phone: list[str]
    # found by what they hold; phone-like columns not checked, with why (fax, pager)
    phone_by_content: list[str]
    not_checked: dict[str, str]
    consent: str
    id: str | None
    include: list[str]


class OutputPaths(TypedDict):
    cleaned: str
    changes: str
    report: str | None


class NumberCounts(TypedDict):
    """The numbers checked (every number found in every phone cell, and each cell with
    text but no number) and their verdicts."""

    checked: int
    verdicts: dict[str, int]


class ConsentProblems(TypedDict):
    """Consent values that could not be read (they count as no consent date)."""

    unreadable: int
    examples: list[str]
    hint: str | None


class CountSummary(TypedDict):
    """A file's decisions counted (`DecisionCounts.summary`)."""

    rows: int
    kept: int
    removed: int
    suppressed: int
    review: int
    verdicts: dict[str, int]
    actions: dict[str, int]
    numbers: NumberCounts


class CleanSummary(CountSummary):
    """One reconciled file in numbers (``reconcile clean --json`` prints a list of these)."""

    input: str
    sheet: str | None
    blank_rows_skipped: int
    columns: ChosenColumnNames
    mode: str
    coverage: CoverageSpan
    consent: ConsentProblems
    footer_lines: int
    outputs: OutputPaths
    warnings: list[str]


# What `CleanResult.decisions` holds per row before the details.
DECISION_COLUMNS = ("row", "consent", "id", "phone_e164", "verdict", "action")
# The workbook's action sheets hold at most this many lines in all (the change list
# holds every one).
ACTION_ROWS_SHOWN = 1_000_000


@dataclass
class Decisions:
    """Every row's and number's decision, kept in memory when asked for (a library
    caller's file; a workbook's sheet). ``rows`` holds every row's verdict and action
    (enums) beside its ``row``, ``consent``, ``id`` and the ``phone_key``, ``column`` and
    ``position`` of the number that decided it; ``numbers`` every number's, beside
    NUMBER_COLUMNS; ``notable`` the full decision (phone column, cell, reason, evidence)
    of every number that is not plainly ``ok``."""

    rows: pl.DataFrame
    numbers: pl.DataFrame
    notable: pl.DataFrame


@dataclass
class DecisionCounts:
    """How many rows got each verdict and action, and how many numbers (in a phone
    column) each verdict: counted piece by piece."""

    verdicts: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(len(VERDICTS), dtype=np.int64)
    )
    actions: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(len(ACTIONS), dtype=np.int64)
    )
    number_verdicts: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(len(VERDICTS), dtype=np.int64)
    )

    def add(self, rows: pl.DataFrame, numbers: pl.DataFrame) -> None:
        """Count one piece's decided ``rows`` and ``numbers``."""
        self.verdicts += _counts(rows.get_column("verdict"))
        self.actions += _counts(rows.get_column("action"))
        in_columns = numbers.filter(pl.col("column").is_not_null())
        self.number_verdicts += _counts(in_columns.get_column("verdict"))

    @property
    def rows(self) -> int:
        return int(self.verdicts.sum())

    def summary(self) -> CountSummary:
        """The counts as a summary says them: rows kept (keep and review), removed,
        suppressed, to review, per verdict and action, and the numbers checked."""
        verdicts = dict(zip(VERDICTS, self.verdicts.tolist(), strict=True))
        actions = dict(zip(ACTIONS, self.actions.tolist(), strict=True))
        number_verdicts = dict(zip(VERDICTS, self.number_verdicts.tolist(), strict=True))
        return {
            "rows": self.rows,
            "kept": actions["keep"] + actions["review"],
            "removed": actions["remove"],
            "suppressed": actions["suppress"],
            "review": actions["review"],
            "verdicts": verdicts,
            "actions": actions,
            "numbers": {"checked": sum(number_verdicts.values()), "verdicts": number_verdicts},
        }


@dataclass
class CleanResult:
    """One contact file reconciled: the table, the counts of its decisions, and the
    outputs.

    ``action_rows`` holds the notable numbers whose action is not keep (the workbook's
    action sheets), the first ACTION_ROWS_SHOWN of ``action_rows_total`` in file order;
    ``kept`` every decision, when they were kept (`decisions`).
    """

    table: ContactTable
    counts: DecisionCounts
    action_rows: pl.DataFrame
    action_rows_total: int
    coverage: Coverage
    options: CleanOptions
    cleaned_path: Path
    changes_path: Path
    report_path: Path | None
    warnings: list[str]
    consent_problems: ConsentProblems
    # the history ends more than STALE_AFTER before the run (one of the warnings)
    stale_history: bool = False
    kept: Decisions | None = None
    # one line per contact (`run_history.contact_keys`), when `run` asked for them
    contact_keys: pl.DataFrame | None = None

    def _kept(self) -> Decisions:
        if self.kept is None:
            raise ValueError(
                "this clean did not keep every row's decision (a large file is decided a "
                "piece at a time); call reconcile_file with keep_decisions=True, or read "
                "the change list"
            )
        return self.kept

    @property
    def decisions(self) -> pl.DataFrame:
        """Every row with its verdict, action, reason and evidence (of the number that
        decided it), in file order (only when the decisions were kept)."""
        kept = self._kept()
        return as_text(rows_with_details(kept.rows, kept.notable))

    @property
    def kept_mask(self) -> npt.NDArray[np.bool_]:
        """Per row, whether strip mode keeps it (only when the decisions were kept)."""
        return kept_mask(self._kept().rows)

    def summary(self) -> CleanSummary:
        """Counts, coverage, outputs and warnings, as plain JSON-ready values."""
        return {
            "input": str(self.table.path),
            "sheet": self.table.sheet,
            **self.counts.summary(),
            "blank_rows_skipped": self.table.blank_rows,
            "columns": {
                "phone": list(self.table.phone_columns),
                "phone_by_content": list(self.table.phones_by_content),
                "not_checked": dict(self.table.not_checked),
                "consent": self.table.consent_column,
                "id": self.table.id_column,
                "include": list(self.table.include_columns),
            },
            "mode": self.options.mode,
            "coverage": {
                "start": _iso(self.coverage.start),
                "end": _iso(self.coverage.end),
            },
            "consent": self.consent_problems,
            "footer_lines": self.table.footer_lines,
            "outputs": {
                "cleaned": str(self.cleaned_path),
                "changes": str(self.changes_path),
                "report": str(self.report_path) if self.report_path else None,
            },
            "warnings": self.warnings,
        }


def _counts(column: pl.Series) -> list[int]:
    """How many rows hold each value of an enum column, in the enum's order."""
    if not isinstance(column.dtype, pl.Enum):
        raise TypeError(f"{column.name} is not an enum column")
    codes = column.to_physical().to_numpy()
    return np.bincount(codes, minlength=len(column.dtype.categories)).tolist()  # type: ignore[no-any-return]


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Verdict and action as text, as every reader outside a run sees them."""
    return frame.with_columns(pl.col("verdict", "action").cast(pl.String))


def rows_with_details(rows: pl.DataFrame, notable: pl.DataFrame) -> pl.DataFrame:
    """Rows with the details of the number that decided each (null for plain ok rows)."""
    details = notable.select("row", "column", "position", "phone", *DETAIL_COLUMNS)
    joined = rows.join(
        details,
        on=["row", "column", "position"],
        how="left",
        maintain_order="left",
        nulls_equal=True,
    )
    return add_e164(joined).select(*DECISION_COLUMNS, "phone", *DETAIL_COLUMNS)


def kept_mask(decisions: pl.DataFrame) -> npt.NDArray[np.bool_]:
    """Per row, whether strip mode keeps it (its action drops nothing)."""
    return (~decisions.get_column("action").is_in(list(DROPPED_ACTIONS))).to_numpy()
