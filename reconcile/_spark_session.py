"""Spark itself, for the engine: the session, types between Arrow and Spark, Hadoop's
file system (a path as itself, a header line, an encoding's Java name), and Spark's
failures said in one line (`spark_errors`)."""

from __future__ import annotations

import codecs
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from reconcile import _spark_batches as batches
from reconcile.errors import EngineError, InputError, OptionError, ReconcileError

# The one place pyspark is imported: the engine's modules take its names from here, so
# a missing extra is said once, in one line.
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

__all__ = [
    "BATCH_ROWS",
    "LOCAL_PARTITIONS",
    "DataFrame",
    "F",
    "SparkSession",
    "StorageLevel",
    "T",
    "hadoop",
    "header_line",
    "java_charset",
    "literal_path",
    "session",
    "spark_errors",
    "spark_schema",
    "spark_type",
]

_T = TypeVar("_T")
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


def spark_type(arrow: pa.DataType) -> T.DataType:
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
        return T.ArrayType(spark_type(arrow.value_type))
    if pa.types.is_struct(arrow):
        return T.StructType([T.StructField(f.name, spark_type(f.type)) for f in arrow])
    raise TypeError(f"no Spark type for {arrow}")


def spark_schema(fields: Sequence[pa.Field]) -> T.StructType:
    return T.StructType([T.StructField(f.name, spark_type(f.type)) for f in fields])


def spark_errors(name: str, action: Callable[[], _T]) -> _T:
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


def hadoop(spark: SparkSession, path: str) -> tuple[Any, Any]:
    context = spark.sparkContext
    jvm, java_context = context._jvm, context._jsc  # py4j's door to Hadoop
    assert jvm is not None and java_context is not None  # a running session has both
    where = jvm.org.apache.hadoop.fs.Path(path)
    conf = java_context.hadoopConfiguration()
    return where.getFileSystem(conf), where


def java_charset(encoding: str | None) -> str:
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


def literal_path(path: str) -> str:
    """A path Spark reads as itself: ``[``, ``{``, ``*`` and ``?`` are glob patterns to
    Hadoop, and a file name may hold them."""
    return re.sub(r"([\[\]{}*?\\])", r"\\\1", path)


def header_line(spark: SparkSession, path: str, charset: str = "UTF-8") -> str:
    """The header line of a CSV file, or of a folder's CSV files, which must all have the
    same (each file's first line is read; nothing else is)."""
    fs, where = hadoop(spark, path)
    if fs.getFileStatus(where).isDirectory():
        files = sorted(
            (status.getPath() for status in fs.listStatus(where) if not status.isDirectory()),
            key=lambda found: str(found.toString()),
        )
        files = [found for found in files if not found.getName().startswith(("_", "."))]
    else:
        files = [where]
    jvm = spark.sparkContext._jvm  # py4j's door to Hadoop
    assert jvm is not None  # a running session has one
    first: tuple[str, str] | None = None
    for found in files:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(fs.open(found), charset))
        try:
            line = str(reader.readLine() or "").lstrip("\ufeff")
        finally:
            reader.close()
        if first is None:
            first = (found.getName(), line)
        elif line != first[1]:
            raise InputError(
                f"{path}: {found.getName()}'s header differs from {first[0]}'s; the files "
                "of a folder are read as one table: give them the same columns."
            )
    return first[1] if first is not None else ""
