"""An oracle of SPEC's rules, written as plainly as possible and apart from the product.

It parses phone cells and consent cells with plain Python (regular expressions and
`datetime`), so that a bug in the product's vectorized parsers shows up as a
disagreement instead of being copied into the expected answer. Only numbers outside
North America are handed to `phonenumbers`, as SPEC itself says.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NANP_REGIONS = {"US", "CA"}
_EXTENSION = re.compile(r"\s*(?:;\s*ext=|ext(?:ension)?\.?|x|#)\s*\d{1,7}\s*$")


def phone_key(cell: str | None, region: str = "US") -> int | None:
    """The E.164 digits of a cell holding one number, or None when it is not valid."""
    if cell is None:
        return None
    text = cell.strip().lower()
    if not text:
        return None
    if re.fullmatch(r"\d(?:[.,]\d+)?e\+?\d+", text):
        return None  # scientific notation: the digits are gone
    if text.startswith("tel:"):
        text = text[4:].strip()
    text = _EXTENSION.sub("", text)
    float_tail = re.fullmatch(r"(\d+)\.0+", text)
    if float_tail:
        text = float_tail.group(1)
    if not re.fullmatch(r"\+?[\d\s().\-/]*", text):
        return None
    digits = "".join(character for character in text if character.isdigit())
    if not digits:
        return None
    if text.startswith("+"):
        international = digits
    elif digits.startswith("011") and region in NANP_REGIONS:
        international = digits[3:]
    elif digits.startswith("00"):
        international = digits[2:]
    else:
        international = None
    if international is None:
        if region not in NANP_REGIONS:
            return _library(digits, region)
        if len(digits) == 10:
            international = "1" + digits
        elif len(digits) == 11 and digits.startswith("1"):
            international = digits
        else:
            return None
    if international.startswith("1"):
        nanp = (
            len(international) == 11
            and international[1] in "23456789"
            and international[4] in "23456789"
        )
        return int(international) if nanp else None
    return _library("+" + international, None)


def _library(text: str, region: str | None) -> int | None:
    import phonenumbers

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return int(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:])


_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_US = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})"
    r"(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(AM|PM|A\.M\.|P\.M\.)?)?",
    re.IGNORECASE,
)


def consent_boundary(cell: str | None, timezone: str = "UTC") -> datetime | None:
    """The UTC instant consent holds from, or None when missing or unreadable."""
    if cell is None or not cell.strip():
        return None
    text = cell.strip()
    try:
        iso = _ISO.fullmatch(text)
        if iso:
            year, month, day, hour, minute, second, fraction, offset = iso.groups()
            micro = int((fraction or "0")[:6].ljust(6, "0"))
            wall = datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                micro,
            )
            return _to_utc(wall, offset, timezone, date_only=hour is None)
        us = _US.fullmatch(text)
        if us:
            month, day, year, hour, minute, second, meridiem = us.groups()
            hour_24 = int(hour or 0)
            if meridiem:
                if not 1 <= hour_24 <= 12:
                    return None
                hour_24 = hour_24 % 12 + (12 if meridiem.upper().startswith("P") else 0)
            wall = datetime(
                int(year), int(month), int(day), hour_24, int(minute or 0), int(second or 0)
            )
            return _to_utc(wall, None, timezone, date_only=hour is None)
    except ValueError:
        return None  # an impossible date or time
    return None


def _to_utc(
    wall: datetime, offset: str | None, timezone: str, *, date_only: bool
) -> datetime | None:
    if offset:
        if offset.upper() == "Z":
            return wall.replace(tzinfo=UTC)
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            return None
        sign = -1 if offset.startswith("-") else 1
        return (wall - sign * timedelta(hours=hours, minutes=minutes)).replace(tzinfo=UTC)
    zone = ZoneInfo(timezone)
    if date_only:
        return _first_instant_of(wall.date(), zone)
    # A wall time that never existed is unreadable; a repeated one takes its earlier
    # instant (fold=0), the safe side.
    local = wall.replace(tzinfo=zone)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return local.astimezone(UTC)


def _first_instant_of(day: date, zone: ZoneInfo) -> datetime | None:
    """The first instant of a local day (midnight, or the end of a gap that skips it)."""
    for minutes in range(0, 24 * 60):
        wall = datetime.combine(day, time(0)) + timedelta(minutes=minutes)
        local = wall.replace(tzinfo=zone)
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
            return local.astimezone(UTC)
    return None


def verdict(
    key: int | None,
    boundary: datetime | None,
    events: list[tuple[int, str, datetime]],
    coverage_start: datetime | None,
) -> str:
    """SPEC's verdict table for one number: first rule that applies."""
    if key is None:
        return "invalid_number"
    mine = {(kind, moment) for number, kind, moment in events if number == key}
    deactivations = [moment for kind, moment in mine if kind in ("DEACTIVATION", "ACTIVATION")]
    if any(boundary is None or moment >= boundary for moment in deactivations):
        return "deactivated"
    if mine:
        latest = max(moment for _, moment in mine)
        if ("SUSPENSION", latest) in mine:
            return "suspended"
    if coverage_start is None or boundary is None or boundary < coverage_start:
        return "unverified"
    return "ok"


def contact_verdict(
    phone: str | None,
    consent: str | None,
    events: list[tuple[int, str, datetime]],
    coverage_start: datetime | None,
    now: datetime,
    timezone: str = "UTC",
) -> str:
    """One contact row's verdict from its raw cells."""
    boundary = consent_boundary(consent, timezone)
    if boundary is not None and boundary > now:
        boundary = None  # a consent date in the future counts as none
    return verdict(phone_key(phone), boundary, events, coverage_start)


_SEPARATORS = re.compile(r"\s*(?:/|;|,|\bor\b|\r?\n)\s*")
_NUMBER_IN_TEXT = re.compile(r"[+(]?\d.*\d(?:\s*(?:ext\.?|x|#)\s*\d+)?", re.IGNORECASE)
SEVERITY = {"remove": 0, "suppress": 1, "review": 2, "keep": 3}
ORDER = ["invalid_number", "deactivated", "suspended", "unverified", "ok"]
DEFAULT_ACTIONS = {
    "invalid_number": "review",
    "deactivated": "remove",
    "suspended": "suppress",
    "unverified": "review",
    "ok": "keep",
}


def cell_keys(cell: str | None, region: str = "US") -> list[int | None]:
    """The numbers of one phone cell (None for each that is not valid): nothing for an
    empty cell, one entry for a cell that is one number, else each piece between the
    separators SPEC names that holds at least seven digits; [None] when none does."""
    if cell is None or not cell.strip():
        return []
    whole = phone_key(cell, region)
    if whole is not None:
        return [whole]
    found: list[int | None] = []
    for piece in _SEPARATORS.split(cell):
        match = _NUMBER_IN_TEXT.search(piece)
        if match and sum(character.isdigit() for character in match.group(0)) >= 7:
            found.append(phone_key(match.group(0), region))
    return found or [None]


def row_decision(
    cells: list[str | None],
    consent: str | None,
    events: list[tuple[int, str, datetime]],
    coverage_start: datetime | None,
    now: datetime,
) -> tuple[str, str, list[list[str]]]:
    """A row's verdict and action (those of its most severe number), and each cell's
    numbers' verdicts."""
    boundary = consent_boundary(consent)
    if boundary is not None and boundary > now:
        boundary = None
    per_cell = [
        [verdict(key, boundary, events, coverage_start) for key in cell_keys(cell)]
        for cell in cells
    ]
    every = [found for cell in per_cell for found in cell] or ["invalid_number"]
    worst = min(every, key=lambda found: (SEVERITY[DEFAULT_ACTIONS[found]], ORDER.index(found)))
    return worst, DEFAULT_ACTIONS[worst], per_cell
