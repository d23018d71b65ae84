"""`reconcile clean` as a library: read contact files, decide, write the outputs.

Every phone column of a row is checked, and every number in a cell: the numbers are
decided one by one (`verdicts.decide_rows`), and a row takes the verdict and action of
its most severe number (`verdicts.deciding_entries`). `clean_files` reads and decides
every file first and writes nothing until all of them succeeded; the outputs are then
written as temporary files and renamed together.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from reconcile._atomic import OutputBatch, sync_data
from reconcile._version import version
from reconcile.changelist import write_changes
from reconcile.columns import MissingConsentColumn
from reconcile.consent import PARSED, UNPARSEABLE, parse_consent, reject_future
from reconcile.contacts import ContactTable, read_contacts
from reconcile.csv_files import write_csv_rows
from reconcile.errors import OutputError
from reconcile.history import Coverage, History
from reconcile.options import CleanOptions
from reconcile.phones import find_numbers
from reconcile.results import (
    NUMBER_COLUMNS,
    CleanResult,
    CleanSummary,
    ConsentProblems,
    as_text,
    kept_mask,
    rows_with_details,
)
from reconcile.verdicts import (
    DROPPED_ACTIONS,
    EVIDENCE_ROW,
    MODES,
    Decided,
    decide_rows,
    deciding_entries,
    evidence_rows,
    number_evidence,
    with_details,
)
from reconcile.workbook import RunInfo, weekly_counts, write_audit_workbook
from reconcile.xlsx_files import write_cleaned_workbook

__all__ = [
    "MODES",
    "CleanOptions",
    "CleanResult",
    "CleanSummary",
    "clean_files",
    "output_paths",
    "reconcile_file",
]

STALE_AFTER = timedelta(days=3)
FLAG_COLUMNS = {
    "reconcile_verdict": "verdict",
    "reconcile_action": "action",
    "reconcile_reason": "reason",
    "reconcile_phone_e164": "phone_e164",
    "reconcile_event_date": "event_date",
    "reconcile_suggested_number": "suggested_number",
}


# Rows whose phones or consent cells are worked out in one job (jobs run side by side).
CHUNK_ROWS = 500_000
# Rows decided at once: while one slice is decided, the one before is being written.
DECIDE_ROWS = 250_000
# Decided slices that may wait to be written (each writer keeps them in order).
WRITE_AHEAD = 3


def output_paths(path: Path, out_dir: Path | None) -> tuple[Path, Path, Path]:
    """``NAME.cleaned.EXT``, ``NAME.changes.csv`` and ``NAME.report.xlsx``."""
    folder = out_dir if out_dir is not None else path.parent
    suffix = ".xlsx" if path.suffix.lower() == ".xlsm" else path.suffix
    return (
        folder / f"{path.stem}.cleaned{suffix}",
        folder / f"{path.stem}.changes.csv",
        folder / f"{path.stem}.report.xlsx",
    )


@dataclass
class _Chunk:
    """One chunk of rows: their values with the parsed consent, and their numbers with
    the row values each needs (``entries``)."""

    first: int
    rows: pl.DataFrame
    entries: pl.DataFrame


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
        raise error.with_date_columns(_date_columns(error.sample, options)) from None


def _date_columns(sample: Mapping[str, list[str | None]], options: CleanOptions) -> list[str]:
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


def reconcile_file(
    path: Path,
    history: History,
    options: CleanOptions,
    now: datetime,
    batch: OutputBatch | None = None,
) -> CleanResult:
    """Read one contact file and decide every row.

    With a ``batch``, the cleaned file and the change list are written into it (as
    temporary files, renamed only when the batch commits); without one nothing is
    written.
    """
    table = _read(path, options)
    phone_count = len(table.phone_columns)
    # polars and numpy release the GIL, so these threads run on every core. The phones
    # come first: the history's evidence needs every number, and the consent cells are
    # parsed while the history is read.
    with ThreadPoolExecutor(max_workers=3) as pool:
        coverage_job = pool.submit(history.coverage)
        parts = list(table.value_chunks(CHUNK_ROWS))
        number_jobs = [
            pool.submit(
                find_numbers,
                [part.get_column(f"phone_{index}") for index in range(phone_count)],
                options.default_region,
            )
            for part in parts
        ]
        numbers = [job.result() for job in number_jobs]
        keys = pl.concat([part.get_column("phone_key") for part in numbers])
        evidence_job = pool.submit(number_evidence, keys, history.lazy_events())
        del keys
        consent_jobs = [pool.submit(_parse_consent, part, options, now) for part in parts]
        chunks: list[_Chunk | None] = []
        first = 0
        for part, found, consent_job in zip(parts, numbers, consent_jobs, strict=True):
            rows = pl.concat(
                [part.select("row", "consent", "id", pl.col("^include_.*$")), consent_job.result()],
                how="horizontal",
            )
            chunks.append(_Chunk(first, rows, _entries(rows, found)))
            first += part.height
        del parts, numbers, consent_jobs
        evidence = evidence_job.result()
        coverage = coverage_job.result()
    consent_problems = _consent_problems(chunks, options)
    cleaned, changes, report = output_paths(path, options.out_dir)
    notes: list[str] = []
    rows, numbers_decided, notable = _decide_and_write(
        table, chunks, evidence, coverage, options, batch, (cleaned, changes), notes
    )
    stale = coverage.end is not None and now - coverage.end > STALE_AFTER
    warnings = _warnings(history, coverage, now, stale)
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
        rows=rows,
        numbers=numbers_decided,
        notable=notable,
        coverage=coverage,
        options=options,
        cleaned_path=cleaned,
        changes_path=changes,
        report_path=report if options.report else None,
        warnings=warnings,
        consent_problems=consent_problems,
        stale_history=stale,
    )


def _entries(rows: pl.DataFrame, numbers: pl.DataFrame) -> pl.DataFrame:
    """Each number with its row's number and parsed consent (the row's text is gathered
    for the notable numbers only, by `decide_rows`)."""
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


def _parse_consent(values: pl.DataFrame, options: CleanOptions, now: datetime) -> pl.DataFrame:
    parsed = parse_consent(
        values.get_column("consent"), options.consent_timezone, options.consent_format
    )
    return reject_future(parsed, now)


_DAY_FIRST = re.compile(
    r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})(?:[ T]+\d{1,2}:\d{2}(:\d{2})?)?\s*$"
)


def _consent_problems(chunks: Sequence[_Chunk | None], options: CleanOptions) -> ConsentProblems:
    """How many consent values could not be read, three of them, and a hint when they
    look day-first."""
    unreadable = pl.concat(
        [
            chunk.rows.filter(pl.col("consent_status") == UNPARSEABLE).get_column("consent")
            for chunk in chunks
            if chunk is not None
        ]
    )
    distinct = unreadable.str.strip_chars().unique(maintain_order=True)
    examples = [value for value in distinct.head(3).to_list() if value is not None]
    hint = None
    if options.consent_format is None:
        for value in distinct.head(1000).to_list():
            match = _DAY_FIRST.match(value or "")
            if match and int(match.group(1)) > 12 and int(match.group(3)) <= 12:
                separator = match.group(2)
                clock = ""
                if ":" in value:
                    clock = " %H:%M:%S" if match.group(5) else " %H:%M"
                    clock = ("T" if "T" in value else " ") + clock.strip()
                day_first = f"%d{separator}%m{separator}%Y{clock}"
                if _reads_more(chunks, options, day_first):
                    hint = f"--consent-format '{day_first}'"
                    examples = [value, *(item for item in examples if item != value)][:3]
                break
    return {"unreadable": unreadable.len(), "examples": examples, "hint": hint}


def _reads_more(chunks: Sequence[_Chunk | None], options: CleanOptions, day_first: str) -> bool:
    """Whether ``day_first`` reads more of the file's consent values than the default
    rules do: a hint that would leave values unreadable (or read 11/1 as January 11th
    where it was read as November 1st) is never given."""
    values = pl.concat([chunk.rows.get_column("consent") for chunk in chunks if chunk is not None])
    read_now = sum(
        int((chunk.rows.get_column("consent_status") == PARSED).sum())
        for chunk in chunks
        if chunk is not None
    )
    read_then = parse_consent(values, options.consent_timezone, day_first)
    return int(read_then.get_column("consent_boundary").is_not_null().sum()) > read_now


def _consent_warning(problems: ConsentProblems) -> str:
    shown = ", ".join(repr(value) for value in problems["examples"])
    text = (
        f"{problems['unreadable']} consent value(s) could not be read (e.g. {shown}); "
        "they count as no consent date"
    )
    if problems["hint"]:
        text += f"; they look day-first: pass {problems['hint']}"
    return text


def _decide_and_write(
    table: ContactTable,
    chunks: list[_Chunk | None],
    evidence: pl.DataFrame,
    coverage: Coverage,
    options: CleanOptions,
    batch: OutputBatch | None,
    targets: tuple[Path, Path],
    notes: list[str],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Decide slice by slice; stream each slice's cleaned rows and changes to the batch
    (``notes`` receives what the summary must say of how they were written)."""
    cleaned_path, changes_path = targets
    mode = options.mode
    column_names = pl.Series(list(table.phone_columns), dtype=pl.String)
    no_number_column = ", ".join(table.phone_columns)
    rows: list[pl.DataFrame] = []
    numbers: list[pl.DataFrame] = []
    notable: list[pl.DataFrame] = []
    with contextlib.ExitStack() as stack:
        changes_stream = cleaned_stream = None
        if batch is not None:
            changes_stream = stack.enter_context(batch.writing(changes_path))
            if table.csv is not None:
                # renamed last: whoever finds the cleaned file finds the change list and
                # the workbook of the same run beside it, even after a crash in between
                cleaned_stream = stack.enter_context(batch.writing(cleaned_path, last=True))
        # The change list and the cleaned rows are written by threads of their own, each
        # in slice order, while this thread decides the next slices; WRITE_AHEAD slices
        # at most wait to be written.
        changes_writer = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        cleaned_writer = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        lookups = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        changes_out = _Settling(changes_stream) if changes_stream is not None else None
        cleaned_out = _Settling(cleaned_stream) if cleaned_stream is not None else None
        in_flight: collections.deque[list[Future[None]]] = collections.deque()
        slices = _pieces(chunks, evidence, lookups)
        for piece, (first, row_part, entry_part, row_text) in enumerate(slices):
            decided = decide_rows(entry_part, evidence, coverage.start, options.actions, row_text)
            index = entry_part.get_column("index")
            deciding = deciding_entries(index, decided.verdict, decided.action)
            verdict, action = decided.verdict.gather(deciding), decided.action.gather(deciding)
            decided_rows = row_part.select("row", "consent", "id").with_columns(
                entry_part.select("phone_key", "column", "position").gather(deciding),
                verdict=verdict,
                action=action,
            )
            details = decided.notable.with_columns(
                phone_column=pl.col("column")
                .replace_strict(
                    pl.int_range(column_names.len(), eager=True).cast(pl.UInt16),
                    column_names,
                    default=None,
                )
                .fill_null(no_number_column),
            )
            stop = first + decided_rows.height
            while len(in_flight) >= WRITE_AHEAD:
                for job in in_flight.popleft():
                    job.result()
            jobs: list[Future[None]] = []
            if changes_out is not None:
                jobs.append(
                    changes_writer.submit(
                        changes_out, write_changes, details, piece == 0, table.include_columns
                    )
                )
            if cleaned_out is not None:
                keep = (
                    np.ones(decided_rows.height, dtype=bool)
                    if mode != "strip"
                    else kept_mask(decided_rows)
                )
                extra = (
                    _flag_extra(entry_part, decided, deciding, decided_rows)
                    if mode == "flag"
                    else None
                )
                blank = _blank_masks(index, entry_part, decided) if mode == "blank" else None
                jobs.append(
                    cleaned_writer.submit(
                        cleaned_out, write_csv_rows, table.csv, first, stop, keep, extra, blank
                    )
                )
            in_flight.append(jobs)
            rows.append(decided_rows)
            numbers.append(
                entry_part.select(NUMBER_COLUMNS).with_columns(decided.verdict, decided.action)
            )
            notable.append(
                details.filter((pl.col("verdict") != "ok") | pl.col("reason").is_not_null())
            )
        for jobs in in_flight:
            for job in jobs:
                job.result()
    all_rows = pl.concat(rows)
    all_numbers = pl.concat(numbers)
    all_notable = pl.concat(notable)
    if batch is not None and table.sheet is not None:
        _add_xlsx(batch, table, cleaned_path, mode, all_rows, all_numbers, all_notable, notes)
    return all_rows, all_numbers, all_notable


def _add_xlsx(
    batch: OutputBatch,
    table: ContactTable,
    target: Path,
    mode: str,
    rows: pl.DataFrame,
    numbers: pl.DataFrame,
    notable: pl.DataFrame,
    notes: list[str],
) -> None:
    sheet, cells = table.sheet, table.sheet_cells
    if sheet is None or cells is None:
        return
    header_cells, sheet_rows = cells
    keep = np.ones(rows.height, dtype=bool) if mode != "strip" else kept_mask(rows)
    extra = None
    if mode == "flag":
        listed = _number_lists(numbers, rows)
        extra = (
            as_text(rows_with_details(rows, notable))
            .with_columns(phone_e164=listed)
            .select([pl.col(source).alias(name) for name, source in FLAG_COLUMNS.items()])
        )
    blank: dict[int, list[int]] | None = None
    if mode == "blank":
        blank = {}
        dropped = numbers.filter(
            pl.col("action").is_in(list(DROPPED_ACTIONS)) & pl.col("column").is_not_null()
        )
        positions = dict(zip(rows.get_column("row").to_list(), range(rows.height), strict=True))
        where = [table.columns.index(name) for name in table.phone_columns]
        for row, column in dropped.select("row", "column").unique(maintain_order=True).iter_rows():
            blank.setdefault(positions[row], []).append(where[column])

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

    batch.add(
        target,
        write,
        last=True,
        scratch=True,
    )


def _number_lists(numbers: pl.DataFrame, rows: pl.DataFrame) -> pl.Series:
    """Per row, every valid number checked as E.164, ``;``-separated, in column order."""
    listed = (
        numbers.filter(pl.col("phone_key").is_not_null())
        .group_by("row", maintain_order=True)
        .agg(numbers=(pl.lit("+") + pl.col("phone_key").cast(pl.String)).str.join(";"))
    )
    return (
        rows.select("row")
        .join(listed, on="row", how="left", maintain_order="left")
        .get_column("numbers")
        .rename("phone_e164")
    )


def _flag_extra(
    entries: pl.DataFrame, decided: Decided, deciding: pl.Series, rows: pl.DataFrame
) -> pl.DataFrame:
    """The flag-mode columns of a slice's rows: the deciding number's verdict, action,
    reason, event date and suggested number, and every number checked."""
    detailed = with_details(entries.select("index"), decided).gather(deciding)
    listed = _number_lists(entries.select("row", "phone_key"), rows)
    return pl.DataFrame(
        {
            "reconcile_verdict": rows.get_column("verdict").cast(pl.String),
            "reconcile_action": rows.get_column("action").cast(pl.String),
            "reconcile_reason": detailed.get_column("reason"),
            "reconcile_phone_e164": listed,
            "reconcile_event_date": detailed.get_column("event_date"),
            "reconcile_suggested_number": detailed.get_column("suggested_number"),
        }
    )


def _blank_masks(index: pl.Series, entries: pl.DataFrame, decided: Decided) -> dict[int, list[int]]:
    """The phone columns to empty, by row of the slice (only the rows that have any):
    those holding a removed or suppressed number."""
    dropped = (
        decided.action.is_in(list(DROPPED_ACTIONS)) & entries.get_column("column").is_not_null()
    )
    if not bool(dropped.any()):
        return {}
    rows = (index.filter(dropped) - index[0]).to_list()
    columns = entries.get_column("column").filter(dropped).to_list()
    emptied: dict[int, list[int]] = {}
    for row, column in zip(rows, columns, strict=True):
        if column not in emptied.setdefault(row, []):
            emptied[row].append(column)
    return emptied


SETTLE_BYTES = 16 << 20


class _Settling:
    """Writes to one output, sending its bytes to disk every SETTLE_BYTES.

    The batch fsyncs every output before it renames it; bytes sent to disk while the
    next slices are decided leave that fsync only the last few to wait for.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.settled = 0

    def __call__(self, write: Callable[..., None], *args: Any) -> None:
        write(self.stream, *args)
        position = self.stream.tell()
        if position - self.settled >= SETTLE_BYTES:
            self.stream.flush()
            sync_data(self.stream.fileno())
            self.settled = position


def _pieces(
    chunks: list[_Chunk | None], evidence: pl.DataFrame, pool: ThreadPoolExecutor
) -> Iterator[tuple[int, pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """The chunks in slices of DECIDE_ROWS rows: the slice's first row (in the file), its
    rows, its numbers (each with its ``evidence_row``), and the chunk's row text
    (consent and id, by the numbers' ``index``).

    A chunk's numbers are looked up in the evidence on ``pool`` while the chunk before
    is being decided; each chunk is let go once it is sliced.
    """

    def look_up(position: int) -> Future[pl.Series] | None:
        chunk = chunks[position] if position < len(chunks) else None
        if chunk is None:
            return None
        return pool.submit(evidence_rows, chunk.entries.get_column("phone_key"), evidence)

    upcoming = look_up(0)
    for position, chunk in enumerate(chunks):
        if chunk is None or upcoming is None:
            raise RuntimeError("a chunk was decided twice")
        chunks[position] = None
        found = upcoming.result().rename(EVIDENCE_ROW)
        upcoming = look_up(position + 1)
        entries = chunk.entries.with_columns(found)
        index = entries.get_column("index").to_numpy()
        row_text = chunk.rows.select("consent", "id", pl.col("^include_.*$"))
        for offset in range(0, chunk.rows.height, DECIDE_ROWS):
            stop = min(offset + DECIDE_ROWS, chunk.rows.height)
            begin, end = np.searchsorted(index, [offset, stop])
            yield (
                chunk.first + offset,
                chunk.rows.slice(offset, stop - offset),
                entries.slice(int(begin), int(end - begin)),
                row_text,
            )


def _warnings(history: History, coverage: Coverage, now: datetime, stale: bool) -> list[str]:
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
) -> list[CleanResult]:
    """Reconcile every file and write its outputs; on any error nothing is written.

    Outputs are written as temporary files while the files are decided, and renamed into
    place only once every file succeeded. Another run writing to the same folder makes
    this one fail clearly, or wait ``wait`` seconds for it.
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
            results = [reconcile_file(path, history, options, now, batch) for path in paths]
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
