"""``reconcile clean --engine spark``: each path decided on Spark (`spark.clean_frame`'s
work), its outputs written as Spark folders and renamed into place once every path is
done, and a summary of counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from reconcile._spark_batches import NUMBER_COUNTS, UNREADABLE, file_name
from reconcile._spark_session import (
    DataFrame,
    F,
    SparkSession,
    StorageLevel,
    hadoop,
    header_line,
    java_charset,
    literal_path,
    session,
    spark_errors,
)
from reconcile._text import iso_utc as iso
from reconcile.clean import STALE_AFTER, history_warnings
from reconcile.columns import ChosenColumns
from reconcile.errors import InputError, OutputError
from reconcile.history import History
from reconcile.options import CleanOptions
from reconcile.results import CleanSummary, DecisionCounts
from reconcile.spark import (
    change_lines,
    cleaned_frame,
    decided_rows,
    header_delimiter,
    path_kind,
    public_columns,
    read_contacts,
)
from reconcile.verdicts import ACTIONS, VERDICTS

__all__ = ["clean_paths", "output_names"]


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
    kind = path_kind(spark, path)
    if kind == "csv":
        header = header_line(spark, path, java_charset(options.encoding))
        # the cleaned CSV is written with the input's own delimiter
        options = replace(options, delimiter=options.delimiter or header_delimiter(header))
    else:
        header = None
    contacts = spark_errors(path, lambda: read_contacts(spark, path, options, header))
    decided, chosen = decided_rows(
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
        counts = spark_errors(path, lambda: _counts(decided))
        if counts["rows"] == 0:
            raise InputError(f"{path}: the file has a header but no data rows.")
        counts["blank_lines"] = (
            spark_errors(path, lambda: _blank_lines(spark, path)) if kind == "csv" else {}
        )
        cleaned_folder, changes_folder = (f"{target}{_TEMPORARY}" for target in targets)
        for folder in (cleaned_folder, changes_folder):
            _remove(spark, folder)
        try:
            writer = cleaned_frame(public_columns(decided), options.mode).write.mode("overwrite")
            if kind == "parquet":
                spark_errors(path, lambda: writer.parquet(cleaned_folder))
            else:
                csv = writer.options(**_CSV_OUT, sep=options.delimiter or ",")
                spark_errors(path, lambda: csv.csv(cleaned_folder))
            changes = change_lines(decided).write.mode("overwrite").options(**_CSV_OUT)
            spark_errors(path, lambda: changes.csv(changes_folder))
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
    lines = spark.read.text(literal_path(path)).select(
        F.col("value"), F.col("_metadata.file_path").alias("f")
    )
    blank = lines.where(F.col("value") == "").groupBy("f").count()
    return {row["f"]: int(row["count"]) for row in blank.collect()}


def _check_targets(spark: SparkSession, targets: Sequence[str], force: bool) -> None:
    for target in targets:
        fs, where = hadoop(spark, target)
        if fs.exists(where) and not force:
            raise OutputError(f"{target} exists; pass --force to replace it.")


def _remove(spark: SparkSession, folder: str) -> None:
    fs, where = hadoop(spark, folder)
    if fs.exists(where):
        fs.delete(where, True)


def _rename(spark: SparkSession, source: str, target: str) -> None:
    fs, where = hadoop(spark, source)
    _fs, goal = hadoop(spark, target)
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
    decisions = DecisionCounts(
        verdicts=np.array([counts[f"v_{verdict}"] for verdict in VERDICTS], dtype=np.int64),
        actions=np.array([counts[f"a_{action}"] for action in ACTIONS], dtype=np.int64),
        number_verdicts=np.array([counts[name] for name in NUMBER_COUNTS], dtype=np.int64),
    )
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
        **decisions.summary(),
        "blank_rows_skipped": sum(blank_lines.values()),
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
