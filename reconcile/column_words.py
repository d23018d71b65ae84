"""The words of a column's header, and what a column holds: whether it is a phone column
by its name (`phone_name_role`) or by its values (`looks_like_phones`), and the names
CRMs give the consent date, the id and the email. `columns.choose_columns` decides with
these.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

import polars as pl

from reconcile.consent import PARSED, parse_consent
from reconcile.phones import find_numbers

__all__ = [
    "CONSENT_GUESSES",
    "CONTENT_ROWS",
    "EMAIL_GUESSES",
    "ID_GUESSES",
    "header_words",
    "is_phone_name",
    "looks_like_phones",
    "may_hold_phones_by_content",
    "phone_name_role",
]

# SPEC "Several numbers per contact": a header names a phone column when one of its words
# is a phone word and none says the column is about the number rather than the number.
# A word may be a compound (MobilePhone written as one word, Telefonnummer, cellphone).
_PHONE_WORD = re.compile(
    r"^(?:sms|mobile|cell|home|work|business|office|other|primary|personal|direct|main"
    r"|alternate|alt|assistant|assistants|asst|contact|company|private|privat|secondary"
    r"|whatsapp|car|auto|haupt|funk|radio|day|night|evening|billing|shipping|customer"
    r"|additional|emergency)?"
    r"(?:phones?|mobiles?|mobil|mobiel|mobiele|cell|cellular|cellphone|mobilephone"
    r"|telephone|telefon|telefone|telefono|telephono|telefoon|telemovel|tel|tele|handy"
    r"|msisdn|sms|whatsapp|viber|movil|celular|cellulare|portable|gsm|landline|festnetz"
    r"|rufnummer|(?:mobile|cell|sms|contact|whatsapp)(?=number|no|num|nr))"
    r"(?:number|numbers|no|num|nr|nummer|numero|mobile|home|work|cell|office|other"
    r"|business|private|privat|personal|main|direct|sms|thuis|telefon|telefoon|telephone"
    r"|phone)*[0-9]*$"
)
# "Home Number", "Contact No.", "Direct Dial": a number word after a word that only a
# phone number follows
_NUMBER_OF = frozenset(
    [
        "contact",
        "home",
        "work",
        "business",
        "office",
        "direct",
        "alternate",
        "alt",
        "day",
        "night",
        "evening",
        "emergency",
        "callback",
        "mob",
    ]
)
_NUMBER_WORDS = frozenset(["number", "numbers", "no", "num", "nr", "dial", "line"])
# words that say a column is about the number (its type, its country, its consent)
_ABOUT_WORDS = frozenset(
    [
        "type",
        "types",
        "label",
        "labels",
        "kind",
        "country",
        "code",
        "codes",
        "ext",
        "extension",
        "verified",
        "status",
        "consent",
        "consents",
        "opt",
        "optin",
        "optout",
        "opted",
        "unsubscribed",
        "subscribed",
        "subscription",
        "permission",
        "date",
        "dates",
        "time",
        "timestamp",
        "carrier",
        "count",
        "valid",
        "validated",
        "confirmed",
        "format",
        # what the number is used for, or allowed for (not the number)
        "accepts",
        "accept",
        "marketing",
        "blacklisted",
        "blacklist",
        "blocklist",
        "blocked",
        "preference",
        "preferences",
        "dnc",
        "enabled",
        "has",
        "last",
        "sent",
        "calls",
        "os",
        "device",
        "provider",
        "keyword",
        "notes",
        "note",
        "allowed",
        "allow",
        "source",
        # the same in the languages whose phone words are known
        "tipo",
        "typ",
        "einwilligung",
        "consentimiento",
        "consentement",
        "fecha",
        "datum",
        "statut",
        "estado",
        "verificado",
        "verifie",
        "land",
        "pays",
        "pais",
    ]
)
# phone columns that are not checked (no text message reaches them); named in the summary
_NOT_MESSAGED = {
    "fax": "fax",
    "faxes": "fax",
    "telefax": "fax",
    "pager": "pager",
    "beeper": "pager",
}
# headers whose values may look like numbers but are not phones: never found by content
_NOT_BY_CONTENT = frozenset(
    [
        "id",
        "ids",
        "key",
        "code",
        "zip",
        "zipcode",
        "postal",
        "postcode",
        "postalcode",
        "plz",
        "amount",
        "total",
        "price",
        "date",
        "created",
        "modified",
        "updated",
    ]
)
# by content: at least this share of at least _CONTENT_LEAST non-empty values of the first
# _CONTENT_ROWS rows are valid numbers
CONTENT_ROWS = 1000
_CONTENT_LEAST = 5
_CONTENT_SHARE = 0.8


def header_words(name: str, *, camel_case: bool = True) -> list[str]:
    """A header's words: camelCase (unless ``camel_case`` is false) and letters-to-digits
    split, case, accents, spaces, punctuation, ``_`` and ``-`` set aside, apostrophes
    dropped (``Assistant's``), and a Salesforce ``__c`` suffix removed."""
    plain = re.sub(r"__c$", "", name.strip(), flags=re.IGNORECASE)
    camel = r"(?<=[a-z])(?=[A-Z])|" if camel_case else ""
    plain = re.sub(camel + r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])", " ", plain)
    plain = unicodedata.normalize("NFKD", plain.lower())
    plain = "".join(character for character in plain if not unicodedata.combining(character))
    plain = re.sub(r"['\u2019`]", "", plain)
    return [word for word in re.split(r"[^a-z0-9]+", plain) if word]


def phone_name_role(name: str) -> str | None:
    """What a header says of its column: ``"phone"`` (checked), ``"fax"`` or ``"pager"``
    (a phone no message reaches: named, not checked), or None."""
    words = header_words(name)
    not_messaged = next((_NOT_MESSAGED[word] for word in words if word in _NOT_MESSAGED), None)
    if not_messaged is not None:
        return not_messaged
    if any(word in _ABOUT_WORDS for word in words):
        return None
    # a camelCase brand is one word (WhatsApp), a camelCase header several (MobilePhone)
    whole = header_words(name, camel_case=False)
    if any(_PHONE_WORD.match(word) for word in [*words, *whole]):
        return "phone"
    if any(
        first in _NUMBER_OF and second in _NUMBER_WORDS
        for first, second in itertools.pairwise(words)
    ):
        return "phone"
    return None


def is_phone_name(name: str) -> bool:
    """Whether a column header names a phone column that is checked (`phone_name_role`)."""
    return phone_name_role(name) == "phone"


def may_hold_phones_by_content(name: str) -> bool:
    """Whether a column not named as a phone may be found by what it holds: not one whose
    header names an id, a key, a code, a zip or postal code, an amount or a date."""
    return not any(word in _NOT_BY_CONTENT for word in header_words(name))


def looks_like_phones(values: pl.Series, default_region: str = "US") -> bool:
    """Whether a column's sample holds phone numbers: at least 5 non-empty values, 80 %
    of them holding a valid number as the checker finds them (labels, several numbers,
    ``:::``), dates and timestamps never counted as numbers."""
    text = values.cast(pl.String)
    filled = text.filter(text.str.strip_chars().str.len_bytes() > 0)
    if filled.len() < _CONTENT_LEAST:
        return False
    # a cell without a digit holds no number: a column of names or notes is settled
    # here, without the number finder
    if int(filled.str.contains("[0-9]").sum()) < _CONTENT_SHARE * filled.len():
        return False
    # a date or a timestamp holds digit runs a number finder would take for a phone:
    # the consent rules say which cells are dates
    dates = parse_consent(filled, "UTC").get_column("consent_status") == PARSED
    cells = filled.filter(~dates)
    if cells.len() == 0:
        return False
    entries = find_numbers([cells], default_region)
    holding = entries.filter(pl.col("phone_key").is_not_null()).get_column("index").n_unique()
    return holding >= _CONTENT_SHARE * filled.len()


CONSENT_GUESSES = (
    "opt in date",
    "optin time",
    "opt in time",
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
ID_GUESSES = (
    "id",
    "contact id",
    "record id",
    "customer id",
    "lead id",
    "external id",
    "person id",
    "person - id",
    "(do not modify) contact",
    "(do not modify) lead",
    "(do not modify) account",
    "subscriber id",
    "member id",
)
EMAIL_GUESSES = (
    "email",
    "emails",
    "e mail",
    "email address",
    "e mail address",
    "emailaddress",
    "email 1",
    "e mail 1 value",
    "person email",
    "person email work",
    "primary email",
    "work email",
    "business email",
)
