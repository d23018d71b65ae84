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

import codecs
import csv
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pyarrow as pa

from reconcile import _spark_batches as batches
from reconcile._csvscan import delimiter_candidates
from reconcile._spark_batches import (
    CHANGES,
    FILE,
    NUMBER_COUNTS,
    ROW,
    UNREADABLE,
    Layout,
    file_name,
)
from reconcile._text import iso_utc as iso
from reconcile.changelist import CHANGE_COLUMNS
from reconcile.clean import STALE_AFTER, history_warnings
from reconcile.column_words import CONTENT_ROWS
from reconcile.columns import ChosenColumns
from reconcile.contacts import CSV_SUFFIXES
from reconcile.errors import EngineError, InputError, OptionError, OutputError, ReconcileError
from reconcile.history import History
from reconcile.modes import FLAG_COLUMNS
from reconcile.options import CleanOptions
from reconcile.results import CleanSummary
from reconcile.verdicts import ACTIONS, DROPPED_ACTIONS, EVIDENCE_EVENT_COLUMNS, VERDICTS

try:
    from pyspark.errors import PySparkException
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.storagelevel import StorageLevel
except ImportError as missing:  # the optional extra
    raise EngineError(
        "the Spark engine needs the spark extra: pip install 'reconcile[spark]' "
        "(and Java 17 or later)."
    ) from missing

__all__ = ["clean_frame", "clean_paths", "cleaned_frame", "read_contacts", "session"]

_T = TypeVar("_T")
_PARQUET_SUFFIXES = frozenset({".parquet"})
# The driver's log until `session` sets its level: warnings only (at the level a shell
# expects, so Spark does not announce a level of its own), without the start-up notes.
_QUIET_LOG = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
"""
# rows per Arrow batch handed to the executors' Python
BATCH_ROWS = 100_000
# shuffle partitions of a local Spark (adaptive execution merges the small ones)
LOCAL_PARTITIONS = 8


def session(master: str | None = None, log_level: str = "ERROR") -> SparkSession:
    """The Spark session: the one `spark-submit` or a notebook made, else a local one
    (``local[*]``, or ``master``). Session time is UTC, so that instants read as text
    are never shifted."""
    builder = SparkSession.builder.appName("reconcile")
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not spark-submit
        master = "local[*]"
    if master is not None:
        builder = builder.master(master)
        if master.startswith("local"):
            # a cluster's default of 200 shuffle partitions is 200 tasks per join here
            builder = builder.config("spark.sql.shuffle.partitions", str(LOCAL_PARTITIONS))
    # a local Spark runs its Python workers with this very interpreter (the venv's)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if SparkSession.getActiveSession() is None:
        # the JVM this starts logs what we say in one line: its own log stays quiet
        quiet = Path(tempfile.gettempdir()) / "reconcile-spark-log4j2.properties"
        quiet.write_text(_QUIET_LOG)
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{quiet}"
        )
    builder = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        # a batch is decided as one machine decides a piece: a few large batches cost
        # less than many small ones (each call has a fixed cost in polars)
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
        # --encoding windows-1252 (a Java charset Spark refuses unless told)
        .config("spark.sql.legacy.javaCharsets", "true")
        # a cleaned Parquet file keeps its instants as instants (not INT96)
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    )
    spark = _quietly(builder.getOrCreate) if log_level == "OFF" else builder.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.legacy.javaCharsets", "true")
    # what fails is said in one line (`_spark_errors`), not in Spark's own log
    spark.sparkContext.setLogLevel(log_level)
    return spark


def _quietly(start: Callable[[], SparkSession]) -> SparkSession:
    """Start Spark with the standard error stream closed to the JVM it launches (which
    writes a line of its own there, and keeps the stream it was given): the command
    line's errors come back through py4j and are said in one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    silent = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(silent, 2)
        return start()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(silent)


def _spark_type(arrow: pa.DataType) -> T.DataType:
    """The Spark type of the Arrow types `_spark_batches` gives."""
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return T.StringType()
    if pa.types.is_int64(arrow):
        return T.LongType()
    if pa.types.is_boolean(arrow):
        return T.BooleanType()
    if pa.types.is_timestamp(arrow):
        return T.TimestampType()
    if pa.types.is_list(arrow):
        return T.ArrayType(_spark_type(arrow.value_type))
    if pa.types.is_struct(arrow):
        return T.StructType([T.StructField(f.name, _spark_type(f.type)) for f in arrow])
    raise TypeError(f"no Spark type for {arrow}")


def _spark_schema(fields: Sequence[pa.Field]) -> T.StructType:
    return T.StructType([T.StructField(f.name, _spark_type(f.type)) for f in fields])


def _spark_errors(name: str, action: Callable[[], _T]) -> _T:
    """Run a Spark action; what an executor raised of ours comes back as it was, and
    Spark's own failures (a malformed CSV row, a missing file) as one line."""
    try:
        return action()
    except ReconcileError:
        raise
    except (PySparkException, Exception) as error:  # noqa: BLE001 (py4j's errors too)
        text = str(error)
        ours = batches.raised(text)
        if ours is not None:
            raise ours from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        # a Python worker's failure: its exception's own line, not Spark's preamble
        raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
        first = raised[-1] if raised else (lines[0] if lines else type(error).__name__)
        if "Malformed" in text or "does not conform to the schema" in text:
            raise InputError(
                f"{name}: a row does not split into the header's fields, or a file's "
                "header differs from the first file's; fix it, or clean it on one machine "
                "(without --engine spark), which names the line."
            ) from None
        raise EngineError(f"{name}: Spark failed: {first[:300]}") from None


def _hadoop(spark: SparkSession, path: str) -> tuple[Any, Any]:
    context = spark.sparkContext
    jvm, java_context = context._jvm, context._jsc  # py4j's door to Hadoop
    assert jvm is not None and java_context is not None  # a running session has both
    where = jvm.org.apache.hadoop.fs.Path(path)
    conf = java_context.hadoopConfiguration()
    return where.getFileSystem(conf), where


def _kind(spark: SparkSession, path: str) -> str:
    """``csv`` or ``parquet``: what the file is, or every file in the folder."""
    fs, where = _hadoop(spark, path)
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


def read_contacts(spark: SparkSession, path: str, options: CleanOptions) -> DataFrame:
    """Contact rows of a CSV or Parquet file (or a folder of them), every CSV field as
    text, with each row's file (``reconcile_file``) and its number in that file
    (``reconcile_row``, 1 for the first data row)."""
    if _kind(spark, path) == "parquet":
        return spark.read.parquet(_literal(path)).select(
            "*",
            F.col("_metadata.file_path").alias(FILE),
            (F.col("_metadata.row_index") + 1).alias(ROW),
        )
    delimiter = options.delimiter or _delimiter(_header_line(spark, path))
    frame = spark.read.options(
        header=True,
        # a quoted field may hold line breaks (CRM notes do), and a file is then read
        # whole by one task, in order: rows can be numbered
        multiLine=True,
        escape='"',
        mode="FAILFAST",
        enforceSchema=False,
        inferSchema=False,
        encoding=_java_charset(options.encoding),
        sep=delimiter,
    ).csv(_literal(path))
    names = frame.columns
    if names and names[0].startswith("\ufeff"):  # a UTF-8 byte order mark
        frame = frame.withColumnRenamed(names[0], names[0][1:])
    names = frame.columns
    _refuse_our_names(path, names)
    # by place through Python (pyspark passes columns to it by name), then named again
    frame = frame.toDF(*(f"__c{place}" for place in range(len(names))))
    frame = frame.withColumn(FILE, F.col("_metadata.file_path"))
    schema = T.StructType([*frame.schema.fields, T.StructField(ROW, T.LongType())])
    return frame.mapInArrow(batches.number_rows, schema).toDF(*names, FILE, ROW)


def _java_charset(encoding: str | None) -> str:
    """The Java name of a Python encoding (``cp1252`` is ``windows-1252`` there)."""
    if encoding is None:
        return "UTF-8"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise OptionError.of("encoding", encoding, "is not an encoding Python knows.") from None
    return _JAVA_CHARSETS.get(name, name)


_JAVA_CHARSETS = {
    "utf-8": "UTF-8",
    "cp1252": "windows-1252",
    "iso8859-1": "ISO-8859-1",
    "ascii": "US-ASCII",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
}


def _literal(path: str) -> str:
    """A path Spark reads as itself: ``[``, ``{``, ``*`` and ``?`` are glob patterns to
    Hadoop, and a file name may hold them."""
    return re.sub(r"([\[\]{}*?\\])", r"\\\1", path)


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


def _header_line(spark: SparkSession, path: str) -> str:
    """A file's first line (the header: every file of a folder has the same)."""
    first = _spark_errors(path, lambda: spark.read.text(_literal(path)).head())
    return str(first[0]).lstrip("\ufeff") if first is not None else ""


def _delimiter(header: str) -> str:
    """The delimiter most frequent outside quotes in the header line."""
    return delimiter_candidates(header.encode())[0]


def _refuse_twin_names(path: str, header: str, delimiter: str) -> None:
    """Two columns of one name (in any case: Spark tells names apart without it)."""
    [names] = list(csv.reader([header], delimiter=delimiter)) or [[]]
    seen: dict[str, str] = {}
    for place, name in enumerate(names, start=1):
        if not name.strip():
            # Spark names it _cN and then finds the header does not match its own name
            raise InputError(
                f"{path}: column {place} of the header has no name; give it one (or remove "
                "a trailing delimiter from the header line)."
            )
        key = name.strip().lower()
        if key in seen:
            raise InputError(
                f"{path}: two columns are named {seen[key]!r} and {name!r}; rename one so "
                "each column can be told apart."
            )
        seen[key] = name


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
    # which pyspark cannot pass to Python by name; `_decided` gives the names back
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
            _spark_schema(list(batches.ANSWER_SCHEMA)),
        )
    )
    found = {row[FILE]: row["answer"] for row in _spark_errors(name, first_rows.collect)}
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
            part = spark.read.parquet(str(path)).select(
                F.col("number").cast("long").alias("number"),
                F.col("type").cast("string").alias("type"),
                "occurred_at",
                F.col("new_number").cast("long").alias("new_number"),
                "report_id",
                "network_name",
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
        history.events.select(EVIDENCE_EVENT_COLUMNS)
        .with_columns(
            pl.col("number", "new_number").cast(pl.Int64),
            pl.col("type", "report_id", "network_name").cast(pl.String),
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
            T.StructField(batches.ORDER_PART, T.LongType()),
            T.StructField(batches.ORDER_INDEX, T.LongType()),
        ]
    )
    if events.height == 0:
        return spark.createDataFrame([], schema)
    return spark.createDataFrame(events.to_arrow(), schema=schema)


def _decided(
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
        _spark_schema(list(batches.KEYS_SCHEMA)),
    ).persist(StorageLevel.MEMORY_AND_DISK)  # read twice: its numbers, then the join
    # as on one machine, only the events of the contacts' numbers are read for evidence
    # (a semi join in the JVM: the Python work is for those numbers alone); then every
    # event of a number in one partition, whatever plan the join took
    evidence = (
        history_events(spark, history)
        .join(keys.select("number"), on="number", how="left_semi")
        .repartition("number")
        .mapInArrow(batches.partition_evidence, _spark_schema(list(batches.EVIDENCE_SCHEMA)))
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
    schema = T.StructType([*contact_fields, *_spark_schema(extra).fields])
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
    decided, _chosen = _decided(
        contacts, history, options, now, history.coverage().start, "contacts"
    )
    decided = decided.persist(StorageLevel.DISK_ONLY)
    return _public(decided), _changes(decided)


def _public(decided: DataFrame) -> DataFrame:
    return decided.drop(CHANGES, UNREADABLE, *NUMBER_COUNTS)


def _changes(decided: DataFrame) -> DataFrame:
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


def output_names(path: str, out_dir: str | None) -> tuple[str, str]:
    """``NAME.cleaned`` and ``NAME.changes`` (Spark output folders) in ``out_dir``, else
    beside the input."""
    trimmed = path.rstrip("/")
    folder, _, base = trimmed.rpartition("/")
    stem = Path(base).stem if Path(base).suffix else base
    target = (out_dir.rstrip("/") if out_dir else folder) or "."
    return f"{target}/{stem}.cleaned", f"{target}/{stem}.changes"


def clean_paths(
    paths: Sequence[str],
    history: History,
    options: CleanOptions,
    now: datetime,
    master: str | None = None,
) -> list[CleanSummary]:
    """``reconcile clean --engine spark``: each path (a file, or a folder of CSV or
    Parquet files) decided on Spark; its outputs are written as temporary folders and
    renamed into place only when both are whole."""
    spark = session(master, log_level="OFF")
    coverage = history.coverage()
    stale = coverage.end is not None and now - coverage.end > STALE_AFTER
    warnings = history_warnings(history, coverage, now, stale)
    out_dir = str(options.out_dir) if options.out_dir is not None else None
    absolute = [_absolute(given) for given in paths]
    every_target = [output_names(path, out_dir) for path in absolute]
    seen: dict[str, str] = {}
    for path, targets in zip(absolute, every_target, strict=True):
        for target in targets:
            if target in seen:
                raise OutputError(
                    f"{seen[target]} and {path} would both write {target}; give them "
                    "different names or clean them one at a time."
                )
            seen[target] = path
        _check_targets(spark, targets, options.force)
    summaries = []
    written: list[tuple[str, str]] = []
    try:
        for path, targets in zip(absolute, every_target, strict=True):
            chosen, counts = _clean_path(
                spark, path, history, options, now, coverage.start, targets
            )
            # the change list first, the cleaned rows last: whoever finds a cleaned
            # folder finds the change list of the same run beside it
            written += [(f"{targets[1]}{_TEMPORARY}", targets[1])]
            written += [(f"{targets[0]}{_TEMPORARY}", targets[0])]
            summaries.append(_summary(path, chosen, counts, options, coverage, targets, warnings))
    except BaseException:
        for folder, _target in written:
            _remove(spark, folder)
        raise
    # every path decided and written: only now does any output take its place
    for folder, target in written:
        if options.force:
            _remove(spark, target)
        _rename(spark, folder, target)
    return summaries


def _absolute(path: str) -> str:
    """A local path made absolute (Spark's executors may not share this directory); a
    URL (``s3a://``, ``file:``) as given."""
    if ":" in path.split("/", 1)[0]:
        return path
    return str(Path(path).absolute())


def _clean_path(
    spark: SparkSession,
    path: str,
    history: History,
    options: CleanOptions,
    now: datetime,
    coverage_start: datetime | None,
    targets: Sequence[str],
) -> tuple[ChosenColumns, dict[str, Any]]:
    """One path decided; its outputs written beside their targets, then renamed."""
    kind = _kind(spark, path)
    if kind == "csv":
        header = _header_line(spark, path)
        # the cleaned CSV is written with the input's own delimiter
        options = replace(options, delimiter=options.delimiter or _delimiter(header))
        _refuse_twin_names(path, header, options.delimiter or ",")
    contacts = _spark_errors(path, lambda: read_contacts(spark, path, options))
    decided, chosen = _decided(
        contacts,
        history,
        options,
        now,
        coverage_start,
        path,
        # a file said to be UTF-8 may hold U+FFFD of its own
        check_utf8=kind == "csv" and options.encoding is None,
    )
    decided = decided.persist(StorageLevel.DISK_ONLY)
    try:
        counts = _spark_errors(path, lambda: _counts(decided))
        if counts["rows"] == 0:
            raise InputError(f"{path}: the file has a header but no data rows.")
        counts["blank_lines"] = (
            _spark_errors(path, lambda: _blank_lines(spark, path)) if kind == "csv" else {}
        )
        cleaned_folder, changes_folder = (f"{target}{_TEMPORARY}" for target in targets)
        for folder in (cleaned_folder, changes_folder):
            _remove(spark, folder)
        try:
            writer = cleaned_frame(_public(decided), options.mode).write.mode("overwrite")
            if kind == "parquet":
                _spark_errors(path, lambda: writer.parquet(cleaned_folder))
            else:
                csv = writer.options(**_CSV_OUT, sep=options.delimiter or ",")
                _spark_errors(path, lambda: csv.csv(cleaned_folder))
            changes = _changes(decided).write.mode("overwrite").options(**_CSV_OUT)
            _spark_errors(path, lambda: changes.csv(changes_folder))
        except BaseException:  # nothing half-written is left behind
            for folder in (cleaned_folder, changes_folder):
                _remove(spark, folder)
            raise
    finally:
        decided.unpersist()
    return chosen, counts


# the suffix of an output folder being written (renamed away once every path is done)
_TEMPORARY = ".reconcile-tmp"
# Every field keeps its text: RFC 4180 quotes, no trimming, an empty cell stays empty.
_CSV_OUT = {
    "header": "true",
    "escape": '"',
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
}


def _counts(decided: DataFrame) -> dict[str, Any]:
    """Rows per verdict and action, numbers per verdict, unreadable consent values: one
    row of counts, the only thing collected."""
    aggregates = [
        F.count(F.lit(1)).alias("rows"),
        *(F.count_if(F.col("reconcile_verdict") == v).alias(f"v_{v}") for v in VERDICTS),
        *(F.count_if(F.col("reconcile_action") == a).alias(f"a_{a}") for a in ACTIONS),
        *(F.coalesce(F.sum(name), F.lit(0)).alias(name) for name in NUMBER_COUNTS),
        F.count_if(F.col(UNREADABLE)).alias("unreadable"),
    ]
    row = decided.agg(*aggregates).head()
    assert row is not None
    return row.asDict()


def _blank_lines(spark: SparkSession, path: str) -> dict[str, int]:
    """The empty lines of each CSV file (Spark's reader skips them): counts only."""
    lines = spark.read.text(_literal(path)).select(
        F.col("value"), F.col("_metadata.file_path").alias("f")
    )
    blank = lines.where(F.col("value") == "").groupBy("f").count()
    return {row["f"]: int(row["count"]) for row in blank.collect()}


def _check_targets(spark: SparkSession, targets: Sequence[str], force: bool) -> None:
    for target in targets:
        fs, where = _hadoop(spark, target)
        if fs.exists(where) and not force:
            raise OutputError(f"{target} exists; pass --force to replace it.")


def _remove(spark: SparkSession, folder: str) -> None:
    fs, where = _hadoop(spark, folder)
    if fs.exists(where):
        fs.delete(where, True)


def _rename(spark: SparkSession, source: str, target: str) -> None:
    fs, where = _hadoop(spark, source)
    _fs, goal = _hadoop(spark, target)
    if not fs.rename(where, goal):
        raise OutputError(f"could not rename {source} to {target}; it is left there.")


def _summary(
    path: str,
    chosen: ChosenColumns,
    counts: dict[str, Any],
    options: CleanOptions,
    coverage: Any,
    targets: Sequence[str],
    warnings: list[str],
) -> CleanSummary:
    actions = {action: int(counts[f"a_{action}"]) for action in ACTIONS}
    number_verdicts = {
        verdict: int(counts[name]) for verdict, name in zip(VERDICTS, NUMBER_COUNTS, strict=True)
    }
    unreadable = int(counts["unreadable"])
    notes = list(warnings)
    blank_lines: dict[str, int] = counts.get("blank_lines", {})
    if blank_lines:
        # one machine numbers rows as a spreadsheet does, blank lines included; Spark's
        # reader drops them before a row can be numbered
        named = ", ".join(
            f"{file_name(file)} ({count})" for file, count in sorted(blank_lines.items())
        )
        notes.append(
            f"blank lines skipped in {named}: the change list's row numbers after a blank "
            "line are lower than a spreadsheet's by the blank lines before them (clean "
            "those files on one machine for a spreadsheet's row numbers)"
        )
    if unreadable:
        notes.append(
            f"{unreadable} consent value(s) could not be read; they count as no consent "
            "date (the change list shows each)"
        )
    return {
        "input": path,
        "sheet": None,
        "rows": int(counts["rows"]),
        "blank_rows_skipped": sum(blank_lines.values()),
        "kept": actions["keep"] + actions["review"],
        "removed": actions["remove"],
        "suppressed": actions["suppress"],
        "review": actions["review"],
        "verdicts": {verdict: int(counts[f"v_{verdict}"]) for verdict in VERDICTS},
        "actions": actions,
        "numbers": {"checked": sum(number_verdicts.values()), "verdicts": number_verdicts},
        "columns": {
            "phone": list(chosen.phones),
            "phone_by_content": list(chosen.by_content),
            "not_checked": dict(chosen.not_checked),
            "consent": chosen.consent,
            "id": chosen.id,
            "include": list(chosen.include),
        },
        "mode": options.mode,
        "coverage": {"start": iso(coverage.start), "end": iso(coverage.end)},
        "consent": {"unreadable": unreadable, "examples": [], "hint": None},
        "footer_lines": 0,
        "outputs": {"cleaned": targets[0], "changes": targets[1], "report": None},
        "warnings": notes,
    }


# The change list's columns, for readers of the Spark output.
SPARK_CHANGE_COLUMNS = ("file", *CHANGE_COLUMNS)
