"""Sheets written fast for the audit workbook: a write-only sheet with its headers and
widths (`Sheet`), and bulk rows (an action sheet, Reports) turned into sheet XML by polars
and copied into the package openpyxl saved (`BulkRows`, `RowBuilder`, `with_rows`).
"""

from __future__ import annotations

import collections
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from reconcile._cells import NEEDS_ESCAPE, excel_escaped, excel_escaped_text

__all__ = [
    "LINE_HEIGHT",
    "BulkRows",
    "RowBuilder",
    "Sheet",
    "Styles",
    "naive_utc",
    "sheet_styles",
    "with_rows",
]


def naive_utc(moment: datetime | None) -> datetime | None:
    # Excel has no time zones: every date in the workbook is UTC, as the headers say.
    return moment.replace(tzinfo=None) if moment is not None else None


# a wrapped line's height in points (the default font), and the characters a column of
# width W holds on one line (a little less than W: proportional glyphs)
LINE_HEIGHT = 15.0


class Sheet:
    """A write-only sheet with a frozen header, an autofilter, column widths, and a page
    setup an auditor can print: landscape, one page wide, the header row repeated on
    every page, gridlines printed."""

    def __init__(self, workbook: Any, title: str, headers: Sequence[tuple[str, int]]) -> None:
        from openpyxl.utils import get_column_letter
        from openpyxl.worksheet.properties import PageSetupProperties

        self.sheet = workbook.create_sheet(title=title)
        self.sheet.freeze_panes = "A2"
        for index, (_name, width) in enumerate(headers, start=1):
            self.sheet.column_dimensions[get_column_letter(index)].width = width
        self.sheet.page_setup.orientation = "landscape"
        self.sheet.page_setup.fitToWidth = 1
        self.sheet.page_setup.fitToHeight = 0  # as many pages down as the rows need
        self.sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
        self.sheet.print_title_rows = "1:1"
        self.sheet.print_options.gridLines = True
        self.rows = 0
        self.width = len(headers)
        self._letter = get_column_letter(max(1, len(headers)))
        self.append([name for name, _width in headers])

    def append(self, values: Iterable[Any]) -> None:
        from openpyxl.cell import WriteOnlyCell

        cells: list[Any] = list(values)
        for index, value in enumerate(cells):
            if isinstance(value, str) and re.search(NEEDS_ESCAPE, value):
                value = cells[index] = excel_escaped_text(value)
            if isinstance(value, str) and value.startswith("="):
                cell = WriteOnlyCell(self.sheet, value=value)
                cell.data_type = "s"  # text that looks like a formula stays text
                cells[index] = cell
            elif isinstance(value, datetime) and value.tzinfo is not None:
                cells[index] = naive_utc(value)  # openpyxl gives datetimes a date format
        self.sheet.append(cells)
        self.rows += 1

    def finish(self) -> None:
        self.sheet.auto_filter.ref = f"A1:{self._letter}{max(self.rows, 1)}"


@dataclass(frozen=True)
class BulkRows:
    """Data rows of an action sheet, written as sheet XML straight from polars after
    openpyxl has written the sheet's header and settings (see `with_rows`)."""

    sheet: Any
    rows: pl.DataFrame
    # text columns whose long values wrap (the reason), rather than run under the next,
    # and their column's width (a row is as high as its longest wrapped text needs)
    wrapped: tuple[str, ...] = ()
    wrap_width: int = 70


@dataclass(frozen=True)
class Styles:
    """Style indexes in openpyxl's style table, for cells written as XML."""

    date: int
    wrapped_text: int


# Excel refuses a cell holding more characters than this.
_EXCEL_MAX_TEXT = 32_767
# zlib's fastest level: the sheets' XML is large and repetitive, and compresses well
# enough at 1 (level 6 costs five times the CPU for a fifth less size).
_ZIP_LEVEL = 1
# Rows turned into XML at once.
_XML_ROWS = 20_000
# Days from Excel's epoch (1899-12-30) to 1970-01-01.
_EXCEL_UNIX_DAYS = 25_569


def _row_xml(
    frame: pl.DataFrame,
    first_row: int,
    styles: Styles,
    wrapped: Sequence[str] = (),
    wrap_width: int = 70,
) -> pl.Series:
    """One ``<row>`` element per row of ``frame``, numbered from ``first_row``: numbers
    and dates as values (dates as Excel serials in ``styles.date``), everything else as
    inline text, which a spreadsheet never evaluates; an empty cell is ``<c/>``.

    Cells go in column order without a reference (``r`` is optional in SpreadsheetML),
    which keeps the sheet about half the size to build and compress."""
    number = pl.int_range(first_row, first_row + frame.height, eager=False).cast(pl.String)
    texts = [name for name, dtype in frame.schema.items() if not _is_value(dtype)]
    # Each text is made fit for XML in a step of its own (within one expression polars
    # would work it out again for each use), and only as far as the column needs: most
    # hold no character to escape.
    found = (
        frame.select(
            *(
                pl.col(name).cast(pl.String).str.contains("[&<>]").any().alias(name)
                for name in texts
            ),
            *(
                pl.col(name).cast(pl.String).str.contains(NEEDS_ESCAPE).any().alias(f"{name}\0")
                for name in texts
            ),
        ).row(0, named=True)
        if texts and frame.height
        else {}
    )
    prepared = frame.with_columns(
        *(_xml_text(pl.col(name), found[name], found[f"{name}\0"]) for name in texts),
        # spaces at either end are kept only when the text says so
        *(
            pl.col(name).cast(pl.String).str.contains(r"^\s|\s$").alias(f"{name}\0")
            for name in texts
        ),
    )
    cells = []
    for name, dtype in frame.schema.items():
        value = pl.col(name)
        if dtype.is_integer():
            cell = pl.concat_str([pl.lit("<c><v>"), value.cast(pl.String), pl.lit("</v></c>")])
        elif isinstance(dtype, pl.Datetime):
            serial = value.dt.epoch("us").cast(pl.Float64) / 86_400_000_000 + _EXCEL_UNIX_DAYS
            cell = pl.concat_str(
                [pl.lit(f'<c s="{styles.date}"><v>'), serial.cast(pl.String), pl.lit("</v></c>")]
            )
        else:
            style = f' s="{styles.wrapped_text}"' if name in wrapped else ""
            opening = (
                pl.when(pl.col(f"{name}\0"))
                .then(pl.lit(f'<c t="inlineStr"{style}><is><t xml:space="preserve">'))
                .otherwise(pl.lit(f'<c t="inlineStr"{style}><is><t>'))
            )
            cell = pl.concat_str([opening, value, pl.lit("</t></is></c>")])
        cells.append(cell.fill_null("<c/>"))
    # a row whose wrapped text needs more than one line is given the height it needs
    per_line = max(wrap_width - 4, 8)
    lines = pl.max_horizontal(
        pl.lit(1, pl.Int64),
        *(
            (pl.col(name).cast(pl.String).str.len_chars().fill_null(0) + per_line - 1) // per_line
            for name in wrapped
            if name in frame.columns
        ),
    )
    height = (
        pl.when(lines > 1)
        .then(
            pl.lit('" ht="')
            + (lines * LINE_HEIGHT).cast(pl.Int64).cast(pl.String)
            + pl.lit('" customHeight="1">')
        )
        .otherwise(pl.lit('">'))
    )
    return prepared.select(
        pl.concat_str([pl.lit('<row r="'), number, height, *cells, pl.lit("</row>")])
    ).to_series()


def _xml_text(value: pl.Expr, markup: bool, escapes: bool) -> pl.Expr:
    """``value`` as XML text (empty text as no cell): within Excel's length; what a cell
    cannot carry as it is escaped (``escapes``, `excel_escaped`); ``&``, ``<``, ``>``
    escaped (``markup``)."""
    text = value.cast(pl.String).str.slice(0, _EXCEL_MAX_TEXT)
    text = pl.when(text.str.len_bytes() > 0).then(text)  # "" is an empty cell
    if escapes:
        text = excel_escaped(text)
    if markup:
        text = (
            text.str.replace_all("&", "&amp;", literal=True)
            .str.replace_all("<", "&lt;", literal=True)
            .str.replace_all(">", "&gt;", literal=True)
        )
    return text


def _is_value(dtype: pl.DataType) -> bool:
    """Whether a column's cells are written as values (numbers, dates), not text."""
    return dtype.is_integer() or isinstance(dtype, pl.Datetime)


class RowBuilder:
    """Builds the XML of every bulk sheet's rows, in order, on a thread of its own a few
    pieces ahead of the writer: polars builds while zlib compresses (both outside the
    GIL), and the first pieces are ready before openpyxl has saved the rest."""

    AHEAD = 4

    def __init__(self, bulk: Sequence[BulkRows], styles: Styles, pool: ThreadPoolExecutor):
        self._pieces: collections.deque[tuple[BulkRows, int]] = collections.deque(
            (item, offset) for item in bulk for offset in range(0, item.rows.height, _XML_ROWS)
        )
        self._styles = styles
        self._pool = pool
        self._built: collections.deque[tuple[int, Future[bytes]]] = collections.deque()
        self._fill()

    def _fill(self) -> None:
        while self._pieces and len(self._built) < self.AHEAD:
            item, offset = self._pieces.popleft()
            job = self._pool.submit(_xml_bytes, item, offset, self._styles)
            self._built.append((id(item.sheet), job))

    @property
    def pending(self) -> bool:
        """Whether rows were built or planned that no sheet has taken."""
        return bool(self._built or self._pieces)

    def add(self, item: BulkRows) -> None:
        """Build ``item``'s rows too, after those asked for so far."""
        self._pieces.extend((item, offset) for offset in range(0, item.rows.height, _XML_ROWS))
        self._fill()

    def rows_of(self, sheet: Any) -> Iterator[bytes]:
        """The XML pieces of ``sheet``'s rows (the sheets are asked for in order)."""
        while self._built and self._built[0][0] == id(sheet):
            _sheet, job = self._built.popleft()
            self._fill()
            yield job.result()


def with_rows(
    skeleton: bytes, target: Path, bulk: Sequence[BulkRows], workbook: Any, rows: RowBuilder
) -> None:
    """Copy the workbook ``skeleton`` (as openpyxl wrote it) to ``target``, with each
    bulk sheet's data rows (from ``rows``) after its header row.

    openpyxl spends about 10 microseconds per cell; an action sheet of 200,000 rows is
    three million cells. Built as text by polars, the same rows take a fraction of a
    second, and they are written as plain values, never formulas.
    """
    import zipfile

    entries = {
        f"xl/worksheets/sheet{workbook.worksheets.index(item.sheet) + 1}.xml": item.sheet
        for item in bulk
    }
    with (
        zipfile.ZipFile(io.BytesIO(skeleton)) as source,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=_ZIP_LEVEL) as package,
    ):
        for info in source.infolist():
            content = source.read(info)
            sheet = entries.get(info.filename)
            if sheet is None:
                package.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED)
                continue
            head, end, tail = content.partition(b"</sheetData>")
            if not end:
                raise ValueError(f"openpyxl wrote {info.filename} without sheet data")
            entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry.compress_type = zipfile.ZIP_DEFLATED
            # A ZipInfo made here would be compressed at zlib's default level 6, not the
            # package's level 1 (Python sets the level only on the infos it makes): five
            # times the CPU for 20 % less size, and the sheets are most of the workbook. (No
            # public setter before Python 3.13's ZipInfo.compress_level.)
            entry._compresslevel = _ZIP_LEVEL  # type: ignore[attr-defined]
            with package.open(entry, "w", force_zip64=True) as stream:
                stream.write(head)
                for piece in rows.rows_of(sheet):
                    stream.write(piece)
                stream.write(end + tail)
    if rows.pending:  # never: every bulk sheet is in the skeleton, in order
        raise RuntimeError("the audit workbook lost rows of a sheet; it was not written")


def _xml_bytes(item: BulkRows, offset: int, styles: Styles) -> bytes:
    """Rows ``offset`` to ``offset + _XML_ROWS`` as sheet XML (one ``<row>`` a line)."""
    xml = _row_xml(
        item.rows.slice(offset, _XML_ROWS), offset + 2, styles, item.wrapped, item.wrap_width
    )
    buffer = io.BytesIO()
    xml.to_frame().write_csv(buffer, include_header=False, quote_style="never")
    return buffer.getvalue()


def sheet_styles(workbook: Any) -> Styles:
    """The workbook's style indexes for a date and time (as openpyxl formats a datetime)
    and for text that wraps; asking for them adds them to the workbook's styles."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment

    sheet = workbook.worksheets[0]
    date = WriteOnlyCell(sheet, value=datetime(2000, 1, 1))
    wrapped = WriteOnlyCell(sheet, value="")
    wrapped.alignment = Alignment(wrap_text=True, vertical="top")
    return Styles(date=int(date.style_id), wrapped_text=int(wrapped.style_id))
