"""The cleaned workbook written as the input workbook with only the decided changes.

Every part of the package is copied as it is (hidden sheets, styles, number formats,
column widths and hidden columns, panes, validation, defined names), except the chosen
sheet's XML, in which only the decided rows are removed (strip mode: the rows below move
up, their references with them) or the decided cells emptied (blank mode: the cell keeps
its style). A Dynamics 365 export so cleaned imports back into the CRM that wrote it.

When the sheet's XML is not plain enough to edit safely (rows without numbers, cells
without references, rows out of order, a row that is not where the reader saw it), the
caller writes the workbook from its cells instead: `write_package` says so.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt

from reconcile._cells import excel_escaped_text

__all__ = ["Appended", "write_package"]

_REFERENCE = re.compile(rb'(\sr=")([A-Z]{1,3})([0-9]+)(")')
_RANGE_ATTRIBUTE = re.compile(rb'(\s(?:ref|sqref)=")([^"]*)(")')
_CELL_IN_RANGE = re.compile(rb"(\$?[A-Z]{1,3}\$?)([0-9]+)")


@dataclass(frozen=True)
class Appended:
    """Flag mode's columns: their names, written on the header row, and each data row's
    values (by its position among the data rows), after the sheet's last used column."""

    header_row: int
    names: Sequence[str]
    values: Sequence[Sequence[str | None]]


def _column_number(letters: bytes) -> int:
    """``A`` -> ``1``, ``AA`` -> ``27``."""
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _column_letters(index: int) -> bytes:
    """``0`` -> ``A``, ``26`` -> ``AA``."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters.encode()


def write_package(
    source: Path,
    entry: str,
    sheet_rows: Sequence[int],
    keep: npt.NDArray[np.bool_],
    blank: Mapping[int, Sequence[int]] | None,
    target: Path,
    appended: Appended | None = None,
) -> bool:
    """Write ``target`` as ``source`` with sheet part ``entry`` edited: the data rows at
    ``sheet_rows`` (1-based sheet row numbers) not in ``keep`` removed, the cells of
    ``blank`` (a data row's position -> column indexes) emptied, the ``appended`` columns
    added. False when the sheet is not plain enough to edit (nothing written then)."""
    with zipfile.ZipFile(source) as archive:
        try:
            xml = archive.read(entry)
        except KeyError:
            return False
        edited = _edit_sheet(xml, sheet_rows, keep, blank or {}, appended)
        if edited is None:
            return False
        removed = {sheet_rows[int(index)] for index in np.flatnonzero(~keep)}
        with zipfile.ZipFile(target, "w") as out:
            for info in archive.infolist():
                data = archive.read(info.filename)
                if info.filename == entry:
                    data = edited
                elif removed and info.filename.startswith("xl/tables/"):
                    data = _shift_ranges(data, sorted(removed))  # a table's own range
                copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                copy.compress_type = info.compress_type
                copy.external_attr = info.external_attr
                out.writestr(copy, data)
    return True


def _edit_sheet(
    xml: bytes,
    sheet_rows: Sequence[int],
    keep: npt.NDArray[np.bool_],
    blank: Mapping[int, Sequence[int]],
    appended: Appended | None = None,
) -> bytes | None:
    root = re.search(rb"<(\w+:)?worksheet\b", xml)
    prefix = (root.group(1) or b"") if root else b""
    data_start = re.search(rb"<" + prefix + rb"sheetData\b[^>]*?(/?)>", xml)
    if data_start is None:
        return None
    if data_start.group(1):  # <sheetData/>: no rows at all
        return None
    data_end = xml.find(b"</" + prefix + b"sheetData>", data_start.end())
    if data_end < 0:
        return None
    body = xml[data_start.end() : data_end]
    row_pattern = re.compile(
        rb"<" + prefix + rb"row\b([^>]*?)(?:/>|>(.*?)</" + prefix + rb"row>)", re.DOTALL
    )
    cell_pattern = re.compile(
        rb"<" + prefix + rb"c\b([^>]*?)(?:/>|>.*?</" + prefix + rb"c>)", re.DOTALL
    )
    removed_rows = sorted(sheet_rows[int(index)] for index in np.flatnonzero(~keep))
    formula = re.compile(rb"<" + prefix + rb"f\b[^>]*?(?:/>|>.*?</" + prefix + rb"f>)", re.DOTALL)
    removed = set(removed_rows)
    emptied = {sheet_rows[position]: set(columns) for position, columns in blank.items()}
    wanted = set(sheet_rows)
    adding: dict[int, Sequence[str | None]] = {}
    first_added = 0
    if appended is not None:
        used = re.findall(rb'\sr="([A-Z]{1,3})[0-9]+"', body)
        first_added = max((_column_number(letters) for letters in set(used)), default=0)
        adding[appended.header_row] = appended.names
        for place, number in enumerate(sheet_rows):
            adding[number] = appended.values[place]
    parts: list[bytes] = []
    position = 0
    previous = 0
    seen: set[int] = set()
    for match in row_pattern.finditer(body):
        if body[position : match.start()].strip():
            return None  # something between rows that is not a row
        parts.append(body[position : match.start()])
        position = match.end()
        number_match = re.search(rb'\sr="([0-9]+)"', match.group(1))
        if number_match is None:
            return None  # a row without its number
        number = int(number_match.group(1))
        if number <= previous:
            return None  # rows out of order, or numbered twice
        previous = number
        seen.add(number)
        if number in removed:
            continue
        text = match.group(0)
        inner = match.group(2) or b""
        if any(not re.search(rb'\sr="', cell.group(1)) for cell in cell_pattern.finditer(inner)):
            return None  # a cell without its reference
        if number in emptied:
            letters = {_column_letters(column) for column in emptied[number]}

            def empty(cell: re.Match[bytes], letters: set[bytes] = letters) -> bytes:
                reference = re.search(rb'\sr="([A-Z]+)[0-9]+"', cell.group(1))
                if reference is None or reference.group(1) not in letters:
                    return cell.group(0)
                style = re.search(rb'\ss="[0-9]+"', cell.group(1))
                kept = style.group(0) if style else b""
                return b"<" + prefix + b"c" + reference.group(0) + kept + b"/>"

            text = cell_pattern.sub(empty, text)
        if number in adding:
            text = _with_cells(text, number, first_added, adding[number], prefix)
        if removed_rows:
            shift = _shift_of(number, removed_rows)
            if shift:
                text = _renumbered(text, number - shift)
            # a formula's references would point elsewhere once rows move: its value stays
            text = formula.sub(b"", text)
        parts.append(text)
    if body[position:].strip():
        return None
    parts.append(body[position:])
    if not wanted <= seen:
        return None  # a data row is not where the reader saw it
    head = xml[: data_start.end()]
    tail = xml[data_end:]
    if appended is not None:  # the sheet's extent reaches the columns added
        last = _column_letters(first_added + len(appended.names) - 1)
        head = re.sub(
            rb"(<" + prefix + rb'dimension\b[^>]*?\sref="[^":]*:)([A-Z]{1,3})([0-9]+")',
            lambda match: match.group(1) + last + match.group(3),
            head,
            count=1,
        )
    if removed_rows:
        head = _shift_ranges(head, removed_rows)
        tail = _shift_ranges(tail, removed_rows)
    return head + b"".join(parts) + tail


def _with_cells(
    row: bytes, number: int, after: int, values: Sequence[str | None], prefix: bytes
) -> bytes:
    """A row element with text cells added after column ``after`` (its ``spans`` hint,
    which would no longer hold, dropped)."""
    cells = b"".join(
        b"<"
        + prefix
        + b'c r="'
        + _column_letters(after + offset)
        + str(number).encode()
        + b'" t="inlineStr"><'
        + prefix
        + b"is><"
        + prefix
        + b't xml:space="preserve">'
        + escape(excel_escaped_text(value)).encode()
        + b"</"
        + prefix
        + b"t></"
        + prefix
        + b"is></"
        + prefix
        + b"c>"
        for offset, value in enumerate(values)
        if value
    )
    row = re.sub(rb'\sspans="[^"]*"', b"", row, count=1)
    if row.endswith(b"/>"):
        return row[:-2] + b">" + cells + b"</" + prefix + b"row>"
    closing = row.rindex(b"</")
    return row[:closing] + cells + row[closing:]


def _renumbered(row: bytes, number: int) -> bytes:
    """A row element moved to row ``number``: its own ``r`` and its cells' references."""
    new = str(number).encode()

    def reference(match: re.Match[bytes]) -> bytes:
        return match.group(1) + match.group(2) + new + match.group(4)

    row = _REFERENCE.sub(reference, row)
    return re.sub(rb'(\sr=")[0-9]+(")', rb"\g<1>" + new + rb"\g<2>", row, count=1)


def _shift_of(number: int, removed_rows: Sequence[int]) -> int:
    """How many removed rows lie above row ``number``."""
    return int(np.searchsorted(np.asarray(removed_rows), number))


def _shift_ranges(xml: bytes, removed_rows: Sequence[int]) -> bytes:
    """Every ``ref``/``sqref`` range (dimension, filter, merged cells, validation,
    conditional formats, hyperlinks, a table's range) with its rows moved up past the
    removed rows: a range's first row to the first row kept at or below it, its last to
    the last kept at or above it."""
    removed = np.asarray(removed_rows)

    def moved(reference: bytes, last: bool) -> bytes:
        match = _CELL_IN_RANGE.fullmatch(reference)
        if match is None:
            return reference
        number = int(match.group(2))
        above = np.searchsorted(removed, number, side="right" if last else "left")
        new = number - int(above)
        return match.group(1) + str(max(new, 1)).encode()

    def attribute(match: re.Match[bytes]) -> bytes:
        ranges = []
        for item in match.group(2).split(b" "):
            ends = item.split(b":")
            if len(ends) == 2:
                ranges.append(moved(ends[0], False) + b":" + moved(ends[1], True))
            else:
                ranges.append(moved(item, False))
        return match.group(1) + b" ".join(ranges) + match.group(3)

    return _RANGE_ATTRIBUTE.sub(attribute, xml)
