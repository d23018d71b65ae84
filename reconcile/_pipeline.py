"""The schedule of a clean: pieces of a contact file through the decision and out.

Memory holds a piece or two, never the file: a piece (at most PIECE_ROWS rows, or one
CSV block) is prepared on a thread of its own (its values read, its numbers found, its
consent parsed, its numbers' events looked up in the history) while the piece before
it is decided, DECIDE_ROWS rows at a time; each decided slice goes to the change list
and the cleaned CSV on a thread per output, in order, with WRITE_AHEAD slices at most
waiting. What is decided is pure (`rows.decide_piece`); what is kept of it is the
caller's (``receive``).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from reconcile._atomic import sync_data
from reconcile.changelist import write_changes
from reconcile.consent import parse_consent, reject_future
from reconcile.contacts import ContactTable, Piece
from reconcile.csv_writing import write_csv_rows
from reconcile.evidence import EVIDENCE_ROW, evidence_rows, number_evidence
from reconcile.modes import FLAG_COLUMNS, blank_cells, flag_columns
from reconcile.options import CleanOptions
from reconcile.phones import find_numbers
from reconcile.results import kept_mask
from reconcile.rows import DecidedPiece, decide_piece, piece_entries

__all__ = [
    "DECIDE_ROWS",
    "PIECE_ROWS",
    "Prepared",
    "Slice",
    "decide_file",
    "evidence_group",
    "numbers_and_consent",
]

# Rows prepared at once (a CSV block holds fewer when its rows are long).
PIECE_ROWS = 1_000_000
# Rows decided at once: while one slice is decided, the one before is being written.
DECIDE_ROWS = 250_000
# Pieces whose numbers' events are read in one pass over the history: a pass costs as
# much for one piece as for two, and grows with the events (0.6 s at 50M, 1.1 s at 70M),
# so a larger history gets larger groups, one more piece for every EVENTS_PER_GROUP
# events, from 2 to MAX_EVIDENCE_GROUP (memory holds the group being prepared).
EVIDENCE_GROUP = 2
EVENTS_PER_GROUP = 25_000_000
MAX_EVIDENCE_GROUP = 4


def evidence_group(events: int) -> int:
    """How many pieces share a pass over a history of ``events`` events."""
    return min(max(EVIDENCE_GROUP, -(-events // EVENTS_PER_GROUP)), MAX_EVIDENCE_GROUP)


# Decided slices that may wait to be written (each writer keeps them in order).
WRITE_AHEAD = 3
SETTLE_BYTES = 16 << 20


@dataclass(frozen=True)
class Prepared:
    """A piece ready to decide: its rows (``row``, ``consent``, ``id``, included columns,
    the parsed consent), its numbers (each with its ``evidence_row``) and their
    evidence."""

    piece: Piece
    rows: pl.DataFrame
    entries: pl.DataFrame
    evidence: pl.DataFrame


@dataclass(frozen=True)
class Slice:
    """A decided slice: where its rows start in the file (``first``), its numbers
    (``entries``), its rows' consent as parsed (``rows``) and the decision."""

    first: int
    rows: pl.DataFrame
    entries: pl.DataFrame
    decided: DecidedPiece


def prepare(
    pieces: list[Piece], events: pl.LazyFrame, options: CleanOptions, now: datetime
) -> list[Prepared]:
    """Find the pieces' numbers and parse their consent (side by side), then read the
    history's events of those numbers only, in one pass for all of them."""
    found = [_numbers_and_consent(piece, options, now) for piece in pieces]
    keys = pl.concat([entries.get_column("phone_key") for _piece, _rows, entries in found])
    evidence = number_evidence(keys, events)
    del keys
    return [
        Prepared(
            piece,
            rows,
            entries.with_columns(
                evidence_rows(entries.get_column("phone_key"), evidence).rename(EVIDENCE_ROW)
            ),
            evidence,
        )
        for piece, rows, entries in found
    ]


def _numbers_and_consent(
    piece: Piece, options: CleanOptions, now: datetime
) -> tuple[Piece, pl.DataFrame, pl.DataFrame]:
    # the prepared piece keeps what it decides with, not the values read
    rows, entries = numbers_and_consent(piece.values, options, now)
    return replace(piece, values=piece.values.clear()), rows, entries


def numbers_and_consent(
    values: pl.DataFrame, options: CleanOptions, now: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of ``values`` (``row``, ``phone_0``..., ``consent``, ``id``, included
    columns) with their consent parsed, and their numbers (`rows.piece_entries`): the
    numbers found while the consent is parsed beside them."""
    phones = [column for column in values.columns if column.startswith("phone_")]
    with ThreadPoolExecutor(max_workers=1) as pool:
        consent_job = pool.submit(_parse_consent, values, options, now)
        numbers = find_numbers([values.get_column(name) for name in phones], options.default_region)
        consent = consent_job.result()
    rows = pl.concat(
        [values.select("row", "consent", "id", pl.col("^include_.*$")), consent],
        how="horizontal",
    )
    return rows, piece_entries(rows, numbers)


def _parse_consent(values: pl.DataFrame, options: CleanOptions, now: datetime) -> pl.DataFrame:
    parsed = parse_consent(
        values.get_column("consent"), options.consent_timezone, options.consent_format
    )
    return reject_future(parsed, now)


def _slices(
    prepared: Prepared, coverage_start: datetime | None, options: CleanOptions, columns: list[str]
) -> Iterator[Slice]:
    """A prepared piece decided DECIDE_ROWS rows at a time."""
    rows, entries = prepared.rows, prepared.entries
    index = entries.get_column("index").to_numpy()
    row_text = rows.select("consent", "id", pl.col("^include_.*$"))
    for offset in range(0, rows.height, DECIDE_ROWS):
        stop = min(offset + DECIDE_ROWS, rows.height)
        begin, end = (int(place) for place in np.searchsorted(index, [offset, stop]))
        part = entries.slice(begin, end - begin)
        part_rows = rows.slice(offset, stop - offset)
        decided = decide_piece(
            part_rows, part, row_text, prepared.evidence, coverage_start, options.actions, columns
        )
        yield Slice(prepared.piece.first + offset, part_rows, part, decided)


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


def decide_file(
    table: ContactTable,
    events: pl.LazyFrame,
    history_events: int,
    coverage_start: Callable[[], datetime | None],
    options: CleanOptions,
    now: datetime,
    changes_stream: BinaryIO | None,
    cleaned_stream: BinaryIO | None,
    receive: Callable[[Slice], None],
) -> None:
    """Decide every row of ``table``, piece by piece, writing the change list and (for a
    CSV file) the cleaned rows to the streams given; ``receive`` sees every decided slice,
    in file order, on this thread. ``coverage_start`` is asked for once the first piece
    is prepared (the history's coverage is worked out beside it); ``history_events``
    (about how many events ``events`` holds) sizes the groups of pieces a pass serves."""
    mode = options.mode
    columns = list(table.phone_columns)
    pieces = table.pieces(PIECE_ROWS)

    def prepare_next(count: int) -> list[Prepared]:
        group = list(itertools.islice(pieces, count))
        return prepare(group, events, options, now) if group else []

    with contextlib.ExitStack() as stack:
        stack.callback(table.close)
        stack.callback(pieces.close)
        preparer = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        changes_writer = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        cleaned_writer = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        changes_out = _Settling(changes_stream) if changes_stream is not None else None
        cleaned_out = _Settling(cleaned_stream) if cleaned_stream is not None else None
        in_flight: collections.deque[list[Future[None]]] = collections.deque()
        header = True
        # the first piece alone (deciding starts early), then group_size pieces a pass
        # over the history's events
        group_size = evidence_group(history_events)
        upcoming = preparer.submit(prepare_next, 1)
        start: datetime | None = None
        asked = False
        while group := upcoming.result():
            if not asked:
                start, asked = coverage_start(), True
            while group:
                prepared = group.pop(0)  # let each piece go once it is decided
                if not group:
                    # the next group is prepared while this group's last piece is decided
                    upcoming = preparer.submit(prepare_next, group_size)
                piece = prepared.piece
                if prepared.rows.height == 0 and cleaned_out is not None and piece.source:
                    # a CSV block of blank lines: its writer still writes the header or
                    # the footer
                    extra = pl.DataFrame(schema=dict.fromkeys(FLAG_COLUMNS, pl.String))
                    in_flight.append(
                        [
                            cleaned_writer.submit(
                                cleaned_out,
                                write_csv_rows,
                                piece.source,
                                piece.block_first,
                                piece.block_first,
                                np.ones(0, dtype=bool),
                                extra if mode == "flag" else None,
                                {} if mode == "blank" else None,
                            )
                        ]
                    )
                for decided in _slices(prepared, start, options, columns):
                    while len(in_flight) >= WRITE_AHEAD:
                        for job in in_flight.popleft():
                            job.result()
                    jobs: list[Future[None]] = []
                    if changes_out is not None:
                        jobs.append(
                            changes_writer.submit(
                                changes_out,
                                write_changes,
                                decided.decided.details,
                                header,
                                table.include_columns,
                            )
                        )
                        header = False
                    if cleaned_out is not None and piece.source is not None:
                        jobs.append(
                            cleaned_writer.submit(
                                cleaned_out, write_csv_rows, *_csv_slice(piece, decided, mode)
                            )
                        )
                    in_flight.append(jobs)
                    receive(decided)
                del prepared, piece
        for jobs in in_flight:
            for job in jobs:
                job.result()


def _csv_slice(piece: Piece, decided: Slice, mode: str) -> tuple[Any, ...]:
    """`write_csv_rows`'s arguments (after the stream) for one decided slice."""
    rows = decided.decided.rows
    first = piece.block_first + decided.first - piece.first
    keep = kept_mask(rows) if mode == "strip" else np.ones(rows.height, dtype=bool)
    extra = flag_columns(decided.entries, decided.decided) if mode == "flag" else None
    blank = blank_cells(decided.entries, decided.decided) if mode == "blank" else None
    return (piece.source, first, first + rows.height, keep, extra, blank)
