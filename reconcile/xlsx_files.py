"""XLSX contact files: choosing the sheet, reading it with calamine, writing kept rows.

The sheet's values are read as text by calamine (fastexcel); the cleaned workbook is
written by openpyxl with each kept cell's value and type (number, date, text). A
workbook that would unpack to far more than any contact list is refused before either
library opens it.
"""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile._text import first_line
from reconcile.columns import ChosenColumns, ColumnChoice, MissingConsentColumn, choose_columns
from reconcile.errors import InputError, UnsupportedFormatError

__all__ = [
    "XlsxContacts",
    "choose_sheet",
    "read_xlsx_contacts",
    "refuse_zip_bomb",
    "write_xlsx_cleaned",
]

_WORKBOOK_XML_LIMIT = 4 << 20  # the sheet list; a bigger workbook.xml is not a real one
_MAX_UNPACKED = 8 << 30  # Excel's own limits keep real workbooks far below this


@dataclass(frozen=True)
class XlsxContacts:
    """A sheet as read: its header, the chosen columns, and every row's needed values."""

    header: list[str]
    chosen: ChosenColumns
    sheet: str
    values: pl.DataFrame
    blank_rows: int


def _open_workbook_reader(path: Path) -> Any:
    import fastexcel

    try:
        return fastexcel.read_excel(path)
    except Exception as error:  # noqa: BLE001  (fastexcel raises its own untyped errors)
        raise UnsupportedFormatError(
            f"{path.name} cannot be read as an Excel workbook ({first_line(error)}); "
            "open it in Excel and save it again as .xlsx."
        ) from None


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
    """Read the chosen sheet's needed columns as text; blank rows are left out."""
    refuse_zip_bomb(path)
    reader = _open_workbook_reader(path)
    names = list(reader.sheet_names)
    sheet_index = choose_sheet(path, names, _sheet_visibility(path, names), sheet)
    try:
        loaded = reader.load_sheet(sheet_index, header_row=None, dtypes="string")
        frame = loaded.to_polars()
    except Exception as error:  # noqa: BLE001  (fastexcel raises its own untyped errors)
        raise UnsupportedFormatError(
            f"{path.name}: sheet {names[sheet_index]!r} cannot be read ({first_line(error)})."
        ) from None
    if frame.width == 0 or frame.height == 0:
        raise InputError(f"{path.name}: sheet {names[sheet_index]!r} is empty.")
    frame = frame.select(pl.all().cast(pl.String)).with_row_index("_position")
    non_blank = frame.select(
        pl.any_horizontal(
            [
                pl.col(name).is_not_null() & (pl.col(name) != "")
                for name in frame.columns
                if name != "_position"
            ]
        )
    ).to_series()
    frame = frame.filter(non_blank)
    positions = frame.get_column("_position")
    frame = frame.drop("_position")
    header = [value if value is not None else "" for value in frame.row(0)]
    data = frame.slice(1)
    try:
        chosen = choose_columns(path, header, choice)
    except MissingConsentColumn as error:
        error.sample = {
            name: data.get_column(column).head(200).to_list()
            for name, column in zip(header, data.columns, strict=True)
        }
        raise
    if data.height == 0:
        raise InputError(f"{path.name}: sheet {names[sheet_index]!r} has a header but no rows.")
    by_name = dict(zip(header, data.columns, strict=True))
    values = pl.DataFrame(
        {
            # as a spreadsheet numbers them: the header is row 0, blank rows count
            "row": (positions.slice(1) - positions[0]).cast(pl.UInt32),
            **{
                f"phone_{index}": data.get_column(by_name[name])
                for index, name in enumerate(chosen.phones)
            },
            "consent": data.get_column(by_name[chosen.consent]),
            "id": data.get_column(by_name[chosen.id])
            if chosen.id
            else pl.repeat(None, data.height, dtype=pl.String, eager=True),
        }
    )
    return XlsxContacts(
        header=header,
        chosen=chosen,
        sheet=names[sheet_index],
        values=values,
        blank_rows=int((~non_blank).sum()),
    )


def refuse_zip_bomb(path: Path) -> None:
    """Refuse a workbook that would unpack to far more than any real contact list."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (OSError, zipfile.BadZipFile):
        return  # the reader says what is wrong with it
    unpacked = sum(entry.file_size for entry in entries)
    packed = max(sum(entry.compress_size for entry in entries), 1)
    if unpacked > _MAX_UNPACKED or (unpacked > 256 << 20 and unpacked / packed > 200):
        raise UnsupportedFormatError(
            f"{path.name} would unpack to {unpacked >> 20} MiB from {packed >> 20} MiB: "
            "that is not a contact list reconcile will open (a zip bomb?)."
        )


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


def _iter_rows(path: Path, sheet: str) -> Iterator[tuple[Any, ...]]:
    """Yield the non-blank rows of ``sheet`` as openpyxl read-only cells, header first."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        worksheet = workbook[sheet]
        for row in worksheet.iter_rows():
            if any(cell.value is not None and cell.value != "" for cell in row):
                yield row
    finally:
        workbook.close()


def write_xlsx_cleaned(
    path: Path,
    sheet: str,
    row_count: int,
    keep: npt.NDArray[np.bool_],
    extra: pl.DataFrame | None,
    target: Path,
    blank: dict[int, list[str]] | None = None,
) -> None:
    """Write the kept rows of ``path``'s ``sheet``, each cell with its value and type.

    ``blank`` (blank mode) maps a data row's position to the names of the phone columns
    whose cells are emptied.
    """
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    worksheet = workbook.create_sheet(title=sheet)
    extra_rows = extra.rows() if extra is not None else None
    width = 0
    seen = -1
    column_of: dict[str, int] = {}

    def cell(value: Any, number_format: str | None = None) -> Any:
        written = WriteOnlyCell(worksheet, value=value)
        if isinstance(value, str) and written.data_type == "f":
            written.data_type = "s"  # text that starts with "=" stays text
        if number_format and number_format != "General":
            written.number_format = number_format
        return written

    for seen, row in enumerate(_iter_rows(path, sheet)):
        if seen == 0:
            width = len(row)
            for index, source in enumerate(row):
                value = getattr(source, "value", None)
                column_of.setdefault("" if value is None else str(value), index)
        elif seen > row_count or not keep[seen - 1]:
            continue
        cells = [
            cell(getattr(source, "value", None), getattr(source, "number_format", None))
            for source in row
        ]
        if blank and seen > 0:
            for name in blank.get(seen - 1, ()):
                column = column_of.get(name)
                if column is not None and column < len(cells):
                    cells[column] = cell(None)
        if extra is not None and extra_rows is not None:
            cells.extend(cell(None) for _ in range(width - len(cells)))
            cells.extend(
                cell(value) for value in (extra.columns if seen == 0 else extra_rows[seen - 1])
            )
        worksheet.append(cells)
    if seen != row_count:
        raise InputError(
            f"{path.name}: the sheet changed while it was read ({row_count} rows "
            f"first, {max(seen, 0)} now); run again."
        )
    workbook.save(target)
