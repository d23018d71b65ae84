"""Which columns of a contact file hold the phone, the consent date and the id.

Columns are found by name: the one an option names (case-insensitive), or one of the
names CRMs export. A guess never picks one of several candidates: that is an error that
names them and the option that chooses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconcile.errors import ColumnError, InputError

__all__ = [
    "CONSENT_GUESSES",
    "ID_GUESSES",
    "PHONE_GUESSES",
    "ChosenColumns",
    "ColumnChoice",
    "choose_columns",
    "resolve_column",
]

PHONE_GUESSES = (
    "phone",
    "mobile",
    "mobile phone",
    "phone number",
    "mobile number",
    "cell",
    "cell phone",
    "cellphone",
    "mobilephone",
    "phonenumber",
    "msisdn",
    "telephone",
    "sms number",
    "sms phone",
    "contact number",
    "primary phone",
)
CONSENT_GUESSES = (
    "opt in date",
    "optin date",
    "opted in",
    "opted in at",
    "opt in",
    "optin",
    "opt in timestamp",
    "consent date",
    "consent",
    "consented at",
    "consent timestamp",
    "sms opt in date",
    "sms consent date",
    "date opted in",
    "subscribed at",
    "subscription date",
)
ID_GUESSES = ("id", "contact id", "record id", "customer id", "lead id", "external id")


@dataclass(frozen=True)
class ColumnChoice:
    """Which columns to read: explicit names, or None to guess from common CRM names."""

    phone: str | None = None
    consent: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class ChosenColumns:
    """The header names of the columns a file is read by."""

    phone: str
    consent: str
    id: str | None

    def indexes(self, header: Sequence[str]) -> list[int]:
        """Positions of the chosen columns in ``header``: phone, consent, then id if any."""
        return [header.index(name) for name in (self.phone, self.consent, self.id) if name]


def _normalize_name(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower()).strip()


def resolve_column(
    path: Path,
    columns: Sequence[str],
    wanted: str | None,
    guesses: Sequence[str],
    role: str,
    option: str,
) -> str | None:
    """Find one column by name (case-insensitive) or by the CRM names in ``guesses``;
    None when nothing was asked for and no guess matches."""
    listing = ", ".join(repr(name) for name in columns)
    if wanted is not None:
        matches = [name for name in columns if name.strip().lower() == wanted.strip().lower()]
        if not matches:
            raise ColumnError(
                f"{path.name}: no column named {wanted!r} ({option}); the file has: {listing}."
            )
        if len(matches) > 1:
            raise ColumnError(
                f"{path.name}: {len(matches)} columns are named {wanted!r}; rename one so "
                f"{option} can tell them apart."
            )
        return matches[0]
    normalized = [_normalize_name(name) for name in columns]
    for guess in guesses:
        matches = [name for name, norm in zip(columns, normalized, strict=True) if norm == guess]
        if len(matches) == 1:
            others = [
                name
                for name, norm in zip(columns, normalized, strict=True)
                if norm in guesses and norm != guess
            ]
            if others:
                found = ", ".join(repr(name) for name in [matches[0], *others])
                raise ColumnError(
                    f"{path.name}: several columns could hold the {role} ({found}); "
                    f"choose one with {option}."
                )
            return matches[0]
        if len(matches) > 1:
            raise ColumnError(
                f"{path.name}: {len(matches)} columns are named {matches[0]!r}; rename one "
                f"or choose with {option}."
            )
    return None


def _required(path: Path, columns: Sequence[str], found: str | None, role: str, option: str) -> str:
    if found is None:
        listing = ", ".join(repr(name) for name in columns)
        raise ColumnError(
            f"{path.name}: no {role} column found; name it with {option}. The file has: {listing}."
        )
    return found


def choose_columns(path: Path, columns: Sequence[str], choice: ColumnChoice) -> ChosenColumns:
    """The phone, consent and id columns of a file with header ``columns``."""
    if not columns or all(not name.strip() for name in columns):
        raise InputError(f"{path.name}: the first row has no column names; it must be the header.")
    phone = _required(
        path,
        columns,
        resolve_column(path, columns, choice.phone, PHONE_GUESSES, "phone", "--phone-column"),
        "phone",
        "--phone-column",
    )
    consent = _required(
        path,
        columns,
        resolve_column(
            path, columns, choice.consent, CONSENT_GUESSES, "consent date", "--consent-column"
        ),
        "consent date",
        "--consent-column",
    )
    # without --id-column an id is only used when a guess names one
    identifier = resolve_column(path, columns, choice.id, ID_GUESSES, "id", "--id-column")
    if phone == consent:
        raise ColumnError(f"{path.name}: the phone and consent columns are both {phone!r}.")
    return ChosenColumns(phone, consent, identifier)
