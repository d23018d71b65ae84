"""Issue 21: a clean's peak memory does not grow with the file.

Two cleans of the same kind of contacts, 200,000 and 2,000,000 rows, each in a process of
its own, report their peak resident memory (VmHWM, the process's own high-water mark);
they must be within a small margin. Blocks of 4 MiB make both files many blocks long,
as a 60M-row export is with the default 48 MiB: what is measured is the steady state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GENERATE = """
import sys
from pathlib import Path
from bench.generate import contacts_frame, events_frame
folder = Path(sys.argv[1])
frame, numbers, consent = contacts_frame(2_000_000)
frame.write_csv(folder / "big.csv")
frame.head(200_000).write_csv(folder / "small.csv")
events_frame(200_000, numbers, consent).write_parquet(folder / "events.parquet")
"""

# the clean as the command line runs it, with small blocks; at exit it says its own peak
CLEAN = """
import atexit, sys
import reconcile.csv_files
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("peak-kib", line.split()[1], file=sys.stderr)
atexit.register(peak)
reconcile.csv_files.BLOCK_BYTES = 4 << 20
from reconcile.cli import main
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("memory")
    subprocess.run([sys.executable, "-c", GENERATE, str(folder)], check=True, cwd=ROOT)
    env = {**os.environ, "RECONCILE_DATA_DIR": str(folder / "data")}
    subprocess.run(
        [sys.executable, "-m", "reconcile", "ledger", "import", str(folder / "events.parquet")],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return folder, env


def _peak_mib(folder: Path, env: dict[str, str], name: str) -> float:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CLEAN,
            "clean",
            str(folder / f"{name}.csv"),
            "--no-report",
            "--force",
            "--out-dir",
            str(folder / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=folder,  # the installed reconcile, not a checkout in the working folder
    )
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("peak-kib")]
    return int(line.split()[1]) / 1024


def test_peak_memory_is_flat_from_200k_to_2m_rows(files):
    folder, env = files
    small = _peak_mib(folder, env, "small")
    big = _peak_mib(folder, env, "big")
    # ten times the rows, the same memory (measured: 212 and 222 MiB)
    assert big <= small * 1.15 + 16, (small, big)
    rows = (folder / "out" / "big.cleaned.csv").read_bytes().count(b"\n")
    assert rows > 1_500_000  # the big file really was cleaned whole
