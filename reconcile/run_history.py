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

__all__ = ["InputCounts", "RunHistory", "RunRecord"]


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
