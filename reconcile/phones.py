"""Phone normalization: raw CRM cells to E.164 (text) and an unsigned integer key.

The fast path is a handful of polars expressions: it settles every North American
number (the `+1` NANP structure: 10 digits, area code and exchange starting 2-9) and
every malformed cell. Only numbers with another country code, or national numbers of a
non-NANP default region, are handed to `phonenumbers`, once per distinct value.
"""

from __future__ import annotations

import re
from types import ModuleType

import numpy as np
import polars as pl

from reconcile.errors import OptionError

__all__ = [
    "NO_PHONE_NUMBER",
    "add_e164",
    "find_numbers",
    "normalize_phones",
    "validate_region",
]

# Extension markers CRMs write after the number: "x12", "ext. 12", "extension 12", "#12",
# and RFC 3966's ";ext=12". The one spelling every pattern below builds on.
_EXTENSION_MARKER = r"(?:;\s*ext=|ext(?:ension)?\.?|x|#)"
_EXTENSION = rf"\s*{_EXTENSION_MARKER}\s*[0-9]{{1,7}}\s*$"
# What Excel does to a long number in a CSV: 4.15555E+09 (the digits are gone).
_SCIENTIFIC = r"^[0-9](?:[.,][0-9]+)?e\+?[0-9]+$"
# A numeric cell rendered as a float: 4155550123.0 (the ".0" is not a digit of the number).
_FLOAT_TAIL = r"^([0-9]+)\.0+$"
# Characters a written phone number may hold once the extension is gone.
_ALLOWED = r"^\+?[0-9\s().\-/]*$"

# The regions of country code 1 (phonenumbers' COUNTRY_CODE_TO_REGION_CODE[1], which a
# test keeps in step): a North American default region never loads phonenumbers.
_NANP_REGIONS = frozenset(
    # SIM905: one line of codes reads (and compares with the library's list) best
    "AG AI AS BB BM BS CA DM DO GD GU JM KN KY LC MP MS PR SX TC TT US VC VG VI".split()  # noqa: SIM905
)


def _library() -> ModuleType:
    """phonenumbers, imported the first time a number needs it (it takes a while)."""
    import phonenumbers

    return phonenumbers


_MAX_E164_DIGITS = 15
_LETTERS = "letters or symbols in the number"
_COLUMNS = ("phone_e164", "phone_key", "phone_error")


def validate_region(region: str) -> str:
    """Return the upper-cased region code, or raise OptionError for an unknown one."""
    code = region.strip().upper()
    if code not in _NANP_REGIONS and code not in _library().SUPPORTED_REGIONS:
        raise OptionError.of(
            "default_region",
            region,
            "is not a region code phonenumbers knows (use a two-letter code such as US, CA, GB).",
        )
    return code


def _nanp_ok(digits: pl.Expr) -> pl.Expr:
    """True where an 11-digit string starting with 1 has the NANP structure."""
    return (
        (digits.str.len_bytes() == 11)
        & digits.str.starts_with("1")
        & digits.str.slice(1, 1).is_in(list("23456789"))
        & digits.str.slice(4, 1).is_in(list("23456789"))
    )


# The shapes of North American numbers CRMs write most often, with their optional
# international prefix, "tel:" and extension. A cell of this shape holds exactly the
# digits the general rules would find, so one match settles it.
_NANP_SHAPE = (
    r"(?i)^\s*(?:tel:\s*)?(?:\+\s*1|00\s*1|011\s*1|1)?[\s.\-]*\(?([2-9][0-9]{2})\)?[\s.\-/]*"
    r"([2-9][0-9]{2})[\s.\-/]*([0-9]{4})"
    rf"(?:\s*{_EXTENSION_MARKER}\s*[0-9]{{1,7}})?\s*$"
)


_SEPARATORS = [" ", "(", ")", "-", ".", "/", "\u00a0", "\t"]


def add_e164(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``phone_e164`` (``+14155550123``) made from its ``phone_key`` (the
    E.164 number's digits), unless it has the column already."""
    if "phone_e164" in frame.columns:
        return frame
    key = pl.col("phone_key")
    return frame.with_columns(
        phone_e164=pl.when(key.is_not_null()).then(pl.lit("+") + key.cast(pl.String))
    )


def normalize_phones(
    raw: pl.Series, default_region: str = "US", *, with_e164: bool = True
) -> pl.DataFrame:
    """Normalize raw phone cells.

    Returns one row per input with ``phone_e164`` (``+14155550123``), ``phone_key``
    (UInt64, the E.164 digits) and ``phone_error`` (why a cell is not a valid number;
    null when it is). All three are null/valid together: a key exists iff no error.
    Without ``with_e164`` the text is left out: `add_e164` makes it from the key, for
    the few rows that are shown.
    """
    region = validate_region(default_region)
    text = raw.cast(pl.String)
    if region not in _NANP_REGIONS:
        general = _normalize_general(text, region)
        return general if with_e164 else general.drop("phone_e164")
    # Fast path: one DFA match for the common North American shapes; the digits are
    # then the last ten once the extension is gone. Every other cell (and any cell whose
    # fast digits do not come out clean) is answered by the general rules.
    fast = (
        pl.DataFrame({"raw": text})
        .select(
            digit_text=pl.when(pl.col("raw").str.contains(_NANP_SHAPE)).then(
                pl.lit("1")
                + pl.col("raw")
                .str.replace(rf"(?i){_EXTENSION}", "")
                .str.replace_many(_SEPARATORS, [""] * len(_SEPARATORS))
                .str.slice(-10)
            )
        )
        .with_columns(key=pl.col("digit_text").cast(pl.UInt64, strict=False))
        # exactly eleven digits, so that the text is the key's own decimal digits
        .with_columns(
            key=pl.when(
                (pl.col("digit_text").str.len_bytes() == 11) & (pl.col("key") >= 10**10)
            ).then(pl.col("key"))
        )
    )
    digits = fast.get_column("key")
    result = pl.DataFrame(
        {
            "phone_key": digits,
            "phone_error": pl.repeat(None, text.len(), dtype=pl.String, eager=True),
        }
    )
    rest = digits.is_null().arg_true()
    if rest.len():
        general = _normalize_general(text.gather(rest), region)
        result = pl.DataFrame(
            {
                name: result.get_column(name).scatter(rest, general.get_column(name))
                for name in result.columns
            }
        )
    return add_e164(result).select(_COLUMNS) if with_e164 else result


def _normalize_general(text: pl.Series, region: str) -> pl.DataFrame:
    """The general rules, as polars expressions, with phonenumbers for the rest."""
    national_is_nanp = region in _NANP_REGIONS
    frame = pl.DataFrame({"raw": text})

    cleaned = pl.col("raw").str.strip_chars().str.to_lowercase()
    frame = frame.with_columns(
        stripped=cleaned,
        body=cleaned.str.replace(r"^tel:\s*", "")
        .str.replace(_EXTENSION, "")
        .str.replace(_FLOAT_TAIL, "${1}"),
    )
    frame = frame.with_columns(
        digits=pl.col("body").str.replace_all(r"[^0-9]", ""),
        has_plus=pl.col("body").str.starts_with("+"),
    )
    frame = frame.with_columns(
        intl_digits=pl.when(pl.col("has_plus"))
        .then(pl.col("digits"))
        # 011 is the NANP exit code; elsewhere it is a national number (0113 is Leeds)
        .when(pl.lit(national_is_nanp) & pl.col("digits").str.starts_with("011"))
        .then(pl.col("digits").str.slice(3))
        .when(pl.col("digits").str.starts_with("00"))
        .then(pl.col("digits").str.slice(2))
    )
    intl = pl.col("intl_digits")
    national = pl.col("digits")
    national_nanp = (
        pl.when(national.str.len_bytes() == 10)
        .then(pl.lit("1") + national)
        .when((national.str.len_bytes() == 11) & national.str.starts_with("1"))
        .then(national)
    )
    frame = frame.with_columns(
        nanp_candidate=pl.when(intl.is_not_null())
        .then(pl.when(intl.str.starts_with("1")).then(intl))
        .when(pl.lit(national_is_nanp))
        .then(national_nanp)
    )
    candidate = pl.col("nanp_candidate")
    error = (
        pl.when(pl.col("stripped").is_null() | (pl.col("stripped") == ""))
        .then(pl.lit("empty phone cell"))
        .when(pl.col("stripped").str.contains(_SCIENTIFIC))
        .then(pl.lit("digits lost to scientific notation"))
        .when(~pl.col("body").str.contains(_ALLOWED))
        .then(pl.lit(_LETTERS))
        .when(national == "")
        .then(pl.lit("no digits"))
        .when(intl == "")
        .then(pl.lit("nothing after the international prefix"))
        .when(intl.is_null() & pl.lit(national_is_nanp) & (national.str.len_bytes() >= 12))
        .then(pl.lit("too many digits for a number without a country code"))
        .when(intl.is_null() & pl.lit(national_is_nanp) & candidate.is_null())
        .then(pl.lit("not 10 digits (or 11 starting with 1)"))
        .when(candidate.is_not_null() & ~_nanp_ok(candidate))
        .then(pl.lit("not a valid North American number (area code and exchange start 2-9)"))
        .when(intl.str.len_bytes() > _MAX_E164_DIGITS)
        .then(pl.lit("more than 15 digits"))
    )
    frame = frame.with_columns(phone_error=error)
    frame = frame.with_columns(
        needs_library=pl.col("phone_error").is_null() & candidate.is_null(),
        fast_e164=pl.when(pl.col("phone_error").is_null() & candidate.is_not_null()).then(
            pl.lit("+") + candidate
        ),
    )
    frame = _library_fallback(frame, region)
    return frame.select(
        phone_e164=pl.col("fast_e164"),
        phone_key=pl.col("fast_e164").str.slice(1).cast(pl.UInt64),
        phone_error=pl.col("phone_error"),
    )


def _library_fallback(frame: pl.DataFrame, region: str) -> pl.DataFrame:
    """Settle what the fast path cannot: other country codes, non-NANP national numbers."""
    pending = frame.filter(pl.col("needs_library"))
    if pending.height == 0:
        return frame
    lookups = pending.select("body", "intl_digits").unique()
    answers: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}
    for body, intl_digits in lookups.iter_rows():
        answers[(body, intl_digits)] = _parse_with_library(body, intl_digits, region)
    solved = pl.DataFrame(
        {
            "body": [key[0] for key in answers],
            "intl_digits": [key[1] for key in answers],
            "library_e164": [value[0] for value in answers.values()],
            "library_error": [value[1] for value in answers.values()],
        },
        schema={
            "body": pl.String,
            "intl_digits": pl.String,
            "library_e164": pl.String,
            "library_error": pl.String,
        },
    )
    frame = frame.join(
        solved, on=["body", "intl_digits"], how="left", nulls_equal=True, maintain_order="left"
    )
    return frame.with_columns(
        fast_e164=pl.coalesce("fast_e164", "library_e164"),
        phone_error=pl.coalesce("phone_error", "library_error"),
    )


def _parse_with_library(
    body: str, intl_digits: str | None, region: str
) -> tuple[str | None, str | None]:
    """Parse one distinct value with phonenumbers; return (e164, error)."""
    # A number written with "+" goes to phonenumbers as written, so that national trunk
    # prefixes such as the "(0)" of "+44 (0)20 7946 0958" are understood.
    if body.startswith("+"):
        text = body
    elif intl_digits is not None:
        text = "+" + intl_digits
    else:
        text = body
    phonenumbers = _library()
    try:
        number = phonenumbers.parse(text, None if intl_digits is not None else region)
    except phonenumbers.NumberParseException:
        return None, "not a phone number phonenumbers can parse"
    if not phonenumbers.is_valid_number(number):
        country_code = number.country_code or 0
        code = phonenumbers.region_code_for_country_code(country_code)
        return None, f"not a valid number for +{country_code} ({code})"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


# A run of a written number inside a longer cell: digits with the separators numbers
# are written with (no "/", ",", ";", letters or line breaks: those separate numbers),
# an optional leading "+" and a trailing extension.
_CANDIDATE = (
    r"(?i)(?:\+[ \u00a0]?)?"  # a leading +
    r"(?:[0-9]{1,3}[ .\-\u00a0\u2013]?)?"  # a country code or trunk prefix
    r"(?:\([0-9]{1,4}\)[ .\-\u00a0\u2013]?)?"  # an area code in parentheses
    # digit groups, each joined by at most one separator (" - ", tabs and double spaces
    # separate numbers, and so does a note's "(" after them)
    r"[0-9]+(?:[ .\-\u00a0\u2013]?[0-9]+)*"
    rf"(?:[ \t]*{_EXTENSION_MARKER}[ \t]*[0-9]{{1,7}})?"  # an extension
)
# fewer digits than this are not a phone number ("call after 5", "x12")
_CANDIDATE_DIGITS = 7
NO_PHONE_NUMBER = "no phone number"
_ENTRY_SCHEMA = {
    "index": pl.UInt32,
    "column": pl.UInt16,
    "position": pl.UInt16,
    "cell": pl.String,
    "phone_key": pl.UInt64,
    "phone_error": pl.String,
}


def find_numbers(cells: list[pl.Series], default_region: str = "US") -> pl.DataFrame:
    """Every number in a row's phone cells: one entry per number found.

    ``cells`` holds one Series per phone column (the rows aligned). Each entry has the
    row's ``index``, the ``column`` (its position in ``cells``), the number's
    ``position`` in its cell, the raw ``cell``, and ``phone_key``/``phone_error`` as
    `normalize_phones` gives them. A cell that is one number (the common case) is settled
    by the fast path; only the others are searched for several numbers or a number with
    a label (``Mobile: 212-555-0143``). A cell with text but no number is one invalid
    entry quoting it; an empty cell has none; a row with no number at all gets one
    invalid entry, ``no phone number``, with a null column. Entries are in row order,
    then column order, then order in the cell.
    """
    region = validate_region(default_region)
    rows = cells[0].len() if cells else 0
    frames = []
    for column, series in enumerate(cells):
        text = series.cast(pl.String)
        # a cell of spaces only is empty too: `_search_cells` drops it
        present = (text.str.len_bytes() > 0).fill_null(False)
        frames.append(
            pl.DataFrame(
                {
                    "index": present.arg_true().cast(pl.UInt32),
                    "column": pl.repeat(column, int(present.sum()), dtype=pl.UInt16, eager=True),
                    "cell": text.filter(present),
                }
            )
        )
    entries = pl.concat(frames) if frames else pl.DataFrame(schema=_ENTRY_SCHEMA)
    normalized = normalize_phones(entries.get_column("cell"), region, with_e164=False)
    entries = pl.concat([entries, normalized], how="horizontal").with_columns(
        position=pl.lit(0, pl.UInt16)
    )
    unsettled = entries.get_column("phone_key").is_null()
    reordered = len(cells) > 1
    if bool(unsettled.any()):
        searched = _search_cells(entries.filter(unsettled), region)
        entries = pl.concat([entries.filter(~unsettled), searched], how="diagonal_relaxed")
        reordered = True
    has_entry = np.zeros(rows, dtype=bool)
    has_entry[entries.get_column("index").to_numpy()] = True
    missing = np.flatnonzero(~has_entry)
    if missing.size:
        # the change list quotes the raw cell: spaces as they are (the first phone
        # column's cell that holds anything, else "")
        raw_cells = (
            pl.coalesce(
                [
                    series.cast(pl.String)
                    .gather(pl.Series(missing, dtype=pl.UInt32))
                    .replace("", None)
                    for series in cells
                ]
                + [pl.lit("", pl.String)]
            )
            if cells
            else None
        )
        entries = pl.concat(
            [
                entries,
                pl.DataFrame(
                    {
                        "index": pl.Series(missing, dtype=pl.UInt32),
                        "column": pl.repeat(None, missing.size, dtype=pl.UInt16, eager=True),
                        "position": pl.repeat(0, missing.size, dtype=pl.UInt16, eager=True),
                        "cell": pl.select(raw_cells).to_series()
                        if raw_cells is not None
                        else pl.repeat("", missing.size, dtype=pl.String, eager=True),
                        "phone_key": pl.repeat(None, missing.size, dtype=pl.UInt64, eager=True),
                        "phone_error": pl.repeat(
                            NO_PHONE_NUMBER, missing.size, dtype=pl.String, eager=True
                        ),
                    }
                ),
            ],
            how="diagonal_relaxed",
        )
        reordered = True
    entries = entries.select(list(_ENTRY_SCHEMA)).cast(_ENTRY_SCHEMA)  # type: ignore[arg-type]
    if reordered:
        # one integer key sorts faster than three columns
        # (index < 2**32, column and position < 2**16: any number of phone columns)
        order = (
            pl.col("index").cast(pl.UInt64) * (1 << 32)
            + pl.col("column").fill_null(0).cast(pl.UInt64) * (1 << 16)
            + pl.col("position").cast(pl.UInt64)
        )
        entries = entries.sort(order)
    return entries


def _split_run_together(found: pl.DataFrame, region: str) -> pl.DataFrame:
    """Candidates that are two numbers written with only a space between them
    (``415 555 0123 212 555 0143``): each is split where both halves are valid numbers.
    Only the few invalid candidates of many digits are tried, one split point at a time."""
    long_invalid = found.get_column("phone_key").is_null() & (
        found.get_column("candidate").str.count_matches("[0-9]") >= 2 * _CANDIDATE_DIGITS
    )
    if not bool(long_invalid.any()):
        return found
    attempts: list[tuple[int, str, str]] = []
    for row, text in zip(
        long_invalid.arg_true().to_list(),
        found.get_column("candidate").filter(long_invalid).to_list(),
        strict=True,
    ):
        for split in re.finditer(r"[ \u00a0]+", text):
            attempts.append((row, text[: split.start()], text[split.end() :]))
    if not attempts:
        return found
    halves = pl.Series([half for _row, *pair in attempts for half in pair], dtype=pl.String)
    keys = normalize_phones(halves, region, with_e164=False).get_column("phone_key").to_list()
    replacements: dict[int, tuple[int, int]] = {}
    for (row, _left, _right), left_key, right_key in zip(
        attempts, keys[0::2], keys[1::2], strict=True
    ):
        if row not in replacements and left_key is not None and right_key is not None:
            replacements[row] = (left_key, right_key)
    if not replacements:
        return found
    rows = found.with_row_index("_found")
    split_rows = rows.filter(pl.col("_found").is_in(list(replacements)))
    first = split_rows.with_columns(
        phone_key=pl.col("_found").replace_strict(
            {row: pair[0] for row, pair in replacements.items()}, return_dtype=pl.UInt64
        ),
        phone_error=pl.lit(None, pl.String),
    )
    second = first.with_columns(
        phone_key=pl.col("_found").replace_strict(
            {row: pair[1] for row, pair in replacements.items()}, return_dtype=pl.UInt64
        ),
        _found=pl.col("_found") + pl.lit(0.5),
    )
    kept = rows.filter(~pl.col("_found").is_in(list(replacements)))
    return (
        pl.concat(
            [kept.cast({"_found": pl.Float64}), first.cast({"_found": pl.Float64}), second],
            how="vertical_relaxed",
        )
        .sort("_found")
        .drop("_found")
    )


def _search_cells(unsettled: pl.DataFrame, region: str) -> pl.DataFrame:
    """The cells that are not one valid number, searched for the numbers in them."""
    unsettled = unsettled.filter(pl.col("cell").str.strip_chars() != "")
    found = (
        unsettled.select("index", "column", "cell", "phone_error")
        .with_columns(candidate=pl.col("cell").str.extract_all(_CANDIDATE))
        .explode("candidate")
        .with_columns(pl.col("candidate").str.replace_all("\u2013", "-", literal=True))
        .filter(pl.col("candidate").str.count_matches("[0-9]") >= _CANDIDATE_DIGITS)
    )
    if found.height:
        numbers = normalize_phones(found.get_column("candidate"), region, with_e164=False)
        found = _split_run_together(
            pl.concat([found.drop("phone_error"), numbers], how="horizontal"), region
        ).with_columns(
            # a number found inside a longer cell is not valid: the reason quotes the cell
            phone_error=pl.when(
                pl.col("phone_error").is_not_null()
                & (pl.col("candidate").str.strip_chars() != pl.col("cell").str.strip_chars())
            )
            .then(
                pl.col("phone_error")
                + pl.lit(" in '")
                + pl.col("cell").str.strip_chars()
                + pl.lit("'")
            )
            .otherwise(pl.col("phone_error"))
        )
    else:
        found = found.with_columns(phone_key=pl.lit(None, pl.UInt64))
    found = found.with_columns(
        position=pl.int_range(pl.len()).over("index", "column").cast(pl.UInt16)
    )
    # a cell in which nothing like a number was found stays one invalid entry
    searched_cells = found.select("index", "column").unique()
    empty_handed = unsettled.join(searched_cells, on=["index", "column"], how="anti").with_columns(
        position=pl.lit(0, pl.UInt16),
        phone_error=pl.when(pl.col("phone_error") == _LETTERS)
        .then(pl.lit("no phone number in '") + pl.col("cell").str.strip_chars() + pl.lit("'"))
        .otherwise(pl.col("phone_error")),
    )
    return pl.concat([found.drop("candidate"), empty_handed], how="diagonal_relaxed")
