"""`reconcile check NUMBER [--since DATE]`: one number, answered as the FCC's Reassigned
Numbers Database answers: yes (deactivated since the date), no, or no data.

The answer comes from the same `decide` that `reconcile clean` uses, so the two always
agree on the same number and date.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

import polars as pl

from reconcile._text import iso_utc as _iso
from reconcile.consent import parse_consent, reject_future
from reconcile.errors import InputError
from reconcile.history import Coverage, CoverageSpan, History, compute_coverage
from reconcile.ledger import Ledger
from reconcile.phones import normalize_phones
from reconcile.verdicts import decide

__all__ = ["ANSWERS", "CheckAnswer", "check_number", "phone_key"]


class Evidence(TypedDict):
    event_type: str
    event_date: str
    network: str | None
    report_id: str | None
    suggested_number: str | None


class CheckAnswer(TypedDict):
    """One number's answer (``reconcile check --json``)."""

    number: str
    e164: str
    since: str | None
    answer: str
    verdict: str
    reason: str | None
    notes: list[str]
    evidence: Evidence | None
    coverage: CoverageSpan


ANSWERS = {"deactivated": "yes", "ok": "no", "suspended": "no", "unverified": "no data"}


def phone_key(number: str, default_region: str = "US") -> int:
    """The ledger key of a number, or InputError naming why it is not valid."""
    normalized = normalize_phones(pl.Series([number], dtype=pl.String), default_region).row(
        0, named=True
    )
    if normalized["phone_key"] is None:
        raise InputError(f"{number!r} is not a valid phone number ({normalized['phone_error']}).")
    return int(normalized["phone_key"])


def _number_history(key: int, source: History | Ledger) -> tuple[pl.DataFrame, Coverage]:
    """The events of one number, and the coverage of the whole history."""
    if isinstance(source, History):
        return source.events.filter(pl.col("number") == key), source.coverage()
    history = source.history()  # one manifest; its files stay while they are read
    scan = history.lazy_events()
    # each event file is sorted by number: row-group statistics skip the rest
    events = scan.filter(pl.col("number") == key).collect()
    return events, compute_coverage(history.reports, scan)


def check_number(
    number: str,
    since: str | None,
    source: History | Ledger,
    *,
    default_region: str = "US",
    consent_timezone: str = "UTC",
    now: datetime | None = None,
) -> CheckAnswer:
    """Answer for one number from change files (a History) or the ledger."""
    key = phone_key(number, default_region)  # refuse an invalid number with its reason
    contacts = pl.DataFrame(
        {"row": [1], "phone": [number], "consent": [since], "id": [None]},
        schema={"row": pl.UInt32, "phone": pl.String, "consent": pl.String, "id": pl.String},
    )
    consent = parse_consent(contacts.get_column("consent"), consent_timezone)
    if since is not None and consent.item(0, "consent_status") != "parsed":
        raise InputError(f"--since {since!r} is not a date or timestamp (use YYYY-MM-DD).")
    if now is not None:  # as in `clean`: a consent date in the future counts as none
        consent = reject_future(consent, now)
    events, coverage = _number_history(key, source)
    phones = normalize_phones(contacts.get_column("phone"), default_region)
    decision = decide(
        pl.concat([contacts, phones, consent], how="horizontal"), events, coverage.start
    ).row(0, named=True)
    verdict = decision["verdict"]
    notes = []
    if verdict == "suspended":
        notes.append("the number is suspended: do not message it until it is reactivated")
    if decision["reason"] and verdict == "ok":
        notes.append(decision["reason"])
    evidence: Evidence | None = None
    if decision["event_type"]:
        evidence = {
            "event_type": decision["event_type"],
            "event_date": decision["event_date"],
            "network": decision["network"],
            "report_id": decision["report_id"],
            "suggested_number": decision["suggested_number"],
        }
    return {
        "number": number,
        "e164": decision["phone_e164"],
        "since": since,
        "answer": ANSWERS[verdict],
        "verdict": verdict,
        "reason": decision["reason"],
        "notes": notes,
        "evidence": evidence,
        "coverage": {"start": _iso(coverage.start), "end": _iso(coverage.end)},
    }
