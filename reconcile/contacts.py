"""Contact files in: CSV or XLSX, read without type inference, as a `ContactTable`.

The table holds the header, the chosen columns and the text of the few columns
reconcile needs (phone, consent, id); `csv_files` and `xlsx_files` know each format, and
write the cleaned file back from the input itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from reconcile.columns import ColumnChoice
from reconcile.csv_files import CsvSource, read_csv_contacts
from reconcile.errors import InputError, UnsupportedFormatError
from reconcile.xlsx_files import read_xlsx_contacts

__all__ = ["ColumnChoice", "ContactTable", "read_contacts"]

CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_REFUSED_SUFFIXES = {
    ".xls": "the old Excel 97-2003 format",
    ".ods": "an OpenDocument spreadsheet",
    ".numbers": "an Apple Numbers file",
    ".xlsb": "a binary Excel workbook",
}
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class ContactTable:
    """A contact file as read: its columns, the ones chosen, and its values.

    The values (one row per data row: ``row`` as a spreadsheet numbers it, ``phone_0``...
    one per phone column, ``consent``, ``id``, as text) come
    from ``csv`` for a CSV file and from ``loaded`` for a workbook's sheet;
    `value_chunks` hands them out a chunk at a time.
    """

    path: Path
    kind: Literal["csv", "xlsx"]
    columns: list[str]
    phone_columns: tuple[str, ...]
    consent_column: str
    id_column: str | None
    row_count: int
    blank_rows: int
    include_columns: tuple[str, ...] = ()
    # the phone columns found by what they hold, and phone-like columns not checked (fax)
    phones_by_content: tuple[str, ...] = ()
    not_checked: tuple[tuple[str, str], ...] = ()
    encoding: str | None = None
    delimiter: str | None = None
    newline: str | None = None
    footer_lines: int = 0
    sheet: str | None = None
    csv: CsvSource | None = None
    loaded: pl.DataFrame | None = None
    # XLSX: the header's and every data row's cells as read, for the cleaned workbook
    sheet_cells: tuple[list[object], list[list[object]]] | None = None
    # XLSX: each data row's number in its sheet (1-based), and the header's, for the
    # workbook edited in place
    sheet_rows: list[int] = field(default_factory=list)
    header_row: int = 1

    def value_chunks(self, rows: int) -> Iterator[pl.DataFrame]:
        """The values, ``rows`` data rows at a time, in order."""
        for first in range(0, self.row_count, rows):
            yield self._values(first, min(first + rows, self.row_count))

    @property
    def values(self) -> pl.DataFrame:
        """Every row's values at once."""
        return self._values(0, self.row_count)

    def _values(self, first: int, stop: int) -> pl.DataFrame:
        if self.loaded is not None:
            return self.loaded.slice(first, stop - first)
        if self.csv is None:
            raise InputError(f"{self.path.name}: the file's values were never read.")
        return self.csv.values(first, stop)


def read_contacts(
    path: Path,
    choice: ColumnChoice,
    *,
    sheet: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> ContactTable:
    """Read a CSV or XLSX contact file; raise an InputError subclass on anything unusable."""
    suffix = path.suffix.lower()
    if suffix in _REFUSED_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path.name} is {_REFUSED_SUFFIXES[suffix]}, which reconcile does not read; "
            "save it as .xlsx or .csv."
        )
    if suffix not in CSV_SUFFIXES | XLSX_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path.name}: unknown file type {suffix or '(no extension)'!r}; "
            "reconcile reads .csv, .txt, .tsv and .xlsx files."
        )
    if path.exists() and not path.is_dir() and not path.is_file():
        raise InputError(
            f"{path}: not a regular file (a pipe or a device); save the contacts to a file."
        )
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a contact file.") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (cannot read the file).") from None
    if suffix in XLSX_SUFFIXES:
        if not head:
            raise InputError(f"{path.name}: the file is empty (0 bytes).")
        if head != _ZIP_MAGIC:
            raise UnsupportedFormatError(
                f"{path.name} is not an Excel .xlsx workbook (it may be damaged, password-"
                "protected, or another format renamed); open it in Excel and save as .xlsx."
            )
        book = read_xlsx_contacts(path, choice, sheet)
        return ContactTable(
            path=path,
            kind="xlsx",
            columns=book.header,
            phone_columns=book.chosen.phones,
            phones_by_content=book.chosen.by_content,
            not_checked=book.chosen.not_checked,
            consent_column=book.chosen.consent,
            id_column=book.chosen.id,
            row_count=book.values.height,
            include_columns=book.chosen.include,
            blank_rows=book.blank_rows,
            sheet=book.sheet,
            loaded=book.values,
            sheet_cells=(book.header_cells, book.rows),
            sheet_rows=book.sheet_rows,
            header_row=book.header_row,
        )
    if head == _ZIP_MAGIC:
        raise UnsupportedFormatError(
            f"{path.name} is a zip archive (an Excel workbook?), not CSV text; "
            "rename it to .xlsx or export it as CSV."
        )
    text = read_csv_contacts(path, choice, encoding, delimiter)
    scan = text.source.scan
    return ContactTable(
        path=path,
        kind="csv",
        columns=text.header,
        phone_columns=text.chosen.phones,
        phones_by_content=text.chosen.by_content,
        not_checked=text.chosen.not_checked,
        consent_column=text.chosen.consent,
        id_column=text.chosen.id,
        row_count=scan.row_count,
        include_columns=text.chosen.include,
        blank_rows=scan.blank_lines,
        encoding=text.source.encoding,
        delimiter=scan.delimiter,
        newline={b"\r\n": "CRLF", b"\r": "CR"}.get(scan.newline, "LF"),
        footer_lines=sum(1 for line in scan.footer.splitlines() if line.strip()),
        csv=text.source,
    )
