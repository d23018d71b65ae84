"""The audit workbook (``NAME.report.xlsx``): what a compliance officer opens months later.

Sheets: Summary (counts, inputs with SHA-256, options, coverage, versions, run time),
one sheet per action other than keep with the evidence, Coverage (per operator),
Reports (metadata of the reports used), and Deactivations (per week and operator, with a
native chart). Every cell that came from data is a value, never a formula: text that
starts with ``=`` is written as text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from reconcile._cells import excel_escaped_text
from reconcile._sheet_xml import (
    LINE_HEIGHT,
    BulkRows,
    RowBuilder,
    Sheet,
    sheet_styles,
    with_rows,
)
from reconcile.columns import describe_phone_columns
from reconcile.history import Coverage, History
from reconcile.lifecycle import NOT_COVERAGE, ReportStatus
from reconcile.statement import RunInfo, audit_statement
from reconcile.weekly import weekly_deactivations

if TYPE_CHECKING:
    from reconcile.results import CleanResult

__all__ = [
    "EXCEL_MAX_ROWS",
    "coverage_rows",
    "file_sha256",
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


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


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
    sheet = Sheet(workbook, "Summary", [("Field", field_width), ("Value", value_width)])
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
            sheet.sheet.row_dimensions[sheet.rows + 1].height = LINE_HEIGHT * _lines(
                value, value_width
            )
            label = WriteOnlyCell(sheet.sheet, value=field_name)
            label.alignment = top  # beside the first line of its value
            sheet.append([label, cell])
        else:
            sheet.append([field_name, value])
    sheet.finish()


def _lines(text: str, width: int) -> int:
    """How many lines ``text`` takes wrapped in a column ``width`` characters wide."""
    per_line = max(width - 4, 8)
    return sum(max(1, -(-len(part) // per_line)) for part in text.split("\n"))


def _evidence(
    workbook: Any, decisions: pl.DataFrame, include: Sequence[str] = ()
) -> list[BulkRows]:
    # the contact columns asked for (--include-columns) follow the contact id
    columns = _evidence_columns(include)
    day_only = pl.col("event_date").str.ends_with(" (day only)").fill_null(False)
    frame = decisions.with_columns(
        # the Event column says what the date cell (the day, at 00:00) cannot
        event_type=pl.when(day_only)
        .then(pl.col("event_type") + pl.lit(" (day only)"))
        .otherwise(pl.col("event_type")),
        # a day-only event ("2024-03-10 (day only)") is its day; the reason says so
        event_at=pl.coalesce(
            pl.col("event_date").str.strptime(
                pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.fZ", strict=False
            ),
            pl.col("event_date")
            .str.extract(r"^(\d{4}-\d{2}-\d{2}) \(day only\)$")
            .str.strptime(pl.Datetime("us"), "%Y-%m-%d", strict=False),
        ),
    ).select("action", *(name for name, _title, _width in columns))
    # each sheet is one action, so the action is not repeated on every row
    bulk: list[BulkRows] = []
    for action, title in ACTION_SHEETS:
        chosen = frame.filter(pl.col("action") == action).drop("action")
        headers = _fitted(chosen, columns)
        # Excel's limit: a sheet holds EXCEL_MAX_ROWS rows, header included; more rows
        # continue on "Remove (2)", ...
        per_sheet = EXCEL_MAX_ROWS - 1
        for part, offset in enumerate(range(0, max(chosen.height, 1), per_sheet), start=1):
            rows = chosen.slice(offset, per_sheet)
            sheet = Sheet(workbook, title if part == 1 else f"{title} ({part})", headers)
            sheet.rows += rows.height
            sheet.finish()
            widths = {
                name: width
                for (name, _t, _w), (_title, width) in zip(columns, headers, strict=True)
            }
            reason_width = widths["reason"]
            bulk.append(BulkRows(sheet.sheet, rows, wrapped=("reason",), wrap_width=reason_width))
    return bulk


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
    shown = {str(row[0]) for row in rows}
    # sources of events only (a sender's delivery failures): named, never coverage
    evidence = (
        reports.filter(pl.col("status") == ReportStatus.EVIDENCE)
        .group_by(pl.col("network_name").fill_null("(operator not named)"))
        .agg(pl.len(), pl.col("date_from").min(), pl.col("date_to").max())
        .sort("network_name")
    )
    for network, count, first, last in evidence.iter_rows():
        if network not in shown:
            rows.append(
                [
                    network,
                    first,
                    last,
                    count,
                    "none",
                    "events only (delivery failures): they count, they cover nothing",
                ]
            )
    return rows


def _coverage(workbook: Any, coverage: Coverage, reports: pl.DataFrame) -> None:
    sheet = Sheet(
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


def _reports(workbook: Any, history: History) -> BulkRows:
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
    sheet = Sheet(workbook, "Reports", [(title, width) for _name, title, width in columns])
    rows = history.reports.sort("date_from", nulls_last=True).select([c[0] for c in columns])
    sheet.rows += rows.height
    sheet.finish()
    return BulkRows(sheet.sheet, rows)


def _deactivations(
    workbook: Any, history: History, coverage: Coverage, counts: pl.DataFrame | None
) -> None:
    from openpyxl.chart import BarChart, Reference

    table = weekly_deactivations(history, coverage, counts)
    networks = [name for name in table.columns if name != "week"]
    sheet = Sheet(
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
    styles = sheet_styles(workbook)
    bulk = _evidence(workbook, result.action_rows, result.table.include_columns)
    with ThreadPoolExecutor(max_workers=1) as pool:
        rows = RowBuilder(bulk, styles, pool)
        _coverage(workbook, result.coverage, history.reports)
        reports = _reports(workbook, history)
        rows.add(reports)
        _deactivations(workbook, history, result.coverage, counts() if counts else None)
        skeleton = io.BytesIO()
        workbook.save(skeleton)
        with_rows(skeleton.getvalue(), target, [*bulk, reports], workbook, rows)
