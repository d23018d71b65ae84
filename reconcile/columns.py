"""Which columns of a contact file hold the phone, the consent date and the id.

Columns are found by name: the one an option names (case-insensitive), or one of the
names CRMs export. A guess never picks one of several candidates: that is an error that
names them and the option that chooses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconcile.errors import ColumnError, InputError

__all__ = [
    "CONSENT_GUESSES",
    "ID_GUESSES",
    "ChosenColumns",
    "ColumnChoice",
    "MissingConsentColumn",
    "choose_columns",
    "is_phone_name",
    "resolve_column",
    "split_column_names",
]

# A header names a phone when, lower-cased and without spaces, "_" and "-" (and a
# Salesforce "__c" suffix), it is a kind of phone with an optional "number" and digit:
# Phone, Mobile, MobilePhone, Mobile Phone Number, Cell, Home Phone, phone_number,
# SMS Phone, Phone 2, msisdn, ...
_PHONE_NAME = re.compile(
    r"^(?:sms|mobile|cell|home|work|business|office|other|primary|personal|direct|main"
    r"|alternate|alt|assistant|asst|contact|company|private|privat|secondary|whatsapp)?"
    r"(?:phone|mobile|cell|cellphone|mobilephone|telephone|telefon|tel|handy|msisdn"
    r"|(?:mobile|cell|sms|contact|whatsapp)(?=number|no|num|nr))"
    r"(?:number|no|num|nr|mobile|home|work|cell|office|other|business|private|privat"
    r"|personal|main|direct|sms)*[0-9]?$"
)
CONSENT_GUESSES = (
    "opt in date",
    "sms consent timestamp",
    "sms opt in timestamp",
    "sms consent date",
    "sms opt in date",
    "sms subscribed at",
    "sms subscription date",
    "date subscribed",
    "subscribed date",
    "consent given at",
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
    "date opted in",
    "subscribed at",
    "subscription date",
)
ID_GUESSES = ("id", "contact id", "record id", "customer id", "lead id", "external id")


@dataclass(frozen=True)
class ColumnChoice:
    """Which columns to read: the names given (phones: every one named), or empty/None to
    guess from the names CRMs export."""

    phones: tuple[str, ...] = ()
    consent: str | None = None
    id: str | None = None
    # columns echoed into the change list and the workbook (a name, an email)
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChosenColumns:
    """The header names of the columns a file is read by: every phone column, in the
    file's order, the consent column and the id column (if any)."""

    phones: tuple[str, ...]
    consent: str
    id: str | None
    include: tuple[str, ...] = ()

    def indexes(self, header: Sequence[str]) -> list[int]:
        """Positions in ``header``: each phone column, the consent column, the id, then
        the columns to include."""
        names = [*self.phones, self.consent, *([self.id] if self.id else []), *self.include]
        return [header.index(name) for name in names]


def _normalize_name(name: str) -> str:
    name = re.sub(r"__c$", "", name.strip(), flags=re.IGNORECASE)  # Salesforce custom field
    return re.sub(r"[\s_\-]+", " ", name.lower()).strip()


def is_phone_name(name: str) -> bool:
    """Whether a column header names a phone (SPEC "Several numbers per contact"):
    lower-cased, accents, punctuation and a Salesforce ``__c`` suffix set aside, a kind
    of phone (``Asst. Phone``, ``Phone (Mobile)``, ``Mobile No.``, ``Téléphone``)."""
    plain = unicodedata.normalize("NFKD", name.strip().lower())
    plain = "".join(character for character in plain if not unicodedata.combining(character))
    plain = re.sub(r"__c$", "", plain)
    return bool(_PHONE_NAME.match(re.sub(r"[^a-z0-9]", "", plain)))


def split_column_names(values: Sequence[str]) -> tuple[str, ...]:
    """``--include-columns`` values: each is one name or several, comma-separated
    (a name holding a comma is given in a ``run`` config's list instead)."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


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


def _phone_columns(path: Path, columns: Sequence[str], wanted: tuple[str, ...]) -> tuple[str, ...]:
    """Every phone column: exactly those named, or every header that names a phone."""
    if wanted:
        found: list[str] = []
        for name in wanted:
            column = resolve_column(path, columns, name, (), "phone", "--phone-column")
            if column is not None and column not in found:
                found.append(column)
        return tuple(name for name in columns if name in found)
    guessed = [name for name in columns if name.strip() and is_phone_name(name)]
    duplicated = sorted({name for name in guessed if guessed.count(name) > 1})
    if duplicated:
        raise ColumnError(
            f"{path.name}: {guessed.count(duplicated[0])} columns are named "
            f"{duplicated[0]!r}; rename one so each phone column can be told apart."
        )
    if not guessed:
        listing = ", ".join(repr(name) for name in columns)
        raise ColumnError(
            f"{path.name}: no phone column found; name it with --phone-column. "
            f"The file has: {listing}."
        )
    return tuple(guessed)


def choose_columns(path: Path, columns: Sequence[str], choice: ColumnChoice) -> ChosenColumns:
    """The phone, consent and id columns of a file with header ``columns``.

    Raises ColumnError when the consent column cannot be found; the caller may then add
    which columns hold dates (`date_like_hint`).
    """
    if not columns or all(not name.strip() for name in columns):
        raise InputError(f"{path.name}: the first row has no column names; it must be the header.")
    phones = _phone_columns(path, columns, choice.phones)
    consent = resolve_column(
        path, columns, choice.consent, CONSENT_GUESSES, "consent date", "--consent-column"
    )
    if consent is None:
        raise MissingConsentColumn(path, list(columns))
    # without --id-column an id is only used when a guess names one
    identifier = resolve_column(path, columns, choice.id, ID_GUESSES, "id", "--id-column")
    if consent in phones:
        raise ColumnError(f"{path.name}: the phone and consent columns are both {consent!r}.")
    # each column once, in the order asked for
    include = tuple(
        dict.fromkeys(
            found
            for wanted in choice.include
            if (found := resolve_column(path, columns, wanted, (), "column", "--include-columns"))
        )
    )
    return ChosenColumns(phones, consent, identifier, include)


class MissingConsentColumn(ColumnError):
    """No consent column was named or guessed; `with_date_columns` says which columns
    hold dates."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = path
        self.columns = columns
        # the first rows of every column, as read (set by the reader that knows them)
        self.sample: dict[str, list[str | None]] = {}
        listing = ", ".join(repr(name) for name in columns)
        super().__init__(
            f"{path.name}: no consent date column found; name it with --consent-column. "
            f"The file has: {listing}."
        )

    def with_date_columns(self, date_columns: Sequence[str]) -> ColumnError:
        """The same error, naming the columns whose values look like dates."""
        if not date_columns:
            return ColumnError(f"{self} No column holds dates.")
        named = ", ".join(repr(name) for name in date_columns)
        return ColumnError(
            f"{self.path.name}: no consent date column found; name it with --consent-column "
            f"(the columns holding dates: {named})."
        )
