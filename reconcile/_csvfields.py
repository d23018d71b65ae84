"""A CSV block's fields cut out: one column's text for chosen records (unquoted and
decoded), the header's names, and polars' read of the needed columns, used only when it
agrees with the byte scan (`_csvscan`) record for record.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from reconcile._csvscan import CsvScan, Offsets, first_record, scan_csv

_QUOTE = ord('"')

__all__ = [
    "checked_columns",
    "extract_column",
    "field_bounds",
    "header_names",
    "polars_columns",
    "read_columns",
    "read_header",
]


def field_bounds(scan: CsvScan, records: Offsets, column: int) -> tuple[Offsets, Offsets]:
    """Start and end (exclusive) of one column's field in each of ``records``."""
    first = scan.first_delimiter[records]
    starts = scan.record_start[records] if column == 0 else scan.delimiters[first + column - 1] + 1
    if column == scan.header_fields - 1:
        ends = scan.content_end[records]
    else:
        ends = scan.delimiters[first + column]
    return starts, ends


def extract_column_values(scan: CsvScan, records: Offsets, encoding: str, column: int) -> str:
    """Decoded, unquoted text of ``column`` for ``records``, each followed by a NUL."""
    starts, ends = field_bounds(scan, records, column)
    data = np.frombuffer(scan.body, dtype=np.uint8)
    if starts.size == 0:
        return ""
    nonempty = ends > starts
    quoted = nonempty & (data[np.minimum(starts, max(data.size - 1, 0))] == _QUOTE)
    value_start = starts + quoted
    lengths = np.maximum(ends - quoted - value_start, 0)
    # Gather every value's bytes with a NUL after each: out[k] = data[source[k]].
    slots = lengths + 1
    total = int(slots.sum())
    first_slot = np.cumsum(slots) - slots
    source = np.arange(total, dtype=np.int64) - np.repeat(first_slot - value_start, slots)
    gathered = data[np.clip(source, 0, data.size - 1)]  # separator slots are set below
    gathered[first_slot + lengths] = 0
    text: str = gathered.tobytes().decode(encoding)
    if quoted.any():
        text = text.replace('""', '"')  # inside quoted fields quotes come doubled
    return text


def header_names(scan: CsvScan, encoding: str) -> list[str]:
    """The header's column names, unquoted and decoded."""
    # The header is cut out of a scan of its own record, so that the whole body's
    # delimiter positions are never needed for it.
    header = scan_csv(scan.name, scan.body[: int(scan.record_end[0])], scan.delimiter)
    return _names(header, encoding)


def read_header(
    name: str, body: bytes, encoding: str, delimiter: str | None = None
) -> tuple[str, list[str]]:
    """The delimiter and the column names, from the header record alone (no scan of the
    whole body); raises MalformedCSVError where the header itself is malformed."""
    record = first_record(body)
    terminated = body[: len(record) + 1] if len(record) < len(body) else record
    header = scan_csv(name, terminated, delimiter)
    return header.delimiter, _names(header, encoding)


def _names(header: CsvScan, encoding: str) -> list[str]:
    first = np.array([0], dtype=np.int64)
    return [
        extract_column_values(header, first, encoding, column)[:-1]
        for column in range(header.header_fields)
    ]


def extract_column(scan: CsvScan, column: int, encoding: str, records: Offsets) -> pl.Series:
    """The unquoted, decoded text of one column for ``records``, in order."""
    if records.size == 0:
        return pl.Series([], dtype=pl.String)
    text = extract_column_values(scan, records, encoding, column)
    # one split in Rust; the text ends with a NUL, so the last piece is empty
    values = pl.Series([text[:-1]], dtype=pl.String).str.split("\x00").explode()
    return values.rename("")


def read_columns(
    scan: CsvScan, columns: list[int], encoding: str, first: int, stop: int
) -> list[pl.Series]:
    """The text of ``columns`` for data rows ``first`` to ``stop`` (exclusive).

    polars' multi-threaded reader does the work on those rows' bytes; its answer is used
    only when it has exactly one row per data record there (it skips blank lines, as the
    scan does). Otherwise the scan's own byte-exact extraction answers.
    """
    records = scan.data_records[first:stop]
    # The first chunk is read with the header in front: a file read in one chunk is
    # then handed over as it is, with no copy of its bytes.
    begin = 0 if first == 0 else int(scan.record_start[records[0]])
    end = int(scan.record_end[records[-1]])
    read = (
        # polars reads LF and CRLF lines only: a CR-only file would be misread row for row
        polars_columns(scan.body[begin:end], columns, scan.delimiter, encoding, first == 0)
        if scan.newline != b"\r"
        else None
    )
    return checked_columns(scan, read, columns, encoding, records)


def polars_columns(
    body: bytes, columns: list[int], delimiter: str, encoding: str, has_header: bool = True
) -> list[pl.Series] | None:
    """``columns`` of every record in ``body``, read by polars; None if it refuses them.

    Needs no scan, so it can run beside one; `checked_columns` then decides whether
    polars' answer agrees with the scan.
    """
    if encoding != "utf-8":
        body = body.decode(encoding).encode("utf-8")
    try:
        frame = pl.read_csv(
            body,
            has_header=has_header,
            columns=columns,
            separator=delimiter,
            quote_char='"',
            infer_schema=False,
            empty_string_is_null=False,
            null_values=None,
            truncate_ragged_lines=False,
            raise_if_empty=True,
        )
    except pl.exceptions.PolarsError:
        return None
    if frame.width != len(columns):
        return None
    return [series.rename("") for series in frame.get_columns()]


def checked_columns(
    scan: CsvScan,
    read: list[pl.Series] | None,
    columns: list[int],
    encoding: str,
    records: Offsets,
) -> list[pl.Series]:
    """polars' ``read`` of ``records`` when it has one row per record, else the scan's
    own byte-exact extraction."""
    if read is not None and all(series.len() == records.size for series in read):
        return read
    return [extract_column(scan, column, encoding, records) for column in columns]
