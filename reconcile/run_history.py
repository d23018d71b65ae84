"""The run history in ``DATA_DIR/runs``: one JSON line per run in ``history.jsonl``
and, per input, the last run's verdicts in ``latest-<key>.parquet`` (what the next run
compares with)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import polars as pl

from reconcile._atomic import OutputBatch

__all__ = ["InputCounts", "RunHistory", "RunRecord", "contact_keys"]


class InputCounts(TypedDict):
    input: str
    rows: int
    kept: int
    removed: int
    suppressed: int
    verdicts: dict[str, int]


class RunRecord(TypedDict):
    """One line of ``runs/history.jsonl``."""

    run_at: str
    config: str
    output: str | None
    attention: list[str]
    inputs: list[InputCounts]


class RunHistory:
    """The run history in ``DATA_DIR/runs``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "runs"

    @staticmethod
    def input_key(path: Path) -> str:
        """A short stable name for one input file (its resolved path, hashed)."""
        return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]

    def _latest(self, path: Path) -> Path:
        return self.root / f"latest-{self.input_key(path)}.parquet"

    def previous(self, path: Path) -> tuple[pl.DataFrame | None, str | None]:
        """The contact keys and verdicts of the input's last run, and when it ran."""
        latest = self._latest(path)
        if not latest.exists():
            return None, None
        return pl.read_parquet(latest), pl.read_parquet_metadata(latest).get("run_at")

    def record(self, run: RunRecord, keys_by_input: dict[Path, pl.DataFrame]) -> None:
        """Keep each input's verdicts for the next run, and append the run's line."""
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


def contact_keys(rows: pl.DataFrame, numbers: pl.DataFrame) -> pl.DataFrame:
    """One stable key per contact: ``id:...`` when the file has ids, else the row's set of
    E.164 numbers (``phone:+1415...`` for one, ``phones:+1212...;+1415...`` sorted for
    several), else its row number."""
    phones = (
        numbers.filter(pl.col("phone_key").is_not_null())
        .group_by("row")
        .agg(
            phones=(pl.lit("+") + pl.col("phone_key").cast(pl.String))
            .unique()
            .sort()
            .str.join(";"),
            count=pl.col("phone_key").n_unique(),
        )
    )
    key = (
        pl.when(pl.col("id").is_not_null() & (pl.col("id").str.strip_chars() != ""))
        .then(pl.lit("id:") + pl.col("id").str.strip_chars())
        .when(pl.col("count") == 1)
        .then(pl.lit("phone:") + pl.col("phones"))
        .when(pl.col("phones").is_not_null())
        .then(pl.lit("phones:") + pl.col("phones"))
        .otherwise(pl.lit("row:") + pl.col("row").cast(pl.String))
    )
    keys = rows.join(phones, on="row", how="left", maintain_order="left").select(
        key=key, row="row", verdict="verdict", action="action"
    )
    return keys.unique("key", keep="first", maintain_order=True)
