"""A CSV file read a block at a time: the outputs are those of the file read whole.

`csv_files.BLOCK_BYTES` is made small here, so that a few lines make many blocks: every
block boundary (after a quoted newline, before blank lines and a report footer, in a
file whose first block is plain ASCII and whose later ones are Windows-1252) must leave
the cleaned file, the change list and the counts exactly as they are with one block.
"""

from __future__ import annotations

import pytest

import reconcile.csv_files as csv_files
from reconcile import ColumnChoice
from reconcile.contacts import read_contacts
from reconcile.errors import EncodingError, MalformedCSVError
from tests.helpers import run_clean

HEADER = b"Contact ID,Mobile Phone,Opt-In Date,Notes"


def _rows(count: int, newline: bytes = b"\n") -> bytes:
    lines = [HEADER]
    for index in range(count):
        phone = ["(415) 555-0101", "4155550103", "415.555.0102", "", "N/A"][index % 5]
        note = '"two' + newline.decode() + 'lines"' if index % 7 == 3 else f"n{index}"
        lines.append(f"C{index},{phone},2024-03-{1 + index % 28:02d},{note}".encode())
        if index % 11 == 5:
            lines.append(b"")  # a blank line among the rows
    return newline.join(lines) + newline


SALESFORCE_FOOTER = b'\n"Confidential Information - Do Not Distribute"\n"Copyright (c) 2000-2024"\n'


CASES = {
    "LF": _rows(60),
    "CRLF": _rows(60, b"\r\n"),
    "no line break at the end": _rows(60).rstrip(b"\n"),
    "BOM": b"\xef\xbb\xbf" + _rows(60),
    "blank lines at the end": _rows(60) + b"\n\n\n",
    "a report footer": _rows(60) + SALESFORCE_FOOTER,
    "Windows-1252 after an ASCII start": _rows(50) + b"C900,4155550103,2024-03-09,Caf\xe9\n",
    "CR only": _rows(40, b"\r").replace(b'"two\rlines"', b'"two\nlines"'),
}
# every case in strip mode, the cases that write bytes of their own in every mode
MATRIX = [(case, "strip") for case in sorted(CASES)] + [
    (case, mode)
    for case in ("CRLF", "a report footer", "Windows-1252 after an ASCII start", "CR only")
    for mode in ("blank", "flag")
]


@pytest.mark.parametrize(("case", "mode"), MATRIX)
def test_a_file_read_in_blocks_writes_what_it_writes_whole(
    tmp_path, history_dir, monkeypatch, case, mode
):
    content = CASES[case]
    source = tmp_path / "contacts.csv"
    source.write_bytes(content)
    options = {"mode": mode, "report": False}
    [whole] = run_clean(source, history_dir, out_dir=tmp_path / "whole", **options)
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 80)
    [blocks] = run_clean(source, history_dir, out_dir=tmp_path / "blocks", **options)
    assert blocks.cleaned_path.read_bytes() == whole.cleaned_path.read_bytes()
    assert blocks.changes_path.read_bytes() == whole.changes_path.read_bytes()
    assert blocks.decisions.equals(whole.decisions)
    summary, expected = blocks.summary(), whole.summary()
    for part in (summary, expected):
        part.pop("outputs")  # type: ignore[misc]
    assert summary == expected
    assert source.read_bytes() == content


def test_the_blocks_really_are_many(tmp_path, monkeypatch):
    source = tmp_path / "contacts.csv"
    source.write_bytes(CASES["a report footer"])
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 97)
    table = read_contacts(source, ColumnChoice())
    pieces = list(table.pieces(1000))
    assert len(pieces) > 10
    assert sum(piece.values.height for piece in pieces) == table.row_count == 60
    assert table.footer_lines == 2
    rows = [row for piece in pieces for row in piece.values.get_column("row").to_list()]
    assert rows == sorted(rows) and len(set(rows)) == len(rows)


def _error(tmp_path, monkeypatch, content: bytes, error: type[Exception]) -> str:
    source = tmp_path / "contacts.csv"
    source.write_bytes(content)
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 97)
    table = read_contacts(source, ColumnChoice())
    with pytest.raises(error) as caught:
        list(table.pieces(1000))
    return str(caught.value)


def test_a_ragged_row_in_a_later_block_is_named_by_its_line(tmp_path, monkeypatch):
    lines = _rows(80).split(b"\n")
    lines[70] = lines[70] + b",extra"
    message = _error(tmp_path, monkeypatch, b"\n".join(lines), MalformedCSVError)
    assert message.startswith("contacts.csv: line 71 has 5 fields but the header has 4")


def test_an_unclosed_quote_in_a_later_block_is_named_by_its_line(tmp_path, monkeypatch):
    content = _rows(80) + b'C99,4155550103,2024-03-09,"never closed\n'
    lines = content.count(b"\n")
    message = _error(tmp_path, monkeypatch, content, MalformedCSVError)
    assert f"line {lines}" in message and "never closed" in message


def test_bytes_of_another_encoding_in_a_later_block_are_named_by_their_line(tmp_path, monkeypatch):
    # a UTF-8 file (its first block says so) with one Windows-1252 byte far below
    lines = _rows(80).split(b"\n")
    lines[1] = lines[1].replace(b"n0", "Zoë".encode())
    lines[75] = lines[75] + b"caf\xe9"
    message = _error(tmp_path, monkeypatch, b"\n".join(lines), EncodingError)
    assert message.startswith("contacts.csv: line 76 is not valid UTF-8")


def test_a_record_longer_than_a_block_is_refused(tmp_path, monkeypatch):
    content = _rows(10) + b"C99,4155550103,2024-03-09," + b"x" * 500 + b"\n" + _rows(10)[42:]
    source = tmp_path / "contacts.csv"
    source.write_bytes(content)
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 200)
    table = read_contacts(source, ColumnChoice())
    line = _rows(10).count(b"\n") + 1
    with pytest.raises(MalformedCSVError, match=f"line {line} begins a record longer than"):
        list(table.pieces(1000))


@pytest.mark.parametrize("group", [1, 3])
def test_pieces_grouped_for_a_pass_over_the_history_decide_alike(
    tmp_path, history_dir, monkeypatch, group
):
    import reconcile._pipeline as pipeline

    source = tmp_path / "contacts.csv"
    source.write_bytes(CASES["a report footer"])
    options = {"mode": "flag", "report": False}
    [whole] = run_clean(source, history_dir, out_dir=tmp_path / "whole", **options)
    monkeypatch.setattr(pipeline, "PIECE_ROWS", 7)
    monkeypatch.setattr(pipeline, "EVIDENCE_GROUP", group)
    monkeypatch.setattr(pipeline, "MAX_EVIDENCE_GROUP", group)
    [grouped] = run_clean(source, history_dir, out_dir=tmp_path / "grouped", **options)
    assert grouped.cleaned_path.read_bytes() == whole.cleaned_path.read_bytes()
    assert grouped.changes_path.read_bytes() == whole.changes_path.read_bytes()
    assert grouped.decisions.equals(whole.decisions)


def test_a_larger_history_gets_larger_groups_up_to_a_bound():
    from reconcile._pipeline import evidence_group

    assert [evidence_group(n) for n in (0, 5_000_000, 50_000_000, 70_000_000, 10**9)] == [
        2,
        2,
        2,
        3,
        4,
    ]
