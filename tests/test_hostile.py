"""Hostile contact files, full disks and read-only folders: one line, exit 1, nothing left.

The catalogue with what each input gets is in docs/hostile-inputs.md.
"""

from __future__ import annotations

import errno
import io
import os
import zipfile
from pathlib import Path

import openpyxl
import pytest

from tests.conftest import tree_snapshot


def _xlsx_bytes(build) -> bytes:
    workbook = openpyxl.Workbook()
    build(workbook)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _merged_header(workbook) -> None:
    sheet = workbook.active
    sheet.append(["Phone", "Opt-In Date"])
    sheet.append(["4155550104", "2024-04-01"])
    sheet.merge_cells("A1:B1")


def _no_sheets() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook><sheets/></workbook>")
    return buffer.getvalue()


SAMPLE_XLSX = (Path(__file__).resolve().parent.parent / "samples" / "contacts.xlsx").read_bytes()

REFUSED = [
    ("zero.csv", b"", "zero.csv: the file is empty"),
    ("header.csv", b"Phone,Opt-In Date\r\n", "header.csv: the file has a header but no data rows."),
    ("dup.csv", b"Phone,Phone,Opt-In Date\n1,2,3\n", "dup.csv: 2 columns are named 'Phone'"),
    (
        "ragged.csv",
        b"Phone,Opt-In Date\n4155550104,2024-04-01,x\n",
        "ragged.csv: line 2 has 3 fields",
    ),
    (
        "nul.csv",
        b"Phone,Opt-In Date\n41555\x0050104,2024-04-01\n",
        "nul.csv: line 2 holds a NUL byte",
    ),
    (
        "binary.csv",
        bytes(range(1, 256)) * 8,
        "binary.csv: line 2 is neither UTF-8 nor Windows-1252",
    ),
    (
        "mixed.csv",
        "Phone,Name\n1,Chloé Zoë\n".encode() + b"2,Jos\xe9\n",
        "mixed.csv: line 3 is not valid UTF-8",
    ),
    ("stray.csv", b'Phone,Opt-In Date\n415"555,2024-04-01\n', "stray.csv: line 2"),
    (
        "unclosed.csv",
        b'Phone,Opt-In Date\n"4155550104,2024-04-01\n',
        "unclosed.csv: line 2: a quoted field is never closed",
    ),
    ("xlsx.csv", SAMPLE_XLSX, "xlsx.csv is a zip archive (an Excel workbook?), not CSV text"),
    ("csv.xlsx", b"Phone,Opt-In Date\n", "csv.xlsx is not an Excel .xlsx workbook"),
    (
        "truncated.xlsx",
        SAMPLE_XLSX[: len(SAMPLE_XLSX) // 2],
        "truncated.xlsx cannot be read as an Excel workbook",
    ),
    (
        "protected.xlsx",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512,
        "protected.xlsx is not an Excel .xlsx workbook (it may be damaged, password-protected",
    ),
    ("nosheets.xlsx", _no_sheets(), "nosheets.xlsx cannot be read as an Excel workbook"),
    ("merged.xlsx", _xlsx_bytes(_merged_header), "merged.xlsx: no consent date column found"),
    ("old.xls", b"\xd0\xcf\x11\xe0", "old.xls is the old Excel 97-2003 format"),
    ("sheet.ods", b"PK\x03\x04", "sheet.ods is an OpenDocument spreadsheet"),
    ("contacts.pdf", b"%PDF-1.4", "contacts.pdf: unknown file type '.pdf'"),
    (
        "utf16.csv",
        "Phone,Opt-In Date\n4155550104,2024-04-01\n".encode("utf-16"),
        "utf16.csv is UTF-16 text; save it as CSV UTF-8",
    ),
    (
        "utf32.csv",
        "Phone,Opt-In Date\n4155550104,2024-04-01\n".encode("utf-32"),
        "utf32.csv is UTF-32 text; save it as CSV UTF-8",
    ),
    (
        "utf32be.csv",
        "\ufeffPhone,Opt-In Date\n4155550104,2024-04-01\n".encode("utf-32-be"),
        "utf32be.csv is UTF-32 text; save it as CSV UTF-8",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), REFUSED, ids=[case[0] for case in REFUSED])
def test_hostile_contact_files_are_refused_in_one_line(
    run_cli, tmp_path, history_dir, name, content, message
):
    source = tmp_path / "in" / name
    source.parent.mkdir()
    source.write_bytes(content)
    before = tree_snapshot(tmp_path)
    result = run_cli("clean", source, "--changes", history_dir)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"reconcile: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert tree_snapshot(tmp_path) == before


BIG = 17 << 20  # past the 16 MiB bound on a record (the hostile files were 1 GiB)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (lambda: b"x" * BIG, 1),  # one field, no line break at all
        (lambda: b"Phone,Opt-In Date," + b"y" * BIG + b"\n4155550101,2024-03-01,z\n", 1),
        (lambda: b"Phone,Opt-In Date\n4155550101,2024-03-01\n" + b"9" * BIG + b"\n", 3),
        # a quoted field of short lines: the record is the long thing
        (
            lambda: (
                b'Phone,Opt-In Date,Note\n4155550101,2024-03-01,"' + b"ab\n" * (BIG // 3) + b'"\n'
            ),
            2,
        ),
        (lambda: b"Phone,Opt-In Date\r4155550101,2024-03-01\r" + b"7" * BIG + b"\r", 3),
    ],
    ids=["one-field", "header-without-break", "long-line", "quoted-lines", "cr-only-lines"],
)
def test_a_record_past_16_mib_is_refused_before_any_reader_sees_it(
    run_cli, tmp_path, history_dir, content, line
):
    source = tmp_path / "in" / "huge.csv"
    source.parent.mkdir()
    source.write_bytes(content())
    before = tree_snapshot(tmp_path)
    result = run_cli("clean", source, "--changes", history_dir)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"reconcile: error: huge.csv: line {line} begins a record longer than 16 MiB"
    ), result.stderr[:300]
    assert result.stderr.count("\n") == 1
    assert tree_snapshot(tmp_path) == before


def test_a_change_file_line_past_16_mib_is_refused(run_cli, tmp_path):
    changes = tmp_path / "huge-changes.csv"
    changes.write_bytes(b"destination,date,type\n" + b"1" * BIG + b"\n")
    result = run_cli("ledger", "import", changes, "--data-dir", tmp_path / "data")
    assert result.exit_code == 1
    assert f"{changes}: line 2 begins a record longer than 16 MiB" in result.stderr
    assert result.stderr.count("\n") == 1


def test_valid_but_unusual_files_are_cleaned_exactly(run_cli, tmp_path, history_dir):
    long_field = "x" * 100_000
    source = tmp_path / "odd.csv"
    body = (
        "Phone,Opt-In Date,Notes,Link\n"
        f'4155550104,2024-04-01,{long_field},"=HYPERLINK(""http://e.example"",""x"")"\n'
        '4155550101,2024-03-01,"@SUM(1+1)",+1 415\n'
    ).encode()
    source.write_bytes(body)
    result = run_cli("clean", source, "--changes", history_dir, "--no-report")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "odd.cleaned.csv").read_bytes() == body.split(b"\n4155550101")[0] + b"\n"


@pytest.mark.parametrize(
    ("where", "code", "message"),
    [
        ("write", errno.ENOSPC, "No space left on device"),
        ("settle", errno.ENOSPC, "No space left on device"),
        (
            "mkstemp",
            errno.EROFS,
            "cannot write there (Read-only file system); choose another folder",
        ),
        ("mkstemp", errno.EACCES, "cannot write there (Permission denied)"),
    ],
)
def test_full_disk_and_read_only_folders_leave_nothing_partial(
    run_cli, tmp_path, history_dir, monkeypatch, where, code, message
):
    import reconcile._atomic as atomic

    source = tmp_path / "contacts.csv"
    source.write_text("Phone,Opt-In Date\n4155550104,2024-04-01\n")
    out = tmp_path / "out"
    out.mkdir()
    calls = {"count": 0}

    def failing(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    if where == "mkstemp":
        monkeypatch.setattr(atomic.tempfile, "mkstemp", failing)
    elif where == "settle":  # the disk fills up while the outputs are being written
        import reconcile._pipeline as clean_module

        monkeypatch.setattr(clean_module, "SETTLE_BYTES", 1)
        monkeypatch.setattr(clean_module, "sync_data", failing)
    else:
        original = os.fsync

        def fsync(descriptor):
            calls["count"] += 1
            # the second output: the disk fills up with one output already written
            if calls["count"] == 2:
                raise OSError(code, os.strerror(code))
            return original(descriptor)

        monkeypatch.setattr(atomic.os, "fsync", fsync)
    result = run_cli("clean", source, "--changes", history_dir, "--out-dir", out, "--no-report")
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert list(out.iterdir()) == []  # no output, no temporary file


def test_a_full_disk_while_committing_leaves_the_ledger_as_it_was(
    run_cli, tmp_path, history_dir, monkeypatch
):
    import polars as pl

    from reconcile.ledger import Ledger

    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    before = Ledger(data).manifest_path.read_bytes()

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pl.DataFrame, "write_parquet", no_space)
    more = tmp_path / "more.csv"  # new content: a write is needed
    more.write_text("destination,date,type\n14155550177,2024-03-20T10:00:00Z,DEACTIVATION\n")
    result = run_cli("ledger", "import", history_dir, more, "--data-dir", data)
    assert result.exit_code == 1
    assert (
        "cannot write the ledger (No space left on device); it is as it was after its last commit."
        in result.stderr
    )
    assert Ledger(data).manifest_path.read_bytes() == before
    assert Ledger(data).history().events.height == 4


def test_phone_numbers_are_not_logged(run_cli, tmp_path, history_dir):
    source = tmp_path / "contacts.csv"
    source.write_text("Phone,Opt-In Date\n(415) 555-0101,2024-03-01\n4155550104,2024-04-01\n")
    result = run_cli("clean", source, "--changes", history_dir, "--no-report")
    assert result.exit_code == 0
    for digits in ("5550101", "5550104", "555-0101"):
        assert digits not in result.stdout and digits not in result.stderr


def test_two_cleans_writing_to_one_folder_never_touch_each_others_files(tmp_path, history_dir):
    from reconcile._atomic import OutputBatch
    from reconcile.errors import OutputError

    out = tmp_path / "out"
    out.mkdir()
    first = OutputBatch()
    with first.writing(out / "contacts.cleaned.csv") as stream:
        stream.write(b"a,b\n")
        [temporary] = [path for path in out.iterdir() if path.name.endswith(".tmp")]
        second = OutputBatch()
        with pytest.raises(OutputError, match="another reconcile run is writing its outputs there"):
            second.writing(out / "contacts.cleaned.csv").__enter__()
        assert temporary.exists()  # the second never removed the first one's file
    first.commit()
    assert (out / "contacts.cleaned.csv").read_bytes() == b"a,b\n"
    # once the first is done, the folder is free again
    third = OutputBatch()
    third.add_bytes(out / "other.csv", b"x\n")
    third.commit()


def test_the_workbook_writer_leaves_no_temporary_file_anywhere(
    run_cli, tmp_path, history_dir, monkeypatch
):
    import tempfile

    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_temp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    out = tmp_path / "out"
    out.mkdir()
    killed = out / ".contacts.report.xlsx.abcd1234.tmp"  # what a killed run left
    killed.mkdir()
    (killed / "openpyxl.xyz").write_text("<sheet/>")
    source = tmp_path / "contacts.csv"
    source.write_text("Phone,Opt-In Date\n4155550101,2024-03-09\n4155550104,2024-04-01\n")
    result = run_cli("clean", source, "--changes", history_dir, "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert list(system_temp.iterdir()) == []
    assert sorted(path.name for path in out.iterdir()) == [
        "contacts.changes.csv",
        "contacts.cleaned.csv",
        "contacts.report.xlsx",
    ]
