"""The cleaned CSV written from the input's own bytes, a block at a time.

strip copies runs of kept records byte for byte; blank rewrites only the records whose
phone fields are emptied; flag appends the flag columns, encoded and quoted as the file
writes its own. The encoding, BOM, delimiter, quoting and every other field stay as
they were.
"""

from __future__ import annotations

import re
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile._csvfields import field_bounds
from reconcile._csvscan import Offsets
from reconcile.csv_files import CsvSource

__all__ = ["write_csv_rows"]


def _quote_expr(value: pl.Expr, delimiter: str) -> pl.Expr:
    needs_quotes = value.str.contains(f'[{re.escape(delimiter)}"\r\n]')
    return (
        pl.when(needs_quotes)
        .then(pl.lit('"') + value.str.replace_all('"', '""', literal=True) + pl.lit('"'))
        .otherwise(value)
        .fill_null("")
    )


def write_csv_rows(
    stream: BinaryIO,
    source: CsvSource,
    first: int,
    stop: int,
    keep: npt.NDArray[np.bool_],
    extra: pl.DataFrame | None = None,
    blank: dict[int, list[int]] | None = None,
) -> None:
    """Write data rows ``first`` to ``stop`` of a block of the cleaned CSV, after the
    header if ``first`` is 0 in the file's first block, and the file's report footer
    after the last block's last row.

    Strip mode copies runs of consecutive kept records straight from the input's bytes
    (blank lines are dropped). ``blank`` (blank mode) maps a row (from ``first``) to the
    phone columns whose fields are emptied; every other byte of the record is copied. With
    ``extra`` (flag mode) every record gets those columns appended, encoded and quoted
    in the file's own encoding and delimiter.
    """
    scan = source.scan
    opening = first == 0 and source.opening
    if opening:
        stream.write(source.bom)
    if extra is None:
        _copy_records(stream, source, first, stop, keep, blank)
    else:
        _write_flagged(stream, source, first, stop, extra)
    if stop == scan.row_count and source.closing:
        stream.write(scan.footer)


def _copy_records(
    stream: BinaryIO,
    source: CsvSource,
    first: int,
    stop: int,
    keep: npt.NDArray[np.bool_],
    blank: dict[int, list[int]] | None,
) -> None:
    scan = source.scan
    records = scan.data_records[first:stop]
    body = memoryview(scan.body)
    opening = first == 0 and source.opening
    if records.size == 0:  # a block of blank lines
        if opening:
            stream.write(body[: int(scan.record_end[0])])
        return
    copied = keep.copy()
    if blank:
        copied[list(blank)] = False
    begin = 0 if first == 0 else int(records[0])
    record_keep = np.zeros(int(records[-1]) + 1 - begin, dtype=bool)
    record_keep[0] = opening  # the header
    record_keep[records - begin] = copied
    edges = np.flatnonzero(np.diff(record_keep.astype(np.int8))) + 1
    bounds = np.concatenate(([0], edges, [record_keep.size]))
    starts, stops = bounds[:-1], bounds[1:]
    kept_runs = record_keep[starts]
    runs = zip(
        scan.record_start[starts[kept_runs] + begin].tolist(),
        scan.record_end[stops[kept_runs] - 1 + begin].tolist(),
        strict=True,
    )
    if blank is None:
        stream.writelines(body[run_start:run_end] for run_start, run_end in runs)
        return
    emptied = _emptied_records(source, records, blank)
    pieces: list[tuple[int, bytes | memoryview]] = [
        (run_start, body[run_start:run_end]) for run_start, run_end in runs
    ]
    pieces.extend(emptied)
    pieces.sort(key=lambda piece: piece[0])
    stream.writelines(piece for _start, piece in pieces)


def _emptied_records(
    source: CsvSource, records: Offsets, blank: dict[int, list[int]]
) -> list[tuple[int, bytes]]:
    """The records of ``blank``'s rows rewritten with those phone fields emptied (blank
    mode): every other byte stays, the emptied field stays in its place, written as the
    file writes its fields (``""`` in a file that quotes every field, as Outlook's)."""
    if not blank:
        return []
    scan = source.scan
    body = scan.body
    rows = sorted(blank)
    chosen = records[rows]
    bounds = {
        column: field_bounds(scan, chosen, source.fields[column])
        for column in sorted({column for columns in blank.values() for column in columns})
    }
    # a file that quotes every field (Outlook's export, its header too) gets "" in an
    # emptied field's place; any other file an empty field, as it writes them
    header = np.zeros(1, dtype=np.int64)
    starts = [int(field_bounds(scan, header, column)[0][0]) for column in range(scan.header_fields)]
    all_quoted = all(body[start : start + 1] == b'"' for start in starts)
    rewritten: list[tuple[int, bytes]] = []
    for place, row in enumerate(rows):
        start = int(scan.record_start[chosen[place]])
        end = int(scan.record_end[chosen[place]])
        spans = sorted(
            (int(bounds[column][0][place]), int(bounds[column][1][place])) for column in blank[row]
        )
        parts: list[bytes] = []
        position = start
        for field_start, field_end in spans:
            parts.append(body[position:field_start])
            if all_quoted:
                parts.append(b'""')
            position = field_end
        parts.append(body[position:end])
        rewritten.append((start, b"".join(parts)))
    return rewritten


def _write_flagged(
    stream: BinaryIO, source: CsvSource, first: int, stop: int, extra: pl.DataFrame
) -> None:
    scan = source.scan
    records = scan.data_records[first:stop]
    body = memoryview(scan.body)
    delimiter = scan.delimiter
    suffixes = extra.select(
        pl.concat_str(
            [_quote_expr(pl.col(name), delimiter) for name in extra.columns], separator=delimiter
        )
    ).to_series()
    newline = scan.newline
    if first == 0 and source.opening:
        header_end = int(scan.content_end[0])
        stream.write(body[:header_end])
        stream.write((delimiter + delimiter.join(extra.columns)).encode(source.encoding))
        stream.write(body[header_end : int(scan.record_end[0])] or newline)
    encoded = [
        (delimiter + suffix).encode(source.encoding, errors="replace") for suffix in suffixes
    ]
    last = scan.row_count - 1 - first  # the file's last row gets no terminator it lacked
    pieces: list[bytes | memoryview] = []
    for index, (start, content_end, end) in enumerate(
        zip(
            scan.record_start[records].tolist(),
            scan.content_end[records].tolist(),
            scan.record_end[records].tolist(),
            strict=True,
        )
    ):
        pieces.append(body[start:content_end])
        pieces.append(encoded[index])
        pieces.append(body[content_end:end] if end > content_end or index == last else newline)
    stream.writelines(pieces)
