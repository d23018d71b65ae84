"""`reconcile clean` as a library: read contact files, decide, write the outputs.

Every phone column of a row is checked, and every number in a cell: the numbers are
decided one by one, and a row takes the verdict and action of its most severe number
(`rows.decide_piece`). A file is decided a piece at a time (`_pipeline.decide_file`),
so that memory does not grow with it; `clean_files` writes every file's outputs as
temporary files and renames them together only once every file succeeded.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from reconcile._atomic import OutputBatch
from reconcile._pipeline import Slice, decide_file
from reconcile._version import version
from reconcile.columns import MissingConsentColumn
from reconcile.consent import ConsentTally, parse_consent
from reconcile.contacts import ContactTable, read_contacts
from reconcile.errors import InputError, OutputError
from reconcile.history import Coverage, History
from reconcile.modes import SheetChanges
from reconcile.options import CleanOptions
from reconcile.results import (
    ACTION_ROWS_SHOWN,
    CleanResult,
    CleanSummary,
    ConsentProblems,
    DecisionCounts,
    Decisions,
)
from reconcile.run_history import contact_keys
from reconcile.statement import RunInfo, evidence_only_sources
from reconcile.verdicts import MODES
from reconcile.weekly import weekly_counts
from reconcile.workbook import write_audit_workbook
from reconcile.xlsx_files import write_cleaned_workbook

__all__ = [
    "MODES",
    "CleanOptions",
    "CleanResult",
    "CleanSummary",
    "clean_files",
    "date_columns",
    "history_warnings",
    "output_paths",
    "reconcile_file",
]

STALE_AFTER = timedelta(days=3)


def output_paths(path: Path, out_dir: Path | None) -> tuple[Path, Path, Path]:
    """``NAME.cleaned.EXT``, ``NAME.changes.csv`` and ``NAME.report.xlsx``."""
    folder = out_dir if out_dir is not None else path.parent
    suffix = ".xlsx" if path.suffix.lower() == ".xlsm" else path.suffix
    return (
        folder / f"{path.stem}.cleaned{suffix}",
        folder / f"{path.stem}.changes.csv",
        folder / f"{path.stem}.report.xlsx",
    )


def _read(path: Path, options: CleanOptions) -> ContactTable:
    try:
        return read_contacts(
            path,
            # finding phone columns by content reads numbers as the decisions will
            replace(options.columns, default_region=options.default_region),
            sheet=options.sheet,
            encoding=options.encoding,
            delimiter=options.delimiter,
        )
    except MissingConsentColumn as error:
        raise error.with_date_columns(date_columns(error.sample, options)) from None


def date_columns(sample: Mapping[str, list[str | None]], options: CleanOptions) -> list[str]:
    """The columns most of whose (non-empty) sample values read as consent dates."""
    found = []
    for name, values in sample.items():
        cells = pl.Series(values, dtype=pl.String)
        filled = cells.filter(cells.str.strip_chars() != "")
        if filled.len() == 0:
            continue
        read = [
            parse_consent(filled, options.consent_timezone, consent_format)
            .get_column("consent_boundary")
            .is_not_null()
            for consent_format in (options.consent_format, "%d/%m/%Y", "%d.%m.%Y")
        ]
        if (read[0] | read[1] | read[2]).mean() >= 0.5:  # type: ignore[operator]
            found.append(name)
    return found


class _Tally:
    """What a clean keeps of each decided slice: the counts, the consent values it could
    not read, the workbook's action rows (at most ACTION_ROWS_SHOWN), and when asked
    every decision, the contacts' keys (for `run`) and a sheet's changes."""

    def __init__(
        self, options: CleanOptions, keep: bool, keys: bool, sheet: SheetChanges | None
    ) -> None:
        self.counts = DecisionCounts()
        self.consent = ConsentTally(options.consent_timezone, options.consent_format)
        self.action_rows: list[pl.DataFrame] = []
        self.action_rows_total = 0
        # only the workbook shows them
        self.action_room = ACTION_ROWS_SHOWN if options.report else 0
        self.keep = keep
        self.rows: list[pl.DataFrame] = []
        self.numbers: list[pl.DataFrame] = []
        self.notable: list[pl.DataFrame] = []
        self.keys: list[pl.DataFrame] | None = [] if keys else None
        self.sheet = sheet

    def __call__(self, part: Slice) -> None:
        decided = part.decided
        self.counts.add(decided.rows, decided.numbers)
        self.consent.add(part.rows.get_column("consent"), part.rows.get_column("consent_status"))
        actions = decided.details.filter(pl.col("action") != "keep")
        if not self.action_rows or self.action_room > 0:  # the first keeps the columns
            self.action_rows.append(actions.head(self.action_room))
            self.action_room -= self.action_rows[-1].height
        self.action_rows_total += actions.height
        if self.keep:
            self.rows.append(decided.rows)
            self.numbers.append(decided.numbers)
            self.notable.append(decided.notable)
        if self.keys is not None:
            self.keys.append(contact_keys(decided.rows, decided.numbers))
        if self.sheet is not None:
            self.sheet.add(part.first, part.entries, decided)

    def decisions(self) -> Decisions | None:
        if not self.keep:
            return None
        return Decisions(_concat(self.rows), _concat(self.numbers), _concat(self.notable))

    def shown_action_rows(self) -> pl.DataFrame:
        return _concat(self.action_rows)

    def contact_keys(self) -> pl.DataFrame | None:
        if self.keys is None:
            return None
        return _concat(self.keys).unique("key", keep="first", maintain_order=True)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame()


def reconcile_file(
    path: Path,
    history: History,
    options: CleanOptions,
    now: datetime,
    batch: OutputBatch | None = None,
    *,
    keep_decisions: bool | None = None,
    keys: bool = False,
) -> CleanResult:
    """Read one contact file and decide every row, a piece at a time.

    With a ``batch``, the cleaned file and the change list are written into it (as
    temporary files, renamed only when the batch commits); without one nothing is
    written. Every row's decision is kept (`CleanResult.decisions`) when
    ``keep_decisions`` says so, by default only when nothing is written; ``keys`` keeps
    each contact's key for `run`.
    """
    keep = batch is None if keep_decisions is None else keep_decisions
    table = _read(path, options)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            coverage_job = pool.submit(history.coverage)
            cleaned, changes, report = output_paths(path, options.out_dir)
            sheet = SheetChanges(options.mode) if table.sheet is not None else None
            tally = _Tally(options, keep or sheet is not None, keys, sheet)
            with contextlib.ExitStack() as stack:
                changes_stream = cleaned_stream = None
                if batch is not None:
                    changes_stream = stack.enter_context(batch.writing(changes))
                    if table.kind == "csv":
                        # renamed last: whoever finds the cleaned file finds the change
                        # list and the workbook of the same run beside it, even after a
                        # crash in between
                        cleaned_stream = stack.enter_context(batch.writing(cleaned, last=True))
                decide_file(
                    table,
                    history.lazy_events(),
                    int(history.reports.get_column("records").fill_null(0).sum()),
                    lambda: coverage_job.result().start,
                    options,
                    now,
                    changes_stream,
                    cleaned_stream,
                    tally,
                )
            coverage = coverage_job.result()
            if table.row_count == 0:  # known once every block is read
                raise InputError(f"{path.name}: the file has a header but no data rows.")
    finally:
        table.close()
    decisions = tally.decisions()
    notes: list[str] = []
    if batch is not None and sheet is not None and decisions is not None:
        _add_xlsx(batch, table, cleaned, sheet, decisions, notes)
    if not keep:
        decisions = None
    consent_problems: ConsentProblems = {
        "unreadable": tally.consent.unreadable,
        "examples": tally.consent.shown_examples(),
        "hint": tally.consent.hint,
    }
    stale = coverage.end is not None and now - coverage.end > STALE_AFTER
    warnings = history_warnings(history, coverage, now, stale)
    if consent_problems["unreadable"]:
        warnings.append(_consent_warning(consent_problems))
    if table.footer_lines:
        warnings.append(
            f"the file ends with a report footer of {table.footer_lines} line(s) after a "
            "blank line (not contacts); it is copied unchanged to the cleaned file"
        )
    warnings.extend(notes)
    return CleanResult(
        table=table,
        counts=tally.counts,
        action_rows=tally.shown_action_rows(),
        action_rows_total=tally.action_rows_total,
        coverage=coverage,
        options=options,
        cleaned_path=cleaned,
        changes_path=changes,
        report_path=report if options.report else None,
        warnings=warnings,
        consent_problems=consent_problems,
        stale_history=stale,
        kept=decisions,
        contact_keys=tally.contact_keys(),
    )


def _consent_warning(problems: ConsentProblems) -> str:
    shown = ", ".join(repr(value) for value in problems["examples"])
    text = (
        f"{problems['unreadable']} consent value(s) could not be read (e.g. {shown}); "
        "they count as no consent date"
    )
    if problems["hint"]:
        text += f"; they look day-first: pass {problems['hint']}"
    return text


def _add_xlsx(
    batch: OutputBatch,
    table: ContactTable,
    target: Path,
    changes: SheetChanges,
    decisions: Decisions,
    notes: list[str],
) -> None:
    sheet, cells = table.sheet, table.sheet_cells
    if sheet is None or cells is None:
        return
    header_cells, sheet_rows = cells
    keep = changes.kept(decisions.rows.height)
    extra = changes.flag_frame()
    blank: dict[int, list[int]] | None = None
    if changes.mode == "blank":
        where = [table.columns.index(name) for name in table.phone_columns]
        blank = {
            place: [where[column] for column in columns]
            for place, columns in changes.emptied.items()
        }

    def write(temporary: Path) -> None:
        why = write_cleaned_workbook(
            table.path,
            header_cells,
            sheet_rows,
            sheet,
            table.sheet_rows,
            table.header_row,
            keep,
            extra,
            temporary,
            blank,
        )
        if why is not None:
            notes.append(
                f"the cleaned workbook was written from the sheet's cells ({why}): its "
                "other sheets, hidden columns, formats and names were not kept (the input "
                "workbook still has them)"
            )

    batch.add(target, write, last=True, scratch=True)


def history_warnings(history: History, coverage: Coverage, now: datetime, stale: bool) -> list[str]:
    """What a clean warns of its history: stale, gaps, incomplete reports."""
    warnings = list(history.warnings)
    if stale and coverage.end is not None:
        # the end's date, not an age: the same line on any day (the README shows it)
        warnings.append(
            f"the history is stale: it ends {coverage.end:%Y-%m-%d}, more than "
            f"{STALE_AFTER.days} days before this run; run `reconcile fetch`"
        )
    for operator in coverage.operators:
        for gap_start, gap_end in operator.gaps:
            warnings.append(
                f"gap in {operator.network}'s history from {gap_start:%Y-%m-%d} to "
                f"{gap_end:%Y-%m-%d}: a deactivation then would be missed"
            )
    for hole_start, hole_end in coverage.holes:
        warnings.append(
            f"no source covers {hole_start:%Y-%m-%d} to {hole_end:%Y-%m-%d}: a deactivation "
            "then would be missed"
        )
    warnings.extend(coverage.incomplete_report_notes)
    return warnings


def _check_targets(paths: Sequence[Path], options: CleanOptions, existing_too: bool) -> None:
    """Refuse outputs that would overwrite an input or each other, and (``existing_too``,
    once the folders are held) outputs that exist without --force."""
    inputs = {path.resolve() for path in paths}
    seen: dict[Path, Path] = {}
    existing: list[str] = []
    for path in paths:
        targets = output_paths(path, options.out_dir)
        for target in targets if options.report else targets[:2]:
            resolved = target.resolve()
            if resolved in inputs:
                raise OutputError(
                    f"{target}: the output would overwrite an input; rename the input."
                )
            if resolved in seen:
                raise OutputError(
                    f"{seen[resolved]} and {path} would both write {target}; "
                    "clean them into different --out-dir folders."
                )
            seen[resolved] = path
            if existing_too and target.exists() and not options.force:
                existing.append(str(target))
    if existing:
        shown = ", ".join(existing[:3]) + (" …" if len(existing) > 3 else "")
        raise OutputError(f"output already exists: {shown}; pass --force to replace it.")


def _add_workbook(
    result: CleanResult,
    history: History,
    batch: OutputBatch,
    now: datetime,
    counts: Callable[[], pl.DataFrame],
) -> None:
    info = RunInfo(
        tool_version=version(),
        run_at=now,
        history_source=history.description,
        ledger_last_sync=history.last_sync,
        options=result.options.described(),
        history_sources=tuple(history.sources),
        evidence_only=evidence_only_sources(history.reports),
    )
    if result.report_path is not None:
        batch.add(
            result.report_path,
            lambda temporary: write_audit_workbook(result, history, info, temporary, counts),
            scratch=True,
        )


def clean_files(
    paths: Sequence[Path],
    history: History,
    options: CleanOptions,
    now: datetime,
    wait: float = 0.0,
    *,
    keep_decisions: bool = False,
    keys: bool = False,
) -> list[CleanResult]:
    """Reconcile every file and write its outputs; on any error nothing is written.

    Outputs are written as temporary files while the files are decided, and renamed into
    place only once every file succeeded. Another run writing to the same folder makes
    this one fail clearly, or wait ``wait`` seconds for it. The results hold counts,
    not every row's decision (the outputs hold those), unless ``keep_decisions`` (for a
    file that fits in memory); ``keys`` keeps each contact's key for `run`.
    """
    _check_targets(paths, options, existing_too=False)
    created: Path | None = None
    if options.out_dir is not None and not options.out_dir.is_dir():
        try:
            options.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(
                f"--out-dir {options.out_dir}: cannot create the folder ({error.strerror})."
            ) from None
        created = options.out_dir
    batch = OutputBatch(wait)
    try:
        # the folders are held before outputs are checked: another run cannot write the
        # same outputs between the check and the rename
        for path in paths:
            batch.lock(output_paths(path, options.out_dir)[0].parent)
        _check_targets(paths, options, existing_too=True)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # the workbook's weekly chart counts every event of the history: counted
            # while the contacts are decided, it is ready when the workbook is written
            counts = pool.submit(weekly_counts, history) if options.report else None
            if options.report:  # the workbook writer's import (0.15 s) overlaps them too
                pool.submit(importlib.import_module, "openpyxl")
            results = [
                reconcile_file(
                    path, history, options, now, batch, keep_decisions=keep_decisions, keys=keys
                )
                for path in paths
            ]
            for result in results:
                if counts is not None:
                    _add_workbook(result, history, batch, now, counts.result)
    except BaseException:
        batch.discard()
        if created is not None:
            with contextlib.suppress(OSError):
                created.rmdir()  # only if still empty
        raise
    batch.commit()
    return results
