"""The byte scan's bit arithmetic against a CSV state machine written byte by byte.

`_csvstructure.structure` finds every byte's quote parity with prefix xors and popcounts
over 64-bit words, in blocks, on several threads; the reference below walks the bytes
one at a time. Blocks as small as a byte and as odd as 65 bytes, and pieces cut for
three threads, must not change a single position or count.
"""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

import reconcile._csvstructure as shape

QUOTE, LF, CR = ord('"'), ord("\n"), ord("\r")


def _by_the_byte(body: bytes, delimiter: int, line_end: int) -> dict[str, object]:
    separators = {QUOTE, delimiter, LF, CR}
    newlines, before, delimiters, crs, quotes = [], [], [], [], []
    inside = False
    for place, byte in enumerate(body):
        if byte == QUOTE:
            quotes.append(place)
            inside = not inside
        elif not inside and byte == line_end:
            newlines.append(place)
            before.append(len(delimiters))
        elif not inside and byte == delimiter:
            delimiters.append(place)
        elif not inside and byte == CR and line_end == LF:
            crs.append(place)
    bad = []
    for index, place in enumerate(quotes):
        neighbour = place - 1 if index % 2 == 0 else place + 1  # an opening quote, a closing one
        if 0 <= neighbour < len(body) and body[neighbour] not in separators:
            bad.append(place)
    return {
        "newlines": newlines,
        "delimiters_before_newline": before,
        "delimiter_count": len(delimiters),
        "delimiters": delimiters,
        "carriage_returns": crs,
        "quote_count": len(quotes),
        "line_breaks": body.count(bytes([line_end])),
        "last_quote": quotes[-1] if quotes else -1,
        "first_bad_quote": min(bad) if bad else -1,
    }


def _found(body: bytes, delimiter: int, line_end: int) -> dict[str, object]:
    found = shape.structure(body, delimiter, keep_delimiters=True, line_end=line_end)
    return {
        name: value.tolist() if isinstance(value, np.ndarray) else value
        for name, value in vars(found).items()
    }


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    pieces=st.lists(
        st.sampled_from([b"a", b",", b";", b'"', b'""', b"\n", b"\r", b"\r\n", b" ", b"x" * 70]),
        max_size=80,
    ),
    block=st.sampled_from([1, 2, 3, 7, 63, 64, 65, 130, 1 << 20]),
    threads=st.sampled_from([1, 3]),
    delimiter=st.sampled_from([ord(","), ord(";")]),
    line_end=st.sampled_from([LF, CR]),
)
def test_the_bit_scan_finds_what_a_byte_by_byte_parser_finds(
    pieces, block, threads, delimiter, line_end
):
    body = b"".join(pieces)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shape, "_BLOCK", block)
        patch.setattr(shape, "_PARALLEL_FROM", 0 if threads > 1 else 1 << 40)
        patch.setattr(shape.os, "cpu_count", lambda: threads)
        found = _found(body, delimiter, line_end)
    assert found == _by_the_byte(body, delimiter, line_end)


def test_a_quote_at_the_edges_of_a_word_and_a_block_is_judged_by_its_neighbours():
    # an opening or a closing quote at bytes 62 to 65 and 126 to 129: its neighbour lies
    # in the next word, or the next block
    bodies = []
    for place in (62, 63, 64, 65, 126, 127, 128, 129):
        for after in (b",", b"b", b""):
            bodies.append(b'"' + b"a" * (place - 1) + b'"' + after)  # closing at place
            bodies.append(b"a" * place + b'"b"' + after)  # opening at place
            bodies.append(b"a" * (place - 1) + b',"b"' + after)
    for body in bodies:
        for block in (64, 128, 1 << 20):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(shape, "_BLOCK", block)
                found = _found(body, ord(","), LF)
            assert found == _by_the_byte(body, ord(","), LF), (body, block)
