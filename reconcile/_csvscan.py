"""A vectorized RFC 4180 scanner: record and field boundaries of a CSV held as bytes.

The scanner never decodes or converts a field: it finds where records and fields start
and end, so that kept rows can be copied to the output byte for byte, and it extracts
only the columns reconcile reads. Quote parity (an even number of quotes before a byte
means the byte is outside quotes) turns the state machine of a CSV parser into a few
numpy passes over the positions of quotes, newlines and delimiters, never over every
byte twice. Anything RFC 4180 does not allow (a quote inside an unquoted field, an
unterminated quote, a bare carriage return, ragged rows) is refused with its line number
rather than guessed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from reconcile._csvstructure import structure as find_structure
from reconcile.errors import MalformedCSVError

__all__ = [
    "MAX_RECORD_BYTES",
    "CsvScan",
    "Offsets",
    "block_end",
    "check_line_lengths",
    "delimiter_candidates",
    "first_record",
    "footer_delimiter",
    "holds_records",
    "newline_byte",
    "records_in",
    "scan_csv",
]

_QUOTE = ord('"')
_LF = ord("\n")
_CR = ord("\r")
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")

Offsets = npt.NDArray[np.int64]

# A record (or a line) longer than this is refused: no contact or change record comes
# near it, and a reader handed a 1 GiB field needs many times that in memory.
MAX_RECORD_BYTES = 16 << 20
_LINE_CHECK_BLOCK = 64 << 20


def _too_long(name: str, body: bytes, offset: int, line_shift: int = 0) -> MalformedCSVError:
    # lines counted by the file's own line break (a CR-only file's are CRs)
    newline = b"\r" if newline_byte(body[: min(len(body), 1 << 20)]) == _CR else b"\n"
    line = body.count(newline, 0, offset) + 1 + line_shift
    return MalformedCSVError(
        f"{name}: line {line} begins a record longer than {MAX_RECORD_BYTES >> 20} MiB; "
        "no contact or change record is that long: check that this is the export you "
        "meant, and that its lines end with line breaks."
    )


def check_line_lengths(name: str, body: bytes, line_shift: int = 0) -> None:
    """Refuse a body with a line longer than MAX_RECORD_BYTES (a 1 GiB field, a header
    with no line break) before any reader sees it: found with numpy a block at a time,
    so the check needs no more than a block's memory. (``line_shift``: lines of the file
    before ``body``'s first, less any header put in front of it.)"""
    if len(body) <= MAX_RECORD_BYTES:
        return
    # A line longer than the bound contains a whole half-bound stretch without a line
    # break: when every such stretch holds one (found by `find`, which stops at the first),
    # no line is too long, at no cost on real files.
    half = MAX_RECORD_BYTES // 2
    if all(
        body.find(b"\n", begin, begin + half) >= 0 or body.find(b"\r", begin, begin + half) >= 0
        for begin in range(0, len(body), half)
    ):
        return
    data = np.frombuffer(body, dtype=np.uint8)
    line_start = 0  # where the line running into the next block began
    for begin in range(0, data.size, _LINE_CHECK_BLOCK):
        block = data[begin : begin + _LINE_CHECK_BLOCK]
        breaks = np.flatnonzero((block == _LF) | (block == _CR)) + begin
        starts = np.concatenate(([line_start], breaks + 1))
        ends = np.concatenate((breaks, [begin + block.size]))
        long = np.flatnonzero(ends - starts > MAX_RECORD_BYTES)
        if long.size:
            raise _too_long(name, body, int(starts[long[0]]), line_shift)
        line_start = int(starts[-1])


@dataclass(frozen=True)
class CsvScan:
    """Where the records and fields of one CSV body lie.

    ``record_start``/``record_end`` tile the whole body (terminators included) and
    cover the header, the data rows and blank lines; ``content_end`` is where a
    record's text stops before its line terminator. ``data_records`` indexes the
    records that are data rows (not the header, not blank lines).
    """

    name: str
    body: bytes
    delimiter: str
    newline: bytes
    record_start: Offsets
    content_end: Offsets
    record_end: Offsets
    data_records: Offsets
    header_fields: int
    # how many structural delimiters precede each record (the index of its first one)
    first_delimiter: Offsets
    # where a trailing report footer (a blank line, then lines of one field, as
    # Salesforce report exports end) begins; None when the file has none
    footer_start: int | None = None
    # the body's line break bytes, inside quotes too (its lines, as errors count them)
    line_breaks: int = 0

    @functools.cached_property
    def delimiters(self) -> Offsets:
        """Every structural delimiter's position: found again only when fields are cut
        out by the scan itself (the header, and the rare fallback from polars' reader)."""
        return find_structure(self.body, ord(self.delimiter), True, self.newline[-1]).delimiters

    @property
    def row_count(self) -> int:
        return int(self.data_records.size)

    @property
    def blank_lines(self) -> int:
        """Blank lines among the data rows (a footer's are not counted)."""
        records = self.record_start.size
        if self.footer_start is not None:
            records = int(np.searchsorted(self.record_start, self.footer_start))
        return int(records - 1 - self.data_records.size)

    @property
    def footer(self) -> bytes:
        """The trailing report footer's bytes, blank line included (empty when none)."""
        return self.body[self.footer_start :] if self.footer_start is not None else b""


def _line_of(body: bytes, position: int, shift: int = 0, line_end: int | None = None) -> int:
    if line_end is None:
        line_end = newline_byte(body)
    newline = b"\r" if line_end == _CR else b"\n"
    return body.count(newline, 0, position) + 1 + shift


def newline_byte(body: bytes) -> int:
    """LF, or CR for a file whose lines end in CR alone (Excel's "CSV (Macintosh)",
    where a line break inside a quoted cell is an LF)."""
    if b"\r" not in body or b"\r\n" in body:
        return _LF
    lone_cr = body.count(b"\r")
    return _CR if lone_cr > body.count(b"\n") else _LF


def _positions(data: npt.NDArray[np.uint8], byte: int) -> Offsets:
    return np.flatnonzero(data == byte).astype(np.int64)


def _outside_quotes(positions: Offsets, quotes: Offsets) -> Offsets:
    """The positions with an even number of quotes before them."""
    if quotes.size == 0:
        return positions
    parity = np.searchsorted(quotes, positions) & 1
    outside: Offsets = positions[parity == 0]
    return outside


def first_record(body: bytes) -> bytes:
    """The header record's bytes (it may hold quoted newlines)."""
    end = 0
    newline = bytes([newline_byte(body)])
    while True:
        end = body.find(newline, end)
        if end < 0:
            return body
        if body.count(b'"', 0, end) % 2 == 0:
            return body[:end]
        end += 1


# Line breaks walked back from a block's end, a line at a time, before a numpy pass finds
# the rest at once (a long quoted field at the end of a block, a quote never closed).
_WALK_BACK = 64


def _breaks_from_end(window: bytes | bytearray, line_end: int, start: int) -> Iterator[int]:
    """The line breaks outside quotes of ``window`` (which begins at a record) from
    ``start`` on, last first: each found by `rfind` and the quotes before it counted by
    `bytes.count`, a pass of C over the bytes instead of numpy's several over every quote
    and newline."""
    newline = bytes([line_end])
    position = window.rfind(newline, start)
    if position < 0:
        return
    quotes = window.count(b'"', 0, position)
    for _step in range(_WALK_BACK):
        if not quotes & 1:
            yield position
        previous = window.rfind(newline, start, position)
        if previous < 0:
            return
        quotes -= window.count(b'"', previous + 1, position)
        position = previous
    data = np.frombuffer(window, dtype=np.uint8)[: position + 1]
    rest = _outside_quotes(_positions(data, line_end), _positions(data, _QUOTE))
    yield from (int(place) for place in rest[::-1] if place >= start)


def block_end(
    window: bytes | bytearray, line_end: int, delimiter: str | None = None, start: int = 0
) -> int:
    """Where the last whole record of ``window`` (which begins at a record) ends, its
    line break included; 0 when no record ends in it. The records before ``start`` (a
    header put in front of the block's own) are not the block's: no break is sought
    among them.

    Blank lines at the end, and with a ``delimiter`` lines of one field, are left to the
    next block, so that a report footer (a blank line, then lines of one field) is never
    cut apart: only the file's last block looks for one. When every record from a
    ``start`` past 0 is such a line, and not all are blank, ``start`` is returned: the
    block needs more bytes.
    """
    breaks = _breaks_from_end(window, line_end, start)
    last = next(breaks, None)
    if last is None:
        return 0
    end = last
    text = False  # a line of one field among them, not only blank lines
    before_last: int | None = None  # the break before the last
    for previous in breaks:
        record = window[previous + 1 : end]
        if not _footer_like(record, delimiter):
            return end + 1
        text = text or record not in (b"", b"\r")
        before_last = previous if before_last is None else before_last
        end = previous
    # the block's first record, the one left before its first break
    record = window[start:end]
    if not _footer_like(record, delimiter):
        return end + 1
    text = text or record not in (b"", b"\r")
    if not start:
        return last + 1  # all of it looks like a footer: it is not one (a footer is short)
    if text or len(window) > last + 1 or before_last is None:
        return start  # all of the block may be a footer's start: the caller reads on
    # blank lines only: cut before the last of them, which goes with the next block (a
    # footer after them keeps its blank line), so a long run of them is not held
    return before_last + 1


def last_break_end(window: bytes | bytearray, line_end: int, start: int = 0) -> int:
    """Where the last record of ``window`` ending in a line break (outside quotes) from
    ``start`` on ends, its line break included; 0 when none does."""
    last = next(_breaks_from_end(window, line_end, start), None)
    return 0 if last is None else last + 1


def _footer_like(record: bytes | bytearray, delimiter: str | None) -> bool:
    """A blank line, or with a ``delimiter`` a line of one field."""
    return record in (b"", b"\r") or (delimiter is not None and _one_field(record, ord(delimiter)))


def records_in(body: bytes | memoryview, line_end: int) -> int:
    """How many records ending in a line break ``body`` holds, blank lines left out (the
    scan does not count them as rows either)."""
    data = np.frombuffer(body, dtype=np.uint8)
    breaks = _outside_quotes(_positions(data, line_end), _positions(data, _QUOTE))
    if breaks.size == 0:
        return 0
    starts = np.empty_like(breaks)  # each line's first byte
    starts[0] = 0
    np.add(breaks[:-1], 1, out=starts[1:])
    length = breaks - starts
    # a blank line is empty, or a lone CR before the LF of a CRLF file
    blank = (length == 0) | ((length == 1) & (data[np.maximum(breaks - 1, 0)] == _CR))
    return int(breaks.size - np.count_nonzero(blank))


def holds_records(body: bytes, line_end: int, count: int) -> bool:
    """Whether ``body`` holds more than ``count`` records that are not blank lines:
    counted in a growing prefix (the records of a prefix are records of the whole), not
    over the whole body."""
    view = memoryview(body)
    size = 1 << 20
    while True:
        if records_in(view[:size], line_end) > count:
            return True
        if size >= len(body):
            return False
        size *= 4


def footer_delimiter(window: bytes, delimiter: str | None) -> str | None:
    """The delimiter `block_end` tells a footer's lines of one field by: the one asked
    for, else the header's most frequent candidate; None when the header is one field
    (no footer is looked for then)."""
    header = first_record(window)
    chosen = delimiter or delimiter_candidates(header)[0]
    return None if _one_field(header, ord(chosen)) else chosen


def _one_field(record: bytes | bytearray, delimiter_byte: int) -> bool:
    data = np.frombuffer(record, dtype=np.uint8)
    delimiters = _outside_quotes(_positions(data, delimiter_byte), _positions(data, _QUOTE))
    return delimiters.size == 0


def delimiter_candidates(header: bytes) -> list[str]:
    """The candidates that occur outside quotes in the header line, most frequent first
    (ties in the order , ; tab |); the comma alone when none occurs."""
    data = np.frombuffer(header, dtype=np.uint8)
    quotes = _positions(data, _QUOTE)
    counts = {
        candidate: _outside_quotes(_positions(data, ord(candidate)), quotes).size
        for candidate in _CANDIDATE_DELIMITERS
    }
    found = sorted((c for c in _CANDIDATE_DELIMITERS if counts[c]), key=lambda c: -counts[c])
    return found or [","]


def scan_csv(
    name: str,
    body: bytes,
    delimiter: str | None = None,
    *,
    footer: bool = True,
    line_shift: int = 0,
    line_end: int | None = None,
) -> CsvScan:
    """Scan a CSV body (no BOM, any ASCII-compatible encoding) into a CsvScan.

    Without a ``delimiter``, the candidates found in the header are tried, most frequent
    first: the first that splits every record into the header's number of fields wins
    (a ";" file whose fields hold unquoted commas is a ";" file). When none does, the
    first candidate's error is raised.

    A block of a large file is scanned as the header followed by the block's records:
    ``footer`` is False unless the block ends the file, and ``line_shift`` is added to
    every line number an error names (the file's lines before the block, less the
    header's); ``line_end`` is the file's line break (LF, or CR alone), found from its
    first block: a block is never judged alone (quoted CRs would outnumber its lines).
    """
    if line_end is None:
        line_end = newline_byte(body)
    nul = body.find(b"\x00")
    if nul >= 0:
        where = _line_of(body, nul, line_shift, line_end)
        raise MalformedCSVError(
            f"{name}: line {where} holds a NUL byte: this is not a "
            "text CSV file (export it again as CSV from your spreadsheet or CRM)."
        )
    if delimiter is not None:
        return _scan(name, body, delimiter, footer, line_shift, line_end)
    errors: list[MalformedCSVError] = []
    for candidate in delimiter_candidates(first_record(body)):
        try:
            return _scan(name, body, candidate, footer, line_shift, line_end)
        except MalformedCSVError as error:
            errors.append(error)
    raise errors[0]


def _scan(
    name: str, body: bytes, delimiter: str, footer: bool, line_shift: int, line_end: int
) -> CsvScan:
    data = np.frombuffer(body, dtype=np.uint8)
    size = data.size
    delimiter_byte = ord(delimiter)

    def line(position: int) -> int:
        return _line_of(body, position, line_shift, line_end)

    structure = find_structure(body, delimiter_byte, line_end=line_end)
    if structure.quote_count & 1:
        opening = structure.last_quote
        raise MalformedCSVError(
            f"{name}: line {line(opening)}: a quoted field is never closed "
            '(a missing " ); fix that field or export the file again.'
        )
    if structure.first_bad_quote >= 0:
        raise MalformedCSVError(
            f"{name}: line {line(structure.first_bad_quote)}: a quote "
            'inside a field that is not quoted as a whole (write it as "5\'10""" or export the '
            "file again from your spreadsheet)."
        )
    newlines = structure.newlines
    delimiters_before_newline = structure.delimiters_before_newline
    delimiter_count = structure.delimiter_count
    carriage_returns = structure.carriage_returns
    line_breaks = structure.line_breaks
    del structure
    if carriage_returns.size:
        following = carriage_returns + 1
        lone = carriage_returns[
            (following >= size) | (data[np.minimum(following, size - 1)] != _LF)
        ]
        if lone.size:
            raise MalformedCSVError(
                f"{name}: line {line(int(lone[0]))}: a carriage return "
                "outside quotes that does not end a line (old Mac line endings?); save the file "
                "again with Windows or Unix line endings."
            )

    # Record k > 0 starts right after newline k - 1. The arrays are filled in place, so
    # that no temporary of the size of the file is made.
    terminated = newlines.size
    # a last record without a terminator, unless the body ends with its last newline
    unterminated = size > 0 and (terminated == 0 or int(newlines[-1]) + 1 < size)
    count = terminated + int(unterminated)
    if count == 0:
        raise MalformedCSVError(f"{name}: the file is empty: it needs a header line and rows.")
    record_start = np.empty(count, dtype=np.int64)
    record_start[0] = 0
    np.add(newlines[: count - 1], 1, out=record_start[1:])
    record_end = np.empty(count, dtype=np.int64)
    np.add(newlines, 1, out=record_end[:terminated])
    if unterminated:
        record_end[-1] = size
    content_end = record_end.copy()
    content_end[:terminated] -= 1
    if carriage_returns.size:  # a CR just before the LF belongs to the terminator
        before = np.maximum(content_end - 1, 0)
        has_cr = (content_end > record_start) & (data[np.minimum(before, size - 1)] == _CR)
        content_end -= has_cr
    if line_end == _CR:
        newline = b"\r"
    elif body[content_end[0] : content_end[0] + 2] == b"\r\n":
        newline = b"\r\n"
    else:
        newline = b"\n"

    longest = int(np.argmax(record_end - record_start))
    if int(record_end[longest] - record_start[longest]) > MAX_RECORD_BYTES:
        # a quoted field's lines
        raise _too_long(name, body, int(record_start[longest]), line_shift)
    if content_end[0] == record_start[0]:
        raise MalformedCSVError(
            f"{name}: line 1 is empty: the first line must be the header with the column names."
        )

    # Between a record's start and its terminator lie exactly its own delimiters, so
    # the count before the next record bounds them.
    first_delimiter = np.empty(count, dtype=np.int64)
    first_delimiter[0] = 0
    first_delimiter[1:] = delimiters_before_newline[: count - 1]
    fields = np.empty(count, dtype=np.int64)
    np.subtract(first_delimiter[1:], first_delimiter[:-1], out=fields[:-1])
    fields[-1] = delimiter_count - first_delimiter[-1]
    fields += 1
    header_fields = int(fields[0])
    data_records = np.flatnonzero(content_end != record_start)[1:]
    found_footer = (
        _footer_record(record_start, content_end, fields) if footer and header_fields > 1 else None
    )
    if found_footer is not None:
        data_records = data_records[data_records < found_footer]
    ragged = data_records[fields[data_records] != header_fields]
    if ragged.size:
        record = int(ragged[0])
        raise MalformedCSVError(
            f"{name}: line {line(int(record_start[record]))} has "
            f"{int(fields[record])} fields but the header has {header_fields} "
            f"(delimiter {delimiter!r}); fix that row or export the file again."
        )
    return CsvScan(
        name=name,
        body=body,
        delimiter=delimiter,
        newline=newline,
        record_start=record_start,
        content_end=content_end,
        record_end=record_end,
        data_records=data_records,
        header_fields=header_fields,
        first_delimiter=first_delimiter,
        footer_start=int(record_start[found_footer]) if found_footer is not None else None,
        line_breaks=line_breaks,
    )


def _footer_record(record_start: Offsets, content_end: Offsets, fields: Offsets) -> int | None:
    """The blank record that starts a trailing report footer, or None.

    A footer is a blank line after the last record of several fields, followed by at
    least one line of a single field and nothing else (blank lines aside), as Salesforce
    report exports end (copyright, "Confidential Information", "Generated By").
    """
    blank = content_end == record_start
    several = np.flatnonzero(~blank & (fields != 1))
    last = int(several[-1]) if several.size else 0
    blank_after = np.flatnonzero(blank[last + 1 :]) + last + 1
    if blank_after.size == 0:
        return None
    start = int(blank_after[0])
    return start if bool((~blank[start:]).any()) else None
