"""Which columns of a contact file hold the phone, the consent date and the id.

Columns are found by name: the one an option names (case-insensitive), or one of the
names CRMs export. A guess never picks one of several candidates: that is an error that
names them and the option that chooses.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from reconcile.column_words import (
    CONSENT_GUESSES,
    EMAIL_GUESSES,
    ID_GUESSES,
    looks_like_phones,
    may_hold_phones_by_content,
    phone_name_role,
)
from reconcile.errors import ColumnError, InputError

__all__ = [
    "ChosenColumns",
    "ColumnChoice",
    "MissingConsentColumn",
    "choose_columns",
    "describe_phone_columns",
    "guess_column",
    "split_column_names",
]


@dataclass(frozen=True)
class ColumnChoice:
    """Which columns to read: the names given (phones: every one named), or empty/None to
    guess from the names CRMs export."""

    phones: tuple[str, ...] = ()
    consent: str | None = None
    id: str | None = None
    # columns echoed into the change list and the workbook (a name, an email)
    include: tuple[str, ...] = ()
    # guessed phone columns left out (--not-phone-column)
    not_phones: tuple[str, ...] = ()
    # the region numbers without a country code are read in (for finding by content)
    default_region: str = "US"


@dataclass(frozen=True)
class ChosenColumns:
    """The header names of the columns a file is read by: every phone column, in the
    file's order, the consent column and the id column (if any)."""

    phones: tuple[str, ...]
    consent: str
    id: str | None
    include: tuple[str, ...] = ()
    # the phone columns found by what they hold (not by their name)
    by_content: tuple[str, ...] = ()
    # phone-like columns not checked, with why: ("Business Fax", "fax")
    not_checked: tuple[tuple[str, str], ...] = ()

    def indexes(self, header: Sequence[str]) -> list[int]:
        """Positions in ``header``: each phone column, the consent column, the id, then
        the columns to include."""
        names = [*self.phones, self.consent, *([self.id] if self.id else []), *self.include]
        return [header.index(name) for name in names]


def _normalize_name(name: str) -> str:
    name = re.sub(r"__c$", "", name.strip(), flags=re.IGNORECASE)  # Salesforce custom field
    return re.sub(r"[\s_\-]+", " ", name.lower()).strip()


def describe_phone_columns(
    phones: Iterable[str], by_content: Iterable[str], not_checked: Iterable[tuple[str, str]]
) -> str:
    """The phone columns checked, those found by content marked, and the phone-like
    columns not checked: ``'Mobile', 'Other' (found by content); not checked: 'Business
    Fax' (fax)`` (one wording for the printed summary, the JSON's readers and the
    workbook)."""
    found = set(by_content)
    text = ", ".join(
        repr(name) + (" (found by content)" if name in found else "") for name in phones
    )
    skipped = ", ".join(f"{name!r} ({why})" for name, why in not_checked)
    return f"{text}; not checked: {skipped}" if skipped else text


def split_column_names(values: Sequence[str]) -> tuple[str, ...]:
    """``--include-columns`` values: each is one name or several, comma-separated
    (a name holding a comma is given in a ``run`` config's list instead)."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


class _NotFound(Exception):
    """A column an option names is not in the file (gathered into one error)."""


def _named(columns: Sequence[str], wanted: str, option: str) -> str:
    """The one column named ``wanted`` (case-insensitive); _NotFound says what is wrong,
    with the closest names for a typo."""
    matches = [name for name in columns if name.strip().lower() == wanted.strip().lower()]
    if len(matches) > 1:
        raise ColumnError(
            f"{len(matches)} columns are named {wanted!r}; rename one so {option} can tell "
            "them apart"
        )
    if not matches:
        lowered = {name.strip().lower(): name for name in columns}
        typed = wanted.strip().lower()
        close = difflib.get_close_matches(typed, list(lowered), n=3, cutoff=0.6)
        if not close and len(typed) >= 3:  # a name cut short ("Mobil" for "Mobile Phone")
            close = [name for name in lowered if typed in name][:3]
        hint = (
            f" (did you mean {', '.join(repr(lowered[name]) for name in close)}?)" if close else ""
        )
        raise _NotFound(f"no column named {wanted!r} ({option}){hint}")
    return matches[0]


def _named_all(
    columns: Sequence[str], wanted: Sequence[str], option: str, problems: list[str]
) -> list[str]:
    """The columns ``wanted`` names, each once, in the order asked for; each name the
    file lacks goes to ``problems`` (all said in one error)."""
    found: list[str] = []
    for name in wanted:
        try:
            column = _named(columns, name, option)
        except _NotFound as missing:
            problems.append(str(missing))
            continue
        if column not in found:
            found.append(column)
    return found


def guess_column(
    path: Path, columns: Sequence[str], guesses: Sequence[str], role: str, option: str
) -> str | None:
    """The one column whose name is one of the CRM names in ``guesses`` (compared as
    `_normalize_name` writes them); None when none is; ColumnError when several are."""
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


def _guess_id(columns: Sequence[str]) -> str | None:
    """The id column CRMs export (``Id``, ``Person - ID``, Dynamics' ``(Do Not Modify)
    Contact``), else the first email column: a change list a user can match back. A guess
    never fails a run: two candidates of one name are no guess."""
    normalized = [_normalize_name(name) for name in columns]
    for guesses in (ID_GUESSES, EMAIL_GUESSES):
        for guess in guesses:
            matches = [
                name for name, norm in zip(columns, normalized, strict=True) if norm == guess
            ]
            if len(matches) == 1:
                return matches[0]
    return None


Sample = Callable[[Sequence[int]], Sequence[pl.Series]]


def _phone_columns(
    columns: Sequence[str],
    choice: ColumnChoice,
    taken: set[str],
    sample: Sample | None,
    problems: list[str],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Every phone column (exactly those named, or every header that names a phone and
    every other column that holds phone numbers), those found by content, and the
    phone-like columns not checked (fax, pager)."""
    if choice.phones:
        found = _named_all(columns, choice.phones, "--phone-column", problems)
        return tuple(name for name in columns if name in found), (), ()
    left_out = set(_named_all(columns, choice.not_phones, "--not-phone-column", problems))
    roles = {name: phone_name_role(name) for name in columns if name.strip()}
    named = [
        name for name in columns if roles.get(name) == "phone" and name not in left_out | taken
    ]
    duplicated = sorted({name for name in named if named.count(name) > 1})
    if duplicated:
        raise ColumnError(
            f"{named.count(duplicated[0])} columns are named {duplicated[0]!r}; rename one "
            "so each phone column can be told apart"
        )
    not_checked = tuple(
        (name, role)
        for name, role in roles.items()
        if role in ("fax", "pager") and name not in left_out
    )
    candidates = [
        index
        for index, name in enumerate(columns)
        if roles.get(name) is None
        and name not in left_out | taken
        and may_hold_phones_by_content(name)
    ]
    by_content: list[str] = []
    if sample is not None and candidates:
        for index, values in zip(candidates, sample(candidates), strict=True):
            if not looks_like_phones(values, choice.default_region):
                continue
            name = columns[index]
            if not name.strip() or columns.count(name) > 1:
                # holding numbers it must be checked, yet it cannot be named: never skipped
                what = "has no name" if not name.strip() else f"shares its name {name!r}"
                raise ColumnError(
                    f"column {index + 1} {what} but holds phone numbers; give each column "
                    "a name of its own so it can be checked"
                )
            by_content.append(name)
    chosen = set(named) | set(by_content)
    return (
        tuple(name for name in columns if name in chosen),
        tuple(by_content),
        not_checked,
    )


def choose_columns(
    path: Path, columns: Sequence[str], choice: ColumnChoice, sample: Sample | None = None
) -> ChosenColumns:
    """The phone, consent and id columns of a file with header ``columns``; ``sample``
    gives the first CONTENT_ROWS values of columns (by position), for phone columns found
    by what they hold.

    Every column an option names but the file lacks, and a missing phone or consent
    column, are said in one error. Raises MissingConsentColumn when the consent column
    cannot be found; the caller may then add which columns hold dates.
    """
    if not columns or all(not name.strip() for name in columns):
        raise InputError(f"{path.name}: the first row has no column names; it must be the header.")
    problems: list[str] = []
    consent: str | None = None
    identifier: str | None = None
    try:
        consent = (
            guess_column(path, columns, CONSENT_GUESSES, "consent date", "--consent-column")
            if choice.consent is None
            else _named(columns, choice.consent, "--consent-column")
        )
    except _NotFound as missing:
        problems.append(str(missing))
    try:
        identifier = (
            _guess_id(columns) if choice.id is None else _named(columns, choice.id, "--id-column")
        )
    except _NotFound as missing:
        problems.append(str(missing))
    include = _named_all(columns, choice.include, "--include-columns", problems)
    taken = {consent} if consent else set()  # an id may be a phone column too
    try:
        phones, by_content, not_checked = _phone_columns(columns, choice, taken, sample, problems)
    except ColumnError as error:
        raise ColumnError(f"{path.name}: {error}.") from None
    listing = ", ".join(repr(name) for name in columns)
    if problems:
        raise ColumnError(f"{path.name}: {'; '.join(problems)}. The file has: {listing}.")
    no_phone = not phones
    if consent is None:
        raise MissingConsentColumn(
            path,
            list(columns),
            no_phone=no_phone,
            numbers=_numbers_hint(columns, sample, taken) if no_phone else "",
        )
    if no_phone:
        raise ColumnError(
            f"{path.name}: no phone column found; name it with --phone-column"
            f"{_in_parentheses(_numbers_hint(columns, sample, taken))}. The file has: {listing}."
        )
    if consent in phones:
        raise ColumnError(f"{path.name}: the phone and consent columns are both {consent!r}.")
    return ChosenColumns(
        phones, consent, identifier, tuple(include), tuple(by_content), not_checked
    )


def _numbers_hint(columns: Sequence[str], sample: Sample | None, taken: set[str]) -> str:
    """The columns whose sample values mostly hold 7 digits or more (to point at), but
    for the consent column and those named as ids, codes or dates."""
    if sample is None:
        return ""
    indexes = [
        index
        for index, name in enumerate(columns)
        if name.strip()
        and name not in taken
        and phone_name_role(name) is None  # a fax is named as such, not pointed at
        and may_hold_phones_by_content(name)
    ]
    if not indexes:
        return ""
    looking = [
        columns[index]
        for index, values in zip(indexes, sample(indexes), strict=True)
        if (filled := values.cast(pl.String).drop_nulls()).len() > 0
        and 2 * int(filled.str.count_matches("[0-9]").ge(7).sum()) >= filled.len()
    ]
    if not looking:
        return ""
    return f"the columns whose values look like numbers: {', '.join(map(repr, looking))}"


def _in_parentheses(text: str) -> str:
    return f" ({text})" if text else ""


class MissingConsentColumn(ColumnError):
    """No consent column was named or guessed; `with_date_columns` says which columns
    hold dates."""

    def __init__(
        self, path: Path, columns: list[str], *, no_phone: bool = False, numbers: str = ""
    ) -> None:
        self.path = path
        self.columns = columns
        # no phone column either: both are said in one error (with the columns whose
        # values look like numbers)
        self.no_phone = no_phone
        self.numbers = numbers
        # the first rows of every column, as read (set by the reader that knows them)
        self.sample: dict[str, list[str | None]] = {}
        listing = ", ".join(repr(name) for name in columns)
        super().__init__(
            f"{path.name}: {self._missing()}; name it with --consent-column. "
            f"The file has: {listing}."
        )

    def _missing(self) -> str:
        phone = (
            f"no phone column found (name it with --phone-column"
            f"{'; ' + self.numbers if self.numbers else ''}), and "
            if self.no_phone
            else ""
        )
        return f"{phone}no consent date column found"

    def with_date_columns(self, date_columns: Sequence[str]) -> ColumnError:
        """The same error, naming the columns whose values look like dates (a creation
        date among them is suggested, never taken: it is not a consent)."""
        if not date_columns:
            return ColumnError(f"{self} No column holds dates.")
        named = ", ".join(repr(name) for name in date_columns)
        return ColumnError(
            f"{self.path.name}: {self._missing()}; name it with --consent-column "
            f"(the columns holding dates: {named})."
        )
