"""A CSV file's text encoding: UTF-8 or Windows-1252 told apart from the bytes (mixed
files refused), an asked-for encoding checked, and each later block held to the first's,
every error naming the file's line (counted by its own line break).
"""

from __future__ import annotations

import codecs
import re

import numpy as np

from reconcile._csvscan import newline_byte
from reconcile.errors import EncodingError

__all__ = [
    "check_codec",
    "check_decodes",
    "detect_encoding",
    "first_undecodable",
    "refuse_utf8_after_cp1252",
]


_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


# Codecs whose multi-byte sequences never contain ASCII bytes, so that quotes,
# delimiters and newlines can be found in the raw bytes.
_ASCII_SAFE_CODECS = frozenset(
    {"utf-8", "cp1252", "latin-1", "iso8859-1", "iso8859-15", "ascii", "cp1250", "mac-roman"}
)


_DECODE_BLOCK = 1 << 14  # small enough for the allocator to reuse one block


def check_codec(name: str) -> str:
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise EncodingError(f"--encoding {name!r} is not an encoding Python knows.") from None
    if canonical not in _ASCII_SAFE_CODECS:
        raise EncodingError(
            f"--encoding {name!r} is not supported; use UTF-8 or a single-byte encoding such "
            "as cp1252 or latin-1 (save UTF-16 files as UTF-8)."
        )
    return canonical


def first_undecodable(body: bytes, codec: str) -> int | None:
    """Where ``body`` stops being valid ``codec`` text, or None when all of it is.

    Decoded block by block and thrown away: decoding a large file whole would build a
    string as big as the file only to check it.
    """
    if body.isascii():  # every supported codec is ASCII-compatible
        return None
    decoder = codecs.getincrementaldecoder(codec)()
    view = memoryview(body)
    for begin in range(0, len(body), _DECODE_BLOCK):
        try:
            decoder.decode(view[begin : begin + _DECODE_BLOCK], final=False)
        except UnicodeDecodeError:
            break
    else:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            pass
        else:
            return None
    # the exact position comes from decoding the whole text once, on this rare path
    try:
        body.decode(codec)
    except UnicodeDecodeError as error:
        return error.start
    return None


def detect_encoding(
    name: str, body: bytes, has_bom: bool, lines_before: int = 0, newline: bytes | None = None
) -> str:
    """UTF-8 when the bytes decode as UTF-8, else Windows-1252; mixed files are refused.

    (``lines_before``: the file's lines before ``body``, when it is a later block;
    ``newline``: the file's line break, LF or CR, that lines are counted by.)"""
    if newline is None:
        newline = bytes([newline_byte(body)])
    # UTF-32's byte order marks begin like UTF-16's: they are told apart first
    for marks, encoding in (
        ((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"), "UTF-32"),
        ((b"\xff\xfe", b"\xfe\xff"), "UTF-16"),
    ):
        if body.startswith(marks):
            raise EncodingError(
                f"{name} is {encoding} text; save it as CSV UTF-8 (in Excel: Save As, CSV UTF-8)."
            )
    first_bad = first_undecodable(body, "utf-8")
    if first_bad is None:
        return "utf-8"
    line = lines_before + body.count(newline, 0, first_bad) + 1
    # A UTF-8 file with a few broken bytes holds more valid multi-byte sequences than
    # stray high bytes; in Windows-1252 text, valid-looking sequences are coincidences.
    valid_sequences = _UTF8_SEQUENCE.findall(body)
    valid_bytes = sum(len(sequence) for sequence in valid_sequences)
    high_bytes = int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) >= 0x80))
    stray_bytes = high_bytes - valid_bytes
    if has_bom or len(valid_sequences) > stray_bytes:
        raise EncodingError(
            f"{name}: line {line} is not valid UTF-8 although the file looks like UTF-8 "
            "elsewhere (mixed encodings?); fix that line, or pass --encoding cp1252 if the "
            "whole file is Windows-1252."
        )
    try:
        body.decode("cp1252")
    except UnicodeDecodeError as error:
        bad_line = lines_before + body.count(newline, 0, error.start) + 1
        raise EncodingError(
            f"{name}: line {bad_line} is neither UTF-8 nor Windows-1252 text; "
            "pass the file's encoding with --encoding."
        ) from None
    return "cp1252"


def check_decodes(
    name: str, body: bytes, codec: str, asked: str | None, lines_before: int, newline: bytes
) -> None:
    """Refuse a block that is not valid ``codec`` text, naming the file's line."""
    bad = first_undecodable(body, codec)
    if bad is None:
        return
    line = lines_before + body.count(newline, 0, bad) + 1
    if asked is not None:
        raise EncodingError(f"{name}: line {line} is not valid {asked}; check --encoding.")
    raise EncodingError(
        f"{name}: line {line} is not valid {_CODEC_NAMES.get(codec, codec)} although the "
        "lines before it are; fix that line, or pass the file's encoding with --encoding."
    )


_CODEC_NAMES = {"utf-8": "UTF-8", "cp1252": "Windows-1252"}


def refuse_utf8_after_cp1252(name: str, body: bytes, lines_before: int, newline: bytes) -> None:
    """A later block that is UTF-8 text (valid, with multi-byte characters) in a file read
    as Windows-1252 is refused, as the whole file would be (mixed encodings): read as
    Windows-1252 its characters would come out garbled."""
    if body.isascii() or first_undecodable(body, "utf-8") is not None:
        return
    found = _UTF8_SEQUENCE.search(body)
    if found is None:
        return
    line = lines_before + body.count(newline, 0, found.start()) + 1
    raise EncodingError(
        f"{name}: line {line} is UTF-8 text but the lines before it are Windows-1252 (mixed "
        "encodings?); save the file in one encoding, or pass the one it is in with --encoding."
    )
