"""Contact files in: CSV or XLSX, read without type inference, as a `ContactTable`.

The table holds the header, the chosen columns and the text of the few columns
reconcile needs (phone, consent, id); `csv_files` and `xlsx_files` know each format, and
write the cleaned file back from the input itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from reconcile.columns import ColumnChoice
from reconcile.csv_files import CsvSource, read_csv_contacts
from reconcile.errors import InputError, UnsupportedFormatError
from reconcile.xlsx_files import read_xlsx_contacts

__all__ = ["ColumnChoice", "ContactTable", "Piece", "read_contacts"]

CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_REFUSED_SUFFIXES = {
    ".xls": "the old Excel 97-2003 format",
    ".ods": "an OpenDocument spreadsheet",
    ".numbers": "an Apple Numbers file",
    ".xlsb": "a binary Excel workbook",
}
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Piece:
    """Rows of a contact file decided together: their values, how many data rows come
    before them in the file (``first``), and for a CSV file the block they were read
    from, with their place in it (``block_first`` to ``block_stop``)."""

    first: int
    values: pl.DataFrame
    source: CsvSource | None
    block_first: int
    block_stop: int


@dataclass
class ContactTable:
    """A contact file as read: its columns, the ones chosen, and its values.

    The values (one row per data row: ``row`` as a spreadsheet numbers it, ``phone_0``...
    one per phone column, ``consent``, ``id``, as text) come from the CSV file's blocks
    (``csv``, then ``csv_later``), read as `pieces` asks for them, and from ``loaded``
    for a workbook's sheet. For a CSV file, ``row_count``, ``blank_rows`` and
    ``footer_lines`` count what has been read: they are the file's once `pieces` is done.
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
    csv_later: Iterator[CsvSource] | None = None
    loaded: pl.DataFrame | None = None
    # XLSX: the header's and every data row's cells as read, for the cleaned workbook
    sheet_cells: tuple[list[object], list[list[object]]] | None = None
    # XLSX: each data row's number in its sheet (1-based), and the header's, for the
    # workbook edited in place
    sheet_rows: list[int] = field(default_factory=list)
    header_row: int = 1

    def pieces(self, rows: int) -> Generator[Piece, None, None]:
        """The values, at most ``rows`` data rows at a time, in order: a CSV file's
        blocks are read (and let go) one after the other. A CSV block without data rows
        still comes as an empty piece, so that its writer sees the file's end."""
        if self.loaded is not None:
            for first in range(0, self.row_count, rows):
                stop = min(first + rows, self.row_count)
                yield Piece(first, self.loaded.slice(first, stop - first), None, first, stop)
            return
        if self.csv is None:
            raise InputError(f"{self.path.name}: the file's values were never read.")
        first_block, self.csv = self.csv, None
        blocks = itertools.chain([first_block], self.csv_later or ())
        del first_block
        self.row_count = self.blank_rows = 0
        try:
            for block in blocks:
                count = block.scan.row_count
                for offset in range(0, max(count, 1), rows):
                    stop = min(offset + rows, count)
                    yield Piece(
                        block.rows_before + offset,
                        block.values(offset, stop),
                        block,
                        offset,
                        stop,
                    )
                self.row_count += count
                self.blank_rows += block.scan.blank_lines
                # a first block of plain ASCII leaves the encoding to the first block
                # that is not: the file's is the one its last block was read in
                self.encoding = block.encoding
                if block.closing:
                    self.footer_lines = _footer_lines(block.scan.footer)
                del block
        finally:
            self.close()

    def all_values(self) -> pl.DataFrame:
        """Every row's values at once, for a small file (a CSV file's blocks are read, and
        `pieces` then has nothing left to give)."""
        return pl.concat([piece.values for piece in self.pieces(1 << 62)])

    def close(self) -> None:
        """Let the CSV file go (the blocks not read yet are never read)."""
        close = getattr(self.csv_later, "close", None)
        if close is not None:
            close()


def _footer_lines(footer: bytes) -> int:
    return sum(1 for line in footer.splitlines() if line.strip())


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
        footer_lines=_footer_lines(scan.footer),
        csv=text.source,
        csv_later=text.later,
    )
