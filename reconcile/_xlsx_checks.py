"""An XLSX file judged before any reader opens it: a zip bomb (measured on what its
entries really inflate to, never on the sizes they declare), and a sheet whose farthest
cell reference claims an area far beyond the cells it holds. Each is refused in one line.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from reconcile.errors import UnsupportedFormatError

__all__ = [
    "ArchiveFacts",
    "SheetExtent",
    "check_inflation",
    "refuse_far_cells",
    "refuse_zip_bomb",
]

_ERROR_CELL = re.compile(rb'<c\b[^>]*\bt="e"')


_MAX_UNPACKED = 4 << 30  # Excel's own limits keep real workbooks far below this


# past this much, an archive that inflates more than _BOMB_RATIO times is a bomb (real
# workbooks inflate 5 to 20 times)
_BOMB_FROM = 256 << 20


_BOMB_RATIO = 100


@dataclass
class SheetExtent:
    """What a worksheet's XML holds: its cell elements, and the farthest row and column
    any reference names (the area a reader allocates for it)."""

    cells: int = 0
    last_row: int = 0
    last_column: int = 0

    def add(self, block: bytes, prefix: bytes) -> None:
        """Count the cells of ``block`` (by their references, and those with no attribute
        at all) and widen the extent by its references."""
        row, column, cells = _farthest_reference(block)
        self.cells += cells + block.count(b"<" + prefix + b"c>")
        self.last_row = max(self.last_row, row)
        self.last_column = max(self.last_column, column)


@dataclass
class ArchiveFacts:
    """What one pass over a workbook's entries found: whether a worksheet holds error
    cells (``#N/A``), and each worksheet entry's extent."""

    errors: bool = False
    extents: dict[str, SheetExtent] = field(default_factory=dict)


# A sheet whose area (farthest row x farthest column) is this many times the cells it
# holds, and past _AREA_FROM cells, is a stray far cell: a reader would allocate the area
_AREA_RATIO = 16


_AREA_FROM = 16_000_000  # about 600 MB in calamine: a sparse sheet below it is read


# a reference written loosely (`r = "A1"`, `r= 'A1'`): the block is normalized first
_LOOSE_REFERENCE = re.compile(rb"(\sr)\s+=\s*|(\sr)=\s+")


_QUOTE_BYTES = (ord('"'), ord("'"))


_DIGITS_AT_MOST = 16  # a row written with leading zeros (r="XFD01048576") is still read


def _farthest_reference(block: bytes) -> tuple[int, int, int]:
    """The largest row and column named by an ``r="A1"`` attribute in ``block`` (a row's
    ``r="7"`` names a row; either quote, any case, leading zeros), and how many cells
    those attributes name; found with numpy, never one match at a time: a few byte
    gathers per reference, and the row parsed only for the longest ones."""
    if _LOOSE_REFERENCE.search(block):
        block = _LOOSE_REFERENCE.sub(lambda match: (match[1] or match[2]) + b"=", block)
    size = len(block)
    if size < 8:
        return 0, 0, 0
    # closing quotes after the end, so that no reference runs past the block
    data = np.frombuffer(block + b"\"'" * _DIGITS_AT_MOST, dtype=np.uint8)
    quoted = data[3 : size - 1]
    attribute = np.flatnonzero(
        (data[1 : size - 3] == ord("r"))
        & (data[2 : size - 2] == ord("="))
        & ((quoted == _QUOTE_BYTES[0]) | (quoted == _QUOTE_BYTES[1]))
    )
    before = data[attribute]  # an attribute named exactly r: whitespace before it
    attribute = attribute[(before == 32) | (before == 9) | (before == 10) | (before == 13)]
    starts = attribute + 4  # the value's first byte
    if starts.size == 0:
        return 0, 0, 0
    quote = data[starts - 1]
    length = np.empty(starts.size, dtype=np.int64)
    for mark in _QUOTE_BYTES:  # each value ends at the next quote of its own kind
        closing = np.flatnonzero(data == mark)
        own = quote == mark
        length[own] = closing[np.searchsorted(closing, starts[own])] - starts[own]
    keep = (length >= 1) & (length <= 3 + _DIGITS_AT_MOST)
    starts, length = starts[keep], length[keep]
    if starts.size == 0:
        return 0, 0, 0
    first, second, third = (data[starts + offset].astype(np.int64) for offset in range(3))
    first, second, third = (
        np.where((value >= ord("a")) & (value <= ord("z")), value - 32, value)
        for value in (first, second, third)
    )
    one = (first >= ord("A")) & (first <= ord("Z"))
    two = one & (second >= ord("A")) & (second <= ord("Z"))
    three = two & (third >= ord("A")) & (third <= ord("Z"))
    column = np.where(
        three,
        (first - 64) * 676 + (second - 64) * 26 + (third - 64),
        np.where(two, (first - 64) * 26 + (second - 64), np.where(one, first - 64, 0)),
    )
    letters = one.astype(np.int64) + two + three
    digits = length - letters
    valid = (digits >= 1) & (digits <= _DIGITS_AT_MOST)
    if not valid.any():
        return 0, 0, 0
    starts, letters, digits, column = starts[valid], letters[valid], digits[valid], column[valid]
    zeros = np.zeros(starts.size, dtype=np.int64)  # leading zeros, not counted
    leading = np.ones(starts.size, dtype=bool)
    for place in range(_DIGITS_AT_MOST):
        leading &= (place < digits - 1) & (data[starts + letters + place] == ord("0"))
        zeros += leading
    significant = digits - zeros
    longest = int(significant.max())
    chosen = significant == longest
    at = starts[chosen] + letters[chosen] + zeros[chosen]
    row = np.zeros(at.size, dtype=np.int64)
    numeric = np.ones(at.size, dtype=bool)
    for place in range(min(longest, 12)):  # past 12 digits a row is beyond any bound
        value = data[at + place].astype(np.int64) - ord("0")
        numeric &= (value >= 0) & (value <= 9)
        row = row * 10 + value
    last_row = int(row[numeric].max()) if numeric.any() else 0
    if longest > 12 and numeric.any():
        last_row = 10**12
    return last_row, int(column.max()), int(one.sum())


def refuse_far_cells(
    path: Path, sheet: str, extent: SheetExtent | None, facts: ArchiveFacts
) -> None:
    """Refuse a sheet whose farthest cell lies far beyond the cells it holds (one value at
    ``XFD1048576``): calamine would allocate every cell of that area (512 GiB, an
    abort). With no entry known for the sheet, every worksheet is judged."""
    judged = [extent] if extent is not None else list(facts.extents.values())
    for found in judged:
        area = found.last_row * max(found.last_column, 1)
        if area > _AREA_FROM and area > _AREA_RATIO * max(found.cells, 1):
            from openpyxl.utils import get_column_letter

            far = f"{get_column_letter(min(max(found.last_column, 1), 16_384))}{found.last_row}"
            raise UnsupportedFormatError(
                f"{path.name}: sheet {sheet!r} spans A1:{far} ({area:,} cells) but holds "
                f"{found.cells:,}; delete the stray cells past your table (Ctrl+End in "
                "Excel shows the last one) and save it again."
            )


def check_inflation(inflated: int, packed: int, name: str) -> None:
    """The one bound on what a zip may inflate to (a workbook, Vonage's day list):
    UnsupportedFormatError past _MAX_UNPACKED, or past _BOMB_FROM at more than
    _BOMB_RATIO times its packed size."""
    if inflated > _MAX_UNPACKED or (
        inflated > _BOMB_FROM and inflated / max(packed, 1) > _BOMB_RATIO
    ):
        raise UnsupportedFormatError(
            f"{name} unpacks to more than {inflated >> 20} MiB from "
            f"{max(packed >> 20, 1)} MiB: that is not a file reconcile will open (a zip "
            "bomb?)."
        )


def refuse_zip_bomb(path: Path) -> ArchiveFacts:
    """Refuse a workbook that unpacks to far more than any contact list: what counts is
    what inflating its entries' own bytes actually gives (inflated a megabyte at a time
    and thrown away), never the sizes the archive declares, which a bomb makes small.
    Returns what the pass found on the way: error cells (``#N/A``), and each worksheet's
    extent."""
    facts = ArchiveFacts()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):
        return facts  # the reader says what is wrong with it
    packed = max(path.stat().st_size, 1)
    inflated = 0
    errors = False
    with archive, path.open("rb") as raw:
        for info in archive.infolist():
            # every XML part: a sheet may be stored anywhere its relationship points
            sheet = info.filename.endswith(".xml")
            extent = facts.extents.setdefault(info.filename, SheetExtent()) if sheet else None
            prefix: bytes | None = None
            tail = b""
            for block in _inflate(raw, info, packed):
                inflated += len(block)
                check_inflation(inflated, packed, path.name)
                if extent is not None:
                    if prefix is None:  # the namespace prefix the sheet's tags carry
                        root = re.search(rb"<(\w+:)?worksheet\b", block)
                        prefix = root.group(1) or b"" if root else b""
                    # the references of a block's edge are read again with the next one
                    extent.add(tail + block, prefix)
                    if not errors:
                        errors = bool(_ERROR_CELL.search(tail + block))
                    tail = block[-64:]
    facts.errors = errors
    return facts


def _inflate(raw: BinaryIO, info: zipfile.ZipInfo, packed: int) -> Iterator[bytes]:
    """An entry's inflated bytes, from its local header on to the end of its deflate
    stream (or of the file): the declared sizes are not trusted."""
    try:
        raw.seek(info.header_offset)
        header = raw.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            return
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        raw.seek(info.header_offset + 30 + name_length + extra_length)
        if info.compress_type == zipfile.ZIP_STORED:
            remaining = min(info.compress_size, packed)
            while remaining > 0 and (block := raw.read(min(1 << 20, remaining))):
                remaining -= len(block)
                yield block
            return
        if info.compress_type != zipfile.ZIP_DEFLATED:
            return
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        while not inflater.eof and (compressed := raw.read(1 << 16)):
            data = inflater.decompress(compressed, 1 << 20)
            while data:
                yield data
                data = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
    except (OSError, zlib.error, struct.error):
        return  # the reader says what is wrong with it
