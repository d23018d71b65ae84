"""Consent cells to consent boundaries: the UTC instant from which consent holds.

ISO 8601 dates and timestamps (``T`` or space, optional seconds and fraction, ``Z``,
``±HH:MM`` or ``±HHMM``) and US month-first ``M/D/YYYY`` with an optional ``h:mm[:ss]``
and ``AM``/``PM`` (Salesforce, HubSpot) are parsed with polars expressions. A date
without a time is the start of that day; values without an offset are in the consent
time zone. Impossible dates, times and offsets are unparseable, never guessed.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime

import polars as pl

from reconcile._text import first_line
from reconcile.errors import OptionError

__all__ = [
    "FUTURE",
    "MISSING",
    "PARSED",
    "STATUS_TYPE",
    "UNPARSEABLE",
    "ConsentTally",
    "check_consent_format",
    "check_since",
    "parse_consent",
    "parse_utc_instants",
    "reject_future",
    "validate_timezone",
]

PARSED = "parsed"
MISSING = "missing"
UNPARSEABLE = "unparseable"
FUTURE = "future"
# an enum: one byte per row
STATUS_TYPE = pl.Enum((PARSED, MISSING, UNPARSEABLE, FUTURE))

_ISO = (
    r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:[T ]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?)?"
    r"\s*(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
_US = (
    r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})"
    r"(?:,?\s+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?\s*(AM|PM|A\.M\.|P\.M\.)?)?$"
)
_UTC = pl.Datetime("us", "UTC")


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone, else raise OptionError."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise OptionError.of(
            "consent_timezone",
            name,
            "is not a time zone name (use an IANA name such as UTC or America/New_York).",
        ) from None
    return name


def _pad(expr: pl.Expr, width: int) -> pl.Expr:
    return expr.str.zfill(width)


def _assemble(
    year: pl.Expr, month: pl.Expr, day: pl.Expr, hour: pl.Expr, minute: pl.Expr, second: pl.Expr
) -> pl.Expr:
    """Canonical ``YYYY-MM-DD HH:MM:SS`` text to strptime; impossible values give null."""
    return pl.concat_str(
        [
            year,
            pl.lit("-"),
            _pad(month, 2),
            pl.lit("-"),
            _pad(day, 2),
            pl.lit(" "),
            _pad(hour.fill_null("0"), 2),
            pl.lit(":"),
            _pad(minute.fill_null("0"), 2),
            pl.lit(":"),
            _pad(second.fill_null("0"), 2),
        ]
    ).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)


def _localize(naive: pl.Expr, timezone: str, date_only: pl.Expr | None = None) -> pl.Expr:
    # An ambiguous wall time (the repeated DST hour) takes its earlier instant: an earlier
    # boundary lets more events count as after consent, the safe side. A wall time that
    # never existed (the skipped hour) is unparseable rather than guessed.
    localized = naive.dt.replace_time_zone(
        timezone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")
    if date_only is None:
        return localized
    # A date means the first instant of that local day. Where the clocks skip midnight
    # (America/Santiago 2024-09-08, America/Havana 2024-03-10) that is the moment they
    # jump: the previous midnight and 24 hours.
    previous_midnight = (
        (naive - pl.duration(days=1))
        .dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    return (
        pl.when(localized.is_null() & date_only)
        .then(previous_midnight + pl.duration(days=1))
        .otherwise(localized)
    )


def _iso_boundary(text: pl.Expr, timezone: str) -> pl.Expr:
    parts = text.str.extract_groups(_ISO)
    year, month, day, hour, minute, second, fraction, offset = (
        parts.struct.field(str(index)) for index in range(1, 9)
    )
    naive = _assemble(year, month, day, hour, minute, second)
    # Fractions beyond microseconds are cut, which moves the boundary earlier (safe side).
    micros = fraction.str.slice(0, 6).str.pad_end(6, "0").cast(pl.Int64, strict=False).fill_null(0)
    naive = naive + pl.duration(microseconds=micros)
    digits = offset.str.replace_all(r"[^0-9]", "")
    offset_hours = digits.str.slice(0, 2).cast(pl.Int64, strict=False)
    offset_minutes = digits.str.slice(2, 2).cast(pl.Int64, strict=False).fill_null(0)
    sign = pl.when(offset.str.starts_with("-")).then(-1).otherwise(1)
    offset_total = (
        pl.when(offset == "Z").then(0).otherwise(sign * (offset_hours * 60 + offset_minutes))
    )
    offset_valid = (offset == "Z") | ((offset_hours <= 23) & (offset_minutes <= 59))
    with_offset = (naive - pl.duration(minutes=offset_total)).dt.replace_time_zone("UTC")
    return (
        pl.when(offset.is_null())
        .then(_localize(naive, timezone, hour.is_null()))
        .when(offset_valid)
        .then(with_offset)
    )


def _us_boundary(text: pl.Expr, timezone: str) -> pl.Expr:
    parts = text.str.extract_groups(_US)
    month, day, year, hour, minute, second, meridiem = (
        parts.struct.field(str(index)) for index in range(1, 8)
    )
    hour_number = hour.cast(pl.Int64, strict=False)
    is_pm = meridiem.str.starts_with("P")
    hour_24 = (
        pl.when(meridiem.is_null())
        .then(hour_number)
        .when((hour_number < 1) | (hour_number > 12))
        .then(None)  # "0:30 AM", "13:00 PM": not a 12-hour time
        .when(hour_number == 12)
        .then(pl.when(is_pm).then(12).otherwise(0))
        .otherwise(pl.when(is_pm).then(hour_number + 12).otherwise(hour_number))
    )
    hour_text = pl.when(hour.is_null()).then(None).otherwise(hour_24.cast(pl.String))
    naive = _assemble(year, month, day, hour_text, minute, second)
    invalid_meridiem = hour.is_not_null() & meridiem.is_not_null() & hour_24.is_null()
    return (
        pl.when(invalid_meridiem).then(None).otherwise(_localize(naive, timezone, hour.is_null()))
    )


def _custom_boundary(text: pl.Expr, fmt: str, timezone: str) -> pl.Expr:
    parsed = text.str.strptime(pl.Datetime("us"), fmt, strict=False)
    if "%z" in fmt or "%:z" in fmt or "%#z" in fmt:
        return parsed.dt.convert_time_zone("UTC")
    has_time = any(code in fmt for code in ("%H", "%I", "%M", "%S", "%T", "%R", "%X", "%c"))
    return _localize(parsed, timezone, None if has_time else pl.lit(True))


def parse_consent(
    raw: pl.Series, timezone: str = "UTC", consent_format: str | None = None
) -> pl.DataFrame:
    """Parse consent cells.

    Returns ``consent_boundary`` (UTC datetime, null when missing or unparseable) and
    ``consent_status`` (``parsed``, ``missing`` or ``unparseable``), one row per input.
    """
    validate_timezone(timezone)
    frame = pl.DataFrame({"raw": raw.cast(pl.String)})
    frame = frame.with_columns(text=pl.col("raw").str.strip_chars())
    if consent_format is not None:
        parsed = _general(frame, timezone, consent_format)
    else:
        parsed = _staged(frame, timezone)
    empty = pl.col("text").is_null() | (pl.col("text") == "")
    return parsed.select(
        consent_boundary=pl.col("boundary"),
        consent_status=pl.when(empty)
        .then(pl.lit(MISSING, STATUS_TYPE))
        .when(pl.col("boundary").is_null())
        .then(pl.lit(UNPARSEABLE, STATUS_TYPE))
        .otherwise(pl.lit(PARSED, STATUS_TYPE)),
    )


# The shapes CRM exports hold most often, each read by one exact strptime on the rows it
# matches; what is left goes through the general parser. Every fast shape is also
# accepted by the general parser, with the same result.
_FAST_SHAPES = (
    (r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$", "%Y-%m-%d", False),
    (r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$", "%m/%d/%Y", False),
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$", "%Y-%m-%dT%H:%M:%SZ", True),
    (r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2} [AP]M$", "%m/%d/%Y %I:%M %p", False),
)


def _staged(frame: pl.DataFrame, timezone: str) -> pl.DataFrame:
    text = frame.get_column("text")
    shape = pl.select(
        pl.coalesce(
            [
                pl.when(pl.lit(text).str.contains(pattern)).then(pl.lit(index, pl.Int8))
                for index, (pattern, _fmt, _utc) in enumerate(_FAST_SHAPES)
            ]
        )
    ).to_series()
    boundary = pl.repeat(None, frame.height, dtype=_UTC, eager=True).rename("boundary")
    for index, (_pattern, fmt, is_utc) in enumerate(_FAST_SHAPES):
        matches = shape == index
        rows = matches.arg_true()
        if rows.len() == 0:
            continue
        naive = text.filter(matches).str.strptime(pl.Datetime("us"), fmt, strict=False)
        localized = (
            naive.dt.replace_time_zone("UTC")
            if is_utc
            else pl.select(_localize(pl.lit(naive), timezone)).to_series()
        )
        boundary = boundary.scatter(rows, localized.cast(_UTC))
    # what no fast shape read (impossible dates included) goes through the general parser
    rest = (boundary.is_null() & (text != "")).arg_true()
    if rest.len():
        general = _general(frame[rest], timezone, None).get_column("boundary")
        boundary = boundary.scatter(rest, general)
    return frame.with_columns(boundary=boundary)


def check_consent_format(consent_format: str) -> str:
    """``consent_format`` if polars can read dates with it, else OptionError."""
    if "%" not in consent_format:
        raise OptionError.of(
            "consent_format",
            consent_format,
            "holds no strftime directive (write it as %d/%m/%Y, for example).",
        )
    _general(pl.DataFrame({"text": ["2024-01-02"]}), "UTC", consent_format)
    return consent_format


def _general(frame: pl.DataFrame, timezone: str, consent_format: str | None) -> pl.DataFrame:
    """Every accepted shape, by regular expressions: the reference parser."""
    frame = frame.with_columns(upper=pl.col("text").str.to_uppercase())
    candidates = [_iso_boundary(pl.col("upper"), timezone)]
    if consent_format is not None:
        # A custom format is tried first; ISO stays as the unambiguous fallback, but
        # month-first US dates do not (a day-first file would be misread silently).
        candidates.insert(0, _custom_boundary(pl.col("text"), consent_format, timezone))
    else:
        candidates.append(_us_boundary(pl.col("upper"), timezone))
    try:
        return frame.with_columns(boundary=pl.coalesce(candidates).cast(_UTC)).drop("upper")
    except pl.exceptions.PolarsError as error:
        raise OptionError.of(
            "consent_format", consent_format, f"cannot be used: {first_line(error)}"
        ) from None


def reject_future(consent: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Consent dated after ``now`` cannot be true: it counts as no consent date.

    A typo such as 2099 would otherwise put every deactivation before consent and keep
    the contact; read as missing, any deactivation removes it (the safe side).
    """
    future = pl.col("consent_boundary") > pl.lit(now, _UTC)
    return consent.with_columns(
        consent_status=pl.when(future)
        .then(pl.lit(FUTURE, STATUS_TYPE))
        .otherwise(pl.col("consent_status")),
        consent_boundary=pl.when(future).then(None).otherwise(pl.col("consent_boundary")),
    )


def parse_utc_instants(raw: pl.Series) -> pl.Series:
    """ISO 8601 dates or timestamps to UTC datetimes (null where unparseable).

    API metadata dates come both as ``2024-03-19`` and ``2024-03-19T00:00:00Z``, record
    dates as ``2024-03-05T11:00:00.000+0000``: all are read as UTC.
    """
    frame = pl.DataFrame({"text": raw.cast(pl.String).str.strip_chars().str.to_uppercase()})
    return frame.select(_iso_boundary(pl.col("text"), "UTC").cast(_UTC)).to_series()


def check_since(since: str | None) -> str | None:
    """``--since`` as given, once it is known to be a date; OptionError otherwise."""
    if since is not None and parse_utc_instants(pl.Series([since])).item() is None:
        raise OptionError(f"--since {since!r} is not a date (use YYYY-MM-DD).")
    return since


# A value with a day and a month: D/M/YYYY with one separator, and a clock perhaps.
# Polars' regular expressions have no back-references: the two separators are compared
# after extraction.
_DAY_MONTH = (
    r"^\s*([0-9]{1,2})([/.\-])([0-9]{1,2})([/.\-])([0-9]{4})"
    r"(?:([ T])[ T]*[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?(?:\s*([AaPp])\.?[Mm]\.?)?)?\s*$"
)
# Of a file's first rows, those a day-first format could read otherwise than the
# default rules (unreadable, or holding a "/") are held, copied, until the hint is
# decided: the format is judged on every row of the file when its first day-first value
# lies within them, so the hint never depends on where pieces are cut. (Other rows count
# alike both ways: an ISO date is read by both, an empty cell by neither.)
_HELD_ROWS = 250_000


def _day_month_parts(values: pl.Series) -> pl.Series:
    """The `_DAY_MONTH` groups of each value, a struct of fields "1" to "8"."""
    return values.to_frame("v").select(pl.col("v").str.extract_groups(_DAY_MONTH)).to_series()


def _day_first_format(values: pl.Series) -> pl.Series:
    """The day-first format reading each value, or null (also for an ambiguous 1/2/2024)."""
    parts = _day_month_parts(values)
    day, separator, month, separator_2, _year, clock_mark, seconds, meridiem = (
        parts.struct.field(str(index)) for index in range(1, 9)
    )
    date = pl.concat_str([pl.lit("%d"), separator, pl.lit("%m"), separator, pl.lit("%Y")])
    hour = pl.when(meridiem.is_null()).then(pl.lit("%H")).otherwise(pl.lit("%I"))
    suffix = pl.when(meridiem.is_null()).then(pl.lit("")).otherwise(pl.lit(" %p"))
    clock = (
        pl.when(seconds.is_not_null())
        .then(pl.concat_str([clock_mark, hour, pl.lit(":%M:%S"), suffix]))
        .when(clock_mark.is_not_null())
        .then(pl.concat_str([clock_mark, hour, pl.lit(":%M"), suffix]))
        .otherwise(pl.lit(""))
    )
    day_first = (
        (separator == separator_2)
        & (day.cast(pl.Int32, strict=False) > 12)
        & (month.cast(pl.Int32, strict=False) <= 12)
    )
    return pl.select(pl.when(day_first).then(pl.concat_str([date, clock]))).to_series()


def _has_day_and_month(values: pl.Series) -> pl.Series:
    parts = _day_month_parts(values)
    return (parts.struct.field("2") == parts.struct.field("4")).fill_null(False)


class ConsentTally:
    """The consent values that could not be read, counted a piece of the file at a time:
    how many, the first three (distinct), and a ``--consent-format`` hint when they
    look day-first.

    The format is the one reading the first day-first value (a day past 12) of the file.
    It is named only when most of the values with a day and a month read with it and it
    reads more values than the default rules did (11/1 read as January 11th where it was
    read as November 1st counts against it). Both are counted over every row of the
    file, whatever the pieces, when that first value lies in its first _HELD_ROWS rows;
    when it lies further on, no format is named (the safe side: a hint judged on part of
    the column could leave more values unreadable).
    """

    def __init__(self, timezone: str, consent_format: str | None) -> None:
        self.timezone = timezone
        self.consent_format = consent_format
        self.unreadable = 0
        self.examples: list[str] = []
        self.day_first: str | None = None
        self.day_first_example = ""
        self.read_now = 0
        self.read_then = 0
        self.day_and_month = 0
        self.read_day_first = 0
        self._rows_seen = 0
        self._held: list[tuple[pl.Series, pl.Series]] = []
        self._too_late = False

    def add(self, consent: pl.Series, status: pl.Series) -> None:
        """Count one piece's raw ``consent`` cells and their `parse_consent` ``status``."""
        first_row = self._rows_seen
        self._rows_seen += consent.len()
        unreadable_rows = status == UNPARSEABLE
        unreadable = consent.filter(unreadable_rows)
        self.unreadable += unreadable.len()
        self._add_examples(unreadable)
        if self.consent_format is not None or self._too_late:
            return
        if self.day_first is not None:
            self._count(consent, status)
            return
        if first_row < _HELD_ROWS:
            kept = min(consent.len(), _HELD_ROWS - first_row)
            held = consent.head(kept).cast(pl.String)
            either = unreadable_rows.head(kept) | held.str.contains("/", literal=True)
            # a copy: a slice would hold the whole piece's text
            copied = pl.select(pl.concat_str(pl.lit(held.filter(either)), pl.lit(""))).to_series()
            self._held.append((copied, status.head(kept).filter(either)))
        if unreadable.len() == 0:
            return
        stripped = unreadable.str.strip_chars()
        formats = _day_first_format(stripped)
        found = formats.is_not_null().arg_true()
        if found.len() == 0:
            return
        first = int(found[0])
        row_in_piece = int(unreadable_rows.arg_true()[first])
        if first_row + row_in_piece >= _HELD_ROWS:
            # the rows between the held ones and this value are gone: the format cannot be
            # judged on the column, so it is not named (the values are still counted)
            self._too_late = True
            self._held = []
            return
        self.day_first = formats[first]
        self.day_first_example = stripped[first]
        for held_consent, held_status in self._held:
            self._count(held_consent, held_status)
        self._held = []
        start = _HELD_ROWS - first_row
        if start < consent.len():
            self._count(consent.slice(start), status.slice(start))

    def _add_examples(self, unreadable: pl.Series) -> None:
        if len(self.examples) >= 3 or unreadable.len() == 0:
            return
        for value in unreadable.str.strip_chars().unique(maintain_order=True).head(6).to_list():
            if value is not None and value not in self.examples and len(self.examples) < 3:
                self.examples.append(value)

    def _count(self, consent: pl.Series, status: pl.Series) -> None:
        """Count what the default rules and the day-first format read in these rows."""
        assert self.day_first is not None
        read = parse_consent(consent, self.timezone, self.day_first)
        read_then = read.get_column("consent_boundary").is_not_null()
        dated = _has_day_and_month(consent.cast(pl.String))
        # a date in the future was read (and set aside): the default rules read it
        self.read_now += int(status.is_in([PARSED, FUTURE]).sum())
        self.read_then += int(read_then.sum())
        self.day_and_month += int(dated.sum())
        self.read_day_first += int((dated & read_then).sum())

    @property
    def hint(self) -> str | None:
        """``--consent-format '...'`` when the day-first format reads more values."""
        if self.day_first is None or self.read_then <= self.read_now:
            return None
        if self.read_day_first * 2 <= self.day_and_month:
            return None
        return f"--consent-format '{self.day_first}'"

    def shown_examples(self) -> list[str]:
        """Three values to show: the day-first one first when there is a hint."""
        if self.hint is None:
            return list(self.examples)
        value = self.day_first_example
        return [value, *(item for item in self.examples if item != value)][:3]
