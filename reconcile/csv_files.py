"""CSV contact files: encoding detection, reading the needed columns, writing kept rows.

Nothing is converted on the way in: the byte scan (`_csvscan`) finds where records and
fields lie, polars reads the few needed columns as text, and the cleaned file is
written from the input's own bytes, so the encoding, BOM, delimiter, quoting and every
field of a kept row stay byte-identical.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from reconcile._csvfields import (
    extract_column,
    header_names,
    polars_columns,
    read_columns,
    read_header,
)
from reconcile._csvscan import (
    MAX_RECORD_BYTES,
    CsvScan,
    block_end,
    check_line_lengths,
    footer_delimiter,
    holds_records,
    last_break_end,
    newline_byte,
    scan_csv,
)
from reconcile._encodings import (
    check_codec,
    check_decodes,
    detect_encoding,
    refuse_utf8_after_cp1252,
)
from reconcile.column_words import CONTENT_ROWS
from reconcile.columns import (
    ChosenColumns,
    ColumnChoice,
    MissingConsentColumn,
    choose_columns,
)
from reconcile.errors import InputError, MalformedCSVError, ReconcileError

__all__ = [
    "CsvContacts",
    "CsvSource",
    "read_csv_contacts",
]

UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class CsvSource:
    """One block of a CSV file: its scan, and polars' read of the needed columns.

    A file is read a block of about BLOCK_BYTES at a time, each block scanned as the
    header followed by the block's whole records (`block_end`), so that memory does not
    grow with the file. ``row_offset`` turns a block's record numbers into the file's;
    ``rows_before`` counts the data rows of the blocks before it. Only the first block
    writes the BOM and header (``opening``), only the last the report footer
    (``closing``).

    ``fields`` are the indexes of the phone, consent and (if any) id columns, in that
    order (one column may serve twice: an id that is also a phone); ``wanted`` the
    distinct ones, as read. The read may have begun beside the scan (``reading``); its
    answer is used only when it has one row per data record the scan found.
    """

    scan: CsvScan
    encoding: str
    bom: bytes
    wanted: tuple[int, ...]
    fields: tuple[int, ...] = ()
    reading: Future[list[pl.Series] | None] | None = field(default=None, repr=False)
    _columns: list[pl.Series] | None = field(default=None, repr=False)

    phone_count: int = 1
    has_id: bool = False
    opening: bool = True
    closing: bool = True
    row_offset: int = 0
    rows_before: int = 0

    def values(self, first: int, stop: int) -> pl.DataFrame:
        """Data rows ``first`` to ``stop`` of this block: ``row`` (as a spreadsheet
        numbers it: the header is row 0, blank lines count), ``phone_0``... (one per phone
        column), ``consent`` and ``id``, as text."""
        if self._columns is None:
            wanted = list(self.wanted)
            read = None
            if self.reading is not None:
                read = self.reading.result()
                self.reading = None
            if self.scan.row_count == 0:  # a block of blank lines
                self._columns = [pl.Series([], dtype=pl.String) for _ in wanted]
            elif read is not None and all(c.len() == self.scan.row_count for c in read):
                self._columns = read
            else:
                # read again over the data records only (a footer or a different
                # delimiter makes the read-ahead disagree), else the scan's own answer
                self._columns = read_columns(
                    self.scan, wanted, self.encoding, 0, self.scan.row_count
                )
        by_field = dict(zip(self.wanted, self._columns, strict=True))
        read = [by_field[index].slice(first, stop - first) for index in self.fields]
        if stop == self.scan.row_count:
            self._columns = None  # the block's last values: its writer needs only its bytes
        count = stop - first
        phones = self.phone_count
        identifier = read[phones + 1] if self.has_id else None
        included = read[phones + 1 + int(self.has_id) :]
        records = self.scan.data_records[first:stop] + self.row_offset
        return pl.DataFrame(
            {
                "row": pl.Series(records).cast(pl.UInt32),  # a strict cast: fast, and never wraps
                **{f"phone_{index}": read[index] for index in range(phones)},
                "consent": read[phones],
                "id": identifier
                if identifier is not None
                else pl.repeat(None, count, dtype=pl.String, eager=True),
                **{f"include_{index}": column for index, column in enumerate(included)},
            }
        )


@dataclass
class CsvContacts:
    """A CSV contact file as read: its header, the chosen columns, its first block and
    the blocks after it (read as they are asked for; `close` lets the file go)."""

    header: list[str]
    chosen: ChosenColumns
    source: CsvSource
    later: Iterator[CsvSource] = field(default_factory=lambda: iter(()))


class _LaterBlocks(Iterator[CsvSource]):
    """The blocks after the first, and the open file they are read from: `close` lets
    it go whether or not they were all read.

    The second block is read and scanned ahead, on a thread of its own, while the first
    is prepared (numpy's scan leaves the GIL to polars' work): at the start nothing else
    would keep the other core busy. Later blocks are read when asked for, so that memory
    holds no extra block in a large file. A block's error is raised when that block is
    asked for, in the file's order.
    """

    def __init__(self, handle: io.BufferedReader, blocks: Iterator[CsvSource]) -> None:
        self._handle = handle
        self._blocks = blocks
        reader = ThreadPoolExecutor(max_workers=1)
        self._ahead: Future[CsvSource | None] | None = reader.submit(next, blocks, None)
        reader.shutdown(wait=False)

    def __next__(self) -> CsvSource:
        if self._ahead is not None:
            block, self._ahead = self._ahead.result(), None
        else:
            block = next(self._blocks, None)
        if block is None:
            raise StopIteration
        return block

    def close(self) -> None:
        if self._ahead is not None:
            with contextlib.suppress(BaseException):  # the block never asked for
                self._ahead.result()
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()
        self._handle.close()


# A CSV file is read this many bytes at a time (each block cut after its last whole
# record): the memory of a clean is that of a block or two, whatever the file's size.
# (48 MiB: at 10M rows the peak is 1.35x the 1M peak; 64 MiB made it 1.69x, 32 MiB cost
# a quarter more time in evidence lookups; docs/performance.md.)
BLOCK_BYTES = 48 << 20
# The first block is read on until it holds this many records (header included, blank
# lines not): the phone columns found by what they hold are judged on the first
# CONTENT_ROWS data rows, as if the file were read whole. It grows to _FIRST_BLOCK_MOST
# bytes at most (rows of 400 KiB on average before then are judged on fewer rows).
FIRST_BLOCK_ROWS = CONTENT_ROWS + 1
_FIRST_BLOCK_MOST = 8 * (48 << 20)
# A later block that holds only blank lines and lines of one field (a report footer, or
# what looks like one) reads on, BLOCK_BYTES at a time, up to this many blocks before it
# is cut anyway (a footer is a few hundred bytes: more is not one).
_FOOTER_BLOCKS = 4


def read_csv_contacts(
    path: Path, choice: ColumnChoice, encoding: str | None, delimiter: str | None = None
) -> CsvContacts:
    """Scan a CSV contact file's first block and choose its columns; the values are read
    on demand, and the blocks after the first as they are asked for."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise InputError(f"{path}: cannot read the file ({error.strerror}).") from None
    try:
        return _read_first_block(path, handle, choice, encoding, delimiter)
    except BaseException:
        handle.close()
        raise


def _read(path: Path, handle: io.BufferedReader, size: int) -> bytes:
    try:
        return handle.read(size)
    except OSError as error:
        raise InputError(f"{path}: cannot read the file ({error.strerror}).") from None


def _read_first_block(
    path: Path,
    handle: io.BufferedReader,
    choice: ColumnChoice,
    encoding: str | None,
    delimiter: str | None,
) -> CsvContacts:
    raw = _read(path, handle, BLOCK_BYTES)
    ends = len(raw) < BLOCK_BYTES
    if not raw or (ends and raw.isspace()):
        handle.close()
        raise InputError(f"{path.name}: the file is empty; it needs a header line and rows.")
    check_line_lengths(path.name, raw)
    bom = UTF8_BOM if raw.startswith(UTF8_BOM) else b""
    window = raw[len(bom) :]
    del raw
    line_end = newline_byte(window)
    body, rest = window, b""
    # the first block holds at least FIRST_BLOCK_ROWS records when the file has them: the
    # columns are chosen (by name, and by what the first CONTENT_ROWS rows hold) from it
    while not ends:
        # a block is never cut between a blank line and a report footer's lines
        cut = block_end(window, line_end, footer_delimiter(window, delimiter))
        if cut == 0:
            raise _too_long_record(path.name, window)
        body, rest = window[:cut], window[cut:]
        if holds_records(body, line_end, FIRST_BLOCK_ROWS) or len(window) >= _FIRST_BLOCK_MOST:
            break
        more = _read(path, handle, BLOCK_BYTES)
        ends = len(more) < BLOCK_BYTES
        window += more
        check_line_lengths(path.name, window)
        body, rest = window, b""
    if encoding is not None:
        codec = check_codec(encoding)
        check_decodes(path.name, body, codec, encoding, 0, bytes([line_end]))
    else:
        codec = detect_encoding(path.name, body, bool(bom), 0, bytes([line_end]))
    # When the header names the columns, polars reads them in the background while the
    # scan checks the whole block. The columns are chosen again after the scan, with the
    # first rows' values (phone columns found by what they hold), so that errors come in
    # the same order as if nothing had been read ahead; the read-ahead is used only when
    # that choice is the same.
    reading: Future[list[pl.Series] | None] | None = None
    header_delimiter: str | None = None
    early: ChosenColumns | None = None
    try:
        header_delimiter, header = read_header(path.name, body, codec, delimiter)
        early = choose_columns(path, header, choice)
    except ReconcileError:
        early = None
    if early is not None and header_delimiter and line_end == ord("\n"):
        # polars reads LF and CRLF lines only
        reading = _read_ahead(body, _distinct(early.indexes(header)), header_delimiter, codec)
    scan = scan_csv(path.name, body, delimiter, footer=ends, line_end=line_end)
    if header_delimiter is None or scan.delimiter != header_delimiter:
        reading = None  # the data rows chose another delimiter, or the header had a problem
        header = header_names(scan, codec)
    chosen = _choose(path, header, choice, scan, codec)
    if early is None or _distinct(chosen.indexes(header)) != _distinct(early.indexes(header)):
        reading = None
    if scan.row_count == 0 and ends:
        raise InputError(f"{path.name}: the file has a header but no data rows.")
    fields = chosen.indexes(header)
    source = CsvSource(
        scan=scan,
        encoding=codec,
        bom=bom,
        wanted=tuple(_distinct(fields)),
        fields=tuple(fields),
        reading=reading,
        phone_count=len(chosen.phones),
        has_id=chosen.id is not None,
        closing=ends,
    )
    if ends:
        handle.close()
        return CsvContacts(header=header, chosen=chosen, source=source)
    header_bytes = body[: int(scan.record_end[0])]
    settled = encoding is not None or bool(bom) or not body.isascii()
    later = _later_blocks(path, handle, source, header_bytes, rest, settled, encoding)
    return CsvContacts(
        header=header, chosen=chosen, source=source, later=_LaterBlocks(handle, later)
    )


def _read_ahead(
    body: bytes, columns: list[int], delimiter: str, codec: str
) -> Future[list[pl.Series] | None]:
    reader = ThreadPoolExecutor(max_workers=1)
    reading = reader.submit(_warm_then_read, body, columns, delimiter, codec)
    reader.shutdown(wait=False)
    return reading


def _warm_then_read(
    body: bytes, columns: list[int], delimiter: str, codec: str
) -> list[pl.Series] | None:
    # polars makes a Series of a numpy array through numpy.ma, which numpy imports on
    # first use (0.03 s): imported here, beside the scan, not on the first piece's path
    import numpy.ma  # noqa: F401

    return polars_columns(body, columns, delimiter, codec)


def _later_blocks(
    path: Path,
    handle: io.BufferedReader,
    first: CsvSource,
    header: bytes,
    rest: bytes,
    settled: bool,
    asked: str | None,
) -> Iterator[CsvSource]:
    """The blocks after the first, each scanned as ``header`` + its whole records.

    The first block's encoding holds for the file; when the first block was plain ASCII
    (which reads the same in every supported encoding) the first block that is not
    settles it, as `detect_encoding` would for the whole file.
    """
    # the file is closed by _LaterBlocks.close, or here once the last block is read
    codec = first.encoding
    delimiter = first.scan.delimiter
    newline = first.scan.newline[-1:]  # the file's line break (LF, or CR alone)
    lines_before = first.scan.line_breaks  # the scan counted them (no pass holding the GIL)
    records_before = first.scan.record_start.size
    rows_before = first.scan.row_count
    several_fields = first.scan.header_fields > 1
    footer_fields = delimiter if several_fields else None  # how a footer's lines are told
    # what every block shares; the first block itself is not held here (its bytes
    # go once it is decided)
    bom, wanted, fields = first.bom, first.wanted, first.fields
    phone_count, has_id = first.phone_count, first.has_id
    del first
    start = len(header)  # each block is scanned with the header in front of it
    shift = -header.count(newline)  # ... whose lines are not the block's
    # every block is read into one buffer that already holds the header and the rest of
    # the block before, so that a block's bytes are copied once, into memory that is
    # not fresh (a fresh block's pages fault in one by one)
    buffer = bytearray()
    while True:
        # the rest of the block before, and the file's next bytes up to BLOCK_BYTES in
        # all (none when the rest is that long already: a first block cut short of its
        # reading, see _FIRST_BLOCK_MOST)
        to_read = max(BLOCK_BYTES - len(rest), 0)
        size = start + len(rest) + to_read
        if len(buffer) != size:  # the first block after the first, or an odd rest
            buffer = bytearray(size)
            buffer[:start] = header
        buffer[start : start + len(rest)] = rest
        got = _read_into(path, handle, buffer, start + len(rest))
        filled = start + len(rest) + got
        # a short read is the file's end; the buffer then holds nothing past it
        ends = got < to_read
        del buffer[filled:]
        cut = filled
        if not ends:
            cut = block_end(buffer, newline[0], footer_fields, start=start)
            if cut == 0:
                raise _too_long_record(path.name, buffer[start:], lines_before)
        # a block holding only what looks like a report footer reads on, so that a footer
        # longer than a block is never cut apart (up to _FOOTER_BLOCKS: past them, such lines
        # are no footer and are cut at the last break)
        while cut == start and not ends:
            if filled - start >= _FOOTER_BLOCKS * BLOCK_BYTES:
                cut = last_break_end(buffer, newline[0], start)
                break
            more = _read(path, handle, BLOCK_BYTES)
            ends = len(more) < BLOCK_BYTES
            buffer += more
            filled += len(more)
            cut = filled
            if not ends:
                cut = block_end(buffer, newline[0], footer_fields, start=start)
        view = memoryview(buffer)
        block, rest = bytes(view[:cut]), bytes(view[cut:filled])
        view.release()
        if ends:  # the last block: its buffer is not held while it is decided
            del buffer
        check_line_lengths(path.name, block, lines_before + shift)
        if not settled and not block.isascii():  # the header is ASCII then
            codec = detect_encoding(path.name, block, False, lines_before + shift, newline)
            settled = True
        elif settled:
            check_decodes(path.name, block, codec, asked, lines_before + shift, newline)
            if asked is None and codec == "cp1252":
                # a header in Windows-1252 is no UTF-8: the block's own lines are judged
                body = block if header.isascii() else block[start:]
                refuse_utf8_after_cp1252(
                    path.name, body, lines_before + (shift if body is block else 0), newline
                )
        reading = None
        if newline == b"\n":
            reading = _read_ahead(block, list(wanted), delimiter, codec)
        scan = scan_csv(
            path.name,
            block,
            delimiter,
            footer=ends,
            line_shift=lines_before + shift,
            line_end=newline[0],
        )
        lines_before += scan.line_breaks + shift
        del block
        yield CsvSource(
            scan=scan,
            encoding=codec,
            reading=reading,
            opening=False,
            closing=ends,
            row_offset=records_before - 1,
            rows_before=rows_before,
            bom=bom,
            wanted=wanted,
            fields=fields,
            phone_count=phone_count,
            has_id=has_id,
        )
        records_before += scan.record_start.size - 1
        rows_before += scan.row_count
        if ends:
            handle.close()
            return


def _read_into(path: Path, handle: io.BufferedReader, buffer: bytearray, start: int) -> int:
    """Fill ``buffer`` from ``start`` with the file's next bytes; how many were read (fewer
    only at the file's end)."""
    view = memoryview(buffer)
    filled = start
    try:
        while filled < len(buffer):
            count = handle.readinto(view[filled:])
            if not count:
                break
            filled += count
    except OSError as error:
        raise InputError(f"{path}: cannot read the file ({error.strerror}).") from None
    finally:
        view.release()
    return filled - start


def _too_long_record(
    name: str, window: bytes | bytearray, lines_before: int = 0
) -> MalformedCSVError:
    """No record ends in a whole block: a quote opened there is never closed (a stray
    ``"`` turns the rest of the file into one field), or a record is far longer than
    any contact's."""
    return MalformedCSVError(
        f"{name}: line {lines_before + 1} begins a record that does not end within "
        f"{len(window) >> 20} MiB: a quoted field there is never closed (a missing or stray "
        f'" ), or the record is longer than {MAX_RECORD_BYTES >> 20} MiB; fix that line or '
        "export the file again."
    )


_SAMPLE_ROWS = 200


def _distinct(indexes: list[int]) -> list[int]:
    return list(dict.fromkeys(indexes))


def _choose(
    path: Path, header: list[str], choice: ColumnChoice, scan: CsvScan, codec: str
) -> ChosenColumns:
    """`choose_columns` with the first CONTENT_ROWS rows' values (cut out of a scan of
    those rows alone, never of the whole body's fields); a missing consent column's
    error carries a sample of every column, so that the columns holding dates can be
    named."""
    head: list[CsvScan] = []

    def sample(indexes: Sequence[int]) -> list[pl.Series]:
        if not head:
            records = scan.data_records[:CONTENT_ROWS]
            end = int(scan.record_end[records[-1]]) if records.size else int(scan.record_end[0])
            head.append(scan_csv(scan.name, scan.body[:end], scan.delimiter))
        first = head[0]
        records = first.data_records[:CONTENT_ROWS]
        return [extract_column(first, index, codec, records) for index in indexes]

    try:
        return choose_columns(path, header, choice, sample)
    except MissingConsentColumn as error:
        values = sample(range(len(header)))
        error.sample = {
            name: column.head(_SAMPLE_ROWS).to_list()
            for name, column in zip(header, values, strict=True)
        }
        raise
