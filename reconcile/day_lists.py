"""A provider's day list as a report (delivery failures are `delivery_reports`').

A **day list** names the US numbers the carriers deactivated on one day (Twilio,
Vonage, or any file given to `ledger import --deactivated-on`). Each day of each source
is one report: span that day in UTC, every number a DEACTIVATION known by its day only
(``day_only``), the source as its operator name.
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path

import polars as pl

from reconcile._text import printable
from reconcile._xlsx_checks import check_inflation
from reconcile.api_pages import date_bounds
from reconcile.errors import ChangeFileError
from reconcile.history import DEACTIVATION, conform_events
from reconcile.lifecycle import ReportEntry, ReportStatus
from reconcile.phones import normalize_phones

__all__ = [
    "MAX_DAY_LIST_BYTES",
    "SOURCE_NAMES",
    "DayList",
    "day_list_entry",
    "day_list_from_texts",
    "day_list_report_id",
    "day_list_texts",
    "day_of",
    "number_cell",
    "read_day_list_file",
    "read_errors",
    "source_display_name",
    "text_of",
]

# the sources `fetch` knows, by the name a user writes, as reports show them
SOURCE_NAMES = {"infobip": "Infobip", "twilio": "Twilio", "vonage": "Vonage"}
# Vonage says its lists also hold numbers ported to another carrier
_SOURCE_DETAIL = {"vonage": "may be a port"}
# a day list read whole (a US day holds some tens of thousands of numbers, about a
# megabyte): 64 MiB is far above any real one, and its import peaks near 1 GiB
MAX_DAY_LIST_BYTES = 64 << 20
# a day list zip holds one file; each is read on its own, so many files cost time
MAX_ZIP_MEMBERS = 100
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
    imported, the same day of the same source (its name in any case) is the same report.
    A name that is not plain letters and digits keeps a digest of itself, so that two
    names never share a report (``ab/cd`` and ``ab cd``)."""
    name = source_display_name(source).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    if slug != name:
        slug = f"{slug[:40] or 'source'}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return f"{slug}-{day:%Y-%m-%d}"


def day_of(text: str, what: str, now: datetime) -> date:
    """A day given as YYYY-MM-DD, from 2000-01-01 to the day before the run's (UTC: a
    day list names a day that has ended); ChangeFileError naming ``what`` otherwise."""
    shown = printable(text)[:40]
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError(text)
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ChangeFileError(f"{what} {shown!r} is not a date (use YYYY-MM-DD).") from None
    earliest, _latest = date_bounds(now)
    last = now.astimezone(UTC).date() - timedelta(days=1)
    if not earliest.date() <= day <= last:
        raise ChangeFileError(
            f"{what} {shown!r} is outside {earliest:%Y-%m-%d} .. {last:%Y-%m-%d} (a day list "
            "names a day that has ended, in UTC)."
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


def _no_redaction(text: str) -> str:
    return text


def number_cell(text: pl.Expr) -> pl.Expr:
    """A list's (or a delivery report's) number as a cell the phone rules read, null when
    it holds none: digits with or without ``+``, written with spaces, dots, dashes or
    parentheses, or a ``tel:`` URI, else the first word; an international number with
    ``+`` or its country code (a US one's 1), a US one also as its ten digits. An Excel
    float's ``.0`` is not a digit."""
    plain = text.str.strip_chars().str.replace(r"(?i)^tel:", "").str.replace(r"\.0+$", "")
    compact = plain.str.replace_all(r"[\s().\-]", "")
    first_word = plain.str.extract(r"^(\S+)").str.strip_chars("\"'")
    number = (
        pl.when(compact.str.contains(r"^\+?[0-9]{10,15}$"))
        .then(compact)
        .when(first_word.str.contains(r"^\+?[0-9]{10,15}$"))
        .then(first_word)
    )
    digits = number.str.strip_chars_start("+")
    return (
        pl.when(number.str.starts_with("+") | (digits.str.len_chars() != 10))
        .then(pl.lit("+") + digits)
        .otherwise(digits)
    )


def _numbers_of(text: str) -> pl.DataFrame:
    """One text's lines (split by polars: no Python object a line) with the number each
    holds (``phone_key``, null for a line that holds none); empty lines and a header (a
    first line that holds no number) are left out."""
    lines = (
        pl.Series("line", [text], dtype=pl.String)
        .str.replace_all("\r\n?", "\n")
        .str.split("\n")
        .explode()
    )
    frame = pl.DataFrame({"line": lines}).with_row_index("index")
    # the first field (other columns are ignored), without quotes
    field_text = (
        pl.col("line").str.strip_chars().str.extract(r"^([^,;\t|]*)").str.strip_chars(" \"'")
    )
    cell = number_cell(field_text)
    frame = frame.with_columns(
        cell=cell, empty=pl.col("line").str.strip_chars().str.len_chars() == 0
    )
    keys = normalize_phones(frame.get_column("cell"), "US", with_e164=False)
    # the first non-empty line, when it holds no number, is the header
    return (
        pl.concat([frame, keys.select("phone_key")], how="horizontal")
        .filter(~pl.col("empty"))
        .filter((pl.int_range(pl.len()) > 0) | pl.col("phone_key").is_not_null())
    )


def day_list_from_texts(
    texts: Iterable[str],
    source: str,
    day: date,
    *,
    origin: str,
    now: datetime,
    name: str,
    redact: Callable[[str], str] = _no_redaction,
) -> DayList:
    """A day list's files (a text each) as the report of ``source`` for ``day``: one
    number a line, digits with or without ``+``; a first line that is not a number is a
    header, other columns are ignored, any other line that is not a number is counted.
    A list that holds no number, or more lines that are not numbers than numbers, is not
    a day list (ChangeFileError naming ``name``): its day must never pass for covered."""
    frames = [_numbers_of(text) for text in texts]
    frame = (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"line": pl.String, "phone_key": pl.UInt64})
    )
    bad = frame.filter(pl.col("phone_key").is_null())
    good = frame.height - bad.height
    shown = [printable(redact(line))[:60] for line in bad.get_column("line").head(_SHOWN).to_list()]
    if good == 0 or bad.height > good:
        example = f" (for example {shown[0]!r})" if shown else ""
        raise ChangeFileError(
            f"{name}: {good} line(s) hold a phone number and {bad.height} do not{example}: "
            "that is not a day list (one number a line, digits with or without +); nothing "
            "was kept for that day."
        )
    entry = day_list_entry(source, day, ReportStatus.COMPLETE, origin=origin, now=now)
    display = entry.network_name or ""
    events = conform_events(
        frame.filter(pl.col("phone_key").is_not_null())
        .select(
            number=pl.col("phone_key"),
            type=pl.lit(DEACTIVATION),
            occurred_at=pl.lit(entry.date_from, pl.Datetime("us", "UTC")),
            new_number=pl.lit(None, pl.UInt64),
            report_id=pl.lit(entry.report_id),
            network_id=pl.lit(None, pl.Int64),
            network_name=pl.lit(display),
            day_only=pl.lit(True),
            detail=pl.lit(_SOURCE_DETAIL.get(display.lower()), pl.String),
        )
        .unique("number", maintain_order=True)
    )
    return DayList(replace(entry, records=events.height), events, bad.height, shown)


def day_list_entry(
    source: str, day: date, status: ReportStatus, *, origin: str, now: datetime | None = None
) -> ReportEntry:
    """The report of ``source``'s list for ``day``: its id, its operator name, and its
    span, that day in UTC (``listed`` for a day that failed: a gap until it is read)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return ReportEntry(
        report_id=day_list_report_id(source, day),
        status=status,
        network_name=source_display_name(source),
        date_from=start,
        date_to=start + timedelta(days=1),
        source=origin,
        fetched_at=now,
    )


def text_of(data: bytes, name: str) -> str:
    """A list file's bytes as text: UTF-8 (with or without a BOM), UTF-16 with its BOM,
    else Windows-1252; bytes that are not text (NUL) are refused."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ChangeFileError(f"{name}: damaged UTF-16 text: not a day list.") from None
    if b"\x00" in data:
        raise ChangeFileError(f"{name}: binary data, not a text list of numbers.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def unzipped_texts(data: bytes, name: str) -> list[str]:
    """The text of every file in a zip (Vonage's day list), inflated a megabyte at a
    time under the bound XLSX files have (`_xlsx_checks.check_inflation`)."""
    try:
        archive = zipfile.ZipFile(BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ChangeFileError(f"{name}: not a readable zip ({error}).") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise ChangeFileError(
            f"{name}: a zip of {len(members):,} files: a day list is one file (or a few)."
        )
    texts: list[str] = []
    inflated = 0
    with archive:
        for info in members:
            chunks: list[bytes] = []
            try:
                with archive.open(info) as member:
                    while block := member.read(1 << 20):
                        inflated += len(block)
                        check_inflation(inflated, len(data), name)
                        if inflated > MAX_DAY_LIST_BYTES:
                            raise ChangeFileError(
                                f"{name}: unpacks to more than "
                                f"{MAX_DAY_LIST_BYTES >> 20} MiB: not a day list."
                            )
                        chunks.append(block)
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                NotImplementedError,
                zlib.error,
                lzma.LZMAError,
                ValueError,
            ) as error:
                raise ChangeFileError(
                    f"{name}: a damaged zip entry ({printable(str(error))[:120]})."
                ) from None
            except RuntimeError as error:  # an encrypted entry
                raise ChangeFileError(f"{name}: {error}.") from None
            member_data = b"".join(chunks)
            if member_data[:4] == b"PK\x03\x04":
                raise ChangeFileError(f"{name}: a zip inside the zip: not a day list.")
            texts.append(text_of(member_data, f"{name} ({printable(info.filename)[:60]})"))
    return texts


def day_list_texts(data: bytes, name: str) -> list[str]:
    """A day list's bytes (text, CSV, or a zip of them) as the text of each file."""
    if data[:4] == b"PK\x03\x04":
        return unzipped_texts(data, name)
    return [text_of(data, name)]


def read_day_list_file(
    path: Path, source: str, day: date, *, origin: str, now: datetime
) -> DayList:
    """A day list file (text, CSV, or a zip of them) as the report of ``source`` for
    ``day``."""
    data = _read_bounded(path, MAX_DAY_LIST_BYTES)
    texts = day_list_texts(data, str(path))
    return day_list_from_texts(texts, source, day, origin=origin, now=now, name=str(path))


@contextlib.contextmanager
def read_errors(name: str | Path) -> Iterator[None]:
    """A file that cannot be read, said in one line naming it."""
    try:
        yield
    except FileNotFoundError:
        raise ChangeFileError(f"{name}: no such file.") from None
    except IsADirectoryError:
        raise ChangeFileError(f"{name}: a folder; name the file.") from None
    except OSError as error:
        raise ChangeFileError(f"{name}: cannot read the file ({error.strerror}).") from None


def _read_bounded(path: Path, limit: int) -> bytes:
    """A file's bytes, refused past ``limit`` (one line naming the file)."""
    with read_errors(path):
        size = path.stat().st_size
        if size > limit:
            raise ChangeFileError(
                f"{path}: {size >> 20:,} MiB is more than such a file holds (at most "
                f"{limit >> 20} MiB); split it."
            )
        return path.read_bytes()
