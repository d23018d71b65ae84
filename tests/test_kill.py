"""Crash safety of `reconcile clean`: SIGKILL at many points, then look at what is left.

After every kill the output folder holds either no cleaned file, or a cleaned file
together with the change list and the workbook of the same run, each byte-equal to an
uninterrupted run's; the input is untouched; a rerun finishes the job and leaves no
temporary file behind. CI kills at 6 points; `RECONCILE_KILL_POINTS=all pytest
tests/test_kill.py` runs all 24.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.generate import write_dataset

POINTS = 24 if os.environ.get("RECONCILE_KILL_POINTS") == "all" else 6
OUTPUTS = ("contacts.changes.csv", "contacts.report.xlsx", "contacts.cleaned.csv")


def _clean(contacts: Path, events: Path, out: Path) -> subprocess.Popen[bytes]:
    # the history as a Parquet import would be fastest, but clean reads change files too:
    # a CSV of the generated events keeps this test independent of the ledger
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconcile",
            "clean",
            str(contacts),
            "--changes",
            str(events),
            "--out-dir",
            str(out),
            "--force",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill")
    contacts, events_parquet = write_dataset(folder / "data", 20_000, 40_000)
    import polars as pl

    events = folder / "events.csv"
    pl.read_parquet(events_parquet).select(
        destination=pl.col("number").cast(pl.String),
        date=pl.col("occurred_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        type=pl.col("type"),
    ).write_csv(events)
    reference = folder / "reference"
    process = _clean(contacts, events, reference)
    started = time.perf_counter()
    assert process.wait(timeout=120) == 0
    duration = time.perf_counter() - started
    return contacts, events, reference, duration


def _outputs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS if (folder / name).exists()}


def test_sigkill_at_many_points_leaves_nothing_or_everything(dataset, tmp_path):
    contacts, events, reference, duration = dataset
    before = contacts.read_bytes()
    expected = _outputs(reference)
    # the workbook records its run time, so it is compared by presence, the rest by bytes
    for point in range(POINTS):
        out = tmp_path / f"run-{point}"
        process = _clean(contacts, events, out)
        time.sleep(duration * (point + 0.5) / POINTS)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        found = _outputs(out)
        if "contacts.cleaned.csv" in found:
            assert set(found) == set(OUTPUTS), (point, sorted(found))
            assert found["contacts.cleaned.csv"] == expected["contacts.cleaned.csv"]
            assert found["contacts.changes.csv"] == expected["contacts.changes.csv"]
        assert contacts.read_bytes() == before
        rerun = _clean(contacts, events, out)
        assert rerun.wait(timeout=120) == 0
        assert _outputs(out)["contacts.cleaned.csv"] == expected["contacts.cleaned.csv"]
        leftovers = [path.name for path in out.iterdir() if path.name.endswith(".tmp")]
        assert leftovers == []


RUN_OUTPUTS = {
    f"{name}.{kind}"
    for name in ("first", "second")
    for kind in ("changes.csv", "report.xlsx", "cleaned.csv")
}


def _run(config: Path, data: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconcile",
            "run",
            "--config",
            str(config),
            "--data-dir",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_of_a_run_leaves_a_whole_run_folder_or_none(dataset, tmp_path):
    import shutil

    contacts, events, _reference, _duration = dataset
    shutil.copy(contacts, tmp_path / "first.csv")
    shutil.copy(contacts, tmp_path / "second.csv")
    data = tmp_path / "data"
    imported = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconcile",
            "ledger",
            "import",
            str(events),
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    config = tmp_path / "reconcile.toml"
    config.write_text(
        '[output]\ndir = "runs"\n[[inputs]]\npath = "first.csv"\n[[inputs]]\npath = "second.csv"\n'
    )
    started = time.perf_counter()
    assert _run(config, data).wait(timeout=120) in (0, 3)
    duration = time.perf_counter() - started
    runs = tmp_path / "runs"
    for point in range(POINTS):
        process = _run(config, data)
        time.sleep(duration * (point + 0.5) / POINTS)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for folder in runs.iterdir():
            if not folder.name.startswith("."):  # a visible run folder is a whole one
                assert {path.name for path in folder.iterdir()} == RUN_OUTPUTS, (point, folder)
    assert _run(config, data).wait(timeout=120) in (0, 3)
    leftovers = [str(path) for path in runs.rglob("*") if ".tmp" in path.name]
    assert leftovers == []
    assert list((data / "ledger" / "staging").iterdir()) == []
