"""Infobip API pages to frames: one parser for live answers and saved change files.

A records page (``{"results": [{date, destination, type, newDestination?}]}``) becomes
events; a metadata page (``{"results": [{reportId, networkName, dateFrom, ...}]}``)
becomes report rows. Every field is checked; the first bad one is reported with its
place (``results[3]``, ``data row 7``) as ``error`` (ChangeFileError for files,
MalformedResponseError for the API).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

from reconcile.consent import parse_utc_instants
from reconcile.errors import ChangeFileError, ReconcileError
from reconcile.history import EVENT_TYPES, REPORT_SCHEMA
from reconcile.lifecycle import ReportStatus

__all__ = [
    "EARLIEST",
    "ErrorType",
    "date_bounds",
    "events_from_text",
    "parse_metadata_page",
    "parse_records_page",
]

ErrorType = type[ReconcileError]
# No operator report predates this; a date before it is a typo or a hostile answer.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def date_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The dates a report may hold: from 2000-01-01 to the end of the day after ``now``'s
    (UTC)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    end = datetime.combine(today + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    return EARLIEST, end - timedelta(microseconds=1)


_DIGITS = r"^[0-9]{7,15}$"
# a report id is used in URLs, file names and log lines: a plain token only
REPORT_ID = r"^[A-Za-z0-9._-]{1,200}$"


def _text_field(
    name: str, records: Sequence[object], key: str, required: bool, error: ErrorType
) -> list[str | None]:
    """Pull one string field out of every record, refusing wrong types."""
    values: list[str | None] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise error(f"{name}: results[{index}] is not an object.")
        value = record.get(key)
        if value is None:
            if required:
                raise error(f"{name}: results[{index}] has no {key!r}.")
            values.append(None)
        elif isinstance(value, str):
            values.append(value)
        else:
            raise error(
                f"{name}: results[{index}].{key} is {type(value).__name__} {value!r}, "
                "expected text."
            )
    return values


def parse_records_page(
    name: str,
    records: Sequence[object],
    report_id: str,
    error: ErrorType = ChangeFileError,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Validate API record objects into events (without operator names)."""
    raw = pl.DataFrame(
        {
            "destination": _text_field(name, records, "destination", True, error),
            "date": _text_field(name, records, "date", True, error),
            "type": _text_field(name, records, "type", True, error),
            "newDestination": _text_field(name, records, "newDestination", False, error),
        },
        schema=dict.fromkeys(("destination", "date", "type", "newDestination"), pl.String),
    )
    return events_from_text(name, raw, report_id, "results[{}]", 0, error, now)


def events_from_text(
    name: str,
    raw: pl.DataFrame,
    report_id: str,
    where: str,
    first_index: int,
    error: ErrorType = ChangeFileError,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Validate text columns destination, date, type, newDestination into events.

    ``where`` formats a record's index for messages (``results[{}]``, ``line {}``).
    """
    earliest, latest = date_bounds(now)
    frame = raw.with_columns(
        pl.col("destination").str.strip_chars(),
        pl.col("type").str.strip_chars().str.to_uppercase(),
        pl.col("newDestination").str.strip_chars(),
        occurred_at=parse_utc_instants(raw.get_column("date")),
    ).with_row_index("index")
    checks = (
        (
            ~pl.col("destination").str.contains(_DIGITS).fill_null(False),
            "destination {destination!r} is not country code and number in digits only",
        ),
        (pl.col("occurred_at").is_null(), "date {date!r} is not an ISO 8601 date and time"),
        (
            (pl.col("occurred_at") < earliest) | (pl.col("occurred_at") > latest),
            "date {date!r} is outside "
            + f"{earliest:%Y-%m-%d} .. {latest:%Y-%m-%d} (the run's day and one more)",
        ),
        (
            ~pl.col("type").is_in(list(EVENT_TYPES)).fill_null(False),
            "type {type!r} is not one of " + ", ".join(EVENT_TYPES),
        ),
        (
            pl.col("newDestination").is_not_null()
            & (pl.col("newDestination") != "")
            & ~pl.col("newDestination").str.contains(_DIGITS).fill_null(False),
            "newDestination {newDestination!r} is not digits only",
        ),
    )
    for condition, message in checks:
        bad = frame.filter(condition)
        if bad.height:
            row = bad.row(0, named=True)
            position = where.format(int(row["index"]) + first_index)
            raise error(f"{name}: {position}: " + message.format(**row) + ".")
    return frame.select(
        number=pl.col("destination").cast(pl.UInt64),
        type=pl.col("type"),
        occurred_at=pl.col("occurred_at"),
        new_number=pl.when(pl.col("newDestination") != "")
        .then(pl.col("newDestination"))
        .cast(pl.UInt64),
        report_id=pl.lit(report_id, pl.String),
        network_id=pl.lit(None, pl.Int64),
        network_name=pl.lit(None, pl.String),
        day_only=pl.lit(None, pl.Boolean),
        detail=pl.lit(None, pl.String),
    )


def parse_metadata_page(
    name: str,
    records: Sequence[object],
    error: ErrorType = ChangeFileError,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Validate API report metadata objects into a report frame (status ``listed``)."""
    network_ids: list[int | None] = []
    for index, record in enumerate(records):
        value = record.get("networkId") if isinstance(record, dict) else None
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise error(f"{name}: results[{index}].networkId {value!r:.40} is not a number.")
        if value is not None and not -(2**63) <= value < 2**63:
            raise error(
                f"{name}: results[{index}].networkId {str(value)[:40]}… does not fit a 64-bit "
                "number; refused."
            )
        network_ids.append(value)
    frame = pl.DataFrame(
        {
            "report_id": _text_field(name, records, "reportId", True, error),
            "network_id": network_ids,
            "network_name": _text_field(name, records, "networkName", False, error),
            **{
                column: parse_utc_instants(
                    pl.Series(
                        _text_field(name, records, key, key in ("dateFrom", "dateTo"), error),
                        dtype=pl.String,
                    )
                )
                for column, key in (
                    ("generated_date", "generatedDate"),
                    ("date_from", "dateFrom"),
                    ("date_to", "dateTo"),
                    ("expiry_date", "expiryDate"),
                )
            },
        },
        schema_overrides={"network_id": pl.Int64},
    ).with_row_index("index")
    earliest, latest = date_bounds(now)
    bad = frame.filter(
        pl.col("date_from").is_null()
        | pl.col("date_to").is_null()
        | (pl.col("date_from") > pl.col("date_to"))
        | (pl.col("date_from") < earliest)
        | (pl.col("date_to") > latest)
        | (pl.col("generated_date") < earliest)
        | (pl.col("generated_date") > latest)
        | (pl.col("expiry_date") < earliest)
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise error(
            f"{name}: results[{row['index']}] (report {row['report_id']}): dateFrom and dateTo "
            "must be dates, dateFrom not after dateTo, and every date between "
            f"{earliest:%Y-%m-%d} and {latest:%Y-%m-%d} (the run's day and one more)."
        )
    frame = frame.cast({"report_id": pl.String, "network_name": pl.String})
    bad_id = frame.filter(
        ~pl.col("report_id").str.contains(REPORT_ID)
        | pl.col("report_id").str.contains("..", literal=True)
    )
    if bad_id.height:
        row = bad_id.row(0, named=True)
        shown = pl.select(_escaped(pl.lit(row["report_id"]))).item()
        raise error(
            f"{name}: results[{row['index']}]: report id {shown!r} is not a plain token "
            "(letters, digits, '.', '_' and '-', no '..'); refused."
        )
    return (
        frame.drop("index")
        .with_columns(
            _escaped(pl.col("network_name")),
            status=pl.lit(ReportStatus.LISTED.value),
            records=pl.lit(0, pl.Int64),
            source=pl.lit(name),
        )
        .select(list(REPORT_SCHEMA))
    )


def _escaped(text: pl.Expr) -> pl.Expr:
    """Control characters (a newline that forges a log line, ESC, BEL) as U+FFFD."""
    return text.str.replace_all(r"[\x00-\x1f\x7f]", "\ufffd")
