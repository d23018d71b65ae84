"""Rows taken out of a sheet's XML: the rows below renumbered, every cell reference and
range (merges, conditional formats, validations, tables) shifted up, a range left empty
dropped and its list recounted; a range that lay wholly in removed rows, on a structure
that cannot just go, raises `Collapsed`, and the sheet is written from its cells instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "Collapsed",
    "drop_elements",
    "recounted",
    "renumbered",
    "shift_of",
    "shift_ranges",
    "without_emptied_ranges",
]


_REFERENCE = re.compile(rb'(\sr=")([A-Z]{1,3})([0-9]+)(")')


_RANGE_ATTRIBUTE = re.compile(rb'(\s(?:ref|sqref)=")([^"]*)(")')


_CELL_IN_RANGE = re.compile(rb"(\$?[A-Z]{1,3}\$?)([0-9]+)")


def renumbered(row: bytes, number: int) -> bytes:
    """A row element moved to row ``number``: its own ``r`` and its cells' references."""
    new = str(number).encode()

    def reference(match: re.Match[bytes]) -> bytes:
        return match.group(1) + match.group(2) + new + match.group(4)

    row = _REFERENCE.sub(reference, row)
    return re.sub(rb'(\sr=")[0-9]+(")', rb"\g<1>" + new + rb"\g<2>", row, count=1)


def shift_of(number: int, removed_rows: npt.NDArray[np.int64]) -> int:
    """How many removed rows lie above row ``number``."""
    return int(np.searchsorted(removed_rows, number))


class Collapsed(Exception):
    """A range that lay wholly in removed rows, on a structure that cannot just go."""


def shift_ranges(xml: bytes, removed_rows: Sequence[int], *, may_empty: bool = False) -> bytes:
    """Every ``ref``/``sqref`` range (dimension, filter, merged cells, validation,
    conditional formats, hyperlinks, a table's range) with its rows moved up past the
    removed rows: a range's first row to the first row kept at or below it, its last to
    the last kept at or above it. A range that lay wholly in removed rows goes from its
    list; raises Collapsed when that leaves a validation or a format with none."""
    removed = np.asarray(removed_rows)

    def row_of(reference: bytes) -> int | None:
        match = _CELL_IN_RANGE.fullmatch(reference)
        return int(match.group(2)) if match else None

    def moved(reference: bytes, last: bool) -> bytes:
        match = _CELL_IN_RANGE.fullmatch(reference)
        if match is None:
            return reference
        number = int(match.group(2))
        above = np.searchsorted(removed, number, side="right" if last else "left")
        return match.group(1) + str(max(number - int(above), 1)).encode()

    def attribute(match: re.Match[bytes]) -> bytes:
        ranges = []
        for item in match.group(2).split(b" "):
            ends = item.split(b":")
            first, last = row_of(ends[0]), row_of(ends[-1])
            if first is not None and last is not None:
                left = int(np.searchsorted(removed, first, side="left"))
                right = int(np.searchsorted(removed, last, side="right"))
                if right - left == last - first + 1:
                    continue  # every row of it was removed
            if len(ends) == 2:
                ranges.append(moved(ends[0], False) + b":" + moved(ends[1], True))
            else:
                ranges.append(moved(item, False))
        if not ranges and not may_empty:
            raise Collapsed
        return match.group(1) + b" ".join(ranges) + match.group(3)

    return _RANGE_ATTRIBUTE.sub(attribute, xml)


def without_emptied_ranges(xml: bytes, prefix: bytes) -> bytes:
    """After rows went: a validation, a conditional format or a filter whose every range
    lay in removed rows goes with them; a selection there moves to A1 (Excel saves the
    active cell, often on a contact's row)."""
    for name in (b"dataValidation", b"conditionalFormatting", b"autoFilter"):
        xml = re.sub(
            rb"<"
            + prefix
            + name
            + rb'\b[^>]*?\s(?:sq)?ref=""[^>]*?(?:/>|>.*?</'
            + prefix
            + name
            + rb">)",
            b"",
            xml,
            flags=re.DOTALL,
        )
    xml = re.sub(
        rb"(<" + prefix + rb'selection\b[^>]*?)\sactiveCell="[^"]*"([^>]*?\ssqref=)""',
        rb'\1 activeCell="A1"\2"A1"',
        xml,
    )
    xml = re.sub(rb"(<" + prefix + rb'selection\b[^>]*?\ssqref=)""', rb'\1"A1"', xml)
    return recounted(xml, prefix, b"dataValidation")


def drop_elements(xml: bytes, prefix: bytes, name: bytes, gone: Callable[[bytes], bool]) -> bytes:
    """``xml`` without the ``name`` elements (merged cells, links) whose ``ref`` ``gone``
    says is gone, their wrapper's ``count`` set again, and the wrapper itself gone when
    empty (an empty one is not valid)."""
    element = re.compile(
        rb"<"
        + prefix
        + name
        + rb'\b[^>]*?\sref="([^"]*)"[^>]*?(?:/>|>.*?</'
        + prefix
        + name
        + rb">)",
        re.DOTALL,
    )
    kept = element.sub(lambda match: b"" if gone(match.group(1)) else match.group(0), xml)
    if kept == xml:
        return xml
    return recounted(kept, prefix, name)


def recounted(xml: bytes, prefix: bytes, name: bytes) -> bytes:
    """Each ``<names>`` wrapper with its ``count`` set to the ``name`` elements it still
    holds, and gone when it holds none (an empty one is not valid)."""
    wrapper = re.compile(
        rb"<" + prefix + name + rb"s\b([^>]*)>(.*?)</" + prefix + name + rb"s>", re.DOTALL
    )
    child = re.compile(rb"<" + prefix + name + rb"\b")

    def recount(match: re.Match[bytes]) -> bytes:
        count = len(child.findall(match.group(2)))
        if count == 0:
            return b""
        attributes = re.sub(
            rb'\scount="[0-9]*"', b' count="' + str(count).encode() + b'"', match.group(1)
        )
        opening = b"<" + prefix + name + b"s" + attributes + b">"
        return opening + match.group(2) + b"</" + prefix + name + b"s>"

    return wrapper.sub(recount, xml)
