"""`reconcile clean` as a library: read contact files, decide, write the outputs.

`clean_files` reads and decides every file first and writes nothing until all of them
succeeded; the outputs are then written as temporary files and renamed together.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypedDict

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile._atomic import OutputBatch, sync_data
from reconcile._text import iso_utc as _iso
from reconcile._version import version
from reconcile.changelist import write_changes
from reconcile.columns import ColumnChoice
from reconcile.consent import parse_consent, reject_future, validate_timezone
from reconcile.contacts import ContactTable, read_contacts
from reconcile.csv_files import write_csv_rows
from reconcile.errors import OptionError, OutputError
from reconcile.history import Coverage, History
from reconcile.phones import add_e164, normalize_phones, validate_region
from reconcile.verdicts import (
    ACTIONS,
    DEFAULT_ACTIONS,
    DETAIL_COLUMNS,
    DROPPED_ACTIONS,
    VERDICTS,
    decide_rows,
    evidence_rows,
    number_evidence,
    with_details,
)
from reconcile.workbook import RunInfo, write_audit_workbook
from reconcile.xlsx_files import write_xlsx_cleaned

__all__ = [
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


@dataclass(frozen=True)
class CleanOptions:
    """Everything `reconcile clean` can be told."""

    columns: ColumnChoice = field(default_factory=ColumnChoice)
    mode: Literal["strip", "flag"] = "strip"
    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    default_region: str = "US"
    consent_timezone: str = "UTC"
    consent_format: str | None = None
    sheet: str | None = None
    encoding: str | None = None
    out_dir: Path | None = None
    force: bool = False
    report: bool = True

    def described(self) -> dict[str, str]:
        """The options that shape verdicts and outputs, for the audit trail."""
        return {
            "mode": self.mode,
            "actions": ", ".join(f"{verdict}={action}" for verdict, action in self.actions.items()),
            "default_region": self.default_region,
            "consent_timezone": self.consent_timezone,
            "consent_format": self.consent_format or "(ISO 8601, M/D/YYYY)",
            "sheet": self.sheet or "(first visible)",
            "encoding": self.encoding or "(detected)",
            "columns": f"phone={self.columns.phone or '(guessed)'}, "
            f"consent={self.columns.consent or '(guessed)'}, id={self.columns.id or '(guessed)'}",
        }

    def validate(self) -> None:
        """Raise OptionError for a region, time zone or action map that cannot work."""
        validate_region(self.default_region)
        validate_timezone(self.consent_timezone)
        if set(self.actions) != set(VERDICTS):
            raise OptionError(
                f"actions must name every verdict ({', '.join(VERDICTS)}), "
                f"not {', '.join(sorted(self.actions))}."
            )
        unknown = sorted(set(self.actions.values()) - set(ACTIONS))
        if unknown:
            raise OptionError(
                f"{', '.join(unknown)} is not an action; the actions are {', '.join(ACTIONS)}."
            )


class CoverageSpan(TypedDict):
    start: str | None
    end: str | None


class ChosenColumnNames(TypedDict):
    phone: str
    consent: str
    id: str | None


class OutputPaths(TypedDict):
    cleaned: str
    changes: str
    report: str | None


class CleanSummary(TypedDict):
    """One reconciled file in numbers (``reconcile clean --json`` prints a list of these)."""

    input: str
    sheet: str | None
    rows: int
    blank_rows_skipped: int
    kept: int
    removed: int
    suppressed: int
    review: int
    verdicts: dict[str, int]
    actions: dict[str, int]
    columns: ChosenColumnNames
    mode: str
    coverage: CoverageSpan
    outputs: OutputPaths
    warnings: list[str]


# Every row keeps these, with its verdict and action (enums); the reasons and evidence
# (DETAIL_COLUMNS) are kept for notable rows only.
CONTACT_COLUMNS = ("row", "phone", "consent", "id", "phone_key")
# What `CleanResult.decisions` holds per row before the details: the key as E.164 text.
DECISION_COLUMNS = ("row", "phone", "consent", "id", "phone_e164", "verdict", "action")
# Rows whose phones or consent cells are worked out in one job (jobs run side by side).
CHUNK_ROWS = 500_000
# Rows decided at once: while one slice is decided, the one before is being written.
DECIDE_ROWS = 250_000
# Decided slices that may wait to be written (each writer keeps them in order).
WRITE_AHEAD = 3


@dataclass
class CleanResult:
    """One contact file reconciled: the table, every row's decision, and the outputs.

    ``rows`` holds every row's verdict and action (enums) beside CONTACT_COLUMNS;
    ``notable`` holds the full decision (reason, evidence) of every row that is not
    plainly ``ok``; ``decisions`` joins them as text.
    """

    table: ContactTable
    rows: pl.DataFrame
    notable: pl.DataFrame
    coverage: Coverage
    options: CleanOptions
    cleaned_path: Path
    changes_path: Path
    report_path: Path | None
    warnings: list[str]
    # the history ends more than STALE_AFTER before the run (one of the warnings)
    stale_history: bool = False

    @property
    def decisions(self) -> pl.DataFrame:
        """Every row with its verdict, action, reason and evidence, in file order."""
        return _as_text(_assembled(self.rows, self.notable))

    @property
    def keep(self) -> npt.NDArray[np.bool_]:
        """Per row, whether strip mode keeps it."""
        return _kept(self.rows)

    def summary(self) -> CleanSummary:
        """Counts, coverage, outputs and warnings, as plain JSON-ready values."""
        verdicts = dict(zip(VERDICTS, _counts(self.rows.get_column("verdict")), strict=True))
        actions = dict(zip(ACTIONS, _counts(self.rows.get_column("action")), strict=True))
        rows = self.rows.height
        return {
            "input": str(self.table.path),
            "sheet": self.table.sheet,
            "rows": rows,
            "blank_rows_skipped": self.table.blank_rows,
            "kept": actions["keep"] + actions["review"],
            "removed": actions["remove"],
            "suppressed": actions["suppress"],
            "review": actions["review"],
            "verdicts": {verdict: verdicts[verdict] for verdict in VERDICTS},
            "actions": {action: actions[action] for action in ACTIONS},
            "columns": {
                "phone": self.table.phone_column,
                "consent": self.table.consent_column,
                "id": self.table.id_column,
            },
            "mode": self.options.mode,
            "coverage": {
                "start": _iso(self.coverage.start),
                "end": _iso(self.coverage.end),
            },
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


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("verdict", "action").cast(pl.String))


def _assembled(rows: pl.DataFrame, notable: pl.DataFrame) -> pl.DataFrame:
    details = notable.select("row", *DETAIL_COLUMNS)
    joined = rows.join(details, on="row", how="left", maintain_order="left")
    return add_e164(joined).select(*DECISION_COLUMNS, *DETAIL_COLUMNS)


def _kept(decisions: pl.DataFrame) -> npt.NDArray[np.bool_]:
    return (~decisions.get_column("action").is_in(list(DROPPED_ACTIONS))).to_numpy()


def output_paths(path: Path, out_dir: Path | None) -> tuple[Path, Path, Path]:
    """``NAME.cleaned.EXT``, ``NAME.changes.csv`` and ``NAME.report.xlsx``."""
    folder = out_dir if out_dir is not None else path.parent
    suffix = ".xlsx" if path.suffix.lower() == ".xlsm" else path.suffix
    return (
        folder / f"{path.stem}.cleaned{suffix}",
        folder / f"{path.stem}.changes.csv",
        folder / f"{path.stem}.report.xlsx",
    )


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
    table = read_contacts(path, options.columns, sheet=options.sheet, encoding=options.encoding)
    # polars and numpy release the GIL, so these threads run on every core. The phones
    # come first: the history's evidence needs every number, and the consent cells are
    # parsed while the history is read.
    with ThreadPoolExecutor(max_workers=3) as pool:
        coverage_job = pool.submit(history.coverage)
        parts = list(table.value_chunks(CHUNK_ROWS))
        phone_jobs = [
            pool.submit(
                normalize_phones,
                part.get_column("phone"),
                options.default_region,
                with_e164=False,  # made from the key for the rows that show it
            )
            for part in parts
        ]
        phones = [job.result() for job in phone_jobs]
        keys = pl.concat([part.get_column("phone_key") for part in phones])
        evidence_job = pool.submit(number_evidence, keys, history.lazy_events())
        del keys
        consent_jobs = [pool.submit(_parse_consent, part, options, now) for part in parts]
        chunks: list[pl.DataFrame | None] = [
            pl.concat([part, phone, consent_job.result()], how="horizontal")
            for part, phone, consent_job in zip(parts, phones, consent_jobs, strict=True)
        ]
        del parts, phones, consent_jobs
        evidence = evidence_job.result()
        coverage = coverage_job.result()
    cleaned, changes, report = output_paths(path, options.out_dir)
    rows, notable = _decide_and_write(
        table, chunks, evidence, coverage, options, batch, (cleaned, changes)
    )
    stale = coverage.end is not None and now - coverage.end > STALE_AFTER
    return CleanResult(
        table=table,
        rows=rows,
        notable=notable,
        coverage=coverage,
        options=options,
        cleaned_path=cleaned,
        changes_path=changes,
        report_path=report if options.report else None,
        warnings=_warnings(history, coverage, now, stale),
        stale_history=stale,
    )


def _parse_consent(values: pl.DataFrame, options: CleanOptions, now: datetime) -> pl.DataFrame:
    parsed = parse_consent(
        values.get_column("consent"), options.consent_timezone, options.consent_format
    )
    return reject_future(parsed, now)


def _decide_and_write(
    table: ContactTable,
    chunks: list[pl.DataFrame | None],
    evidence: pl.DataFrame,
    coverage: Coverage,
    options: CleanOptions,
    batch: OutputBatch | None,
    targets: tuple[Path, Path],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decide slice by slice; stream each slice's cleaned rows and changes to the batch."""
    cleaned_path, changes_path = targets
    flag = options.mode == "flag"
    rows: list[pl.DataFrame] = []
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
        first = 0
        for piece, chunk in enumerate(_pieces(chunks, evidence, lookups)):
            decided = decide_rows(chunk, evidence, coverage.start, options.actions)
            rows_part = chunk.select(CONTACT_COLUMNS).with_columns(decided.verdict, decided.action)
            del chunk
            stop = first + rows_part.height
            while len(in_flight) >= WRITE_AHEAD:
                for job in in_flight.popleft():
                    job.result()
            jobs: list[Future[None]] = []
            if changes_out is not None:
                jobs.append(
                    changes_writer.submit(changes_out, write_changes, decided.notable, piece == 0)
                )
            if cleaned_out is not None:
                keep = np.ones(rows_part.height, dtype=bool) if flag else _kept(rows_part)
                extra = _flag_extra(with_details(rows_part, decided)) if flag else None
                jobs.append(
                    cleaned_writer.submit(
                        cleaned_out, write_csv_rows, table.csv, first, stop, keep, extra
                    )
                )
            in_flight.append(jobs)
            rows.append(rows_part)
            notable.append(
                decided.notable.filter((pl.col("verdict") != "ok") | pl.col("reason").is_not_null())
            )
            first = stop
        for jobs in in_flight:
            for job in jobs:
                job.result()
    all_rows = pl.concat(rows)
    all_notable = pl.concat(notable)
    if batch is not None and table.sheet is not None:
        sheet = table.sheet
        keep = np.ones(all_rows.height, dtype=bool) if flag else _kept(all_rows)
        extra = _flag_extra(_assembled(all_rows, all_notable)) if flag else None
        batch.add(
            cleaned_path,
            lambda temporary: write_xlsx_cleaned(
                table.path, sheet, table.row_count, keep, extra, temporary
            ),
            last=True,
        )
    return all_rows, all_notable


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
    chunks: list[pl.DataFrame | None], evidence: pl.DataFrame, pool: ThreadPoolExecutor
) -> Iterator[pl.DataFrame]:
    """The chunks in slices of DECIDE_ROWS, each row with its ``evidence_row``.

    A chunk's rows are looked up in the evidence on ``pool`` while the chunk before is
    being decided; each chunk is let go once it is sliced.
    """

    def look_up(index: int) -> Future[pl.Series] | None:
        chunk = chunks[index] if index < len(chunks) else None
        if chunk is None:
            return None
        return pool.submit(evidence_rows, chunk.get_column("phone_key"), evidence)

    upcoming = look_up(0)
    for index, chunk in enumerate(chunks):
        if chunk is None or upcoming is None:
            raise RuntimeError("a chunk was decided twice")
        chunks[index] = None
        found = upcoming.result()
        upcoming = look_up(index + 1)
        chunk = chunk.with_columns(found)
        for offset in range(0, chunk.height, DECIDE_ROWS):
            yield chunk.slice(offset, DECIDE_ROWS)


def _warnings(history: History, coverage: Coverage, now: datetime, stale: bool) -> list[str]:
    warnings = list(history.warnings)
    if stale and coverage.end is not None:
        age = (now - coverage.end).days
        warnings.append(
            f"the history is stale: it ends {coverage.end:%Y-%m-%d} ({age} days ago); "
            "run `reconcile fetch`"
        )
    for operator in coverage.operators:
        for gap_start, gap_end in operator.gaps:
            warnings.append(
                f"gap in {operator.network}'s history from {gap_start:%Y-%m-%d} to "
                f"{gap_end:%Y-%m-%d}: a deactivation then would be missed"
            )
    warnings.extend(coverage.missing_reports)
    return warnings


def _check_targets(paths: Sequence[Path], options: CleanOptions) -> None:
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
            if target.exists() and not options.force:
                existing.append(str(target))
    if existing:
        shown = ", ".join(existing[:3]) + (" …" if len(existing) > 3 else "")
        raise OutputError(f"output already exists: {shown}; pass --force to replace it.")


def _flag_extra(decisions: pl.DataFrame) -> pl.DataFrame:
    return _as_text(add_e164(decisions)).select(
        [pl.col(source).alias(name) for name, source in FLAG_COLUMNS.items()]
    )


def _add_workbook(result: CleanResult, history: History, batch: OutputBatch, now: datetime) -> None:
    info = RunInfo(
        tool_version=version(),
        run_at=now,
        history_source=history.description,
        ledger_last_sync=history.last_sync,
        options=result.options.described(),
    )
    if result.report_path is not None:
        batch.add(
            result.report_path,
            lambda temporary: write_audit_workbook(result, history, info, temporary),
        )


def clean_files(
    paths: Sequence[Path], history: History, options: CleanOptions, now: datetime
) -> list[CleanResult]:
    """Reconcile every file and write its outputs; on any error nothing is written.

    Outputs are written as temporary files while the files are decided, and renamed into
    place only once every file succeeded.
    """
    options.validate()
    _check_targets(paths, options)
    created: Path | None = None
    if options.out_dir is not None and not options.out_dir.is_dir():
        try:
            options.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(
                f"--out-dir {options.out_dir}: cannot create the folder ({error.strerror})."
            ) from None
        created = options.out_dir
    batch = OutputBatch()
    try:
        results = [reconcile_file(path, history, options, now, batch) for path in paths]
        for result in results:
            _add_workbook(result, history, batch, now)
    except BaseException:
        batch.discard()
        if created is not None:
            with contextlib.suppress(OSError):
                created.rmdir()  # only if still empty
        raise
    batch.commit()
    return results
