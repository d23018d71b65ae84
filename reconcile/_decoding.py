"""Content-Encoding decoded with one bound across every layer.

httpx decodes each layer whole (``decompress`` without ``max_length``), so
``Content-Encoding: gzip, gzip`` with 1 GiB inside peaks at gigabytes before any bound
on what is read can act. Here each layer hands on at most ``_STEP`` bytes at a time and
no layer may produce more than the bound, so memory stays near the bound whatever the
answer holds.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

__all__ = ["ACCEPTED_ENCODINGS", "DecodingRefused", "decode_bounded"]

# what the client asks for (and all it decodes): the API's own answers are gzip or plain
ACCEPTED_ENCODINGS = "gzip, deflate"
_STEP = 1 << 16


class DecodingRefused(Exception):
    """The answer's encoding is not one asked for, is damaged, or expands past the bound."""


def _decompressor(encoding: str) -> zlib._Decompress:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    return zlib.decompressobj()  # deflate: the zlib format (raw deflate is tried below)


def _layer(encoding: str, chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """One layer decoded, ``_STEP`` bytes at a time, at most ``limit`` bytes in all."""
    decompressor = _decompressor(encoding)
    produced = 0
    first = True
    for chunk in chunks:
        data = chunk
        while data:
            try:
                piece = decompressor.decompress(data, _STEP)
            except zlib.error:
                if encoding == "deflate" and first:
                    # some servers send raw deflate under "deflate": start again as raw
                    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                    first = False
                    continue
                raise DecodingRefused(f"the answer's {encoding} encoding is damaged") from None
            first = False
            data = decompressor.unconsumed_tail
            produced += len(piece)
            if produced > limit:
                raise DecodingRefused(
                    f"the answer is larger than {limit >> 20} MiB (after decompression)"
                )
            if piece:
                yield piece
            if decompressor.eof and not data:
                rest = decompressor.unused_data
                if encoding != "deflate" and rest[:2] == b"\x1f\x8b":
                    # another gzip member follows (RFC 1952 allows several): read it too
                    decompressor = _decompressor(encoding)
                    data = rest
                else:
                    data = b""  # bytes after the stream's end are not part of the answer
    try:
        rest = decompressor.flush()
    except zlib.error:
        raise DecodingRefused(f"the answer's {encoding} encoding is damaged") from None
    if len(rest) + produced > limit:
        raise DecodingRefused(f"the answer is larger than {limit >> 20} MiB (after decompression)")
    if rest:
        yield rest


def decode_bounded(content_encoding: str, raw: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The body under ``content_encoding`` (a header value: layers in the order applied),
    decoded layer by layer with no layer producing more than ``limit`` bytes."""
    layers = [
        part.strip().lower()
        for part in content_encoding.split(",")
        if part.strip().lower() not in ("", "identity")
    ]
    for encoding in layers:
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise DecodingRefused(f"the answer is encoded as {encoding!r}, which was not asked for")
    chunks: Iterable[bytes] = raw
    for encoding in reversed(layers):  # the last applied is undone first
        chunks = _layer(encoding, chunks, limit)
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise DecodingRefused(
                f"the answer is larger than {limit >> 20} MiB (after decompression)"
            )
        yield chunk
