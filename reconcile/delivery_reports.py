"""A sender's delivery failures as evidence: Infobip delivery reports read as events.

A **delivery report** (Infobip's delivery-reports API or webhook) names messages; a
result failed with error 3041 (SMS) or 15017 (MMS) is a DELIVERY_FAILED event for its
number at ``doneAt`` (else ``sentAt``). Delivery failures say nothing of the numbers
not messaged: their report is ``evidence`` (events, never coverage).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from reconcile._text import printable
from reconcile.api_pages import date_bounds
from reconcile.consent import parse_utc_instants
from reconcile.day_lists import number_cell, read_errors
from reconcile.errors import ChangeFileError
from reconcile.history import DELIVERY_FAILED, conform_events
from reconcile.lifecycle import ReportEntry, ReportStatus
from reconcile.phones import normalize_phones

__all__ = [
    "DELIVERY_FAILURE_ERRORS",
    "DELIVERY_REPORTS_OPERATOR",
    "DeliveryFailures",
    "delivery_failures",
    "is_delivery_report",
]

# Infobip's errors for a message to a number on its deactivation list: SMS, MMS
DELIVERY_FAILURE_ERRORS = {3041: "SMS", 15017: "MMS"}
DELIVERY_REPORTS_OPERATOR = "Infobip delivery reports"
# a delivery-report document read whole (an API page holds at most a few MB); JSON
# Lines are read a line at a time, each at most MAX_JSON_LINE_BYTES
MAX_DELIVERY_DOCUMENT_BYTES = 64 << 20
MAX_JSON_LINE_BYTES = 16 << 20


def is_delivery_report(path: Path) -> bool:
    """Whether ``path`` looks like Infobip delivery reports (JSON Lines, or a JSON
    document whose first result has a ``messageId``), judged from its first 64 KiB."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    if path.suffix.lower() != ".json":
        return False
    try:
        with path.open("rb") as stream:
            head = stream.read(1 << 16)
    except OSError:
        return False
    return b'"messageId"' in head and b'"destination"' not in head


@dataclass(frozen=True)
class DeliveryFailures:
    """The delivery failures of one delivery-report file, as one ``evidence`` report."""

    entry: ReportEntry
    events: pl.DataFrame
    results: int
    # results with another error (or none): counted, not evidence
    other_errors: int
    skipped: list[str]

    def warnings(self) -> list[str]:
        return list(self.skipped)


def _parsed(text: str | bytes, where: str) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        raise ChangeFileError(f"{where}: JSON nested too deeply; refused.") from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # an integer of thousands of digits (Python's own bound)
        raise ChangeFileError(f"{where}: a number too long to read; refused.") from None


def _documents(path: Path) -> Iterator[tuple[str, object]]:
    """Each JSON value of a delivery-report file, with where it is (for messages): one
    document (at most MAX_DELIVERY_DOCUMENT_BYTES), or JSON Lines read a line at a time
    (a document or a result a line)."""
    name = str(path)
    with read_errors(name), path.open("rb") as stream:
        head = stream.read(MAX_DELIVERY_DOCUMENT_BYTES + 1)
        if len(head) <= MAX_DELIVERY_DOCUMENT_BYTES:
            try:
                text = head.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ChangeFileError(
                    f"{name}: not UTF-8 text, so not a delivery report."
                ) from None
            try:
                document = _parsed(text, name)
            except json.JSONDecodeError:
                document = None  # JSON Lines, read below
            if document is not None:
                yield name, document
                return
        stream.seek(0)
        for number, line in enumerate(stream, start=1):
            if len(line) > MAX_JSON_LINE_BYTES:
                raise ChangeFileError(
                    f"{name}: line {number} is longer than {MAX_JSON_LINE_BYTES >> 20} "
                    "MiB: not a delivery report."
                )
            if not line.strip():
                continue
            where = f"{name}: line {number}"
            try:
                yield where, _parsed(line.decode("utf-8-sig"), where)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ChangeFileError(
                    f"{where} is not JSON ({getattr(error, 'msg', 'not UTF-8')}); a "
                    "delivery report is one JSON document or JSON Lines."
                ) from None


def _results(where: str, value: object) -> list[object]:
    """The results of one JSON value: a document (``{"results": [...]}``), one result,
    or a list of either."""
    if isinstance(value, dict) and isinstance(value.get("results"), list):
        return list(value["results"])
    if isinstance(value, dict) and "messageId" in value:
        return [value]
    if isinstance(value, list):
        return [result for item in value for result in _results(where, item)]
    raise ChangeFileError(
        f'{where}: not a delivery report: expected {{"results": [...]}} or one result with '
        '"messageId".'
    )


def _field(value: object, *names: str) -> object:
    for name in names:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _error_id(result: object) -> int | None:
    value = _field(result, "error", "id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def delivery_failures(path: Path, *, origin: str, now: datetime) -> DeliveryFailures:
    """Infobip delivery reports (one document or JSON Lines of documents or results) as
    DELIVERY_FAILED events: a result whose ``error.id`` is 3041 or 15017, for ``to`` at
    ``doneAt`` (else ``sentAt``). The report's id comes from its failures (the same ones
    imported again are the same report). Only the failures are held, so memory follows
    them, not the file."""
    rows: list[dict[str, str | None]] = []
    results = other = 0
    digest = hashlib.sha256()
    for where, document in _documents(path):
        for index, result in enumerate(_results(where, document)):
            results += 1
            error_id = _error_id(result)
            if error_id not in DELIVERY_FAILURE_ERRORS:
                other += 1
                continue
            to = _field(result, "to")
            error_name = _field(result, "error", "name")
            message_id = _field(result, "messageId")
            row: dict[str, str | None] = {
                "where": f"{where}: results[{index}]",
                "to": str(to) if isinstance(to, str | int) and not isinstance(to, bool) else None,
                "done": _text(_field(result, "doneAt")),
                "sent": _text(_field(result, "sentAt")),
                "error": f"error {error_id}"
                + (f" {printable(error_name)[:80]}" if isinstance(error_name, str) else ""),
                "message": printable(str(message_id))[:100]
                if isinstance(message_id, str | int) and not isinstance(message_id, bool)
                else None,
            }
            # the report is its failures: the same ones imported again are the same report
            digest.update(
                json.dumps({k: v for k, v in row.items() if k != "where"}, sort_keys=True).encode()
            )
            rows.append(row)
    frame = pl.DataFrame(
        rows,
        schema=dict.fromkeys(("where", "to", "done", "sent", "error", "message"), pl.String),
    )
    # "to" as Infobip writes it (country code and number, digits), or as a person would
    keys = normalize_phones(
        frame.select(number_cell(pl.col("to"))).to_series(), "US", with_e164=False
    )
    earliest, latest = date_bounds(now)
    # doneAt, else sentAt: a doneAt that cannot be read does not hide a good sentAt
    done = parse_utc_instants(frame.get_column("done"))
    frame = pl.concat([frame, keys], how="horizontal").with_columns(
        occurred_at=pl.coalesce(done, parse_utc_instants(frame.get_column("sent"))),
        # a time given as a date only is known by its day: compared as day lists are
        day_only=pl.when(done.is_not_null())
        .then(pl.col("done"))
        .otherwise(pl.col("sent"))
        .str.contains(r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$")
        .fill_null(False),
    )
    usable = (
        pl.col("phone_key").is_not_null()
        & pl.col("occurred_at").is_not_null()
        & (pl.col("occurred_at") >= earliest)
        & (pl.col("occurred_at") <= latest)
    )
    skipped = frame.filter(~usable)
    warnings = []
    if skipped.height:
        first = skipped.row(0, named=True)
        warnings.append(
            f'{skipped.height} delivery failure(s) have no usable number in "to" or time in '
            f'"doneAt"/"sentAt" (between {earliest:%Y-%m-%d} and {latest:%Y-%m-%d}) and were '
            f"skipped (first: {first['where']}, to {first['to']!r}, doneAt {first['done']!r}, "
            f"sentAt {first['sent']!r})"
        )
    report_id = f"delivery-{digest.hexdigest()[:16]}"
    events = conform_events(
        frame.filter(usable).select(
            number=pl.col("phone_key"),
            type=pl.lit(DELIVERY_FAILED),
            occurred_at=pl.col("occurred_at"),
            new_number=pl.lit(None, pl.UInt64),
            report_id=pl.lit(report_id),
            network_id=pl.lit(None, pl.Int64),
            network_name=pl.lit(DELIVERY_REPORTS_OPERATOR),
            day_only=pl.col("day_only"),
            detail=pl.concat_str(
                [
                    pl.col("error"),
                    pl.when(pl.col("message").is_not_null())
                    .then(pl.lit(", message id ") + pl.col("message"))
                    .otherwise(pl.lit("")),
                ]
            ),
        )
    )
    spans = events.select(first=pl.col("occurred_at").min(), last=pl.col("occurred_at").max()).row(
        0
    )
    entry = ReportEntry(
        report_id=report_id,
        status=ReportStatus.EVIDENCE,
        network_name=DELIVERY_REPORTS_OPERATOR,
        date_from=spans[0],
        date_to=spans[1],
        records=events.height,
        source=origin,
        fetched_at=now,
    )
    return DeliveryFailures(entry, events, results, other, warnings)
