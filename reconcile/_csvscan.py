"""A vectorized RFC 4180 scanner: record and field boundaries of a CSV held as bytes.

The scanner never decodes or converts a field: it finds where records and fields start
and end, so that kept rows can be copied to the output byte for byte, and it extracts
only the columns reconcile reads. Quote parity (an even number of quotes before a byte
means the byte is outside quotes) turns the state machine of a CSV parser into a few
numpy passes. Anything RFC 4180 does not allow (a quote inside an unquoted field, an
unterminated quote, a bare carriage return, ragged rows) is refused with its line number
rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile.errors import MalformedCSVError

__all__ = ["CsvScan", "extract_column", "scan_csv"]

_QUOTE = ord('"')
_LF = ord("\n")
_CR = ord("\r")
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")

Offsets = npt.NDArray[np.int64]


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
    # index into the delimiter positions of each data record's first delimiter
    first_delimiter: Offsets
    delimiters: Offsets
    quote_before: npt.NDArray[np.int64]

    @property
    def row_count(self) -> int:
        return int(self.data_records.size)

    @property
    def blank_lines(self) -> int:
        return int(self.record_start.size - 1 - self.data_records.size)


def _line_of(body: bytes, position: int) -> int:
    return body.count(b"\n", 0, position) + 1


def detect_delimiter(header: bytes, quote_before_header: npt.NDArray[np.int64]) -> str:
    """The candidate that occurs most often outside quotes in the header line.

    Contact exports name their columns with words, so the header alone decides, which
    is more reliable than sniffing a sample of data rows (phone numbers hold dots,
    dashes and spaces; addresses hold commas). Ties go to the comma.
    """
    data = np.frombuffer(header, dtype=np.uint8)
    outside = (quote_before_header[: data.size] & 1) == 0
    best, best_count = ",", 0
    for candidate in _CANDIDATE_DELIMITERS:
        count = int(np.count_nonzero((data == ord(candidate)) & outside))
        if count > best_count:
            best, best_count = candidate, count
    return best


def scan_csv(name: str, body: bytes, delimiter: str | None = None) -> CsvScan:
    """Scan a CSV body (no BOM, any ASCII-compatible encoding) into a CsvScan."""
    if b"\x00" in body:
        line = _line_of(body, body.index(b"\x00"))
        raise MalformedCSVError(
            f"{name}: line {line} holds a NUL byte: this is not a text CSV file "
            "(export it again as CSV from your spreadsheet or CRM)."
        )
    data = np.frombuffer(body, dtype=np.uint8)
    size = data.size
    is_quote = data == _QUOTE
    quote_through = np.cumsum(is_quote, dtype=np.int64)
    quote_before = quote_through - is_quote
    outside = (quote_before & 1) == 0

    quote_positions = np.flatnonzero(is_quote)
    if quote_positions.size and quote_through[-1] & 1:
        opening = quote_positions[(quote_before[quote_positions] & 1) == 0][-1]
        raise MalformedCSVError(
            f"{name}: line {_line_of(body, int(opening))}: a quoted field is never closed "
            '(a missing " ); fix that field or export the file again.'
        )

    newlines = np.flatnonzero((data == _LF) & outside)
    header_end = int(newlines[0]) if newlines.size else size
    if delimiter is None:
        delimiter = detect_delimiter(body[:header_end], quote_before)
    delimiter_byte = ord(delimiter)

    _check_quotes(name, body, data, quote_positions, quote_before, delimiter_byte)

    bare_cr = np.flatnonzero((data == _CR) & outside)
    if bare_cr.size:
        following = np.append(data, _LF)[bare_cr + 1]
        lone = bare_cr[following != _LF]
        if lone.size:
            raise MalformedCSVError(
                f"{name}: line {_line_of(body, int(lone[0]))}: a carriage return outside "
                "quotes that does not end a line (old Mac line endings?); save the file "
                "again with Windows or Unix line endings."
            )

    record_start = np.concatenate(([0], newlines + 1)).astype(np.int64)
    record_end = np.concatenate((newlines + 1, [size])).astype(np.int64)
    if record_start[-1] == size:  # the body ends with a newline: no record after it
        record_start, record_end = record_start[:-1], record_end[:-1]
    if record_start.size == 0:
        raise MalformedCSVError(f"{name}: the file is empty: it needs a header line and rows.")
    terminated = np.zeros(record_start.size, dtype=bool)
    terminated[: newlines.size] = True
    content_end = record_end - terminated.astype(np.int64)
    before_end = np.maximum(content_end - 1, 0)
    has_cr = (content_end > record_start) & (np.append(data, 0)[before_end] == _CR)
    content_end = content_end - has_cr.astype(np.int64)
    newline = b"\r\n" if has_cr[0] else b"\n"

    if content_end[0] == record_start[0]:
        raise MalformedCSVError(
            f"{name}: line 1 is empty: the first line must be the header with the column names."
        )

    delimiters = np.flatnonzero((data == delimiter_byte) & outside).astype(np.int64)
    first_delimiter = np.searchsorted(delimiters, record_start).astype(np.int64)
    fields = np.searchsorted(delimiters, content_end) - first_delimiter + 1
    header_fields = int(fields[0])
    blank = content_end == record_start
    data_records = np.flatnonzero(~blank)[1:].astype(np.int64)
    ragged = data_records[fields[data_records] != header_fields]
    if ragged.size:
        record = int(ragged[0])
        raise MalformedCSVError(
            f"{name}: line {_line_of(body, int(record_start[record]))} has "
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
        delimiters=delimiters,
        quote_before=quote_before,
    )


def _check_quotes(
    name: str,
    body: bytes,
    data: npt.NDArray[np.uint8],
    quote_positions: Offsets,
    quote_before: npt.NDArray[np.int64],
    delimiter_byte: int,
) -> None:
    """Refuse quotes RFC 4180 does not allow: only at a field's edges, or doubled inside."""
    if quote_positions.size == 0:
        return
    padded = np.concatenate(([_LF], data, [_LF]))  # index i+1 is byte i
    opening_mask = (quote_before[quote_positions] & 1) == 0
    opening = quote_positions[opening_mask]
    closing = quote_positions[~opening_mask]
    before_opening = padded[opening]  # the byte before each opening quote
    after_closing = padded[closing + 2]  # the byte after each closing quote
    bad_open = opening[~np.isin(before_opening, [delimiter_byte, _LF, _QUOTE])]
    bad_close = closing[~np.isin(after_closing, [delimiter_byte, _LF, _CR, _QUOTE])]
    bad = np.concatenate((bad_open, bad_close))
    if bad.size:
        line = _line_of(body, int(bad.min()))
        raise MalformedCSVError(
            f"{name}: line {line}: a quote inside a field that is not quoted as a whole "
            '(write it as "5\'10""" or export the file again from your spreadsheet).'
        )


def header_names(scan: CsvScan, encoding: str) -> list[str]:
    """The header's column names, unquoted and decoded."""
    return list(extract_column_values(scan, np.array([0], dtype=np.int64), encoding))


def extract_column(scan: CsvScan, column: int, encoding: str) -> pl.Series:
    """The unquoted, decoded text of one column for every data row, in row order."""
    values = extract_column_values(scan, scan.data_records, encoding, column)
    return pl.Series(values, dtype=pl.String)


def extract_column_values(
    scan: CsvScan, records: Offsets, encoding: str, column: int | None = None
) -> list[str]:
    """Decoded field text of ``column`` (every field when None) for ``records``."""
    fields = scan.header_fields
    columns = np.arange(fields) if column is None else np.array([column])
    first = scan.first_delimiter[records][:, None]
    starts_at = np.where(
        columns == 0,
        scan.record_start[records][:, None],
        scan.delimiters[np.minimum(first + columns - 1, max(scan.delimiters.size - 1, 0))] + 1
        if scan.delimiters.size
        else scan.record_start[records][:, None],
    )
    ends_at = np.where(
        columns == fields - 1,
        scan.content_end[records][:, None],
        scan.delimiters[np.minimum(first + columns, max(scan.delimiters.size - 1, 0))]
        if scan.delimiters.size
        else scan.content_end[records][:, None],
    )
    starts = starts_at.ravel().astype(np.int64)
    ends = ends_at.ravel().astype(np.int64)
    data = np.frombuffer(scan.body, dtype=np.uint8)
    size = data.size
    padded = np.append(data, np.uint8(0))
    quoted = (ends > starts) & (padded[np.minimum(starts, size)] == _QUOTE)
    value_start = starts + quoted
    value_end = ends - quoted
    # Mark the bytes of every value, then drop the second quote of each doubled "".
    counts = np.bincount(value_start, minlength=size + 1) - np.bincount(
        value_end, minlength=size + 1
    )
    inside = np.cumsum(counts)[: size + 1] > 0
    escaped = np.zeros(size + 1, dtype=bool)
    escaped[:size] = (data == _QUOTE) & ((scan.quote_before & 1) == 0)
    keep = inside & ~escaped
    # Each value is followed by a byte outside every value (its closing quote, delimiter,
    # terminator or the padding): keep it as a separator, then turn it into NUL.
    separator = np.zeros(size + 1, dtype=bool)
    separator[value_end] = True
    keep |= separator
    compact = padded[keep]
    compact[separator[keep]] = 0
    text = compact.tobytes().decode(encoding)
    return text.split("\x00")[: starts.size]
