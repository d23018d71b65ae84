"""The audit workbook (``NAME.report.xlsx``): what a compliance officer opens months later.

Sheets: Summary (counts, inputs with SHA-256, options, coverage, versions, run time),
one sheet per action other than keep with the evidence, Coverage (per operator),
Reports (metadata of the reports used), and Deactivations (per week and operator, with a
native chart). Every cell that came from data is a value, never a formula: text that
starts with ``=`` is written as text.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from reconcile._cells import NEEDS_ESCAPE, excel_escaped, excel_escaped_text
from reconcile.columns import describe_phone_columns
from reconcile.history import ACTIVATION, DEACTIVATION, Coverage, History
from reconcile.lifecycle import NOT_COVERAGE

if TYPE_CHECKING:
    from reconcile.results import CleanResult

__all__ = [
    "EXCEL_MAX_ROWS",
    "RunInfo",
    "coverage_rows",
    "file_sha256",
    "weekly_counts",
    "weekly_deactivations",
    "write_audit_workbook",
]

EXCEL_MAX_ROWS = 1_048_576
ACTION_SHEETS = (("remove", "Remove"), ("suppress", "Suppress"), ("review", "Review"))
EVIDENCE_COLUMNS = (
    ("row", "Row", 7),
    ("id", "Contact id", 14),
    ("phone_column", "Phone column", 16),
    ("phone", "Phone (as written)", 20),
    ("phone_e164", "Phone (E.164)", 16),
    ("consent", "Consent (as written)", 22),
    ("verdict", "Verdict", 15),
    ("reason", "Reason", 60),
    ("event_type", "Event", 14),
    ("event_at", "Event date (UTC)", 20),
    ("network", "Operator", 18),
    ("report_id", "Report id", 38),
    ("suggested_number", "Suggested number (needs consent)", 20),
)


@dataclass(frozen=True)
class RunInfo:
    """What the Summary sheet says about the run itself."""

    tool_version: str
    run_at: datetime
    history_source: str
    ledger_last_sync: datetime | None = None
    options: dict[str, str] | None = None
    history_sources: tuple[str, ...] = ()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _naive(moment: datetime | None) -> datetime | None:
    # Excel has no time zones: every date in the workbook is UTC, as the headers say.
    return moment.replace(tzinfo=None) if moment is not None else None


class _Sheet:
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
                cells[index] = _naive(value)  # openpyxl gives datetimes a date format
        self.sheet.append(cells)
        self.rows += 1

    def finish(self) -> None:
        self.sheet.auto_filter.ref = f"A1:{self._letter}{max(self.rows, 1)}"


def audit_statement(result: CleanResult, info: RunInfo) -> list[tuple[str, str]]:
    """What the Summary's first page states, for an auditor: what was checked, what was
    decided (per action), on what evidence, and what it cannot answer."""
    summary = result.summary()
    coverage: Coverage = result.coverage
    table = result.table
    where = f"{table.path.name}" + (f", sheet {table.sheet!r}" if table.sheet else "")
    phones = describe_phone_columns(table.phone_columns, table.phones_by_content, table.not_checked)
    checked = (
        f"{summary['rows']:,} contacts in {where}: {summary['numbers']['checked']:,} phone "
        f"numbers in {phones}, each against its consent in {table.consent_column!r}."
    )
    decided = (
        f"{summary['removed']:,} removed (deactivated since consent), "
        f"{summary['suppressed']:,} suppressed (suspended), {summary['review']:,} kept for "
        f"review (unverified or invalid), "
        f"{summary['actions']['keep']:,} kept as they were ({result.options.mode} mode)."
    )
    if coverage.start is None:
        evidence = f"No history ({info.history_source}): every consent is unverified."
    else:
        operators = ", ".join(operator.network for operator in coverage.operators)
        evidence = (
            f"Operator reports from {info.history_source.split(':', 1)[0]} covering "
            f"{coverage.start:%Y-%m-%d %H:%M} to {coverage.end:%Y-%m-%d %H:%M} UTC"
            + (f" ({operators})" if operators else "")
            + f"; the verdicts hold as of {coverage.end:%Y-%m-%d %H:%M} UTC."
        )
    unanswered = [*summary["warnings"], *coverage.notes]
    if summary["verdicts"]["unverified"]:
        unanswered.append(
            f"{summary['verdicts']['unverified']:,} contact(s) consented before the history "
            "begins: a deactivation before then cannot be ruled out (review)."
        )
    if summary["verdicts"]["invalid_number"]:
        unanswered.append(
            f"{summary['verdicts']['invalid_number']:,} contact(s) hold no valid number to "
            "check (review)."
        )
    statement = [
        ("What was checked", checked),
        ("What was decided", decided),
        ("On what evidence", evidence),
    ]
    if result.action_rows_total > result.action_rows.height:
        statement.append(
            (
                "Where every line is",
                f"The action sheets show the first {result.action_rows.height:,} of "
                f"{result.action_rows_total:,} contacts to remove, suppress or review (in "
                f"file order); every one is in {result.changes_path.name}.",
            )
        )
    statement += [("What it cannot answer", text) for text in unanswered] or [
        ("What it cannot answer", "nothing: every number was checked within the history.")
    ]
    return statement


def _summary(workbook: Any, result: CleanResult, info: RunInfo, input_hash: str) -> None:
    summary = result.summary()
    coverage: Coverage = result.coverage
    statement = audit_statement(result, info)
    rows: list[tuple[str, Any]] = [
        *statement,
        ("", ""),
        ("Run details", ""),
        ("Tool", f"reconcile {info.tool_version}"),
        ("Run at (UTC)", info.run_at),
        ("Input file", str(result.table.path)),
        ("Input SHA-256", input_hash),
        ("Input sheet", result.table.sheet or ""),
        (
            "Input encoding (detected)" if not result.options.encoding else "Input encoding",
            result.table.encoding or "(a workbook)",
        ),
        (
            "Input delimiter (detected)" if not result.options.delimiter else "Input delimiter",
            {"\t": "tab"}.get(
                result.table.delimiter or "", result.table.delimiter or "(a workbook)"
            ),
        ),
        ("Input line ends", result.table.newline or "(a workbook)"),
        ("Rows", summary["rows"]),
        ("Blank rows skipped", summary["blank_rows_skipped"]),
        ("Kept", summary["kept"]),
        ("Removed", summary["removed"]),
        ("Suppressed", summary["suppressed"]),
        ("To review (kept)", summary["review"]),
    ]
    rows += [(f"Verdict: {verdict}", count) for verdict, count in summary["verdicts"].items()]
    rows += [(f"Action: {action}", count) for action, count in summary["actions"].items()]
    rows += [
        (
            "Phone columns checked",
            describe_phone_columns(
                result.table.phone_columns,
                result.table.phones_by_content,
                result.table.not_checked,
            ),
        ),
        ("Numbers checked", summary["numbers"]["checked"]),
        ("Consent column", result.table.consent_column),
        ("Consent values unreadable", summary["consent"]["unreadable"]),
        *(("Unreadable consent, e.g.", example) for example in summary["consent"]["examples"]),
        *(
            [("Consent format that reads them", summary["consent"]["hint"])]
            if summary["consent"]["hint"]
            else []
        ),
        ("Id column", result.table.id_column or ""),
        ("Included columns", ", ".join(result.table.include_columns)),
        ("History", info.history_source.split(":", 1)[0]),
        *(("History source", source) for source in info.history_sources),
        ("Ledger last sync (UTC)", info.ledger_last_sync or ""),
        ("Coverage start (UTC)", coverage.start or "no history"),
        ("Coverage end (UTC): verdicts hold as of", coverage.end or "no history"),
    ]
    rows += [(f"Option: {name}", str(value)) for name, value in (info.options or {}).items()]
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment
    from openpyxl.worksheet.pagebreak import Break

    # a value column no wider than a landscape page keeps the Summary on one page across;
    # longer values wrap
    value_width = min(max((len(str(value)) for _field, value in rows), default=10) + 2, 72)
    field_width = max(len(field) for field, _value in rows) + 2
    sheet = _Sheet(workbook, "Summary", [("Field", field_width), ("Value", value_width)])
    # the statement on the first printed page, the run's details after it
    sheet.sheet.page_setup.fitToHeight = 0
    sheet.sheet.row_breaks.append(Break(id=len(statement) + 1))
    wrapped = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    for field_name, value in rows:
        if isinstance(value, str) and len(value) > value_width:
            cell = WriteOnlyCell(sheet.sheet, value=excel_escaped_text(value))
            cell.alignment = wrapped
            cell.data_type = "s"
            # a height that shows the wrapped text whole (no row drawn over the next)
            sheet.sheet.row_dimensions[sheet.rows + 1].height = _LINE_HEIGHT * _lines(
                value, value_width
            )
            label = WriteOnlyCell(sheet.sheet, value=field_name)
            label.alignment = top  # beside the first line of its value
            sheet.append([label, cell])
        else:
            sheet.append([field_name, value])
    sheet.finish()


# a wrapped line's height in points (the default font), and the characters a column of
# width W holds on one line (a little less than W: proportional glyphs)
_LINE_HEIGHT = 15.0


def _lines(text: str, width: int) -> int:
    """How many lines ``text`` takes wrapped in a column ``width`` characters wide."""
    per_line = max(width - 4, 8)
    return sum(max(1, -(-len(part) // per_line)) for part in text.split("\n"))


def _evidence(
    workbook: Any, decisions: pl.DataFrame, include: Sequence[str] = ()
) -> list[_BulkRows]:
    # the contact columns asked for (--include-columns) follow the contact id
    columns = _evidence_columns(include)
    frame = decisions.with_columns(
        event_at=pl.col("event_date").str.strptime(
            pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.fZ", strict=False
        )
    ).select("action", *(name for name, _title, _width in columns))
    # each sheet is one action, so the action is not repeated on every row
    bulk: list[_BulkRows] = []
    for action, title in ACTION_SHEETS:
        chosen = frame.filter(pl.col("action") == action).drop("action")
        headers = _fitted(chosen, columns)
        # Excel's limit: a sheet holds EXCEL_MAX_ROWS rows, header included; more rows
        # continue on "Remove (2)", ...
        per_sheet = EXCEL_MAX_ROWS - 1
        for part, offset in enumerate(range(0, max(chosen.height, 1), per_sheet), start=1):
            rows = chosen.slice(offset, per_sheet)
            sheet = _Sheet(workbook, title if part == 1 else f"{title} ({part})", headers)
            sheet.rows += rows.height
            sheet.finish()
            widths = {
                name: width
                for (name, _t, _w), (_title, width) in zip(columns, headers, strict=True)
            }
            reason_width = widths["reason"]
            bulk.append(_BulkRows(sheet.sheet, rows, wrapped=("reason",), wrap_width=reason_width))
    return bulk


@dataclass(frozen=True)
class _BulkRows:
    """Data rows of an action sheet, written as sheet XML straight from polars after
    openpyxl has written the sheet's header and settings (see `_with_rows`)."""

    sheet: Any
    rows: pl.DataFrame
    # text columns whose long values wrap (the reason), rather than run under the next,
    # and their column's width (a row is as high as its longest wrapped text needs)
    wrapped: tuple[str, ...] = ()
    wrap_width: int = 70


@dataclass(frozen=True)
class _Styles:
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
    styles: _Styles,
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
            + (lines * _LINE_HEIGHT).cast(pl.Int64).cast(pl.String)
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


class _RowBuilder:
    """Builds the XML of every bulk sheet's rows, in order, on a thread of its own a few
    pieces ahead of the writer: polars builds while zlib compresses (both outside the
    GIL), and the first pieces are ready before openpyxl has saved the rest."""

    AHEAD = 4

    def __init__(self, bulk: Sequence[_BulkRows], styles: _Styles, pool: ThreadPoolExecutor):
        self._pieces: collections.deque[tuple[_BulkRows, int]] = collections.deque(
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

    def add(self, item: _BulkRows) -> None:
        """Build ``item``'s rows too, after those asked for so far."""
        self._pieces.extend((item, offset) for offset in range(0, item.rows.height, _XML_ROWS))
        self._fill()

    def rows_of(self, sheet: Any) -> Iterator[bytes]:
        """The XML pieces of ``sheet``'s rows (the sheets are asked for in order)."""
        while self._built and self._built[0][0] == id(sheet):
            _sheet, job = self._built.popleft()
            self._fill()
            yield job.result()


def _with_rows(
    skeleton: bytes, target: Path, bulk: Sequence[_BulkRows], workbook: Any, rows: _RowBuilder
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


def _xml_bytes(item: _BulkRows, offset: int, styles: _Styles) -> bytes:
    """Rows ``offset`` to ``offset + _XML_ROWS`` as sheet XML (one ``<row>`` a line)."""
    xml = _row_xml(
        item.rows.slice(offset, _XML_ROWS), offset + 2, styles, item.wrapped, item.wrap_width
    )
    buffer = io.BytesIO()
    xml.to_frame().write_csv(buffer, include_header=False, quote_style="never")
    return buffer.getvalue()


def _evidence_columns(include: Sequence[str]) -> list[tuple[str, str, int]]:
    """EVIDENCE_COLUMNS with the included contact columns (``include_0``…, titled by
    their own names) after the contact id."""
    echoed = [(f"include_{index}", name, 16) for index, name in enumerate(include)]
    after_id = [name for name, _title, _width in EVIDENCE_COLUMNS].index("id") + 1
    return [*EVIDENCE_COLUMNS[:after_id], *echoed, *EVIDENCE_COLUMNS[after_id:]]


def _fitted(frame: pl.DataFrame, columns: Sequence[tuple[str, str, int]]) -> list[tuple[str, int]]:
    """Evidence column widths from their content: ids are never cut, other text is
    capped (the reason at 70), dates fit their date."""
    lengths = (
        frame.select(
            pl.col(name).cast(pl.String).str.len_chars().max().alias(name) for name in frame.columns
        ).row(0)
        if frame.height
        else [None] * frame.width
    )
    fitted = []
    for (name, title, width), longest in zip(columns, lengths, strict=True):
        if name == "event_at":
            fitted.append((title, 20))
            continue
        cap = 100 if name in ("id", "report_id", "phone_column") else 70
        fitted.append((title, max(len(title) + 2, min((longest or 0) + 2, cap), min(width, 12))))
    return fitted


def coverage_rows(coverage: Coverage, reports: pl.DataFrame) -> list[list[object]]:
    """One row per operator named by any report metadata, fetched or not: operator,
    span, reports, every gap as dates (days never fetched, and reports listed but never
    fetched completely), and what the span rests on."""
    unfetched: dict[str, list[tuple[str, str]]] = {}
    counts: dict[str, int] = {}
    for network, status, date_from, date_to in reports.select(
        pl.col("network_name").fill_null("(operator not named)"),
        "status",
        "date_from",
        "date_to",
    ).iter_rows():
        counts[network] = counts.get(network, 0) + 1
        if status in NOT_COVERAGE and date_from is not None:
            end = (date_to - dt.timedelta(days=1)) if date_to is not None else date_from
            span = f"{date_from:%Y-%m-%d} to {end:%Y-%m-%d}"
            unfetched.setdefault(network, []).append(
                (span, f"{span} (report {status}, not covered)")
            )
    rows: list[list[object]] = []
    for operator in coverage.operators:
        gaps = [
            f"{start:%Y-%m-%d} to {(end - dt.timedelta(microseconds=1)):%Y-%m-%d}"
            for start, end in operator.gaps
        ]
        # a report never fetched inside a gap is that gap; one elsewhere is named too
        gaps += [text for span, text in unfetched.pop(operator.network, []) if span not in gaps]
        rows.append(
            [
                operator.network,
                operator.start,
                operator.end,
                counts.get(operator.network, operator.reports),
                "; ".join(gaps) or "none",
                "assumed from the earliest event (no report metadata)"
                if operator.assumed
                else "report metadata",
            ]
        )
    for network, spans in sorted(unfetched.items()):  # operators with nothing covered
        listed = "; ".join(text for _span, text in spans)
        rows.append([network, None, None, counts.get(network, 0), listed, "none"])
    return rows


def _coverage(workbook: Any, coverage: Coverage, reports: pl.DataFrame) -> None:
    sheet = _Sheet(
        workbook,
        "Coverage",
        [
            ("Operator", 22),
            ("From (UTC)", 20),
            ("To (UTC)", 20),
            ("Reports", 9),
            ("Gaps", 60),
            ("Coverage", 30),
        ],
    )
    for row in coverage_rows(coverage, reports):
        sheet.append(row)
    sheet.finish()


def _reports(workbook: Any, history: History) -> _BulkRows:
    columns = [
        ("report_id", "Report id", 38),
        ("network_name", "Operator", 22),
        ("network_id", "Operator id", 11),
        ("date_from", "From (UTC)", 20),
        ("date_to", "To (UTC)", 20),
        ("generated_date", "Generated (UTC)", 20),
        ("expiry_date", "Expires (UTC)", 20),
        ("status", "Status", 11),
        ("records", "Records", 9),
        ("source", "Source", 40),
    ]
    sheet = _Sheet(workbook, "Reports", [(title, width) for _name, title, width in columns])
    rows = history.reports.sort("date_from", nulls_last=True).select([c[0] for c in columns])
    sheet.rows += rows.height
    sheet.finish()
    return _BulkRows(sheet.sheet, rows)


# Deactivations whose copies are looked for in one pass of `weekly_counts`.
TWIN_PASS_EVENTS = 4_000_000


def weekly_counts(history: History) -> pl.DataFrame:
    """Deactivations per week (Monday, UTC) and operator (``op:NAME``), each event
    counted once however many reports or files hold it; weeks without one are absent.

    The slow half of `weekly_deactivations` (millions of events are deduplicated):
    `clean_files` starts it while the contacts are being decided."""
    days = pl.col("occurred_at").dt.epoch("d")
    # the Monday of each event's week (UTC), as days since 1970-01-01, a Thursday
    week = [(days - (days + 3) % 7).alias("monday"), "network_name"]
    event = ["number", "occurred_at", "deactivation", "new_number"]
    events = (
        history.lazy_events()
        .filter(pl.col("type").is_in([DEACTIVATION, ACTIVATION]))
        .select(
            "number",
            "occurred_at",
            "new_number",
            "network_name",
            deactivation=pl.col("type") == DEACTIVATION,
        )
    )
    # Every event is counted in one streaming pass; then the copies of an event held by
    # several reports or files are taken off. Copies share a hash of the whole event:
    # only events whose hash is seen twice are compared exactly. The hashes are counted
    # a slice of the numbers at a time (about TWIN_PASS_EVENTS events a pass), so that
    # memory does not grow with the history (10M-contact benchmark: 2.4 GiB in one pass).
    totals = events.group_by(week).agg(count=pl.len()).collect(engine="streaming")
    key = pl.struct(event).hash(seed=0).alias("key")
    passes = max(1, -(-int(totals.get_column("count").sum()) // TWIN_PASS_EVENTS))
    twins = pl.concat(
        [
            # copies share their number: a pass takes a slice of the numbers
            events.filter(pl.col("number") % passes == part)
            .select(key)
            .group_by("key")
            .agg(copies=pl.len())
            .filter(pl.col("copies") > 1)
            .select("key")
            .collect(engine="streaming")
            for part in range(passes)
        ]
    )
    copies = (
        events.with_columns(key)
        .join(twins.lazy(), on="key", how="semi")
        .filter(pl.int_range(pl.len()).over(event) > 0)  # every copy after the first
        .group_by(week)
        .agg(copies=pl.len())
        .collect()
    )
    return (
        totals.join(copies, on=["monday", "network_name"], how="left", nulls_equal=True)
        .select(
            week=pl.col("monday").cast(pl.Int32).cast(pl.Date),
            # prefixed, so that no operator name (say "week") meets the index column
            network=pl.lit("op:") + pl.col("network_name").fill_null("(operator not named)"),
            count=(pl.col("count") - pl.col("copies").fill_null(0)).cast(pl.UInt32),
        )
        .filter(pl.col("count") > 0)
    )


def weekly_deactivations(
    history: History, coverage: Coverage, counts: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Deactivations per week (Monday, UTC) and operator: one row per week from the
    first covered week to the last (weeks without one are zeros), each event counted
    once however many reports or files hold it. ``counts``: `weekly_counts` of
    ``history``, when it is known already."""
    events = weekly_counts(history) if counts is None else counts
    starts = [moment for moment in (coverage.start,) if moment is not None]
    ends = [moment for moment in (coverage.end,) if moment is not None]
    if events.height:
        starts.append(events.get_column("week").min())  # type: ignore[arg-type]
        ends.append(events.get_column("week").max())  # type: ignore[arg-type]
    if not starts:
        return pl.DataFrame({"week": pl.Series([], dtype=pl.Date)})
    first = min(_as_date(moment) for moment in starts)
    last = max(_as_date(moment) for moment in ends)
    weeks = pl.DataFrame(
        {
            "week": pl.date_range(
                first - dt.timedelta(days=first.weekday()),
                last - dt.timedelta(days=last.weekday()),
                "1w",
                eager=True,
            )
        }
    )
    if not events.height:
        return weeks
    table = events.pivot(on="network", index="week", values="count")
    networks = sorted(name for name in table.columns if name != "week")
    return (
        weeks.join(table, on="week", how="left")
        .with_columns(pl.col(networks).fill_null(0).cast(pl.Int64))
        .select("week", *networks)
        .sort("week")
    )


def _as_date(moment: object) -> dt.date:
    if isinstance(moment, dt.datetime):
        return moment.date()
    if isinstance(moment, dt.date):
        return moment
    raise TypeError(f"not a date: {moment!r}")


def _deactivations(
    workbook: Any, history: History, coverage: Coverage, counts: pl.DataFrame | None
) -> None:
    from openpyxl.chart import BarChart, Reference

    table = weekly_deactivations(history, coverage, counts)
    networks = [name for name in table.columns if name != "week"]
    sheet = _Sheet(
        workbook,
        "Deactivations",
        [("Week starting (UTC)", 20)] + [(name.removeprefix("op:"), 18) for name in networks],
    )
    from openpyxl.cell import WriteOnlyCell

    for row in table.iter_rows():
        week = WriteOnlyCell(sheet.sheet, value=row[0])
        week.number_format = "yyyy-mm-dd"  # a date, without a time
        sheet.append([week, *row[1:]])
    sheet.finish()
    if table.height and networks:
        chart = BarChart()
        chart.type = "col"
        chart.grouping = "stacked"
        chart.overlap = 100
        chart.title = "Deactivations per week by operator"
        chart.y_axis.title = "Deactivations"
        chart.y_axis.number_format = "0"  # whole numbers
        chart.y_axis.majorUnit = max(1, _step(table, networks))
        chart.y_axis.scaling.min = 0
        chart.x_axis.title = "Week starting"
        chart.x_axis.number_format = "yyyy-mm-dd"
        chart.add_data(
            Reference(
                sheet.sheet,
                min_col=2,
                max_col=1 + len(networks),
                min_row=1,
                max_row=1 + table.height,
            ),
            titles_from_data=True,
        )
        chart.set_categories(Reference(sheet.sheet, min_col=1, min_row=2, max_row=1 + table.height))
        chart.width, chart.height = 24, 12
        sheet.sheet.add_chart(chart, f"{_column_letter(len(networks) + 3)}2")


def _step(table: pl.DataFrame, networks: list[str]) -> int:
    """A whole-number axis step giving about five gridlines."""
    highest = int(table.select(pl.sum_horizontal(networks).max()).item() or 1)
    return max(1, -(-highest // 5))


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return str(get_column_letter(index))


def write_audit_workbook(
    result: CleanResult,
    history: History,
    info: RunInfo,
    target: Path,
    counts: Callable[[], pl.DataFrame] | None = None,
) -> None:
    """Write the audit workbook of one CleanResult to ``target``; ``counts`` gives the
    history's `weekly_counts` when they were started earlier."""
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    _summary(workbook, result, info, file_sha256(result.table.path))
    styles = _styles(workbook)
    bulk = _evidence(workbook, result.action_rows, result.table.include_columns)
    with ThreadPoolExecutor(max_workers=1) as pool:
        rows = _RowBuilder(bulk, styles, pool)
        _coverage(workbook, result.coverage, history.reports)
        reports = _reports(workbook, history)
        rows.add(reports)
        _deactivations(workbook, history, result.coverage, counts() if counts else None)
        skeleton = io.BytesIO()
        workbook.save(skeleton)
        _with_rows(skeleton.getvalue(), target, [*bulk, reports], workbook, rows)


def _styles(workbook: Any) -> _Styles:
    """The workbook's style indexes for a date and time (as openpyxl formats a datetime)
    and for text that wraps; asking for them adds them to the workbook's styles."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment

    sheet = workbook.worksheets[0]
    date = WriteOnlyCell(sheet, value=datetime(2000, 1, 1))
    wrapped = WriteOnlyCell(sheet, value="")
    wrapped.alignment = Alignment(wrap_text=True, vertical="top")
    return _Styles(date=int(date.style_id), wrapped_text=int(wrapped.style_id))
