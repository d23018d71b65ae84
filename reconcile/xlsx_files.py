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
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile._cells import NEEDS_ESCAPE, excel_escaped_text
from reconcile._text import first_line
from reconcile._xlsx_checks import refuse_far_cells, refuse_zip_bomb
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
    "write_cleaned_workbook",
    "write_xlsx_cleaned",
]

_WORKBOOK_XML_LIMIT = 4 << 20  # the sheet list; a bigger workbook.xml is not a real one


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
