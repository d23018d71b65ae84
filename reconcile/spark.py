"""The Spark engine: ``reconcile clean --engine spark``, and `clean_frame` for notebooks.

The decisions are the single-machine ones, run per Arrow batch on the executors
(`_spark_batches`); Spark only moves the rows and joins the evidence::

    contacts (CSV or Parquet files: `read_contacts`)   history (the ledger's Parquet
      | each row's file and row number                   files, or change files)
      | mapInArrow row_keys: (file, row, number)           | repartition by number
      |                                                    | mapInArrow partition_evidence
      +------ join on number (broadcast when small) -------+
      | group by (file, row): the row's evidence as a list
      | left join back to the rows on (file, row)
      | mapInArrow decide_batches (rows.decide_piece, the mode, the change list)
      v
    decided rows -> NAME.cleaned (CSV or Parquet), NAME.changes (CSV), counts

Nothing but counts and the column choice comes back to the driver.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from reconcile import _spark_batches as batches
from reconcile._csvscan import delimiter_candidates
from reconcile._spark_batches import (
    CHANGES,
    FILE,
    NUMBER_COUNTS,
    ROW,
    UNREADABLE,
    Layout,
)
from reconcile._spark_session import (
    DataFrame,
    F,
    SparkSession,
    StorageLevel,
    T,
    hadoop,
    header_line,
    java_charset,
    literal_path,
    session,
    spark_errors,
    spark_schema,
)
from reconcile.changelist import CHANGE_COLUMNS
from reconcile.column_words import CONTENT_ROWS
from reconcile.columns import ChosenColumns
from reconcile.contacts import CSV_SUFFIXES
from reconcile.errors import InputError
from reconcile.evidence import EVIDENCE_EVENT_COLUMNS
from reconcile.history import History, conform_events
from reconcile.modes import FLAG_COLUMNS
from reconcile.options import CleanOptions
from reconcile.verdicts import DROPPED_ACTIONS

_PARQUET_SUFFIXES = frozenset({".parquet"})

__all__ = [
    "SPARK_CHANGE_COLUMNS",
    "change_lines",
    "clean_frame",
    "cleaned_frame",
    "decided_rows",
    "header_delimiter",
    "history_events",
    "path_kind",
    "public_columns",
    "read_contacts",
    "session",
]


def path_kind(spark: SparkSession, path: str) -> str:
    """``csv`` or ``parquet``: what the file is, or every file in the folder."""
    fs, where = hadoop(spark, path)
    if not fs.exists(where):
        raise InputError(f"{path}: no such file or folder.")
    if fs.getFileStatus(where).isDirectory():
        names = [
            status.getPath().getName()
            for status in fs.listStatus(where)
            if not status.isDirectory() and not status.getPath().getName().startswith(("_", "."))
        ]
    else:
        names = [where.getName()]
    suffixes = {Path(name).suffix.lower() for name in names}
    if suffixes and suffixes <= CSV_SUFFIXES:
        return "csv"
    if suffixes and suffixes <= _PARQUET_SUFFIXES:
        return "parquet"
    if not names:
        raise InputError(f"{path}: the folder holds no file; give CSV or Parquet files.")
    raise InputError(
        f"{path}: the Spark engine reads CSV files or Parquet files, one kind per folder "
        f"(found {', '.join(sorted(suffixes)) or 'files without a suffix'}); clean a "
        "workbook on one machine (without --engine spark)."
    )


def read_contacts(
    spark: SparkSession, path: str, options: CleanOptions, header: str | None = None
) -> DataFrame:
    """Contact rows of a CSV or Parquet file (or a folder of them), every CSV field as
    text, with each row's file (``reconcile_file``) and its number in that file
    (``reconcile_row``, 1 for the first data row). ``header``: the CSV files' header
    line (`header_line`), when it was read already."""
    if path_kind(spark, path) == "parquet":
        return spark.read.parquet(literal_path(path)).select(
            "*",
            F.col("_metadata.file_path").alias(FILE),
            (F.col("_metadata.row_index") + 1).alias(ROW),
        )
    charset = java_charset(options.encoding)
    if header is None:
        header = header_line(spark, path, charset)
    delimiter = options.delimiter or header_delimiter(header)
    [names] = list(csv.reader([header], delimiter=delimiter)) or [[]]
    _refuse_our_names(path, names)
    _refuse_twin_names(path, names)
    # Read by place with a schema of our own: Spark's header check names a column
    # without a name _cN and then finds it does not match (a pandas export's index
    # column has none); every file's header is checked against the first here instead.
    schema = T.StructType(
        [T.StructField(f"__c{place}", T.StringType()) for place in range(len(names))]
    )
    frame = (
        spark.read.options(
            header=True,
            # a quoted field may hold line breaks (CRM notes do), and a file is then read
            # whole by one task, in order: rows can be numbered
            multiLine=True,
            escape='"',
            mode="FAILFAST",
            enforceSchema=True,
            encoding=charset,
            sep=delimiter,
        )
        .schema(schema)
        .csv(literal_path(path))
    )
    frame = frame.withColumn(FILE, F.col("_metadata.file_path"))
    with_row = T.StructType([*frame.schema.fields, T.StructField(ROW, T.LongType())])
    # by place through Python (pyspark passes columns to it by name), then named again
    return frame.mapInArrow(batches.number_rows, with_row).toDF(*names, FILE, ROW)


def _refuse_our_names(path: str, names: Sequence[str]) -> None:
    """A contact column named as one the engine adds (a flagged output cleaned again)."""
    ours = {name.lower() for name in (FILE, ROW, *FLAG_COLUMNS)}
    clash = [name for name in names if name.strip().lower() in ours]
    if clash:
        raise InputError(
            f"{path}: the file has a column named {clash[0]!r}, which the Spark engine adds "
            "to what it writes (is it a flagged output?); clean the original file, or rename "
            "that column."
        )


def _refuse_twin_names(path: str, names: Sequence[str]) -> None:
    """Two columns of one name (in any case: Spark tells names apart without it)."""
    seen: dict[str, str] = {}
    for place, name in enumerate(names, start=1):
        key = name.strip().lower()
        if key in seen:  # Spark tells names apart without their case
            what = f"named {seen[key]!r} and {name!r}" if key else "without a name"
            raise InputError(
                f"{path}: two columns are {what} (the second is column {place}); rename one "
                "so each column can be told apart."
            )
        seen[key] = name


def header_delimiter(header: str) -> str:
    """The delimiter most frequent outside quotes in the header line."""
    return delimiter_candidates(header.encode())[0]


@dataclass(frozen=True)
class _Plan:
    """A contact frame's columns as a clean reads them."""

    chosen: ChosenColumns
    layout: Layout
    frame: DataFrame


def _plan(contacts: DataFrame, options: CleanOptions, name: str, check_utf8: bool) -> _Plan:
    """Choose the columns (on an executor, from the first CONTENT_ROWS rows) and add a
    text copy of each column that is not text already (a Parquet number or date)."""
    if FILE not in contacts.columns:
        contacts = contacts.withColumn(FILE, F.input_file_name())
    if ROW not in contacts.columns:  # a frame of a notebook's own making
        contacts = contacts.withColumn(ROW, F.monotonically_increasing_id() + 1)
    header = [c for c in contacts.columns if c not in (FILE, ROW)]
    _refuse_our_names(name, header)
    # every contact column goes by its place: a CRM's names may hold dots or backticks,
    # which pyspark cannot pass to Python by name; `decided_rows` gives the names back
    places = iter(range(len(header)))
    contacts = contacts.toDF(
        *[c if c in (FILE, ROW) else f"__c{next(places)}" for c in contacts.columns]
    )
    positional = [f"__c{place}" for place in range(len(header))]
    by_name = {column: positional[place] for place, column in reversed(list(enumerate(header)))}
    answers = _choices(contacts, positional, header, options, name)
    chosen = answers[min(answers)]
    # one machine finds phone columns by content file by file: each file keeps its own,
    # and a column any file holds numbers in is read for that file
    phones = tuple(c for c in header if any(c in other.phones for other in answers.values()))
    by_content = tuple(
        c for c in header if any(c in other.by_content for other in answers.values())
    )
    chosen = replace(chosen, phones=phones, by_content=by_content)
    phone_sets = {
        file: tuple(phones.index(c) for c in other.phones) for file, other in answers.items()
    }
    types = dict(contacts.dtypes)
    texts: dict[str, str] = {}
    for place, column in enumerate(
        [*chosen.phones, chosen.consent, *([chosen.id] if chosen.id else []), *chosen.include]
    ):
        if column in texts:
            continue
        if types[by_name[column]] == "string":
            texts[column] = by_name[column]
        else:
            texts[column] = f"__text_{place}"
            contacts = contacts.withColumn(
                texts[column], _as_text(F.col(by_name[column]), types[by_name[column]])
            )
    layout = Layout(
        phones=chosen.phones,
        phone_columns=tuple(by_name[c] for c in chosen.phones),
        phone_texts=tuple(texts[c] for c in chosen.phones),
        consent_text=texts[chosen.consent],
        id_text=texts[chosen.id] if chosen.id else None,
        include=chosen.include,
        include_texts=tuple(texts[c] for c in chosen.include),
        contact_columns=tuple(positional),
        contact_names=tuple(header),
        check_utf8=check_utf8,
        phone_sets=phone_sets,
    )
    return _Plan(chosen, layout, contacts)


def _as_text(column: Any, kind: str) -> Any:
    """A column that is not text, as the text one machine would read in a CSV file: an
    instant (``timestamp``) with its ``Z``, so the consent time zone never applies to it;
    a wall-clock time (``timestamp_ntz``) without, so it does."""
    if kind == "timestamp":  # the session's time zone is UTC
        return F.date_format(column, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'")
    if kind == "timestamp_ntz":
        return F.date_format(column, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")
    return column.cast("string")


def _choices(
    contacts: DataFrame,
    positional: list[str],
    header: list[str],
    options: CleanOptions,
    name: str,
) -> dict[str, ChosenColumns]:
    """Each file's columns, chosen on an executor from its first CONTENT_ROWS rows; the
    first file's error is raised, as one machine would stop at it."""
    first_rows = (
        contacts.where(F.col(ROW) <= CONTENT_ROWS)
        .select(FILE, ROW, *positional)
        .repartition(FILE)
        .mapInArrow(
            partial(batches.choose, header=header, choice=options.columns, options=options),
            spark_schema(list(batches.ANSWER_SCHEMA)),
        )
    )
    found = {row[FILE]: row["answer"] for row in spark_errors(name, first_rows.collect)}
    if not found:  # no data row anywhere: the header alone decides (and fails later)
        empty = pl.DataFrame(schema=dict.fromkeys(positional, pl.String))
        found = {"": batches.answer_of(name, header, empty, options.columns, options)}
    answers: dict[str, ChosenColumns] = {}
    for file in sorted(found):
        chosen = batches.chosen_from(found[file])
        if isinstance(chosen, str):
            raise InputError(chosen)
        answers[file] = chosen
    return answers


def history_events(spark: SparkSession, history: History) -> DataFrame:
    """The history's events in Spark, each with its place in the history's order: the
    ledger's Parquet files read by Spark (from shared storage, on a cluster), or change
    files' events as loaded."""
    columns = [*EVIDENCE_EVENT_COLUMNS, batches.ORDER_PART, batches.ORDER_INDEX]
    if history.event_parts is not None:
        parts = []
        for place, (path, report_ids) in enumerate(history.event_parts):
            # files written before day lists lack their columns: null, as polars reads them
            present = set(pl.read_parquet_schema(path))
            part = spark.read.parquet(str(path)).select(
                F.col("number").cast("long").alias("number"),
                F.col("type").cast("string").alias("type"),
                "occurred_at",
                F.col("new_number").cast("long").alias("new_number"),
                "report_id",
                "network_name",
                *(
                    (F.col(name) if name in present else F.lit(None)).cast(kind).alias(name)
                    for name, kind in (("day_only", "boolean"), ("detail", "string"))
                ),
                F.lit(place).cast("long").alias(batches.ORDER_PART),
                F.col("_metadata.row_index").cast("long").alias(batches.ORDER_INDEX),
            )
            if report_ids is not None:
                part = part.where(F.col("report_id").isin(report_ids))
            parts.append(part)
        if parts:
            union = parts[0]
            for part in parts[1:]:
                union = union.unionByName(part)
            return union
    events = (
        conform_events(history.events)
        .select(EVIDENCE_EVENT_COLUMNS)
        .with_columns(
            pl.col("number", "new_number").cast(pl.Int64),
            pl.col("type", "report_id", "network_name", "detail").cast(pl.String),
            pl.col("occurred_at").dt.cast_time_unit("us").dt.convert_time_zone("UTC"),
        )
        .with_columns(pl.lit(0, pl.Int64).alias(batches.ORDER_PART))
        .with_row_index(batches.ORDER_INDEX)
        .with_columns(pl.col(batches.ORDER_INDEX).cast(pl.Int64))
        .select(columns)
    )
    schema = T.StructType(
        [
            T.StructField("number", T.LongType()),
            T.StructField("type", T.StringType()),
            T.StructField("occurred_at", T.TimestampType()),
            T.StructField("new_number", T.LongType()),
            T.StructField("report_id", T.StringType()),
            T.StructField("network_name", T.StringType()),
            T.StructField("day_only", T.BooleanType()),
            T.StructField("detail", T.StringType()),
            T.StructField(batches.ORDER_PART, T.LongType()),
            T.StructField(batches.ORDER_INDEX, T.LongType()),
        ]
    )
    if events.height == 0:
        return spark.createDataFrame([], schema)
    return spark.createDataFrame(events.to_arrow(), schema=schema)


def decided_rows(
    contacts: DataFrame,
    history: History,
    options: CleanOptions,
    now: datetime,
    coverage_start: datetime | None,
    name: str,
    check_utf8: bool = False,
) -> tuple[DataFrame, ChosenColumns]:
    """Every contact row decided, with its flag columns, change-list lines and counts."""
    spark = contacts.sparkSession
    plan = _plan(contacts, options, name, check_utf8)
    frame, layout = plan.frame, plan.layout
    keys = frame.mapInArrow(
        partial(batches.row_keys, layout=layout, region=options.default_region),
        spark_schema(list(batches.KEYS_SCHEMA)),
    ).persist(StorageLevel.MEMORY_AND_DISK)  # read twice: its numbers, then the join
    # as on one machine, only the events of the contacts' numbers are read for evidence
    # (a semi join in the JVM: the Python work is for those numbers alone); then every
    # event of a number in one partition, whatever plan the join took
    evidence = (
        history_events(spark, history)
        .join(keys.select("number"), on="number", how="left_semi")
        .repartition("number")
        .mapInArrow(batches.partition_evidence, spark_schema(list(batches.EVIDENCE_SCHEMA)))
    )
    # the evidence of every row that has any: few rows, usually broadcast back
    found = (
        keys.join(evidence, on="number", how="inner")
        .groupBy(FILE, ROW)
        .agg(F.collect_list(F.struct(*batches.EVIDENCE_SCHEMA.names)).alias(batches.EVIDENCE))
    )
    joined = frame.join(found, on=[FILE, ROW], how="left")
    contact_fields = [frame.schema[c] for c in layout.contact_columns]
    extra = batches.extra_fields(layout)
    schema = T.StructType([*contact_fields, *spark_schema(extra).fields])
    decided = joined.mapInArrow(
        partial(
            batches.decide_batches,
            layout=layout,
            options=options,
            now=now,
            coverage_start=coverage_start,
        ),
        schema,
    )
    # the contact columns under their own names again
    decided = decided.toDF(*layout.contact_names, *(field.name for field in extra))
    return decided, plan.chosen


def clean_frame(
    contacts: DataFrame,
    history: History,
    options: CleanOptions | None = None,
    now: datetime | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Decide every row of a Spark frame of contacts against a history.

    Returns ``(decided, changes)``: every contact row, its phone cells emptied in blank
    mode, with the flag columns (``reconcile_verdict``, ``reconcile_action``...) and
    where it comes from (``reconcile_file``, ``reconcile_row``); and the change list
    (SPEC's columns after ``file``). A frame from `read_contacts` numbers each row in
    its file; any other frame gets increasing row ids. `cleaned_frame` applies the mode.

    Example (a notebook)::

        from datetime import UTC, datetime
        from pathlib import Path
        import reconcile
        from reconcile import spark as rspark

        options = reconcile.CleanOptions(mode="strip")
        history = reconcile.Ledger(Path("/dbfs/reconcile")).history()
        contacts = rspark.read_contacts(spark, "s3://lake/contacts/", options)
        decided, changes = rspark.clean_frame(contacts, history, options)
        rspark.cleaned_frame(decided, options.mode).write.parquet("s3://lake/cleaned/")
    """
    options = options or CleanOptions()
    now = now or datetime.now(UTC)
    decided, _chosen = decided_rows(
        contacts, history, options, now, history.coverage().start, "contacts"
    )
    decided = decided.persist(StorageLevel.DISK_ONLY)
    return public_columns(decided), change_lines(decided)


def public_columns(decided: DataFrame) -> DataFrame:
    return decided.drop(CHANGES, UNREADABLE, *NUMBER_COUNTS)


def change_lines(decided: DataFrame) -> DataFrame:
    """One line per number that is not ok, in file and row order."""
    lines = decided.select(
        F.col(FILE).alias("file"), F.posexplode(CHANGES).alias("__line", "__change")
    )
    return lines.orderBy("file", F.col("__change.row"), "__line").select("file", "__change.*")


def cleaned_frame(decided: DataFrame, mode: str) -> DataFrame:
    """The cleaned rows of `clean_frame`'s decided rows, in file and row order: strip
    drops the removed and suppressed rows; blank keeps every row (its cells emptied
    already); flag keeps the flag columns."""
    frame = decided.orderBy(FILE, ROW)
    if mode == "strip":
        frame = frame.where(~F.col("reconcile_action").isin(sorted(DROPPED_ACTIONS)))
    dropped = [FILE, ROW] + ([] if mode == "flag" else list(FLAG_COLUMNS))
    return frame.drop(*dropped)


# The change list's columns, for readers of the Spark output.
SPARK_CHANGE_COLUMNS = ("file", *CHANGE_COLUMNS)
