"""A CSV file read a block at a time: the outputs are those of the file read whole.

`csv_files.BLOCK_BYTES` is made small here, so that a few lines make many blocks: every
block boundary (after a quoted newline, before blank lines and a report footer, in a
file whose first block is plain ASCII and whose later ones are Windows-1252) must leave
the cleaned file, the change list and the counts exactly as they are with one block.
"""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import pytest

import reconcile._csvscan as _csvscan
import reconcile.csv_files as csv_files
from reconcile import ColumnChoice
from reconcile.contacts import read_contacts
from reconcile.errors import EncodingError, InputError, MalformedCSVError
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


@pytest.fixture(autouse=True)
def _first_block_rows(monkeypatch):
    # the first block holds 3 records here (1,001 by default), so that a few lines make
    # many blocks; `test_phone_columns_by_content_are_chosen_as_from_the_whole_file`
    # keeps the default
    monkeypatch.setattr(csv_files, "FIRST_BLOCK_ROWS", 3)


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
    # a block whose quoted cells hold more CRs (or LFs) than it has line breaks is read
    # with the file's own line break, never its own majority
    "lone CRs in quoted cells of an LF file": _rows(30)
    .replace(b"n25", b'"a\rb\rc\rd\re"')
    .replace(b"n26", b'"a\rb\rc\rd\re"'),
    "LFs in quoted cells of a CR-only file": _rows(30, b"\r")
    .replace(b'"two\rlines"', b"n")
    .replace(b"n25", b'"a\nb\nc\nd\ne"')
    .replace(b"n26", b'"a\nb\nc\nd\ne"'),
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
    # what the workbook's Summary states of the input
    assert blocks.table.encoding == whole.table.encoding
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
    with pytest.raises(MalformedCSVError, match=f"line {line} begins a record that does not end"):
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


@pytest.mark.parametrize(
    ("numbers_from", "blank_lines", "newline"),
    [(3, 0, b"\n"), (990, 600, b"\n"), (990, 600, b"\r\n"), (990, 600, b"\r")],
)
def test_phone_columns_by_content_are_chosen_as_from_the_whole_file(
    tmp_path, history_dir, monkeypatch, numbers_from, blank_lines, newline
):
    """The first block is read on until it holds the rows columns are judged by: a
    column whose numbers begin after empty cells is a phone column either way, blank
    lines among the first rows (not rows) or not."""
    monkeypatch.setattr(csv_files, "FIRST_BLOCK_ROWS", csv_files.CONTENT_ROWS + 1)
    lines = [HEADER + b",Other"]
    for index in range(1_100):
        other = b"" if index < numbers_from else b"(415) 555-%04d" % (index % 10_000)
        lines.append(b"C%d,4155550103,2024-03-%02d,n,%s" % (index, 1 + index % 28, other))
        if index < blank_lines:
            lines.append(b"")
    source = tmp_path / "contacts.csv"
    source.write_bytes(newline.join(lines) + newline)
    options = {"report": False}
    [whole] = run_clean(source, history_dir, out_dir=tmp_path / "whole", **options)
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 200)
    table = read_contacts(source, ColumnChoice())
    assert len(list(table.pieces(1000))) > 5  # really read in blocks
    [blocks] = run_clean(source, history_dir, out_dir=tmp_path / "blocks", **options)
    assert blocks.summary()["columns"]["phone_by_content"] == ["Other"]
    assert blocks.summary()["columns"] == whole.summary()["columns"]
    assert blocks.changes_path.read_bytes() == whole.changes_path.read_bytes()


def test_utf8_after_a_windows_1252_start_is_refused_as_mixed(tmp_path, monkeypatch):
    lines = _rows(40).split(b"\n")
    lines[2] = lines[2] + b"caf\xe9"  # Windows-1252 in the first block
    lines[35] = lines[35] + "Zoë".encode()  # UTF-8 in a later one
    message = _error(tmp_path, monkeypatch, b"\n".join(lines), EncodingError)
    assert message.startswith("contacts.csv: line 36 is UTF-8 text but the lines before it")


def test_a_stray_quote_before_the_last_block_is_named_as_one(tmp_path, monkeypatch):
    lines = [HEADER] + [b"C%d,4155550103,2024-03-01,note %d" % (i, i) for i in range(40)]
    lines[5] = b"C4,4155550103,2024-03-01,5'10\""
    source = tmp_path / "contacts.csv"
    source.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 200)
    table = read_contacts(source, ColumnChoice())
    with pytest.raises(MalformedCSVError, match="a quoted field there is never closed"):
        list(table.pieces(1000))


def test_a_header_and_blank_lines_past_a_block_are_no_data_rows(tmp_path, history_dir, monkeypatch):
    source = tmp_path / "contacts.csv"
    source.write_bytes(HEADER + b"\n" * 300)
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 100)
    with pytest.raises(InputError, match="the file has a header but no data rows"):
        run_clean(source, history_dir, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "contacts.changes.csv").exists()


def test_a_cr_only_file_names_an_undecodable_byte_by_its_line(tmp_path, monkeypatch):
    lines = _rows(40, b"\r").replace(b'"two\rlines"', b"n").split(b"\r")
    lines[30] = lines[30] + b"\x81"
    source = tmp_path / "contacts.csv"
    source.write_bytes(b"\r".join(lines))
    with pytest.raises(EncodingError, match="line 31 "):
        list(read_contacts(source, ColumnChoice()).pieces(1000))
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 100)
    with pytest.raises(EncodingError, match="line 31 "):
        list(read_contacts(source, ColumnChoice()).pieces(1000))


def _block_end_by_every_break(window: bytes, line_end: int, delimiter: str | None) -> int:
    """The rule of `block_end` by its definition: every line break outside quotes (an
    even number of quotes before it), the footer-like records at the end left out."""
    breaks = [
        place
        for place, byte in enumerate(window)
        if byte == line_end and window.count(b'"', 0, place) % 2 == 0
    ]
    if not breaks:
        return 0

    def footer_like(record: bytes) -> bool:
        if record in (b"", b"\r"):
            return True
        if delimiter is None:
            return False
        outside = [
            place
            for place, byte in enumerate(record)
            if byte == ord(delimiter) and record.count(b'"', 0, place) % 2 == 0
        ]
        return not outside

    for index in range(len(breaks) - 1, 0, -1):
        if not footer_like(window[breaks[index - 1] + 1 : breaks[index]]):
            return breaks[index] + 1
    return breaks[-1] + 1


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    pieces=st.lists(
        st.sampled_from([b"a", b",", b'"', b"\n", b"\r", b'""', b"x,y\n"]), max_size=60
    ),
    quoted_lines=st.integers(min_value=0, max_value=100),
    delimiter=st.sampled_from([",", None]),
    line_end=st.sampled_from([ord("\n"), ord("\r")]),
)
def test_a_block_ends_after_its_last_whole_record(pieces, quoted_lines, delimiter, line_end):
    # a quoted field of many lines makes `block_end` walk back past _WALK_BACK breaks
    window = b"".join(pieces) + b'"' + b"\n\r" * quoted_lines + b'"\n' + b"".join(pieces)
    assert _csvscan.block_end(window, line_end, delimiter) == _block_end_by_every_break(
        window, line_end, delimiter
    )
    assert _csvscan.holds_records(window, line_end, 3) == (
        _csvscan.records_in(window, line_end) > 3
    )
    assert _csvscan.records_in(window, line_end) == _records_by_every_break(window, line_end)


def _records_by_every_break(window: bytes, line_end: int) -> int:
    """Records ended by a line break outside quotes, blank lines (empty, or a lone CR
    before an LF) left out, byte by byte."""
    count, start, quotes = 0, 0, 0
    for place, byte in enumerate(window):
        if byte == ord('"'):
            quotes += 1
        elif byte == line_end and quotes % 2 == 0:
            if window[start:place] not in (b"", b"\r"):
                count += 1
            start = place + 1
    return count


@pytest.mark.parametrize("blank_lines", [520, 600, 700])
def test_a_first_block_cut_short_with_a_long_rest_reads_on_without_repeating_rows(
    tmp_path, history_dir, monkeypatch, blank_lines
):
    # the first block stops at _FIRST_BLOCK_MOST holding few records, and what is left of
    # its window (blank lines, then rows) is longer than a block: read on, never twice
    content = (
        b"Id,Mobile Phone,Opt-In Date\n"
        + b"A,4155550100,2024-03-01\n"
        + b"\n" * blank_lines
        + b"".join(b"R%d,41555501%02d,2024-03-01\n" % (index, index) for index in range(16))
    )
    source = tmp_path / "contacts.csv"
    source.write_bytes(content)
    [whole] = run_clean(source, history_dir, out_dir=tmp_path / "whole", report=False)
    monkeypatch.setattr(csv_files, "BLOCK_BYTES", 64)
    monkeypatch.setattr(csv_files, "_FIRST_BLOCK_MOST", 8 * 64)
    [blocks] = run_clean(source, history_dir, out_dir=tmp_path / "blocks", report=False)
    assert blocks.cleaned_path.read_bytes() == whole.cleaned_path.read_bytes()
    assert blocks.changes_path.read_bytes() == whole.changes_path.read_bytes()
    assert blocks.counts.rows == 17
