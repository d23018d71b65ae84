"""Small text helpers shared by every module that writes an instant or an error line for
people: one home for the instant's spelling, so that no two outputs drift apart."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import polars as pl

__all__ = [
    "day",
    "first_line",
    "iso_instant",
    "iso_utc",
    "manifest_instant",
    "printable",
    "read_manifest_instant",
]

_SECONDS = "%Y-%m-%dT%H:%M:%S"


def iso_utc(moment: datetime | None) -> str | None:
    """``2024-03-10T11:00:00Z`` (the instant in UTC), with the fraction of a second when
    there is one (``…T11:00:00.250Z``), or None. The same spelling as `iso_instant`."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    micros = moment.microsecond
    if micros == 0:
        return moment.strftime(f"{_SECONDS}Z")
    if micros % 1000 == 0:
        return moment.strftime(_SECONDS) + f".{micros // 1000:03d}Z"
    return moment.strftime(f"{_SECONDS}.%fZ")


def iso_instant(expr: pl.Expr) -> pl.Expr:
    """`iso_utc` for a column of UTC instants: whole seconds when there is no fraction,
    milliseconds or microseconds when there is, so that an event never reads as earlier
    than it was."""
    micros = expr.dt.microsecond()
    return (
        pl.when(micros == 0)
        .then(expr.dt.strftime(f"{_SECONDS}Z"))
        .when(micros % 1000 == 0)
        .then(expr.dt.strftime(f"{_SECONDS}%.3fZ"))
        .otherwise(expr.dt.strftime(f"{_SECONDS}%.6fZ"))
    )


def manifest_instant(moment: datetime | None) -> str | None:
    """An instant as the ledger's manifest stores it (UTC, always microseconds, ``Z``)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def read_manifest_instant(text: str | None) -> datetime | None:
    """An instant the manifest wrote, or None."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def day(moment: datetime | None) -> str:
    """``2024-03-10``, or ``?`` when unknown."""
    return moment.strftime("%Y-%m-%d") if moment is not None else "?"


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (library errors can run to pages)."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """``text`` with control characters shown as U+FFFD (no forged lines, no escapes)."""
    return _CONTROL.sub("\ufffd", text)
