"""The shape of a CSV body in one vectorized pass: newlines, delimiters and carriage
returns outside quotes, and every quote, found on every core. Quote parity (an even
number of quotes before a byte means the byte is outside quotes) turns a CSV parser's
state machine into a few numpy passes; `_csvscan` builds records and fields from it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Structure", "structure"]

_QUOTE = ord('"')
_LF = ord("\n")
_CR = ord("\r")
Offsets = npt.NDArray[np.int64]


_PARALLEL_FROM = 8 << 20  # below this a thread costs more than it saves


_BLOCK = 1 << 20  # blocks of a megabyte: few Python steps, temporaries the allocator reuses


@dataclass(frozen=True)
class Structure:
    """The bytes that shape a CSV body, outside quotes, and every quote."""

    newlines: Offsets
    # how many delimiters precede each newline, and in all
    delimiters_before_newline: Offsets
    delimiter_count: int
    # the delimiters' positions, only when asked for
    delimiters: Offsets
    carriage_returns: Offsets
    quotes: Offsets
    # the first quote that cannot open or close a field where it stands, or -1
    first_bad_quote: int


def structure(
    data: npt.NDArray[np.uint8],
    delimiter_byte: int,
    keep_delimiters: bool = False,
    line_end: int = _LF,
) -> Structure:
    """Find newlines, delimiters and CRs outside quotes, and the quotes, on every core.

    The body is cut into one piece per core. A first quick pass counts each piece's
    quotes, which settles the quote parity at every piece's start; each piece is then
    scanned in small blocks, carrying the parity from block to block. numpy releases the
    GIL in these loops, so the threads really run at once.
    """
    size = data.size
    workers = min(os.cpu_count() or 1, 8)
    if size < _PARALLEL_FROM or workers < 2:
        workers = 1
    bounds = np.linspace(0, size, workers + 1).astype(np.int64).tolist()

    def count_quotes(start: int, stop: int) -> int:
        total = 0
        for begin in range(start, stop, _BLOCK):
            total += int(np.count_nonzero(data[begin : min(begin + _BLOCK, stop)] == _QUOTE))
        return total

    def scan(start: int, stop: int, start_parity: int) -> tuple[list[Offsets], ...]:
        # Delimiters are counted, not kept: a record's field count is the difference of
        # the counts at its ends, and the positions would be the largest array of all.
        # Small blocks with reused masks, so that no temporary grows with the body.
        mask = np.empty(_BLOCK, dtype=bool)
        scratch = np.empty(_BLOCK, dtype=bool)
        newlines: list[Offsets] = []
        delimiters: list[Offsets] = []
        before_newline: list[Offsets] = []
        delimiters_so_far = 0
        carriage_returns: list[Offsets] = []
        quotes: list[Offsets] = []
        bad: list[Offsets] = []
        parity = start_parity
        for begin in range(start, stop, _BLOCK):
            chunk = data[begin : min(begin + _BLOCK, stop)]
            here, spare = mask[: chunk.size], scratch[: chunk.size]
            np.equal(chunk, _QUOTE, out=here)
            for byte in (_LF, _CR, delimiter_byte) if line_end == _LF else (_CR, delimiter_byte):
                np.equal(chunk, byte, out=spare)
                here |= spare
            positions = np.flatnonzero(here)
            positions += begin
            kinds = data[positions]
            is_quote = kinds == _QUOTE
            flags = is_quote.view(np.uint8)
            # quote parity before each position
            before = np.bitwise_xor.accumulate(flags) ^ flags ^ parity
            outside = before == 0
            newline_index = np.flatnonzero((kinds == line_end) & outside)
            delimiter_index = np.flatnonzero((kinds == delimiter_byte) & outside)
            newlines.append(positions[newline_index])
            # the delimiters before a newline: those listed before it in this block
            before_newline.append(
                np.searchsorted(delimiter_index, newline_index) + delimiters_so_far
            )
            delimiters_so_far += delimiter_index.size
            if keep_delimiters:
                delimiters.append(positions[delimiter_index])
            if line_end == _LF:
                carriage_returns.append(positions[(kinds == _CR) & outside])
            block_quotes = positions[np.flatnonzero(is_quote)]
            quotes.append(block_quotes)
            # A quote opens a field when an even number of quotes precede it in the body;
            # every quote flips that parity, so from the block's first on they alternate.
            bad.append(_bad_quotes(data, block_quotes, parity, delimiter_byte))
            parity ^= block_quotes.size & 1
        return (
            newlines,
            delimiters,
            carriage_returns,
            quotes,
            bad,
            before_newline,
            [np.array([delimiters_so_far], dtype=np.int64)],
        )

    if workers == 1:
        parts = [scan(0, size, 0)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            counts = list(pool.map(count_quotes, bounds[:-1], bounds[1:]))
            parities = (np.cumsum([0, *counts[:-1]]) & 1).tolist()
            parts = list(pool.map(scan, bounds[:-1], bounds[1:], parities))

    def joined(index: int) -> Offsets:
        pieces = [piece for part in parts for piece in part[index]]
        if not pieces:
            return np.empty(0, dtype=np.int64)
        return np.concatenate(pieces).astype(np.int64, copy=False)

    bad_quotes = joined(4)
    # counts per piece are local: each piece adds the delimiters of the pieces before it
    piece_totals = [int(part[6][0][0]) for part in parts]
    offsets = np.cumsum([0, *piece_totals[:-1]]).tolist()
    before = [
        piece + offset for part, offset in zip(parts, offsets, strict=True) for piece in part[5]
    ]
    return Structure(
        newlines=joined(0),
        delimiters_before_newline=(
            np.concatenate(before).astype(np.int64, copy=False)
            if before
            else np.empty(0, dtype=np.int64)
        ),
        delimiter_count=sum(piece_totals),
        delimiters=joined(1),
        carriage_returns=joined(2),
        quotes=joined(3),
        first_bad_quote=int(bad_quotes.min()) if bad_quotes.size else -1,
    )


def _bad_quotes(
    data: npt.NDArray[np.uint8], quotes: Offsets, parity: int, delimiter_byte: int
) -> Offsets:
    """RFC 4180 allows quotes only at a field's edges, or doubled inside a quoted field.

    ``quotes`` are consecutive quotes of the body; ``parity`` is 0 when an even number
    of quotes precede the first (so it opens a field), 1 when it closes one.
    """
    if quotes.size == 0:
        return quotes
    size = data.size
    opens, closes = quotes[parity::2], quotes[1 - parity :: 2]
    before = np.where(opens > 0, data[np.maximum(opens - 1, 0)], _LF)
    after = np.where(closes + 1 < size, data[np.minimum(closes + 1, size - 1)], _LF)
    open_ok = (before == delimiter_byte) | (before == _LF) | (before == _CR) | (before == _QUOTE)
    close_ok = (after == delimiter_byte) | (after == _LF) | (after == _CR) | (after == _QUOTE)
    bad_open, bad_close = opens[~open_ok], closes[~close_ok]
    return np.concatenate((bad_open, bad_close))
