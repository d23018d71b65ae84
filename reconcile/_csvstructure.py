"""The shape of a CSV body in one vectorized pass: newlines, delimiters and carriage
returns outside quotes, the quotes counted, found on every core.

Quote parity (an even number of quotes before a byte means the byte is outside quotes)
turns a CSV parser's state machine into bit arithmetic, as SIMD CSV parsers do it: each
byte class (quote, delimiter, line break) becomes a bitmap of 64-bit words; a prefix xor
inside each word and the popcounts of the words before it give every byte's quote
parity at once, and popcounts again count the delimiters before each line break. Only
the line breaks (and carriage returns) are ever listed by position; `_csvscan` builds
records and fields from them.
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
Words = npt.NDArray[np.uint64]


_PARALLEL_FROM = 8 << 20  # below this a thread costs more than it saves


_BLOCK = 1 << 20  # blocks of a megabyte: few Python steps, temporaries the allocator reuses
_ALL = np.uint64((1 << 64) - 1)


@dataclass(frozen=True)
class Structure:
    """The bytes that shape a CSV body, outside quotes, and its quotes counted."""

    newlines: Offsets
    # how many delimiters precede each newline, and in all
    delimiters_before_newline: Offsets
    delimiter_count: int
    # the delimiters' positions, only when asked for
    delimiters: Offsets
    carriage_returns: Offsets
    quote_count: int
    # every line break byte (LF, or CR in a CR-only file), inside quotes too: the lines
    line_breaks: int
    # the last quote's position, or -1
    last_quote: int
    # the first quote that cannot open or close a field where it stands, or -1
    first_bad_quote: int


def _bits(mask: npt.NDArray[np.bool_]) -> Words:
    """A byte mask (its length a multiple of 64) as words: bit i of word k is byte 64k+i."""
    return np.packbits(mask, bitorder="little").view(np.uint64)


def _low_bits(positions: Offsets) -> Words:
    """Per position, the bits below it in its word."""
    return (np.uint64(1) << (positions & 63).astype(np.uint64)) - np.uint64(1)


def _bit_at(words: Words, positions: Offsets) -> npt.NDArray[np.bool_]:
    """Per position, whether its bit is set."""
    shifted = words[positions >> 6] >> (positions & 63).astype(np.uint64)
    found: npt.NDArray[np.bool_] = (shifted & np.uint64(1)).astype(bool)
    return found


def _lowest_bit(words: Words) -> int:
    """The position of the lowest set bit of ``words``, or -1."""
    nonzero = np.flatnonzero(words)
    if nonzero.size == 0:
        return -1
    word = int(words[nonzero[0]])
    return int(nonzero[0]) * 64 + (word & -word).bit_length() - 1


def _highest_bit(words: Words) -> int:
    """The position of the highest set bit of ``words``, or -1."""
    nonzero = np.flatnonzero(words)
    if nonzero.size == 0:
        return -1
    return int(nonzero[-1]) * 64 + int(words[nonzero[-1]]).bit_length() - 1


def structure(
    body: bytes,
    delimiter_byte: int,
    keep_delimiters: bool = False,
    line_end: int = _LF,
) -> Structure:
    """Find newlines, delimiters and CRs outside quotes, and count the quotes, on every
    core.

    The body is cut into one piece per core. A first quick pass counts each piece's
    quotes (``bytes.count``), which settles the quote parity at every piece's start;
    each piece is then scanned in small blocks, carrying the parity from block to block.
    numpy releases the GIL in these loops, so the threads really run at once.
    """
    data = np.frombuffer(body, dtype=np.uint8)
    size = data.size
    workers = min(os.cpu_count() or 1, 8)
    if size < _PARALLEL_FROM or workers < 2:
        workers = 1
    bounds = np.linspace(0, size, workers + 1).astype(np.int64).tolist()
    # the separators a quote may stand beside (RFC 4180: at a field's edges)
    separators = (_QUOTE, delimiter_byte, _LF, _CR)
    has_cr = b"\r" in body

    def count_quotes(start: int, stop: int) -> int:
        return body.count(b'"', start, stop)

    def separator_at(position: int) -> bool:
        # outside the body counts as a line break: a quote may open or close a field there
        return position < 0 or position >= size or int(data[position]) in separators

    def scan(start: int, stop: int, start_parity: int) -> tuple[list[Offsets], ...]:
        # Masks of a block padded to whole words, reused from block to block, so that no
        # temporary grows with the body.
        padded = -(-min(_BLOCK, max(stop - start, 1)) // 64) * 64
        masks = {name: np.zeros(padded, dtype=bool) for name in ("quote", "delim", "line", "cr")}
        newlines: list[Offsets] = []
        delimiters: list[Offsets] = []
        before_newline: list[Offsets] = []
        carriage_returns: list[Offsets] = []
        quote_counts: list[Offsets] = []
        last_quotes: list[Offsets] = []
        line_breaks: list[Offsets] = []
        bad: list[Offsets] = []
        delimiters_so_far = 0
        parity = start_parity
        for begin in range(start, stop, _BLOCK):
            end = min(begin + _BLOCK, stop)
            chunk = data[begin:end]
            width = chunk.size
            words = -(-width // 64)
            span = words * 64
            for mask in masks.values():
                mask[width:span] = False
            quote_mask, delim_mask = masks["quote"][:span], masks["delim"][:span]
            line_mask, cr_mask = masks["line"][:span], masks["cr"][:span]
            np.equal(chunk, _QUOTE, out=quote_mask[:width])
            np.equal(chunk, delimiter_byte, out=delim_mask[:width])
            np.equal(chunk, line_end, out=line_mask[:width])
            quote_bits = _bits(quote_mask)
            delim_bits = _bits(delim_mask)
            # quote parity at each byte (the quote itself included): a prefix xor within
            # each word, flipped where the quotes before the word are odd
            inside = quote_bits.copy()
            for shift in (1, 2, 4, 8, 16, 32):
                inside ^= inside << np.uint64(shift)
            counts = np.bitwise_count(quote_bits).astype(np.int64)
            before = np.cumsum(counts) - counts + parity
            inside ^= (before & 1).astype(np.uint64) * _ALL
            outside = ~inside
            # line breaks outside quotes, and the delimiters before each
            lines = np.flatnonzero(line_mask[:width])
            line_breaks.append(np.array([lines.size], dtype=np.int64))
            lines = lines[_bit_at(outside, lines)]
            delim_out = delim_bits & outside
            delim_counts = np.bitwise_count(delim_out).astype(np.int64)
            delims_before = np.cumsum(delim_counts) - delim_counts
            word_of = lines >> 6
            before_newline.append(
                delims_before[word_of]
                + np.bitwise_count(delim_out[word_of] & _low_bits(lines)).astype(np.int64)
                + delimiters_so_far
            )
            newlines.append(lines + begin)
            block_delimiters = int(delim_counts.sum())
            if keep_delimiters:
                found = np.flatnonzero(delim_mask[:width])
                delimiters.append(found[_bit_at(outside, found)] + begin)
            delimiters_so_far += block_delimiters
            if has_cr and line_end == _LF:
                np.equal(chunk, _CR, out=cr_mask[:width])
                crs = np.flatnonzero(cr_mask[:width])
                carriage_returns.append(crs[_bit_at(outside, crs)] + begin)
            quotes_here = int(counts.sum())
            if quotes_here:
                quote_counts.append(np.array([quotes_here], dtype=np.int64))
                last_quotes.append(np.array([_highest_bit(quote_bits) + begin], dtype=np.int64))
                # A quote opens a field when an even number of quotes precede it, that is
                # where the parity with it included is odd; it must follow a separator
                # (or the body's start), and a closing one must precede one.
                separator_bits = quote_bits | delim_bits | _bits(line_mask)
                if line_end != _LF:  # a CR-only file: an LF stands beside a quote too
                    np.equal(chunk, _LF, out=cr_mask[:width])
                    separator_bits |= _bits(cr_mask)
                elif has_cr:
                    separator_bits |= _bits(cr_mask)
                after_end = separator_at(end)
                if width < span:
                    word, bit = divmod(width, 64)
                    separator_bits[word] |= np.uint64(int(after_end) << bit)
                previous = (separator_bits << np.uint64(1)) | np.concatenate(
                    ([np.uint64(separator_at(begin - 1))], separator_bits[:-1] >> np.uint64(63))
                )
                following = (separator_bits >> np.uint64(1)) | np.concatenate(
                    (
                        (separator_bits[1:] & np.uint64(1)) << np.uint64(63),
                        [np.uint64(int(after_end and width == span) << 63)],
                    )
                )
                opening = quote_bits & inside
                closing = quote_bits & outside
                wrong = (opening & ~previous) | (closing & ~following)
                first = _lowest_bit(wrong.view(np.uint64))
                if first >= 0:
                    bad.append(np.array([first + begin], dtype=np.int64))
            parity = (parity + quotes_here) & 1
        return (
            newlines,
            delimiters,
            carriage_returns,
            quote_counts,
            bad,
            before_newline,
            [np.array([delimiters_so_far], dtype=np.int64)],
            last_quotes,
            line_breaks,
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
    last_quotes = joined(7)
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
        quote_count=int(joined(3).sum()),
        line_breaks=int(joined(8).sum()),
        last_quote=int(last_quotes.max()) if last_quotes.size else -1,
        first_bad_quote=int(bad_quotes.min()) if bad_quotes.size else -1,
    )
