"""Small text helpers shared by the modules that talk to people: dates and error lines."""

from __future__ import annotations

from datetime import datetime

__all__ = ["day", "first_line", "iso_utc"]


def iso_utc(moment: datetime | None) -> str | None:
    """``2024-03-10T11:00:00Z`` (the instant is UTC), or None."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def day(moment: datetime | None) -> str:
    """``2024-03-10``, or ``?`` when unknown."""
    return moment.strftime("%Y-%m-%d") if moment is not None else "?"


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (library errors can run to pages)."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__
