"""XLSX contact files: choosing the sheet, reading it once, writing the kept rows.

One reading decides and writes: the sheet's cells are read once (by calamine, or by
openpyxl for a sheet that holds error cells such as ``#N/A``, which calamine reads as
empty), the needed columns become text for the decisions, and the cleaned workbook is
written from those same cells, each with its value and type (number, date, text,
error). The rows and columns written are exactly the ones decided, whatever the sheet's
``<dimension>`` says. A workbook that would unpack to far more than any contact list is
refused before either library opens it.
"""

from __future__ import annotations

import datetime as dt
import html
import operator
import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile._cells import NEEDS_ESCAPE, excel_escaped_text
from reconcile._text import first_line
from reconcile._xlsx_package import Appended, write_package
from reconcile.column_words import CONTENT_ROWS
from reconcile.columns import (
    ChosenColumns,
    ColumnChoice,
    MissingConsentColumn,
    choose_columns,
)
from reconcile.errors import InputError, UnsupportedFormatError

__all__ = [
    "CellError",
    "XlsxContacts",
    "choose_sheet",
    "read_xlsx_contacts",
    "refuse_far_cells",
    "refuse_zip_bomb",
    "write_cleaned_workbook",
    "write_xlsx_cleaned",
]

_WORKBOOK_XML_LIMIT = 4 << 20  # the sheet list; a bigger workbook.xml is not a real one
_MAX_UNPACKED = 4 << 30  # Excel's own limits keep real workbooks far below this
# past this much, an archive that inflates more than _BOMB_RATIO times is a bomb (real
# workbooks inflate 5 to 20 times)
_BOMB_FROM = 256 << 20
_BOMB_RATIO = 100
_ERROR_CELL = re.compile(rb'<c\b[^>]*\bt="e"')


class CellError(str):
    """An error cell's text (``#N/A``): written back as an error, not as text."""


@dataclass(frozen=True)
class XlsxContacts:
    """A sheet as read: its header, the chosen columns, every row's needed values as
    text, and every data row's cells as read (for the cleaned workbook)."""

    header: list[str]
    chosen: ChosenColumns
    sheet: str
    values: pl.DataFrame
    blank_rows: int
    header_cells: list[object]
    rows: list[list[object]]
    # each data row's number in the sheet (1-based), and the header's, for the workbook
    # edited in place
    sheet_rows: list[int] = field(default_factory=list)
    header_row: int = 1


def choose_sheet(path: Path, names: list[str], visible: list[bool], sheet: str | None) -> int:
    """Index of the sheet to read: by name, by 1-based number, or the first visible one."""
    if not names:
        raise InputError(f"{path.name}: the workbook has no sheets.")
    listing = ", ".join(repr(name) for name in names)
    if sheet is None:
        for index, is_visible in enumerate(visible):
            if is_visible:
                return index
        return 0
    if sheet in names:
        return names.index(sheet)
    lowered = [name.lower() for name in names]
    if sheet.lower() in lowered:
        return lowered.index(sheet.lower())
    if sheet.isdigit() and 1 <= int(sheet) <= len(names):
        return int(sheet) - 1
    raise InputError(f"{path.name}: no sheet {sheet!r} (--sheet); the workbook has: {listing}.")


def read_xlsx_contacts(path: Path, choice: ColumnChoice, sheet: str | None) -> XlsxContacts:
    """Read the chosen sheet once; blank rows are left out."""
    facts = refuse_zip_bomb(path)
    names = _sheet_names(path)
    sheet_index = choose_sheet(path, names, _sheet_visibility(path, names), sheet)
    name = names[sheet_index]
    has_errors = facts.errors
    refuse_far_cells(path, name, facts.extents.get(_sheet_entry(path, name) or "", None), facts)
    try:
        cells = _openpyxl_cells(path, name) if has_errors else _calamine_cells(path, sheet_index)
    except (UnsupportedFormatError, InputError):
        raise
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise UnsupportedFormatError(
            f"{path.name}: sheet {name!r} cannot be read ({first_line(error)}); open it in "
            "Excel and save it again as .xlsx."
        ) from None
    # a row is blank when every cell is empty ("" or None; counted in C, not compared)
    filled = [
        index for index, row in enumerate(cells) if row.count("") + row.count(None) != len(row)
    ]
    if not filled:
        raise InputError(f"{path.name}: sheet {name!r} is empty.")
    header_at = filled[0]
    width = max(len(row) for row in cells)
    if any(len(row) != width for row in cells):
        cells = [list(row) + [None] * (width - len(row)) for row in cells]
    header_cells = list(cells[header_at])
    header = [_text(value) or "" for value in header_cells]
    data_at = filled[1:]
    rows = [cells[index] for index in data_at]

    def sample(indexes: Sequence[int]) -> list[pl.Series]:
        head = rows[:CONTENT_ROWS]
        return [
            pl.Series([_text(row[index]) for row in head], dtype=pl.String) for index in indexes
        ]

    try:
        chosen = choose_columns(path, header, choice, sample)
    except MissingConsentColumn as error:
        error.sample = {
            column: [_text(row[index]) for row in rows[:200]] for index, column in enumerate(header)
        }
        raise
    if not rows:
        raise InputError(f"{path.name}: sheet {name!r} has a header but no rows.")

    def text_of(column: str) -> pl.Series:
        values = map(operator.itemgetter(header.index(column)), rows)
        return pl.Series(list(map(_text, values)), dtype=pl.String)

    values = pl.DataFrame(
        {
            # as a spreadsheet numbers them: the header is row 0, blank rows count
            "row": pl.Series([index - header_at for index in data_at], dtype=pl.UInt32),
            **{f"phone_{index}": text_of(column) for index, column in enumerate(chosen.phones)},
            "consent": text_of(chosen.consent),
            "id": text_of(chosen.id)
            if chosen.id
            else pl.repeat(None, len(rows), dtype=pl.String, eager=True),
            **{f"include_{index}": text_of(column) for index, column in enumerate(chosen.include)},
        }
    )
    return XlsxContacts(
        header=header,
        chosen=chosen,
        sheet=name,
        values=values,
        blank_rows=len(cells) - header_at - 1 - len(rows),
        header_cells=header_cells,
        rows=rows,
        # both readers give the sheet's rows from row 1: a cell list's index is its row - 1
        sheet_rows=[index + 1 for index in data_at],
        header_row=header_at + 1,
    )


def _text(value: object) -> str | None:
    """A cell as text, as the phone and consent rules read it; None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _sheet_names(path: Path) -> list[str]:
    from python_calamine import CalamineWorkbook

    try:
        return list(CalamineWorkbook.from_path(str(path)).sheet_names)
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise UnsupportedFormatError(
            f"{path.name} cannot be read as an Excel workbook ({first_line(error)}); "
            "open it in Excel and save it again as .xlsx."
        ) from None


def _calamine_cells(path: Path, sheet_index: int) -> list[list[object]]:
    from python_calamine import CalamineWorkbook

    sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(sheet_index)
    # from A1, so that positions are the sheet's own rows and columns ("" is an empty cell)
    return cast("list[list[object]]", sheet.to_python(skip_empty_area=False))


def _openpyxl_cells(path: Path, sheet: str) -> list[list[object]]:
    """Every row of ``sheet`` as openpyxl reads it, the ``<dimension>`` ignored and error
    cells kept as `CellError`."""
    import openpyxl
    from openpyxl.utils.escape import unescape

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        worksheet = workbook[sheet]
        worksheet.reset_dimensions()  # the sheet's own <dimension> may lie
        rows: list[list[object]] = []
        for row in worksheet.iter_rows():
            values: list[object] = []
            for cell in row:
                value = getattr(cell, "value", None)
                if getattr(cell, "data_type", None) == "e" and isinstance(value, str):
                    value = CellError(value)
                elif isinstance(value, str) and "_x" in value:
                    value = unescape(value)  # the format's _xHHHH_ escapes, as calamine reads
                values.append(value)
            column = getattr(row[0], "column", 1) if row else 1
            rows.append([None] * (column - 1) + values)
        return rows
    finally:
        workbook.close()


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


def _sheet_entry(path: Path, name: str) -> str | None:
    """The archive entry of the sheet named ``name`` (``xl/worksheets/sheet1.xml``), from
    the workbook's own list and relationships; None when they do not say."""
    try:
        with zipfile.ZipFile(path) as archive:
            workbook = archive.read("xl/workbook.xml")[:_WORKBOOK_XML_LIMIT].decode(
                "utf-8", errors="replace"
            )
            relations = archive.read("xl/_rels/workbook.xml.rels")[:_WORKBOOK_XML_LIMIT].decode(
                "utf-8", errors="replace"
            )
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    for tag in re.findall(r"<(?:\w+:)?sheet\b[^>]*>", workbook):
        named = re.search(r'\bname="([^"]*)"', tag)
        relation = re.search(r'\b\w+:id="([^"]*)"', tag)
        if named and relation and html.unescape(named.group(1)) == name:
            for link in re.findall(r"<(?:\w+:)?Relationship\b[^>]*>", relations):
                if re.search(rf'\bId="{re.escape(relation.group(1))}"', link):
                    target = re.search(r'\bTarget="([^"]*)"', link)
                    if target:
                        value = html.unescape(target.group(1))
                        where = value.lstrip("/") if value.startswith("/") else f"xl/{value}"
                        return posixpath.normpath(where)
    return None


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
                if inflated > _MAX_UNPACKED or (
                    inflated > _BOMB_FROM and inflated / packed > _BOMB_RATIO
                ):
                    raise UnsupportedFormatError(
                        f"{path.name} unpacks to more than {inflated >> 20} MiB from "
                        f"{max(packed >> 20, 1)} MiB: that is not a contact list reconcile "
                        "will open (a zip bomb?)."
                    )
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


def _sheet_visibility(path: Path, names: list[str]) -> list[bool]:
    """Which sheets are visible, from xl/workbook.xml (loading a sheet to ask would parse it)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("xl/workbook.xml") as stream:
            text = stream.read(_WORKBOOK_XML_LIMIT).decode("utf-8", errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return [True] * len(names)
    hidden = {
        html.unescape(match.group(1))
        for tag in re.findall(r"<(?:\w+:)?sheet\b[^>]*>", text)
        if re.search(r'\bstate="(?:hidden|veryHidden)"', tag)
        for match in [re.search(r'\bname="([^"]*)"', tag)]
        if match
    }
    return [name not in hidden for name in names]


def write_cleaned_workbook(
    source: Path,
    header_cells: Sequence[object],
    rows: Sequence[Sequence[object]],
    sheet: str,
    sheet_rows: Sequence[int],
    header_row: int,
    keep: npt.NDArray[np.bool_],
    extra: pl.DataFrame | None,
    target: Path,
    blank: dict[int, list[int]] | None = None,
) -> str | None:
    """The cleaned workbook: the input workbook with only the decided changes (rows
    removed, cells emptied, flag columns appended: `_xlsx_package.write_package`, every
    other sheet, hidden column, width, format and name kept); for a macro workbook, or a
    sheet too irregular to edit in place, written from the cells as read, and then the
    reason is returned (the summary warns of it)."""
    entry = _sheet_entry(source, sheet) if sheet_rows else None
    appended = (
        Appended(header_row, extra.columns, [list(row) for row in extra.rows()])
        if extra is not None
        else None
    )
    if source.suffix.lower() != ".xlsx":
        why: str | None = "a macro workbook is written as .xlsx"
    elif entry is None:
        why = "its sheet's part could not be found"
    else:
        why = write_package(source, entry, sheet_rows, keep, blank, target, appended)
        if why is None:
            return None
    write_xlsx_cleaned(header_cells, rows, sheet, keep, extra, target, blank)
    return why


def write_xlsx_cleaned(
    header_cells: Sequence[object],
    rows: Sequence[Sequence[object]],
    sheet: str,
    keep: npt.NDArray[np.bool_],
    extra: pl.DataFrame | None,
    target: Path,
    blank: dict[int, list[int]] | None = None,
) -> None:
    """Write the header and the kept ``rows`` (as read), each cell with its value and
    type; ``blank`` (blank mode) maps a row to the column indexes of the phone cells
    emptied; ``extra`` (flag mode) adds columns."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    worksheet = workbook.create_sheet(title=sheet)

    def careful(values: list[Any]) -> list[Any]:
        for index, value in enumerate(values):
            if isinstance(value, CellError):
                cell = WriteOnlyCell(worksheet, value=str(value))
                cell.data_type = "e"
                values[index] = cell
            elif isinstance(value, str):
                if re.search(NEEDS_ESCAPE, value):
                    # a control character (read from a _x0007_ escape), a CR or an
                    # escape look-alike: written as the format's escape, as it came
                    value = values[index] = excel_escaped_text(value)
                if value.startswith("="):
                    cell = WriteOnlyCell(worksheet, value=value)
                    cell.data_type = "s"  # text that starts with "=" stays text
                    values[index] = cell
        return values

    extra_rows = extra.rows() if extra is not None else None
    worksheet.append(
        careful(
            [
                *(None if value == "" else value for value in header_cells),
                *(extra.columns if extra is not None else []),
            ]
        )
    )
    for position, row in enumerate(rows):
        if not keep[position]:
            continue
        values = [None if value == "" else value for value in row]
        if blank and position in blank:
            for column in blank[position]:
                values[column] = None
        if extra_rows is not None:
            values.extend(extra_rows[position])
        worksheet.append(careful(values))
    workbook.save(target)
