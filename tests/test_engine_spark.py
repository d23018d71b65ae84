"""Issue 22: the Spark engine decides as one machine does, row for row.

Spark runs in local mode (local[2]) in this process; CI installs the spark extra, so none
of this is skipped there. Each case is a folder of generated contact files cleaned once
by Spark and file by file on one machine: the change lists must be equal line for line
(beside Spark's ``file`` column) and the cleaned rows equal in every mode.
"""

from __future__ import annotations

import json
import random
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

# never skipped: the README's test command installs the spark extra
from reconcile import _spark_session, spark_run
from reconcile import spark as spark_module
from reconcile.clean import CleanOptions, clean_files
from reconcile.columns import ColumnChoice
from reconcile.history_files import load_change_files
from reconcile.ledger import Ledger
from tests.helpers import NANP_FORMATS, NOW

START = datetime(2024, 3, 1, tzinfo=UTC)
NUMBERS = [14155550100 + offset for offset in range(12)]


def _written(number: int, rng: random.Random) -> str:
    area, exchange, line = str(number)[1:4], str(number)[4:7], str(number)[7:]
    form = rng.choice(NANP_FORMATS)
    return form.format(a=area, b=exchange, c=line)


def _phone_cell(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.08:
        return rng.choice(["", "N/A", "(123) 555-0100", "4.15555E+09", "+44 20 7946 0958"])
    if pick < 0.3:  # several numbers in one cell, with labels
        first, second = rng.sample(NUMBERS, 2)
        joiner = rng.choice([" / ", "; ", ", ", " or "])
        return f"Mobile: {_written(first, rng)}{joiner}Work: {_written(second, rng)}"
    return _written(rng.choice(NUMBERS), rng)


def _consent_cell(rng: random.Random) -> str:
    moment = START + timedelta(days=rng.randint(-20, 60), seconds=rng.randint(0, 86399))
    return rng.choice(
        [
            "",
            "yesterday",
            "2024-02-30",
            moment.strftime("%Y-%m-%d"),
            moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            moment.strftime("%Y-%m-%dT%H:%M:%S-05:00"),
            moment.strftime("%Y-%m-%d %H:%M"),
            f"{moment.month}/{moment.day}/{moment.year}",
            moment.strftime(f"{moment.month}/{moment.day}/%Y %I:%M %p"),
        ]
    )


def _contacts(path: Path, rng: random.Random, rows: int) -> None:
    frame = pl.DataFrame(
        {
            "Contact ID": [f"C{index:05d}" for index in range(rows)],
            "Full Name": [
                rng.choice(["Ann", "Bo, Jr.", 'Cy "C"', "Dee\nSmith", " Ed "]) for _ in range(rows)
            ],
            "Mobile Phone": [_phone_cell(rng) for _ in range(rows)],
            "Home Phone": [_phone_cell(rng) if rng.random() < 0.4 else "" for _ in range(rows)],
            "Opt-In Date": [_consent_cell(rng) for _ in range(rows)],
        }
    )
    frame.write_csv(path)


def _history(folder: Path, rng: random.Random) -> None:
    """Two reports that cover March to May, with duplicates across them, ties, every
    event type and replacement numbers."""
    folder.mkdir()
    metadata = {
        "results": [
            {
                "reportId": report,
                "networkName": network,
                "generatedDate": "2024-06-01T00:00:00Z",
                "dateFrom": "2024-03-01T00:00:00Z",
                "dateTo": "2024-06-01T00:00:00Z",
                "expiryDate": "2024-07-31T00:00:00Z",
            }
            for report, network in (("rep-a", "Verizon Wireless"), ("rep-b", "T-Mobile USA"))
        ]
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    shared = []
    for number in rng.sample(NUMBERS, 4):
        moment = START + timedelta(days=rng.randint(0, 80), hours=rng.randint(0, 23))
        shared.append((number, moment, "DEACTIVATION"))
    for report in ("rep-a", "rep-b"):
        records = []
        events = list(shared)
        for number in rng.sample(NUMBERS, 7):
            moment = START + timedelta(days=rng.randint(0, 80), hours=rng.randint(0, 23))
            kind = rng.choice(["DEACTIVATION", "SUSPENSION", "REACTIVATION", "ACTIVATION"])
            events.append((number, moment, kind))
        for number, moment, kind in events:
            record = {
                "date": moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                "destination": str(number),
                "type": kind,
            }
            if kind == "DEACTIVATION" and rng.random() < 0.3:
                record["newDestination"] = str(rng.choice(NUMBERS))
            records.append(record)
        (folder / f"{report}.json").write_text(json.dumps({"results": records}))


# SPEC's worked examples, one row each (history: DEACTIVATION 2024-03-10T11:00Z etc.)
WORKED = [
    ("(415) 555-0123", "2024-03-10"),
    ("415.555.0123", "2024-03-10T11:00:01Z"),
    ("4155550123", "2024-03-10T11:00:00Z"),
    ("+1 415 555 0123", "2024-03-10T06:00:00-05:00"),
    ("1-415-555-0123", "3/9/2024 11:30 PM"),
    ("4155550124", "2024-03-15"),
    ("4155550125", "2024-03-15"),
    ("4155550126", "2024-03-20"),
    ("4155550127", ""),
]


def _worked_examples(contacts: Path, changes: Path) -> None:
    pl.DataFrame(
        {"phone": [p for p, _ in WORKED], "consent_date": [c for _, c in WORKED]}
    ).write_csv(contacts)
    changes.mkdir()
    lines = [
        "destination,date,type",
        "14155550123,2024-03-10T11:00:00Z,DEACTIVATION",
        "14155550124,2024-04-01T00:00:00Z,SUSPENSION",
        "14155550124,2024-04-05T00:00:00Z,REACTIVATION",
        "14155550125,2024-04-01T00:00:00Z,REACTIVATION",
        "14155550125,2024-04-05T00:00:00Z,SUSPENSION",
        "14155550126,2024-03-05T00:00:00Z,SUSPENSION",
        "14155550127,2024-04-02T00:00:00Z,DEACTIVATION",
    ]
    (changes / "worked.csv").write_text("\n".join(lines) + "\n")


def _spark_cli(run_cli, path, changes, *args):  # type: ignore[no-untyped-def]
    """`reconcile clean PATH --changes CHANGES --engine spark ARGS...`, in this process."""
    return run_cli("clean", path, "--changes", changes, "--engine", "spark", *args)


@pytest.fixture(scope="module")
def spark():  # type: ignore[no-untyped-def]
    # a handful of rows: two shuffle partitions are two tasks a stage, not eight
    before, _spark_session.LOCAL_PARTITIONS = _spark_session.LOCAL_PARTITIONS, 2
    yield spark_module.session("local[2]")
    _spark_session.LOCAL_PARTITIONS = before


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder of generated contact files, and a folder of change files."""
    root = tmp_path_factory.mktemp("spark-cases")
    contacts = root / "contacts"
    contacts.mkdir()
    rng = random.Random(22)
    for index in range(4):
        _contacts(contacts / f"list-{index}.csv", rng, rows=rng.randint(40, 400))
    history = root / "history"
    _history(history, rng)
    return contacts, history


def _single_machine(files: list[Path], history, options: CleanOptions, out: Path):  # type: ignore[no-untyped-def]
    out.mkdir(parents=True, exist_ok=True)
    options = CleanOptions(**{**options.__dict__, "out_dir": out, "report": False, "force": True})
    clean_files(files, history, options, NOW)
    return out


def _read(path: Path) -> pl.DataFrame:
    """A CSV file or a Spark output folder, every field as text; an empty field is
    empty whether it was written quoted or not (SPEC: the text is kept, not the bytes)."""
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    frames = [pl.read_csv(file, infer_schema=False) for file in files]
    frame = pl.concat(frames) if frames else pl.DataFrame()
    return frame.with_columns(pl.all().fill_null(""))


def _spark_clean(spark, path: Path, history, options: CleanOptions, out: Path) -> dict:  # type: ignore[no-untyped-def]
    options = CleanOptions(**{**options.__dict__, "out_dir": out, "force": True})
    [summary] = spark_run.clean_paths([str(path)], history, options, NOW)
    return summary


@pytest.mark.parametrize(
    ("mode", "timezone"),
    [("strip", "UTC"), ("blank", "America/New_York"), ("flag", "Asia/Kolkata")],
)
def test_generated_files_agree_row_for_row(spark, cases, tmp_path, mode, timezone):  # type: ignore[no-untyped-def]
    contacts, history_folder = cases
    history = load_change_files([history_folder])
    options = CleanOptions(mode=mode, consent_timezone=timezone)
    files = sorted(contacts.glob("*.csv"))
    local = _single_machine(files, history, options, tmp_path / "local")
    summary = _spark_clean(spark, contacts, history, options, tmp_path / "spark")
    spark_changes = _read(tmp_path / "spark" / "contacts.changes")
    spark_cleaned = _read(tmp_path / "spark" / "contacts.cleaned")
    assert spark_changes.columns[0] == "file"
    rows = 0
    for file in files:
        expected = _read(local / f"{file.stem}.changes.csv")
        got = spark_changes.filter(pl.col("file").str.ends_with("/" + file.name)).drop("file")
        assert expected.height > 0
        assert got.equals(expected), file.name
        rows += pl.read_csv(file, infer_schema=False).height
    # the cleaned rows: the same rows (Spark's output holds every file, in file order)
    expected_cleaned = pl.concat([_read(local / f"{file.stem}.cleaned.csv") for file in files])
    assert spark_cleaned.equals(expected_cleaned)
    assert summary["rows"] == rows
    assert summary["mode"] == mode


def test_worked_examples_and_a_parquet_copy_agree(spark, tmp_path):  # type: ignore[no-untyped-def]
    contacts = tmp_path / "worked.csv"
    _worked_examples(contacts, tmp_path / "changes")
    history = load_change_files([tmp_path / "changes"])
    options = CleanOptions(mode="flag")
    local = _single_machine([contacts], history, options, tmp_path / "local")
    expected = _read(local / "worked.changes.csv")
    verdicts = expected.get_column("verdict").to_list()
    assert verdicts == [
        "deactivated",
        "deactivated",
        "deactivated",
        "deactivated",
        "suspended",
        "suspended",
        "deactivated",
    ]
    _spark_clean(spark, contacts, history, options, tmp_path / "spark")
    assert _read(tmp_path / "spark" / "worked.changes").drop("file").equals(expected)
    # the same contacts as Parquet: the change list is the same, the cleaned rows Parquet
    folder = tmp_path / "lake"
    folder.mkdir()
    pl.read_csv(contacts, infer_schema=False).write_parquet(folder / "part-0.parquet")
    _spark_clean(spark, folder, history, options, tmp_path / "spark-parquet")
    assert _read(tmp_path / "spark-parquet" / "lake.changes").drop("file").equals(expected)
    cleaned = pl.read_parquet(tmp_path / "spark-parquet" / "lake.cleaned" / "*.parquet")
    assert (
        cleaned.get_column("reconcile_verdict").to_list()
        == _read(local / "worked.cleaned.csv").get_column("reconcile_verdict").to_list()
    )


def test_the_ledger_is_read_by_spark(run_cli, spark, cases, tmp_path):  # type: ignore[no-untyped-def]
    contacts, history_folder = cases
    imported = run_cli("ledger", "import", history_folder, "--data-dir", tmp_path / "ledger")
    assert imported.exit_code == 0, imported.output
    history = Ledger(tmp_path / "ledger").history()
    assert history.event_parts
    options = CleanOptions()
    file = sorted(contacts.glob("*.csv"))[0]
    local = _single_machine([file], history, options, tmp_path / "local")
    _spark_clean(spark, file, history, options, tmp_path / "spark")
    expected = _read(local / f"{file.stem}.changes.csv")
    assert _read(tmp_path / "spark" / f"{file.stem}.changes").drop("file").equals(expected)


def test_day_lists_and_delivery_failures_agree(run_cli, spark, cases, tmp_path):  # type: ignore[no-untyped-def]
    """Other evidence read by Spark from the ledger (day-only events, delivery failures,
    and a file written before their columns existed) decides as one machine does."""
    import json

    import pyarrow.parquet as pq

    _contacts, history_folder = cases
    data = tmp_path / "ledger"
    assert run_cli("ledger", "import", history_folder, "--data-dir", data).exit_code == 0
    ledger = Ledger(data)
    for path in ledger.events_dir.glob("*.parquet"):  # as an earlier version wrote them
        pq.write_table(pq.read_table(path).drop_columns(["day_only", "detail"]), path)
    manifest = json.loads(ledger.manifest_path.read_text())
    manifest["files"] = {
        name: {"reports": info["reports"]} for name, info in manifest["files"].items()
    }
    ledger.manifest_path.write_text(json.dumps(manifest))
    (tmp_path / "day.txt").write_text("+14155550123\n4155550124\n")
    assert (
        run_cli(
            "ledger",
            "import",
            tmp_path / "day.txt",
            "--deactivated-on",
            "2024-03-10",
            "--source",
            "vonage",
            "--data-dir",
            data,
        ).exit_code
        == 0
    )
    failures = {
        "results": [
            {
                "messageId": "m-1",
                "to": "14155550125",
                "doneAt": "2024-03-12T10:00:00.000+0000",
                "error": {"id": 3041, "name": "EC_DEACTIVATED_NUMBER"},
            },
        ]
    }
    (tmp_path / "dlr.json").write_text(json.dumps(failures))
    assert run_cli("ledger", "import", tmp_path / "dlr.json", "--data-dir", data).exit_code == 0
    contacts = tmp_path / "other.csv"
    contacts.write_text(
        "Phone,Consent\n"
        "4155550123,2024-03-10\n"
        "4155550123,2024-03-11T12:00:01Z\n"
        "4155550124,2024-03-11T08:00:00Z\n"
        "4155550125,2024-03-12\n"
        "4155550125,2024-03-12T10:00:01Z\n"
    )
    history = Ledger(data).history()
    options = CleanOptions(mode="flag")
    local = _single_machine([contacts], history, options, tmp_path / "local")
    expected = _read(local / "other.changes.csv")
    assert expected.get_column("event_date").to_list()[:2] == [
        "2024-03-10 (day only)",
        "2024-03-10 (day only)",
    ]
    assert "(may be a port)" in expected.item(0, "reason")
    assert "message id m-1" in expected.item(2, "reason")
    _spark_clean(spark, contacts, history, options, tmp_path / "spark")
    assert _read(tmp_path / "spark" / "other.changes").drop("file").equals(expected)
    assert _read(tmp_path / "spark" / "other.cleaned").equals(_read(local / "other.cleaned.csv"))


def test_a_semicolon_file_with_a_bom_crlf_and_odd_names_keeps_them(spark, tmp_path):  # type: ignore[no-untyped-def]
    contacts = tmp_path / "excel.csv"
    contacts.write_bytes(
        b'\xef\xbb\xbfphone;consent_date;Contact.Name`s\r\n4155550123;2024-03-01;"a;b"\r\n'
        b"4155550124;2024-03-20; x \r\n"
    )
    _worked_examples(tmp_path / "unused.csv", tmp_path / "changes")
    history = load_change_files([tmp_path / "changes"])
    options = CleanOptions(mode="flag")
    local = _single_machine([contacts], history, options, tmp_path / "local")
    _spark_clean(spark, contacts, history, options, tmp_path / "spark")
    expected = _read(local / "excel.changes.csv")
    assert expected.height == 1
    assert _read(tmp_path / "spark" / "excel.changes").drop("file").equals(expected)
    [part] = (tmp_path / "spark" / "excel.cleaned").glob("*.csv")
    header, first, second = part.read_text().splitlines()
    # a name with a dot and a backtick (which pyspark cannot pass by name) kept as it was
    assert header.startswith("phone;consent_date;Contact.Name`s;reconcile_verdict")
    assert first.startswith('4155550123;2024-03-01;"a;b";deactivated;remove;')
    assert second.startswith("4155550124;2024-03-20; x ;ok;keep;")


def test_blank_lines_are_counted_and_said(spark, tmp_path):  # type: ignore[no-untyped-def]
    """Spark's reader drops blank lines before rows are numbered: the run says so."""
    _worked_examples(tmp_path / "unused.csv", tmp_path / "changes")
    folder = tmp_path / "lake"
    folder.mkdir()
    (folder / "gappy.csv").write_text(
        "phone,consent_date\n4155550123,2024-03-01\n\n\n4155550127,\n"
    )
    (folder / "tidy.csv").write_text("phone,consent_date\n4155550123,2024-03-01\n")
    history = load_change_files([tmp_path / "changes"])
    summary = _spark_clean(spark, folder, history, CleanOptions(), tmp_path / "spark")
    assert summary["blank_rows_skipped"] == 2
    assert (
        "blank lines skipped in gappy.csv (2): the change list's row numbers after a blank "
        "line are lower than a spreadsheet's" in " ".join(summary["warnings"])
    )
    changes = _read(tmp_path / "spark" / "lake.changes")
    assert changes.select("row", "phone").rows() == [
        ("1", "4155550123"),
        ("2", "4155550127"),
        ("1", "4155550123"),
    ]


def test_phone_columns_found_by_content_are_each_files_own(spark, tmp_path):  # type: ignore[no-untyped-def]
    """One machine finds a phone column by what it holds file by file: so does Spark, for
    a folder whose files differ (here only the second file's `Extra` holds numbers)."""
    _worked_examples(tmp_path / "unused.csv", tmp_path / "changes")
    folder = tmp_path / "lake"
    folder.mkdir()
    rows = "\n".join(f"415555{1000 + n},2024-03-01,note {n}" for n in range(8))
    (folder / "a.csv").write_text(f"phone,consent_date,Extra\n{rows}\n")
    numbers = "\n".join(f"415555{1000 + n},2024-03-01,(415) 555-012{n % 8}" for n in range(8))
    (folder / "b.csv").write_text(f"phone,consent_date,Extra\n{numbers}\n")
    history = load_change_files([tmp_path / "changes"])
    options = CleanOptions(mode="blank")
    files = sorted(folder.glob("*.csv"))
    local = _single_machine(files, history, options, tmp_path / "local")
    summary = _spark_clean(spark, folder, history, options, tmp_path / "spark")
    changes = _read(tmp_path / "spark" / "lake.changes")
    for file in files:
        expected = _read(local / f"{file.stem}.changes.csv")
        got = changes.filter(pl.col("file").str.ends_with("/" + file.name)).drop("file")
        assert got.equals(expected), file.name
    assert changes.filter(pl.col("phone_column") == "Extra").height > 0
    assert summary["columns"]["phone_by_content"] == ["Extra"]
    cleaned = _read(tmp_path / "spark" / "lake.cleaned")
    expected_cleaned = pl.concat([_read(local / f"{f.stem}.cleaned.csv") for f in files])
    assert cleaned.equals(expected_cleaned)


def test_two_columns_of_one_name_are_refused(run_cli, spark, tmp_path):  # type: ignore[no-untyped-def]
    _worked_examples(tmp_path / "unused.csv", tmp_path / "changes")
    twins = tmp_path / "twins.csv"
    twins.write_text("Phone,consent_date,phone\n4155550123,2024-03-01,4155550124\n")
    result = _spark_cli(
        run_cli,
        twins,
        tmp_path / "changes",
        "--out-dir",
        tmp_path / "out",
    )
    assert result.exit_code == 1
    assert "two columns are named 'Phone' and 'phone' (the second is column 3)" in result.stderr
    assert not (tmp_path / "out").exists()
    flagged = tmp_path / "flagged.csv"
    flagged.write_text("Phone,consent_date,reconcile_verdict\n4155550123,2024-03-01,ok\n")
    again = _spark_cli(
        run_cli,
        flagged,
        tmp_path / "changes",
        "--out-dir",
        tmp_path / "out",
    )
    assert again.exit_code == 1
    assert "has a column named 'reconcile_verdict', which the Spark engine adds" in again.stderr
    assert "Traceback" not in again.stderr and "Exception" not in again.stderr
    # a header with an unnamed column (a trailing delimiter, a pandas index) is read
    pandas = tmp_path / "pandas.csv"
    pandas.write_text(",Phone,consent_date\n0,4155550123,2024-03-01\n1,4155550127,\n")
    history = load_change_files([tmp_path / "changes"])
    options = CleanOptions(mode="flag")
    local = _single_machine([pandas], history, options, tmp_path / "local")
    _spark_clean(spark, pandas, history, options, tmp_path / "spark")
    expected = _read(local / "pandas.changes.csv")
    assert expected.height == 2
    assert _read(tmp_path / "spark" / "pandas.changes").drop("file").equals(expected)
    [part] = (tmp_path / "spark" / "pandas.cleaned").glob("*.csv")
    assert part.read_text().splitlines()[0].startswith('"",Phone,consent_date,reconcile_')
    # a folder whose files' headers differ is refused, naming them
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.csv").write_text("Phone,consent_date\n4155550123,2024-03-01\n")
    (folder / "b.csv").write_text("consent_date,Phone\n2024-03-01,4155550123\n")
    mixed = _spark_cli(
        run_cli,
        folder,
        tmp_path / "changes",
        "--out-dir",
        tmp_path / "out",
    )
    assert mixed.exit_code == 1
    assert "b.csv's header differs from a.csv's" in mixed.stderr


def test_parquet_instants_are_instants_and_a_file_column_is_kept_apart(spark, tmp_path):  # type: ignore[no-untyped-def]
    """A Parquet consent that is an instant is never read in --consent-timezone (as its
    CSV twin with a Z is not); an included column named `file` is not Spark's `file`."""
    _worked_examples(tmp_path / "unused.csv", tmp_path / "changes")
    history = load_change_files([tmp_path / "changes"])
    consent = [datetime(2024, 3, 10, 10, 30, tzinfo=UTC), datetime(2024, 3, 10, 11, 30, tzinfo=UTC)]
    frame = pl.DataFrame(
        {
            "Phone": [4155550123, 4155550123],
            "Opt-In Date": pl.Series(consent, dtype=pl.Datetime("us", "UTC")),
            "File": ["a", "b"],
        }
    )
    twin = tmp_path / "twin.csv"
    frame.with_columns(
        pl.col("Opt-In Date").dt.strftime("%Y-%m-%dT%H:%M:%SZ"), pl.col("Phone").cast(pl.String)
    ).write_csv(twin)
    folder = tmp_path / "lake"
    folder.mkdir()
    frame.write_parquet(folder / "part-0.parquet")
    columns = ColumnChoice(include=("File",))
    options = CleanOptions(mode="flag", consent_timezone="America/New_York", columns=columns)
    local = _single_machine([twin], history, options, tmp_path / "local")
    expected = _read(local / "twin.changes.csv")
    # 10:30Z is before the 11:00Z deactivation (read in New York it would be after it)
    assert expected.get_column("verdict").to_list() == ["deactivated"]
    _spark_clean(spark, folder, history, options, tmp_path / "spark")
    changes = _read(tmp_path / "spark" / "lake.changes")
    assert changes.columns[-1] == "File (contact)"
    got = changes.drop("file").rename({"File (contact)": "File"})
    assert got.drop("consent").equals(expected.drop("consent"))
    cleaned = pl.read_parquet(tmp_path / "spark" / "lake.cleaned" / "*.parquet")
    assert cleaned.schema["Opt-In Date"] == pl.Datetime("us", "UTC")  # still an instant
    assert cleaned.get_column("reconcile_verdict").to_list() == ["deactivated", "ok"]


def test_several_paths_write_everything_or_nothing(run_cli, spark, tmp_path):  # type: ignore[no-untyped-def]
    _worked_examples(tmp_path / "good.csv", tmp_path / "changes")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,consent_date\nAnn,2024-03-01\n")  # no phone column
    out = tmp_path / "out"
    args = ("--changes", tmp_path / "changes", "--engine", "spark", "--out-dir", out)
    result = run_cli("clean", tmp_path / "good.csv", bad, *args)
    assert result.exit_code == 1
    assert "no phone column found" in result.stderr
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "good.csv").write_bytes((tmp_path / "good.csv").read_bytes())
    twice = run_cli("clean", tmp_path / "good.csv", tmp_path / "again" / "good.csv", *args)
    assert twice.exit_code == 1
    assert "would both write" in twice.stderr
    latin = run_cli("clean", tmp_path / "good.csv", *args, "--encoding", "latin-1")
    assert latin.exit_code == 0, latin.stderr
    assert sorted(p.name for p in out.iterdir()) == ["good.changes", "good.cleaned"]


def test_clean_frame_for_notebooks(spark, tmp_path):  # type: ignore[no-untyped-def]
    contacts = tmp_path / "worked.csv"
    _worked_examples(contacts, tmp_path / "changes")
    history = load_change_files([tmp_path / "changes"])
    options = CleanOptions()
    frame = spark_module.read_contacts(spark, str(contacts), options)
    decided, changes = spark_module.clean_frame(frame, history, options, NOW)
    assert changes.columns == list(spark_module.SPARK_CHANGE_COLUMNS)
    rows = {row["reconcile_row"]: row["reconcile_verdict"] for row in decided.collect()}
    assert rows == {
        1: "deactivated",
        2: "ok",
        3: "deactivated",
        4: "deactivated",
        5: "deactivated",
        6: "ok",
        7: "suspended",
        8: "suspended",
        9: "deactivated",
    }
    kept = spark_module.cleaned_frame(decided, "strip").collect()
    assert [row["phone"] for row in kept] == ["415.555.0123", "4155550124"]


def test_bad_inputs_get_one_line_and_leave_nothing(run_cli, spark, tmp_path):  # type: ignore[no-untyped-def]
    contacts = tmp_path / "worked.csv"
    _worked_examples(contacts, tmp_path / "changes")
    out = tmp_path / "out"
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("phone,consent_date\n4155550123,2024-03-10\n4155550124,2024-03-10,extra\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("phone,consent_date,name\n4155550123,2024-03-10,Ren\xe9e\n".encode("cp1252"))
    workbook = tmp_path / "book.xlsx"
    workbook.write_bytes(b"PK\x03\x04")
    expected = {
        tmp_path / "missing.csv": "no such file or folder",
        ragged: "does not split into the header's fields",
        latin: "row 1, column 'name' is not UTF-8 text; give the file's encoding with --encoding",
        workbook: "reads CSV files or Parquet files",
    }
    for path, message in expected.items():
        result = _spark_cli(
            run_cli,
            path,
            tmp_path / "changes",
            "--spark-master",
            "local[2]",
            "--out-dir",
            out,
        )
        assert result.exit_code == 1, result.output
        assert message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert not out.exists() or not any(out.iterdir()), path
    # cp1252 when told
    result = _spark_cli(
        run_cli,
        latin,
        tmp_path / "changes",
        "--encoding",
        "windows-1252",
        "--out-dir",
        out,
        "--mode",
        "flag",
    )
    assert result.exit_code == 0, result.stderr
    assert "Renée" in _read(out / "latin.cleaned").get_column("name").to_list()
    # outputs exist: refused without --force, nothing changed
    before = sorted(p.name for p in (out / "latin.cleaned").iterdir())
    again = _spark_cli(
        run_cli,
        latin,
        tmp_path / "changes",
        "--encoding",
        "windows-1252",
        "--out-dir",
        out,
    )
    assert again.exit_code == 1
    assert "exists; pass --force" in again.stderr
    assert sorted(p.name for p in (out / "latin.cleaned").iterdir()) == before


def test_the_command_line_prints_the_summary(run_cli, spark, tmp_path):  # type: ignore[no-untyped-def]
    contacts = tmp_path / "worked.csv"
    _worked_examples(contacts, tmp_path / "changes")
    result = _spark_cli(
        run_cli,
        contacts,
        tmp_path / "changes",
        "--spark-master",
        "local[2]",
        "--out-dir",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{contacts}: 9 rows -> 2 kept (0 to review), 5 removed, 2 suppressed"
    assert lines[1] == "  invalid_number 0, deactivated 5, suspended 2, unverified 0, ok 2"
    assert lines[2] == "  checked 9 numbers in 'phone'"
    assert lines[-1] == (f"  wrote {tmp_path}/out/worked.cleaned and {tmp_path}/out/worked.changes")
    local = run_cli("clean", contacts, "--changes", tmp_path / "changes", "--spark-master", "x")
    assert local.exit_code == 1
    assert "--spark-master needs --engine spark" in local.stderr


def test_the_readme_notebook_example_runs(run_cli, spark, tmp_path):  # type: ignore[no-untyped-def]
    contacts = tmp_path / "contacts"
    contacts.mkdir()
    _worked_examples(contacts / "worked.csv", tmp_path / "changes")
    imported = run_cli("ledger", "import", tmp_path / "changes", "--data-dir", tmp_path / "data")
    assert imported.exit_code == 0, imported.output
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("In a notebook (Databricks, EMR)", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    code = (
        code.replace("/dbfs/reconcile", str(tmp_path / "data"))
        .replace("s3a://lake/contacts/", str(contacts))
        .replace("s3a://lake/", str(tmp_path / "out") + "/")
    )
    exec(code, {"spark": spark})  # noqa: S102 (the README's own example)
    cleaned = pl.read_parquet(tmp_path / "out" / "cleaned" / "*.parquet")
    assert cleaned.height == len(WORKED)  # flag mode keeps every row
    assert "reconcile_verdict" in cleaned.columns
    changes = _read(tmp_path / "out" / "changes")
    assert changes.height == 7


def test_without_the_extra_the_engine_says_how_to_get_it(run_cli, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    _worked_examples(tmp_path / "worked.csv", tmp_path / "changes")
    for name in ("reconcile.spark", "reconcile.spark_run", "reconcile._spark_session"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name in ("pyspark", "pyspark.errors", "pyspark.sql", "pyspark.storagelevel"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails, as without the extra
    result = _spark_cli(
        run_cli,
        tmp_path / "worked.csv",
        tmp_path / "changes",
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: error: the Spark engine needs the spark extra: pip install "
        "'reconcile[spark]' (and Java 17 or later).\n"
    )
