"""`reconcile run`: fetch, then clean every configured input into a dated folder, keep a
run history, and say what changed since the previous run of each input.

Contacts are matched across runs by their id (the id column) when there is one, else by
their E.164 number. The run history lives in ``DATA_DIR/runs``: one JSON line per run in
``history.jsonl`` and, per input, the last run's verdicts in ``latest-<key>.parquet``.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TypedDict

import polars as pl

from reconcile._atomic import current_umask, hold_folder
from reconcile._text import first_line, iso_utc
from reconcile.clean import (
    CleanResult,
    CleanSummary,
    clean_files,
    reconcile_file,
)
from reconcile.config import InputConfig, RunConfig
from reconcile.contacts import read_contacts
from reconcile.errors import ApiError, ConfigError, InputError, OptionError, OutputError
from reconcile.history import History
from reconcile.ledger import Ledger
from reconcile.run_history import InputCounts, RunHistory, RunRecord, contact_keys
from reconcile.sync import FetchSummary, Progress
from reconcile.sync_sources import fetch_sources

__all__ = [
    "Attention",
    "InputRun",
    "Notice",
    "RunChanges",
    "RunHistory",
    "RunReport",
    "compare_runs",
    "contact_keys",
    "run_once",
]


class Attention(enum.Enum):
    """Why a run that finished still needs a person to read its output (exit 3)."""

    FETCH_FAILED = "fetch_failed"
    REPORTS_FAILED = "reports_failed"
    STALE_HISTORY = "stale_history"
    NO_HISTORY = "no_history"


@dataclass(frozen=True)
class Notice:
    """One reason for attention, with the words shown for it."""

    kind: Attention
    text: str


class ChangedContact(TypedDict):
    contact: str
    row: int
    before: str
    now: str


class RunChanges(TypedDict):
    """What changed for one input since its previous run."""

    previous_run: str | None
    changed: list[ChangedContact]
    new_contacts: int
    newly_removed: list[str]
    newly_suppressed: list[str]
    no_longer_suppressed: list[str]


def compare_runs(
    previous: pl.DataFrame | None, current: pl.DataFrame, previous_run: str | None = None
) -> RunChanges:
    """Contacts whose verdict changed between two runs of one input, by kind of change."""
    if previous is None:
        return {
            "previous_run": None,
            "changed": [],
            "new_contacts": current.height,
            "newly_removed": [],
            "newly_suppressed": [],
            "no_longer_suppressed": [],
        }
    joined = current.join(previous, on="key", how="left", suffix="_before", maintain_order="left")
    changed = joined.filter(
        pl.col("verdict_before").is_not_null() & (pl.col("verdict") != pl.col("verdict_before"))
    )

    def keys(frame: pl.DataFrame) -> list[str]:
        return frame.get_column("key").cast(pl.String).to_list()

    known = joined.filter(pl.col("verdict_before").is_not_null())
    return {
        "changed": [
            {"contact": key, "row": row, "before": str(before), "now": str(now)}
            for key, row, before, now in changed.select(
                "key", "row", "verdict_before", "verdict"
            ).iter_rows()
        ],
        "new_contacts": joined.height - known.height,
        "newly_removed": keys(
            known.filter((pl.col("action") == "remove") & (pl.col("action_before") != "remove"))
        ),
        "newly_suppressed": keys(
            known.filter((pl.col("action") == "suppress") & (pl.col("action_before") != "suppress"))
        ),
        "no_longer_suppressed": keys(
            known.filter((pl.col("action_before") == "suppress") & (pl.col("action") != "suppress"))
        ),
        "previous_run": previous_run,
    }


@dataclass
class InputRun:
    """One input of one run."""

    result: CleanResult
    changes: RunChanges
    keys: pl.DataFrame = field(repr=False)


def dated_folder(output_dir: Path, now: datetime) -> Path:
    """``output_dir/2024-06-02T103000Z``, made unique if that second is taken."""
    stamp = now.strftime("%Y-%m-%dT%H%M%SZ")
    folder = output_dir / stamp
    suffix = 2
    while folder.exists():
        folder = output_dir / f"{stamp}-{suffix}"
        suffix += 1
    return folder


@contextlib.contextmanager
def _run_folder(output_dir: Path, now: datetime) -> Iterator[tuple[Path, list[Path]]]:
    """A hidden folder the run writes into, renamed to its dated name only when every
    input is done: a run's folder appears whole or not at all. It is held while in use;
    what a killed run left (a folder nobody holds) is removed here. Yields the working
    folder and a list that receives the final one."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{output_dir}: cannot create the folder ({error.strerror}).") from None
    for stale in output_dir.glob(".*.run.tmp"):
        with hold_folder(stale) as abandoned:
            if abandoned:
                shutil.rmtree(stale, ignore_errors=True)
    work = Path(
        tempfile.mkdtemp(prefix=f".{now:%Y-%m-%dT%H%M%SZ}.", suffix=".run.tmp", dir=output_dir)
    )
    # mkdtemp makes it 0700; the run's folder gets the user's usual permissions
    work.chmod(0o777 & ~current_umask())
    finished: list[Path] = []
    with hold_folder(work):
        try:
            yield work, finished
            final = dated_folder(output_dir, now)
            work.replace(final)  # the commit point of the run's outputs
            finished.append(final)
            with contextlib.suppress(OSError):
                directory = os.open(output_dir, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        finally:
            if not finished:
                shutil.rmtree(work, ignore_errors=True)


def clean_inputs(
    config: RunConfig, history: History, runs: RunHistory, now: datetime, *, dry_run: bool
) -> tuple[Path | None, list[InputRun]]:
    """Clean every input, into a new dated folder unless ``dry_run``: the folder appears
    with every input's outputs, or not at all."""
    done: list[InputRun] = []
    if dry_run:
        for item in config.inputs:
            result = reconcile_file(
                item.path, history, item.options, now, keep_decisions=False, keys=True
            )
            done.append(_input_run(item, result, runs))
        return None, done
    with _run_folder(config.output_dir, now) as (work, finished):
        for item in config.inputs:
            [result] = clean_files(
                [item.path], history, replace(item.options, out_dir=work), now, keys=True
            )
            done.append(_input_run(item, result, runs))
    final = finished[0]
    for finished_input in done:  # the outputs now live in the dated folder
        result = finished_input.result
        result.cleaned_path = final / result.cleaned_path.name
        result.changes_path = final / result.changes_path.name
        if result.report_path is not None:
            result.report_path = final / result.report_path.name
    return final, done


def _input_run(item: InputConfig, result: CleanResult, runs: RunHistory) -> InputRun:
    keys = result.contact_keys
    if keys is None:
        raise RuntimeError("run cleaned an input without its contact keys")
    previous, previous_at = runs.previous(item.path)
    return InputRun(result=result, changes=compare_runs(previous, keys, previous_at), keys=keys)


class InputJson(CleanSummary):
    changes: RunChanges


class RunJson(TypedDict):
    """`RunReport` as JSON (``reconcile run --json``)."""

    run_at: str
    config: str
    dry_run: bool
    output: str | None
    fetch: FetchSummary | None
    inputs: list[InputJson]
    attention: list[str]


@dataclass(frozen=True)
class RunReport:
    """What one `run_once` did: the fetch, every input, and what needs attention."""

    run_at: datetime
    config: Path
    dry_run: bool
    output: Path | None
    fetched: FetchSummary | None
    inputs: list[InputRun]
    attention: list[Notice]

    def to_json(self) -> RunJson:
        """The run as JSON-ready values."""
        return {
            "run_at": iso_utc(self.run_at) or "",
            "config": str(self.config),
            "dry_run": self.dry_run,
            "output": str(self.output) if self.output else None,
            "fetch": self.fetched,
            "inputs": [{**item.result.summary(), "changes": item.changes} for item in self.inputs],
            "attention": [notice.text for notice in self.attention],
        }

    def record(self) -> RunRecord:
        """The line the run history keeps of this run."""
        inputs: list[InputCounts] = []
        for item in self.inputs:
            summary = item.result.summary()
            inputs.append(
                {
                    "input": str(item.result.table.path),
                    "rows": summary["rows"],
                    "kept": summary["kept"],
                    "removed": summary["removed"],
                    "suppressed": summary["suppressed"],
                    "verdicts": summary["verdicts"],
                }
            )
        return {
            "run_at": iso_utc(self.run_at) or "",
            "config": str(self.config),
            "output": str(self.output) if self.output else None,
            "attention": [notice.text for notice in self.attention],
            "inputs": inputs,
        }


def check_inputs(config: RunConfig) -> None:
    """Check every input of the config as its clean will use it (options, then the file
    and its columns), before anything is fetched; ConfigError naming the config key
    (``[inputs][2].sheet``), never a command-line flag. The options themselves were
    checked when the config was read."""
    for index, item in enumerate(config.inputs, start=1):
        where = f"{config.path}: [inputs][{index}]"
        options = item.options
        try:
            read_contacts(
                item.path,
                options.columns,
                sheet=options.sheet,
                encoding=options.encoding,
                delimiter=options.delimiter,
            )
        except OptionError as error:
            if error.option is not None:
                raise ConfigError(f"{where}.{error.option}: {error.detail}") from None
            raise ConfigError(f"{where} ({item.path.name}): {_as_keys(error)}") from None
        except InputError as error:
            raise ConfigError(f"{where} ({item.path.name}): {_as_keys(error)}") from None


def _as_keys(error: Exception) -> str:
    """An error's text with each command-line flag named as the config key it shares a
    name with (``--phone-column`` is ``phone_column``)."""
    return _FLAG.sub(lambda match: match.group(1).replace("-", "_"), str(error))


_FLAG = re.compile(r"--([a-z]+(?:-[a-z]+)*)")


def run_once(
    config: RunConfig,
    now: datetime,
    *,
    data_dir: Path,
    dry_run: bool = False,
    wait: float = 0,
    progress: Progress | None = None,
) -> RunReport:
    """Check every input, fetch (unless ``dry_run``, or no source is configured: ``[infobip]``,
    ``[twilio]``, ``[vonage]``), clean every
    input, keep the history.

    A config that cannot work fails before anything is fetched (`check_inputs`). A fetch
    that fails is not the end of the run: the inputs are cleaned against the ledger as
    it was, and the report says so (`Attention.FETCH_FAILED`).
    """
    check_inputs(config)
    ledger = Ledger(data_dir)
    attention: list[Notice] = []
    fetched: FetchSummary | None = None
    if (config.infobip is not None or config.day_lists) and not dry_run:
        try:
            fetched = fetch_sources(
                ledger,
                config.infobip,
                config.day_lists,
                now=now,
                wait=wait,
                progress=progress,
            ).summary()
        except (ApiError, OptionError) as error:
            attention.append(
                Notice(
                    Attention.FETCH_FAILED,
                    f"fetch failed ({error}); cleaned against the ledger as it was",
                )
            )
        if fetched is not None and not fetched["complete"]:
            attention.append(
                Notice(
                    Attention.REPORTS_FAILED,
                    f"{len(fetched['failed'])} report(s) could not be fetched, "
                    f"{len(fetched['incomplete'])} came incomplete, {len(fetched['late'])} "
                    "were left for the next fetch"
                    + ("; the report list was cut short" if fetched["list_cut_short"] else ""),
                )
            )
    history = ledger.history()  # one manifest; its files stay while they are read
    if history.reports.height == 0:
        attention.append(
            Notice(
                Attention.NO_HISTORY,
                f"the ledger at {ledger.root} holds no history: every contact is unverified "
                "(check data_dir, or run `reconcile fetch`)",
            )
        )
    runs = RunHistory(data_dir)
    folder, done = clean_inputs(config, history, runs, now, dry_run=dry_run)
    if any(item.result.stale_history for item in done):
        attention.append(Notice(Attention.STALE_HISTORY, "the history is stale"))
    report = RunReport(
        run_at=now,
        config=config.path,
        dry_run=dry_run,
        output=folder,
        fetched=fetched,
        inputs=done,
        attention=attention,
    )
    if not dry_run:
        try:
            runs.record(report.record(), {item.result.table.path: item.keys for item in done})
        except (OSError, pl.exceptions.PolarsError, OutputError) as error:
            # the outputs are committed already: say so, not "nothing was written"
            detail = (
                f"{runs.root}: {error.strerror}"
                if isinstance(error, OSError)
                else first_line(error).rstrip(".")
            )
            raise OutputError(
                f"the run history was not kept ({detail}); the run's outputs were written "
                f"whole to {folder}. Free space there and run again: the next run compares "
                "with the last history kept."
            ) from None
    return report
