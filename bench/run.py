"""The benchmark: reconcile against the baselines, as whole processes, on generated data.

    python bench/run.py                  # 1M contacts x 5M events, 3 runs each
    python bench/run.py --size 10m       # 10M contacts x 50M events
    python bench/run.py --size small     # a quick smoke run (10k x 50k)

It generates (once, cached in --work) a messy contact file and an operator history,
imports the history into a fresh ledger once, then times `reconcile clean` (strip mode,
cleaned file and change list written, no workbook) and the two baselines doing the same
job: the pandas script an analyst would write, and DuckDB SQL. Each figure is the median
of --runs whole-process runs: wall time, CPU time (user + system) and peak RSS, read
from the kernel with os.wait4. It also times the audit workbook, reading a large XLSX,
and `reconcile check` on the ledger, and prints everything as a table.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SIZES = {
    "small": (10_000, 50_000),
    "1m": (1_000_000, 5_000_000),
    "10m": (10_000_000, 50_000_000),
    # generated a chunk at a time; only reconcile runs (issue 21: it cleans on this
    # machine in at most 11x the 10M time)
    "100m": (100_000_000, 70_000_000),
}
LARGE = 50_000_000  # from this many contacts, no second phone file and no baselines


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float


GNU_TIME = Path("/usr/bin/time")


def measure(command: list[str], env: dict[str, str]) -> Sample:
    """Run one whole process: wall clock, CPU (user + system) and peak RSS.

    GNU time reports them when it is installed: a child forked from this (large) Python
    process would otherwise count the parent's memory in its peak RSS. Without it,
    os.wait4 reports the same figures, RSS included as the kernel counts it.
    """
    report = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-time-{os.getpid()}.txt"
    wrapped = (
        [str(GNU_TIME), "-f", "%U %S %M", "-o", str(report), *command]
        if GNU_TIME.exists()
        else command
    )
    started = time.perf_counter()
    process = subprocess.Popen(wrapped, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    error = process.stderr.read().decode() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{error}")
    if GNU_TIME.exists():
        user, system, rss_kib = report.read_text().split()[-3:]
        report.unlink()
        return Sample(wall, float(user) + float(system), int(rss_kib) / 1024)
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.rss_mib for s in samples),
    )


def timed(label: str, command: list[str], env: dict[str, str], runs: int) -> Sample:
    samples = []
    for index in range(runs):
        sample = measure(command, env)
        print(
            f"  {label} run {index + 1}: {sample.wall:.2f} s wall, {sample.rss_mib:.0f} MiB",
            flush=True,
        )
        samples.append(sample)
    return median(samples)


def dataset(work: Path, contacts: int, events: int) -> tuple[Path, Path]:
    from bench.generate import write_dataset

    folder = work / f"data-{contacts}-{events}"
    wanted = "contacts.csv" if contacts >= LARGE else "contacts-2phones.csv"
    if not (folder / "events.parquet").exists() or not (folder / wanted).exists():
        print(f"generating {contacts:,} contacts and {events:,} events in {folder} ...", flush=True)
        started = time.perf_counter()
        write_dataset(folder, contacts, events)
        print(f"  generated in {time.perf_counter() - started:.1f} s", flush=True)
    return folder / "contacts.csv", folder / "events.parquet"


def xlsx_input(work: Path, rows: int) -> Path:
    """A workbook of ``rows`` contacts x 10 columns (written once, then cached)."""
    import polars as pl

    from bench.generate import contacts_frame

    path = work / f"contacts-{rows}.xlsx"
    if not path.exists():
        print(f"writing {path} ({rows:,} rows x 10 columns) ...", flush=True)
        frame, _numbers, _consent = contacts_frame(rows, seed=5)
        frame = frame.with_columns(Score=pl.lit(1.5), Active=pl.lit(True))
        frame.write_excel(path, worksheet="Contacts", autofit=False)
    return path


def versions() -> dict[str, str]:
    import importlib.metadata as metadata

    names = [
        "reconcile",
        "polars",
        "numpy",
        "python-calamine",
        "openpyxl",
        "pandas",
        "duckdb",
        "phonenumbers",
    ]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1m")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool (median)")
    parser.add_argument(
        "--baseline-runs", type=int, default=None, help="runs for the baselines (default: --runs)"
    )
    parser.add_argument("--skip-pandas", action="store_true", help="the slow baseline")
    parser.add_argument("--skip-extras", action="store_true", help="workbook, XLSX, check")
    parser.add_argument("--work", type=Path, default=Path("/tmp/reconcile-bench"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--spark",
        action="store_true",
        help="also time --engine spark on local[2] (the spark extra): the contacts split "
        "into SPARK_PARTS files, as a lake holds them",
    )
    args = parser.parse_args()
    contacts_count, events_count = SIZES[args.size]
    baseline_runs = args.baseline_runs or args.runs
    args.work.mkdir(parents=True, exist_ok=True)
    contacts, events = dataset(args.work, contacts_count, events_count)

    ledger = args.work / f"ledger-{args.size}"
    shutil.rmtree(ledger, ignore_errors=True)
    env = {**os.environ, "RECONCILE_DATA_DIR": str(ledger)}
    # `pip install .` compiles the package's bytecode; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE set would compile every module again in every timed run.
    compileall.compile_dir(HERE.parent / "reconcile", quiet=1)
    reconcile = [sys.executable, "-m", "reconcile"]
    started = time.perf_counter()
    subprocess.run(
        [*reconcile, "ledger", "import", str(events), "--label", "bench"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    import_seconds = time.perf_counter() - started
    print(f"ledger import of {events_count:,} events: {import_seconds:.1f} s", flush=True)

    out = args.work / f"out-{args.size}"
    results: dict[str, Sample] = {}
    results["reconcile"] = timed(
        "reconcile",
        [
            *reconcile,
            "clean",
            str(contacts),
            "--no-report",
            "--force",
            "--out-dir",
            str(out / "reconcile"),
        ],
        env,
        args.runs,
    )
    large = contacts_count >= LARGE
    # the default clean, audit workbook included, timed in the same run: the budget is
    # 1.8x the --no-report time (issue 24); at 100M the budget is --no-report's alone
    if not large:
        results["reconcile, with the workbook"] = timed(
            "reconcile, with the workbook",
            [
                *reconcile,
                "clean",
                str(contacts),
                "--force",
                "--out-dir",
                str(out / "reconcile-workbook"),
            ],
            env,
            args.runs,
        )
        # the same contacts with a second phone column (half filled, 1 % with a label or two
        # numbers), timed in the same run: the budget is 1.5x the one-column time
        results["reconcile, 2 phone columns"] = timed(
            "reconcile, 2 phone columns",
            [
                *reconcile,
                "clean",
                str(contacts.with_name("contacts-2phones.csv")),
                "--no-report",
                "--force",
                "--out-dir",
                str(out / "reconcile-2phones"),
            ],
            env,
            args.runs,
        )
        results["polars reference"] = timed(
            "polars reference",
            [
                sys.executable,
                str(HERE / "baseline_polars.py"),
                str(contacts),
                str(events),
                str(out / "polars"),
            ],
            env,
            baseline_runs,
        )
        results["duckdb"] = timed(
            "duckdb",
            [
                sys.executable,
                str(HERE / "baseline_duckdb.py"),
                str(contacts),
                str(events),
                str(out / "duckdb"),
            ],
            env,
            baseline_runs,
        )
        if not args.skip_pandas:
            results["pandas"] = timed(
                "pandas",
                [
                    sys.executable,
                    str(HERE / "baseline_pandas.py"),
                    str(contacts),
                    str(events),
                    str(out / "pandas"),
                ],
                env,
                baseline_runs,
            )

    if args.spark:
        parts = spark_parts(contacts)
        results["reconcile --engine spark, local[2]"] = timed(
            "reconcile --engine spark, local[2]",
            [
                *reconcile,
                "clean",
                str(parts),
                "--engine",
                "spark",
                "--spark-master",
                "local[2]",
                "--no-report",
                "--force",
                "--out-dir",
                str(out / "spark"),
            ],
            env,
            args.runs,
        )

    extras: dict[str, float] = {}
    if not args.skip_extras and not large:
        # the check budget is for two years of history; a smoke run checks its own ledger
        check_ledger = (
            ledger if args.size == "small" else large_ledger(args.work, CHECK_EVENTS, env)
        )
        extras.update(measure_extras(args.work, contacts, ledger, check_ledger, env))

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, {_memory_gib():.0f} GiB, "
        f"Python {platform.python_version()}"
    )
    print()
    print(f"reconcile benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(
        f"{contacts_count:,} contacts x {events_count:,} events, strip mode, median of "
        f"{args.runs} (baselines {baseline_runs}) whole-process runs"
    )
    print()
    print("| tool | wall (s) | CPU (s) | peak RSS (MiB) | reconcile is faster by |")
    print("|---|---:|---:|---:|---:|")
    base = results["reconcile"]
    for name, sample in results.items():
        if name == "reconcile, with the workbook":
            ratio = f"{sample.wall / base.wall:.2f}x the --no-report time"
        elif name.startswith("reconcile --engine spark"):
            ratio = f"{sample.wall / base.wall:.2f}x the one-machine time"
        elif name.startswith("reconcile,"):
            ratio = f"{sample.wall / base.wall:.2f}x the one-column time"
        else:
            ratio = "-" if name == "reconcile" else f"{sample.wall / base.wall:.1f}x"
        print(f"| {name} | {sample.wall:.2f} | {sample.cpu:.2f} | {sample.rss_mib:.0f} | {ratio} |")
    if extras:
        print()
        for name, value in extras.items():
            print(f"{name}: {value:.2f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "size": args.size,
                    "machine": machine,
                    "versions": versions(),
                    "results": {name: sample.__dict__ for name, sample in results.items()},
                    "extras": extras,
                    "import_seconds": import_seconds,
                },
                indent=2,
            )
        )


# Spark reads a CSV file whole in one task (a quoted field may hold a line break): a lake
# holds its contacts in parts, and so does the Spark run here.
SPARK_PARTS = 8


def spark_parts(contacts: Path) -> Path:
    """The contact file split into SPARK_PARTS CSV files with the header (once)."""
    folder = contacts.parent / f"{contacts.stem}-parts"  # beside its dataset
    if folder.exists():
        return folder
    staging = contacts.parent / f"{contacts.stem}-parts.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with contacts.open("rb") as source:
        header = source.readline()
        size = contacts.stat().st_size
        for part in range(SPARK_PARTS):
            with (staging / f"part-{part:02d}.csv").open("wb") as target:
                target.write(header)
                goal = size * (part + 1) // SPARK_PARTS
                # the generated file has no quoted line break: a line is a record
                while source.tell() < goal or part == SPARK_PARTS - 1:
                    line = source.readline()
                    if not line:
                        break
                    target.write(line)
    staging.rename(folder)
    return folder


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


def measure_extras(
    work: Path, contacts: Path, ledger: Path, check_ledger: Path, env: dict[str, str]
) -> dict[str, float]:
    """The other budgets: audit workbook, XLSX reading, one-number check."""
    import polars as pl

    from reconcile import CleanOptions, ColumnChoice, read_contacts, reconcile_file
    from reconcile.ledger import Ledger
    from reconcile.workbook import RunInfo, write_audit_workbook

    extras: dict[str, float] = {}
    history = Ledger(ledger).history()
    now = datetime.now(UTC)
    result = reconcile_file(contacts, history, CleanOptions(), now)
    # the workbook budget is for 100,000 affected contacts: the first that many
    result.action_rows = result.action_rows.head(100_000)
    affected = result.action_rows
    started = time.perf_counter()
    write_audit_workbook(
        result, history, RunInfo("bench", now, "bench ledger"), work / "bench.report.xlsx"
    )
    extras[f"audit workbook, {min(100_000, affected.height):,} affected contacts"] = (
        time.perf_counter() - started
    )

    workbook = xlsx_input(work, 500_000)
    started = time.perf_counter()
    read_contacts(workbook, ColumnChoice())
    extras["XLSX input, 500,000 rows x 10 columns, read"] = time.perf_counter() - started

    check_env = {**env, "RECONCILE_DATA_DIR": str(check_ledger)}
    # a number that has events in the ledger checked, so the answer comes from its events
    checked = Ledger(check_ledger).history().lazy_events().select("number").head(1)
    number = "+1 " + str(int(checked.collect().item()))[1:]
    check = median(
        [
            measure(
                [sys.executable, "-m", "reconcile", "check", number, "--since", "2025-01-01"],
                check_env,
            )
            for _run in range(3)
        ]
    )
    events = Ledger(check_ledger).history().lazy_events().select(pl.len()).collect().item()
    extras[f"reconcile check on {events:,} events (whole process)"] = check.wall
    return extras


# two years of US deactivations at about 96,000 a day
CHECK_EVENTS = 70_000_000


def large_ledger(work: Path, events: int, env: dict[str, str]) -> Path:
    """A ledger of ``events`` events (generated and imported once, then cached)."""
    from bench.generate import contacts_frame, events_frame

    folder = work / f"ledger-{events}"
    done = folder / "imported"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        source = work / f"events-{events}.parquet"
        print(f"generating and importing a ledger of {events:,} events ...", flush=True)
        started = time.perf_counter()
        _frame, numbers, consent = contacts_frame(1_000_000, seed=7)
        events_frame(events, numbers, consent, seed=8).write_parquet(source)
        del _frame
        subprocess.run(
            [sys.executable, "-m", "reconcile", "ledger", "import", str(source), "--label", "big"],
            env={**env, "RECONCILE_DATA_DIR": str(folder)},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        source.unlink()
        done.write_text(f"{events} events\n")
        print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    return folder


if __name__ == "__main__":
    main()
