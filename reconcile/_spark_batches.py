"""What Spark's executors run on each Arrow batch: the single-machine functions, unchanged.

Nothing here imports pyspark: each function takes Arrow record batches and yields Arrow
record batches, and `spark` hands them to ``mapInArrow``. The rules are not written
again: numbers are found by `phones.find_numbers`, consent is parsed and rows decided by
`_pipeline.numbers_and_consent` and `rows.decide_piece`, the evidence is
`evidence.events_evidence`, the change list is `changelist.changes_frame` and the modes
are `modes.flag_columns` / `modes.blank_cells`, exactly as a CSV piece on one machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import polars as pl
import pyarrow as pa

from reconcile._pipeline import numbers_and_consent
from reconcile.changelist import CHANGE_COLUMNS, changes_frame, included_names
from reconcile.clean import date_columns
from reconcile.columns import ChosenColumns, ColumnChoice, MissingConsentColumn, choose_columns
from reconcile.consent import UNPARSEABLE
from reconcile.errors import (
    ColumnError,
    EncodingError,
    InputError,
    MalformedCSVError,
    ReconcileError,
)
from reconcile.evidence import (
    EVIDENCE_EVENT_COLUMNS,
    EVIDENCE_ROW,
    events_evidence,
    evidence_rows,
)
from reconcile.modes import FLAG_COLUMNS, blank_cells, flag_columns
from reconcile.options import CleanOptions
from reconcile.phones import find_numbers
from reconcile.rows import DecidedPiece, decide_piece
from reconcile.verdicts import VERDICTS

__all__ = [
    "CHANGES",
    "EVIDENCE",
    "EVIDENCE_SCHEMA",
    "FILE",
    "NUMBER_COUNTS",
    "ROW",
    "UNREADABLE",
    "Layout",
    "choose",
    "decide_batches",
    "decided_schema",
    "extra_fields",
    "file_name",
    "number_rows",
    "partition_evidence",
    "row_keys",
]

# The columns a Spark clean adds to the contacts: where each row comes from.
FILE = "reconcile_file"
ROW = "reconcile_row"
# Internal columns between the stages (never written to an output).
EVIDENCE = "__evidence"
CHANGES = "__changes"
ORDER_PART, ORDER_INDEX = "__part", "__index"
UNREADABLE = "__consent_unreadable"
NUMBER_COUNTS = tuple(f"__numbers_{verdict}" for verdict in VERDICTS)
_UTC = pa.timestamp("us", tz="UTC")
# `evidence.number_evidence`'s columns, as Spark holds them (numbers as signed longs: an
# E.164 number has at most 15 digits)
EVIDENCE_SCHEMA = pa.schema(
    [
        ("number", pa.int64()),
        ("latest_at", _UTC),
        ("suspended", pa.bool_()),
        ("suspended_report", pa.string()),
        ("suspended_network", pa.string()),
        ("deact_type", pa.string()),
        ("deact_at", _UTC),
        ("deact_new", pa.int64()),
        ("deact_report", pa.string()),
        ("deact_network", pa.string()),
        ("deact_day_only", pa.bool_()),
        ("deact_detail", pa.string()),
    ]
)
KEYS_SCHEMA = pa.schema([(FILE, pa.string()), (ROW, pa.int64()), ("number", pa.int64())])
ANSWER_SCHEMA = pa.schema([(FILE, pa.string()), ("answer", pa.string())])
_ERROR_KINDS: dict[str, type[InputError]] = {
    "EncodingError": EncodingError,
    "MalformedCSVError": MalformedCSVError,
    "ColumnError": ColumnError,
    "InputError": InputError,
}


@dataclass(frozen=True)
class Layout:
    """Which contact columns a clean reads: the text of each phone column, of the
    consent, the id and the included columns (by the name of the column holding it as
    text), and every contact column kept in the output (by its place, ``__c0``..., and
    by its name in the file)."""

    phones: tuple[str, ...]
    phone_columns: tuple[str, ...]
    phone_texts: tuple[str, ...]
    consent_text: str
    id_text: str | None
    include: tuple[str, ...]
    include_texts: tuple[str, ...]
    contact_columns: tuple[str, ...]
    contact_names: tuple[str, ...]
    check_utf8: bool
    # each file's phone columns (places in ``phones``), when the files differ: one
    # machine finds phone columns by content file by file
    phone_sets: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def of_file(self, file: str) -> Layout:
        """The layout of one file: only its own phone columns (every one for a file not
        met when the columns were chosen: the safe side)."""
        places = self.phone_sets.get(file)
        if places is None or len(places) == len(self.phones):
            return self
        return replace(
            self,
            phones=tuple(self.phones[place] for place in places),
            phone_columns=tuple(self.phone_columns[place] for place in places),
            phone_texts=tuple(self.phone_texts[place] for place in places),
            phone_sets={},
        )


def _by_file(batch: pa.RecordBatch, layout: Layout) -> Iterator[tuple[pa.RecordBatch, Layout]]:
    """A batch in parts of one file each, with that file's layout (the whole batch when
    every file has the same phone columns)."""
    if len(set(layout.phone_sets.values())) <= 1:
        yield batch, layout
        return
    files = pl.Series(batch.column(FILE)).cast(pl.String)
    for file in files.unique(maintain_order=True).to_list():
        yield batch.filter((files == file).to_arrow()), layout.of_file(file)


def _text(batch: pa.RecordBatch, name: str) -> pl.Series:
    """A column's text, with an empty cell as the CSV reader on one machine gives it."""
    series = pl.Series(name, batch.column(name))
    return series.cast(pl.String).fill_null("")


def file_name(file: str) -> str:
    """A file's name as a person reads it (Spark gives a percent-encoded URI)."""
    return Path(unquote(file)).name


def _frame(batches: list[pa.RecordBatch]) -> pl.DataFrame | None:
    """Record batches as one frame (None: no batch came)."""
    if not batches:
        return None
    frame = pl.from_arrow(pa.Table.from_batches(batches))
    assert isinstance(frame, pl.DataFrame)  # a table gives a frame
    return frame


def _table(frame: pl.DataFrame, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    yield from frame.to_arrow().cast(schema).to_batches()


def number_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each row's number in its file (1 for the first data row), for rows that come in
    file order, each file whole (a CSV file read with ``multiLine`` is never split)."""
    seen: dict[str, int] = {}
    for batch in batches:
        files = pl.Series(FILE, batch.column(FILE)).cast(pl.String)
        frame = pl.DataFrame({FILE: files}).with_columns(
            place=pl.int_range(pl.len(), dtype=pl.Int64).over(FILE)
        )
        before = pl.Series([seen.get(name, 0) for name in files.to_list()], dtype=pl.Int64)
        rows = frame.get_column("place") + before + 1
        for name, count in frame.group_by(FILE).len().iter_rows():
            seen[name] = seen.get(name, 0) + int(count)
        yield batch.append_column(ROW, rows.to_arrow().cast(pa.int64()))


def choose(
    batches: Iterator[pa.RecordBatch],
    header: Sequence[str],
    choice: ColumnChoice,
    options: CleanOptions,
) -> Iterator[pa.RecordBatch]:
    """`columns.choose_columns` for each file, on its first CONTENT_ROWS rows (every row
    of a file is in one partition), as one machine chooses them file by file: one JSON
    answer a file, the chosen columns or the error to raise."""
    frame = _frame(list(batches))
    if frame is None or frame.height == 0:
        return
    frame = frame.sort(FILE, ROW)
    for (file,), rows in frame.group_by(FILE, maintain_order=True):
        values = rows.drop(FILE, ROW)
        answer = answer_of(str(file), header, values, choice, options)
        yield pa.RecordBatch.from_pylist(
            [{FILE: str(file), "answer": answer}], schema=ANSWER_SCHEMA
        )


def answer_of(
    file: str,
    header: Sequence[str],
    values: pl.DataFrame,
    choice: ColumnChoice,
    options: CleanOptions,
) -> str:
    """The columns chosen from a file's first rows (``values``, by place), as JSON."""
    frame = values.select(pl.all().cast(pl.String))

    def sample(indexes: Sequence[int]) -> list[pl.Series]:
        return [frame.to_series(index) for index in indexes]

    name = file_name(file) or "contacts"
    try:
        chosen = choose_columns(Path(name), list(header), choice, sample)
        answer: dict[str, object] = {"chosen": asdict(chosen)}
    except MissingConsentColumn as error:
        found = {column: frame.to_series(place).to_list() for place, column in enumerate(header)}
        answer = {"error": str(error.with_date_columns(date_columns(found, options)))}
    except ReconcileError as error:
        answer = {"error": str(error)}
    return json.dumps(answer)


def chosen_from(answer: str) -> ChosenColumns | str:
    """`choose`'s answer: the columns, or the error's message."""
    read = json.loads(answer)
    if "error" in read:
        return str(read["error"])
    chosen = read["chosen"]
    return ChosenColumns(
        phones=tuple(chosen["phones"]),
        consent=chosen["consent"],
        id=chosen["id"],
        include=tuple(chosen["include"]),
        by_content=tuple(chosen["by_content"]),
        not_checked=tuple((str(pair[0]), str(pair[1])) for pair in chosen["not_checked"]),
    )


def row_keys(
    batches: Iterator[pa.RecordBatch], layout: Layout, region: str
) -> Iterator[pa.RecordBatch]:
    """Every valid number of each row, once per row: (file, row, number)."""
    for whole in batches:
        if whole.num_rows == 0:
            continue
        if layout.check_utf8:
            _refuse_replacement_characters(whole, layout)
        yield from (
            _keys(batch, its_layout, region) for batch, its_layout in _by_file(whole, layout)
        )


def _keys(batch: pa.RecordBatch, layout: Layout, region: str) -> pa.RecordBatch:
    numbers = find_numbers([_text(batch, name) for name in layout.phone_texts], region)
    found = numbers.select("index", "phone_key").drop_nulls("phone_key").unique(maintain_order=True)
    index = found.get_column("index")
    keys = pl.DataFrame(
        {
            FILE: pl.Series(batch.column(FILE)).cast(pl.String).gather(index),
            ROW: pl.Series(batch.column(ROW)).cast(pl.Int64).gather(index),
            "number": found.get_column("phone_key").cast(pl.Int64),
        }
    )
    return pa.RecordBatch.from_arrays(
        [keys.get_column(f.name).to_arrow().cast(f.type) for f in KEYS_SCHEMA],
        schema=KEYS_SCHEMA,
    )


def _refuse_replacement_characters(batch: pa.RecordBatch, layout: Layout) -> None:
    """Spark reads bytes that are not UTF-8 as U+FFFD: a cell would lose its text."""
    for name, shown in zip(layout.contact_columns, layout.contact_names, strict=True):
        column = pl.Series(batch.column(name))
        if column.dtype != pl.String:
            continue
        bad = column.str.contains("\ufffd", literal=True).fill_null(False)
        if bool(bad.any()):
            at = int(bad.arg_true()[0])
            file = str(batch.column(FILE)[at])
            row = int(batch.column(ROW)[at].as_py())
            raise EncodingError(
                f"{file_name(file)}: row {row}, column {shown!r} is not UTF-8 text; give "
                "the file's encoding with --encoding (for example windows-1252)."
            )


def partition_evidence(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`evidence.events_evidence` of one partition's events (every event of a number is
    in the same partition), read in the history's own order so the same event reported
    twice cites the same report as on one machine."""
    frame = _frame(list(batches))
    if frame is None or frame.height == 0:
        return
    events = (
        frame.sort(ORDER_PART, ORDER_INDEX)
        .select(EVIDENCE_EVENT_COLUMNS)
        .with_columns(pl.col("number", "new_number").cast(pl.UInt64))
    )
    evidence = events_evidence(events).with_columns(
        pl.col("number", "deact_new").cast(pl.Int64), pl.col("deact_type").cast(pl.String)
    )
    yield from _table(evidence.select(EVIDENCE_SCHEMA.names), EVIDENCE_SCHEMA)


def _row_evidence(column: pa.Array) -> pl.DataFrame:
    """The evidence lists of a batch's rows as one `number_evidence` frame."""
    listed = pl.Series("evidence", column)
    found = listed.explode().drop_nulls()
    if found.len() == 0:
        frame = pl.DataFrame(schema=pl.from_arrow(EVIDENCE_SCHEMA.empty_table()).schema)  # type: ignore[union-attr]
    else:
        frame = found.struct.unnest()
    return (
        frame.unique("number", keep="first")
        .sort("number")
        .with_columns(pl.col("number", "deact_new").cast(pl.UInt64))
    )


def spark_included_names(include: Sequence[str]) -> list[str]:
    """`changelist.included_names`, and ``file`` (Spark's own first column) kept apart."""
    return [
        f"{name} (contact)" if name.lower() == "file" else name for name in included_names(include)
    ]


def changes_type(include: Sequence[str]) -> pa.DataType:
    """One change-list line (SPEC's columns, then the included ones) as Arrow holds it."""
    fields = [(name, pa.int64() if name == "row" else pa.string()) for name in CHANGE_COLUMNS]
    fields += [(name, pa.string()) for name in spark_included_names(include)]
    return pa.list_(pa.struct(fields))


def extra_fields(layout: Layout) -> list[pa.Field]:
    """What a decided row has beyond its contact columns: where it comes from, the flag
    columns, its change-list lines, its numbers' counts and whether its consent read."""
    fields = [pa.field(FILE, pa.string()), pa.field(ROW, pa.int64())]
    fields += [pa.field(name, pa.string()) for name in FLAG_COLUMNS]
    fields += [pa.field(CHANGES, changes_type(layout.include))]
    fields += [pa.field(name, pa.int64()) for name in NUMBER_COUNTS]
    fields.append(pa.field(UNREADABLE, pa.bool_()))
    return fields


def decided_schema(contacts: pa.Schema, layout: Layout) -> pa.Schema:
    """The decided rows: the contact columns as Spark sent them, then `extra_fields`."""
    return pa.schema(
        [contacts.field(name) for name in layout.contact_columns] + extra_fields(layout)
    )


def decide_batches(
    batches: Iterator[pa.RecordBatch],
    layout: Layout,
    options: CleanOptions,
    now: datetime,
    coverage_start: datetime | None,
) -> Iterator[pa.RecordBatch]:
    """Every row of each batch decided as one machine decides a piece: its numbers and
    consent (`_pipeline.numbers_and_consent`), its evidence (joined by Spark), the
    decision (`rows.decide_piece`), the mode's change to the row and its change-list
    lines."""
    for whole in batches:
        if whole.num_rows == 0:
            continue
        for batch, its_layout in _by_file(whole, layout):
            yield _decide(batch, its_layout, options, now, coverage_start)


def _decide(
    batch: pa.RecordBatch,
    layout: Layout,
    options: CleanOptions,
    now: datetime,
    coverage_start: datetime | None,
) -> pa.RecordBatch:
    values = pl.DataFrame(
        {
            "row": pl.Series(batch.column(ROW)).cast(pl.Int64),
            **{f"phone_{i}": _text(batch, name) for i, name in enumerate(layout.phone_texts)},
            "consent": _text(batch, layout.consent_text),
            "id": _text(batch, layout.id_text)
            if layout.id_text is not None
            else pl.repeat(None, batch.num_rows, dtype=pl.String, eager=True),
            **{f"include_{i}": _text(batch, name) for i, name in enumerate(layout.include_texts)},
        }
    )
    rows, entries = numbers_and_consent(values, options, now)
    evidence = _row_evidence(batch.column(EVIDENCE))
    entries = entries.with_columns(
        evidence_rows(entries.get_column("phone_key"), evidence).rename(EVIDENCE_ROW)
    )
    row_text = rows.select("consent", "id", pl.col("^include_.*$"))
    piece = decide_piece(
        rows, entries, row_text, evidence, coverage_start, options.actions, layout.phones
    )
    schema = decided_schema(batch.schema, layout)
    return _decided_batch(batch, layout, schema, options.mode, rows, entries, piece)


def _decided_batch(
    batch: pa.RecordBatch,
    layout: Layout,
    schema: pa.Schema,
    mode: str,
    rows: pl.DataFrame,
    entries: pl.DataFrame,
    piece: DecidedPiece,
) -> pa.RecordBatch:
    height = batch.num_rows
    columns = {name: batch.column(name) for name in layout.contact_columns}
    if mode == "blank":
        emptied = blank_cells(entries, piece)
        for place, name in enumerate(layout.phone_columns):
            mask = np.zeros(height, dtype=bool)
            for row, indexes in emptied.items():
                if place in indexes:
                    mask[row] = True
            if mask.any():
                column = columns[name]
                columns[name] = pa.compute.if_else(
                    pa.array(mask), pa.scalar(None, column.type), column
                )
    flags = flag_columns(entries, piece)
    index = entries.get_column("index")
    details = piece.details.filter(pl.col("verdict") != "ok")
    lines = changes_frame(details, layout.include)
    lines.columns = [*lines.columns[: len(CHANGE_COLUMNS)], *spark_included_names(layout.include)]
    lines = lines.with_columns(pl.col("row").cast(pl.Int64), pl.exclude("row").cast(pl.String))
    grouped = (
        pl.concat([details.select("index"), lines], how="horizontal")
        .group_by("index", maintain_order=True)
        .agg(pl.struct(lines.columns).alias(CHANGES))
    )
    per_row = (
        pl.DataFrame({"index": pl.int_range(height, eager=True, dtype=pl.UInt32)})
        .join(grouped, on="index", how="left", maintain_order="left")
        .get_column(CHANGES)
    )
    counted = (
        pl.DataFrame({"index": index, "verdict": piece.numbers.get_column("verdict")})
        .filter(entries.get_column("column").is_not_null())
        .group_by("index")
        .agg(
            (pl.col("verdict") == verdict).sum().alias(name)
            for verdict, name in zip(VERDICTS, NUMBER_COUNTS, strict=True)
        )
    )
    counts = (
        pl.DataFrame({"index": pl.int_range(height, eager=True, dtype=pl.UInt32)})
        .join(counted, on="index", how="left", maintain_order="left")
        .select(pl.col(NUMBER_COUNTS).fill_null(0).cast(pl.Int64))
    )
    arrays: list[pa.Array] = [columns[name] for name in layout.contact_columns]
    arrays += [batch.column(FILE), batch.column(ROW)]
    arrays += [flags.get_column(name).to_arrow() for name in FLAG_COLUMNS]
    arrays.append(per_row.to_arrow())
    arrays += [counts.get_column(name).to_arrow() for name in NUMBER_COUNTS]
    arrays.append((rows.get_column("consent_status") == UNPARSEABLE).to_arrow())
    return pa.RecordBatch.from_arrays(
        [array.cast(field.type) for array, field in zip(arrays, schema, strict=True)],
        schema=schema,
    )


def raised(message: str) -> ReconcileError | None:
    """The reconcile error an executor raised, from the text Spark passes on."""
    for line in reversed(message.splitlines()):
        for prefix in ("reconcile.errors.", ""):
            for name in _ERROR_KINDS:
                marker = f"{prefix}{name}: "
                if line.startswith(marker):
                    kind = _ERROR_KINDS.get(name, InputError)
                    return kind(line[len(marker) :])
    return None
