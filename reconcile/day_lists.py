"""Other evidence as reports: a provider's day list, and a sender's delivery failures.

A **day list** names the US numbers the carriers deactivated on one day (Twilio,
Vonage, or any file given to `ledger import --deactivated-on`). Each day of each source
is one report: span that day in UTC, every number a DEACTIVATION known by its day only
(``day_only``), the source as its operator name. A **delivery report** (Infobip's
delivery-reports API or webhook) names messages; a result failed with error 3041 (SMS)
or 15017 (MMS) is a DELIVERY_FAILED event for its number at ``doneAt`` (else
``sentAt``). Delivery failures say nothing of the numbers not messaged: their report is
``evidence`` (events, never coverage).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path

import polars as pl

from reconcile._text import printable
from reconcile._xlsx_checks import check_inflation
from reconcile.api_pages import date_bounds
from reconcile.consent import parse_utc_instants
from reconcile.errors import ChangeFileError
from reconcile.history import DEACTIVATION, DELIVERY_FAILED, conform_events
from reconcile.lifecycle import ReportEntry, ReportStatus
from reconcile.phones import normalize_phones

__all__ = [
    "DELIVERY_FAILURE_ERRORS",
    "DELIVERY_REPORTS_OPERATOR",
    "SOURCE_NAMES",
    "DayList",
    "DeliveryFailures",
    "day_list_from_lines",
    "day_list_report_id",
    "day_of",
    "delivery_failures",
    "is_delivery_report",
    "read_day_list_file",
    "source_display_name",
    "unzipped_lines",
]

# the sources `fetch` knows, by the name a user writes, as reports show them
SOURCE_NAMES = {"infobip": "Infobip", "twilio": "Twilio", "vonage": "Vonage"}
# Vonage says its lists also hold numbers ported to another carrier
_SOURCE_DETAIL = {"vonage": "may be a port"}
# Infobip's errors for a message to a number on its deactivation list: SMS, MMS
DELIVERY_FAILURE_ERRORS = {3041: "SMS", 15017: "MMS"}
DELIVERY_REPORTS_OPERATOR = "Infobip delivery reports"
# one line of a list, or of JSON Lines: no real line comes near it
_MAX_LINE_BYTES = 16 << 20
# a day list or a delivery-report file read whole: far above any real one
MAX_EVIDENCE_FILE_BYTES = 1 << 30
_SHOWN = 3


def source_display_name(name: str) -> str:
    """A source as reports name it: ``Twilio`` for ``twilio``; any other name as given
    (control characters shown as U+FFFD)."""
    cleaned = printable(name.strip())
    if not cleaned:
        raise ChangeFileError("--source needs a name (twilio, vonage or your provider's).")
    return SOURCE_NAMES.get(cleaned.lower(), cleaned[:60])


def day_list_report_id(source: str, day: date) -> str:
    """The one report of ``source``'s list for ``day`` (``twilio-2024-03-10``): fetched or
    imported, the same day of the same source is the same report."""
    slug = re.sub(r"[^a-z0-9]+", "-", source_display_name(source).lower()).strip("-")
    return f"{slug or 'source'}-{day:%Y-%m-%d}"


def day_of(text: str, what: str, now: datetime) -> date:
    """A day given as YYYY-MM-DD, between 2000-01-01 and the run's day; ChangeFileError
    naming ``what`` otherwise."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ChangeFileError(f"{what} {text!r} is not a date (use YYYY-MM-DD).") from None
    earliest, _latest = date_bounds(now)
    if not earliest.date() <= day <= now.astimezone(UTC).date():
        raise ChangeFileError(
            f"{what} {text!r} is outside {earliest:%Y-%m-%d} .. {now:%Y-%m-%d} (a day list "
            "names a day that has ended)."
        )
    return day


@dataclass(frozen=True)
class DayList:
    """One day of one source: its report and its events."""

    entry: ReportEntry
    events: pl.DataFrame
    # lines that were not a number (a header line aside): how many, the first few
    junk_lines: int = 0
    junk_shown: list[str] = field(default_factory=list)

    def warnings(self, name: str) -> list[str]:
        if not self.junk_lines:
            return []
        shown = ", ".join(repr(line) for line in self.junk_shown)
        return [
            f"{name}: {self.junk_lines} line(s) are not a phone number and were skipped "
            f"(for example {shown})"
        ]


def day_list_from_lines(
    lines: Iterable[str], source: str, day: date, *, origin: str, now: datetime
) -> DayList:
    """A day list's lines as the report of ``source`` for ``day``: one number a line,
    digits with or without ``+`` (a first line that is not a number is a header; other
    columns are ignored; any other line that is not a number is counted)."""
    text = pl.Series("line", list(lines), dtype=pl.String)
    # the first field of a line, without quotes or spaces
    first = (
        text.str.strip_chars()
        .str.extract(r"^([^,;\t|]*)")
        .str.strip_chars()
        .str.strip_chars("\"'")
        .str.strip_chars()
    )
    frame = pl.DataFrame({"line": text, "field": first}).with_row_index("index")
    frame = frame.filter(pl.col("field").str.len_chars() > 0)
    # a list writes numbers as digits: an international one with "+" or its country code
    # (the US one's 1), a US one also as its ten digits (which the US rules read)
    looks = pl.col("field").str.contains(r"^\+?[0-9]{10,15}$")
    digits = pl.col("field").str.strip_chars_start("+")
    cell = (
        pl.when(pl.col("field").str.starts_with("+") | (digits.str.len_chars() != 10))
        .then(pl.lit("+") + digits)
        .otherwise(digits)
    )
    frame = frame.with_columns(cell=pl.when(looks).then(cell))
    keys = normalize_phones(frame.get_column("cell"), "US", with_e164=False)
    frame = pl.concat([frame, keys], how="horizontal")
    bad = frame.filter(pl.col("phone_key").is_null())
    if bad.height and bad.item(0, "index") == frame.item(0, "index"):
        bad = bad.slice(1)  # the header line
    name = source_display_name(source)
    report_id = day_list_report_id(source, day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    events = conform_events(
        frame.filter(pl.col("phone_key").is_not_null())
        .select(
            number=pl.col("phone_key"),
            type=pl.lit(DEACTIVATION),
            occurred_at=pl.lit(start, pl.Datetime("us", "UTC")),
            new_number=pl.lit(None, pl.UInt64),
            report_id=pl.lit(report_id),
            network_id=pl.lit(None, pl.Int64),
            network_name=pl.lit(name),
            day_only=pl.lit(True),
            detail=pl.lit(_SOURCE_DETAIL.get(name.lower()), pl.String),
        )
        .unique("number", maintain_order=True)
    )
    entry = ReportEntry(
        report_id=report_id,
        status=ReportStatus.COMPLETE,
        network_name=name,
        date_from=start,
        date_to=start + timedelta(days=1),
        records=events.height,
        source=origin,
        fetched_at=now,
    )
    shown = [printable(line)[:60] for line in bad.get_column("line").head(_SHOWN).to_list()]
    return DayList(entry, events, bad.height, shown)


def _lines_of(data: bytes, name: str) -> list[str]:
    """A list file's bytes as lines (UTF-8 with or without a BOM, else Windows-1252)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    lines = text.splitlines()
    if any(len(line) > _MAX_LINE_BYTES for line in lines):
        raise ChangeFileError(f"{name}: a line is longer than 16 MiB: not a day list.")
    return lines


def unzipped_lines(data: bytes, name: str) -> list[str]:
    """The lines of every file in a zip (Vonage's day list), inflated a megabyte at a
    time under the bound XLSX files have (`_xlsx_checks.check_inflation`)."""
    try:
        archive = zipfile.ZipFile(BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ChangeFileError(f"{name}: not a readable zip ({error}).") from None
    lines: list[str] = []
    inflated = 0
    with archive:
        for info in members:
            chunks: list[bytes] = []
            try:
                with archive.open(info) as member:
                    while block := member.read(1 << 20):
                        inflated += len(block)
                        check_inflation(inflated, len(data), name)
                        if inflated > MAX_EVIDENCE_FILE_BYTES:
                            raise ChangeFileError(
                                f"{name}: unpacks to more than "
                                f"{MAX_EVIDENCE_FILE_BYTES >> 20} MiB: not a day list."
                            )
                        chunks.append(block)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
                raise ChangeFileError(f"{name}: a damaged zip entry ({error}).") from None
            except RuntimeError as error:  # an encrypted entry
                raise ChangeFileError(f"{name}: {error}.") from None
            lines.extend(_lines_of(b"".join(chunks), name))
    return lines


def read_day_list_file(
    path: Path, source: str, day: date, *, origin: str, now: datetime
) -> DayList:
    """A day list file (text, CSV, or a zip of them) as the report of ``source`` for
    ``day``."""
    data = _read_bounded(path)
    lines = (
        unzipped_lines(data, str(path)) if data[:4] == b"PK\x03\x04" else _lines_of(data, str(path))
    )
    return day_list_from_lines(lines, source, day, origin=origin, now=now)


def _read_bounded(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_EVIDENCE_FILE_BYTES:
            raise ChangeFileError(
                f"{path}: {size >> 20:,} MiB is more than a day list or a delivery-report "
                f"file holds (at most {MAX_EVIDENCE_FILE_BYTES >> 20} MiB); split it."
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise ChangeFileError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ChangeFileError(f"{path}: a folder; name the file.") from None
    except OSError as error:
        raise ChangeFileError(f"{path}: cannot read the file ({error.strerror}).") from None


# -- delivery reports --------------------------------------------------------------


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


def _documents(data: bytes, name: str) -> Iterator[tuple[str, object]]:
    """Each JSON value of a file: one document, or JSON Lines (a document or a result a
    line), with where it is (for messages)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ChangeFileError(f"{name}: not UTF-8 text, so not a delivery report.") from None
    try:
        yield name, json.loads(text)
        return
    except json.JSONDecodeError:
        pass
    except RecursionError:
        raise ChangeFileError(f"{name}: JSON nested too deeply; refused.") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{name}: line {number}", json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            raise ChangeFileError(
                f"{name}: line {number} is not JSON ({getattr(error, 'msg', 'too deep')}); a "
                "delivery report is one JSON document or JSON Lines."
            ) from None


def _results(where: str, value: object) -> list[object]:
    if isinstance(value, dict) and isinstance(value.get("results"), list):
        return list(value["results"])
    if isinstance(value, dict) and "messageId" in value:
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
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
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def delivery_failures(path: Path, *, origin: str, now: datetime) -> DeliveryFailures:
    """Infobip delivery reports (one document or JSON Lines of documents or results) as
    DELIVERY_FAILED events: a result whose ``error.id`` is 3041 or 15017, for ``to`` at
    ``doneAt`` (else ``sentAt``). The report's id comes from the file's content."""
    data = _read_bounded(path)
    name = str(path)
    rows: list[dict[str, str | None]] = []
    results = other = 0
    for where, document in _documents(data, name):
        for index, result in enumerate(_results(where, document)):
            results += 1
            error_id = _error_id(result)
            if error_id not in DELIVERY_FAILURE_ERRORS:
                other += 1
                continue
            to, done, sent = (_field(result, key) for key in ("to", "doneAt", "sentAt"))
            error_name = _field(result, "error", "name")
            message_id = _field(result, "messageId")
            rows.append(
                {
                    "where": f"{where}: results[{index}]",
                    "to": str(to)
                    if isinstance(to, str | int) and not isinstance(to, bool)
                    else None,
                    "at": done
                    if isinstance(done, str)
                    else sent
                    if isinstance(sent, str)
                    else None,
                    "error": f"error {error_id}"
                    + (f" {printable(error_name)[:80]}" if isinstance(error_name, str) else ""),
                    "message": printable(str(message_id))[:100]
                    if isinstance(message_id, str | int)
                    else None,
                }
            )
    frame = pl.DataFrame(
        rows, schema=dict.fromkeys(("where", "to", "at", "error", "message"), pl.String)
    )
    digits = frame.get_column("to").str.strip_chars().str.strip_chars_start("+")
    keys = normalize_phones(
        pl.Series(
            [None if value is None else f"+{value}" for value in digits.to_list()], dtype=pl.String
        ),
        "US",
        with_e164=False,
    )
    earliest, latest = date_bounds(now)
    frame = pl.concat([frame, keys], how="horizontal").with_columns(
        occurred_at=parse_utc_instants(frame.get_column("at"))
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
            f"skipped (first: {first['where']}, to {first['to']!r}, at {first['at']!r})"
        )
    digest = hashlib.sha256(data).hexdigest()[:16]
    report_id = f"delivery-{digest}"
    events = conform_events(
        frame.filter(usable).select(
            number=pl.col("phone_key"),
            type=pl.lit(DELIVERY_FAILED),
            occurred_at=pl.col("occurred_at"),
            new_number=pl.lit(None, pl.UInt64),
            report_id=pl.lit(report_id),
            network_id=pl.lit(None, pl.Int64),
            network_name=pl.lit(DELIVERY_REPORTS_OPERATOR),
            day_only=pl.lit(False),
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
