"""`reconcile run`: fetch, then clean every configured input into a dated folder, keep a
run history, and say what changed since the previous run of each input.

Contacts are matched across runs by their id (the id column) when there is one, else by
their E.164 number. The run history lives in ``DATA_DIR/runs``: one JSON line per run in
``history.jsonl`` and, per input, the last run's verdicts in ``latest-<key>.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from reconcile._atomic import OutputBatch
from reconcile.clean import CleanOptions, CleanResult, clean_files, reconcile_file
from reconcile.config import RunConfig
from reconcile.contacts import ColumnChoice
from reconcile.history import History
from reconcile.phones import add_e164
from reconcile.verdicts import resolve_actions

__all__ = ["InputRun", "RunHistory", "compare_runs", "contact_keys", "options_for"]


def options_for(config: Any, out_dir: Path | None) -> CleanOptions:
    """CleanOptions from one [[inputs]] table."""
    return CleanOptions(
        columns=ColumnChoice(config.phone_column, config.consent_column, config.id_column),
        mode="flag" if config.mode == "flag" else "strip",
        actions=resolve_actions(config.actions),
        default_region=config.default_region,
        consent_timezone=config.consent_timezone,
        consent_format=config.consent_format,
        sheet=config.sheet,
        encoding=config.encoding,
        out_dir=out_dir,
        report=config.report,
    )


def contact_keys(decisions: pl.DataFrame) -> pl.DataFrame:
    """One stable key per contact: ``id:...`` when the file has ids, else ``phone:+1...``."""
    key = (
        pl.when(pl.col("id").is_not_null() & (pl.col("id").str.strip_chars() != ""))
        .then(pl.lit("id:") + pl.col("id").str.strip_chars())
        .when(pl.col("phone_e164").is_not_null())
        .then(pl.lit("phone:") + pl.col("phone_e164"))
        .otherwise(pl.lit("row:") + pl.col("row").cast(pl.String))
    )
    keys = add_e164(decisions).select(key=key, row="row", verdict="verdict", action="action")
    return keys.unique("key", keep="first", maintain_order=True)


def compare_runs(previous: pl.DataFrame | None, current: pl.DataFrame) -> dict[str, Any]:
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
        return frame.get_column("key").to_list()

    known = joined.filter(pl.col("verdict_before").is_not_null())
    return {
        "changed": [
            {"contact": key, "row": row, "before": before, "now": now}
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
    }


class RunHistory:
    """The run history in ``DATA_DIR/runs``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "runs"

    @staticmethod
    def input_key(path: Path) -> str:
        return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]

    def _latest(self, path: Path) -> Path:
        return self.root / f"latest-{self.input_key(path)}.parquet"

    def previous(self, path: Path) -> tuple[pl.DataFrame | None, str | None]:
        latest = self._latest(path)
        if not latest.exists():
            return None, None
        return pl.read_parquet(latest), pl.read_parquet_metadata(latest).get("run_at")

    def record(self, run: dict[str, Any], keys_by_input: dict[Path, pl.DataFrame]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        batch = OutputBatch()
        for path, keys in keys_by_input.items():
            batch.add(self._latest(path), _parquet_writer(keys, {"run_at": run["run_at"]}))
        batch.commit()
        with (self.root / "history.jsonl").open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(run, sort_keys=True) + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def _parquet_writer(frame: pl.DataFrame, metadata: dict[str, str]) -> Callable[[Path], None]:
    def write(temporary: Path) -> None:
        frame.write_parquet(temporary, metadata=metadata)

    return write


@dataclass
class InputRun:
    """One input of one run."""

    result: CleanResult
    changes: dict[str, Any]
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


def clean_inputs(
    config: RunConfig, history: History, runs: RunHistory, now: datetime, *, dry_run: bool
) -> tuple[Path | None, list[InputRun]]:
    """Clean every input (writing into a new dated folder unless ``dry_run``)."""
    folder = None if dry_run else dated_folder(config.output_dir, now)
    done: list[InputRun] = []
    for item in config.inputs:
        options = options_for(item, folder)
        if dry_run:
            result = reconcile_file(item.path, history, options, now)
        else:
            assert folder is not None
            folder.mkdir(parents=True, exist_ok=True)
            [result] = clean_files([item.path], history, options, now)
        keys = contact_keys(result.rows)
        previous, previous_at = runs.previous(item.path)
        changes = compare_runs(previous, keys)
        changes["previous_run"] = previous_at
        done.append(InputRun(result=result, changes=changes, keys=keys))
    return folder, done
