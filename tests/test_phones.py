"""Phone normalization: every format SPEC lists, and what must be invalid."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.errors import OptionError
from reconcile.phones import normalize_phones

VALID = [
    ("+1 (415) 555-0123", "+14155550123"),
    ("415.555.0123", "+14155550123"),
    ("4155550123", "+14155550123"),
    ("1-415-555-0123", "+14155550123"),
    ("(415) 555-0123 x12", "+14155550123"),
    ("(415) 555-0123 ext. 12", "+14155550123"),
    ("(415) 555-0123 #12", "+14155550123"),
    ("415-555-0123 ext. 45", "+14155550123"),
    ("415-555-0123x7", "+14155550123"),
    ("tel:+14155550123", "+14155550123"),
    ("TEL:+1-415-555-0123", "+14155550123"),
    ("0014155550123", "+14155550123"),
    ("011 1 415 555 0123", "+14155550123"),
    ("011 44 20 7946 0958", "+442079460958"),
    ("+44 20 7946 0958", "+442079460958"),
    ("0044 20 7946 0958", "+442079460958"),
    ("+49 30 901820", "+4930901820"),
    ("+44 (0)20 7946 0958", "+442079460958"),
    ("4155550123.0", "+14155550123"),  # an Excel numeric cell read as a float
    ("14155550123", "+14155550123"),
    ("  415 555 0123  ", "+14155550123"),
    ("\u00a0415\u00a0555\u00a00123", "+14155550123"),  # non-breaking spaces from Excel
    ("+1 415 555 0123", "+14155550123"),
    ("415/555-0123", "+14155550123"),
]

INVALID = [
    (None, "empty phone cell"),
    ("", "empty phone cell"),
    ("   ", "empty phone cell"),
    ("4.15555E+09", "scientific notation"),
    ("4.15555e9", "scientific notation"),
    ("(123) 555-0123", "North American"),  # area code starts with 1
    ("(023) 555-0123", "North American"),  # area code starts with 0
    ("(415) 155-0123", "North American"),  # exchange starts with 1
    ("+1 415 055 0123", "North American"),
    ("+44 20 7946 095", "not a valid number for +44"),
    ("415555012345", "too many digits"),  # 12 digits, no international prefix
    ("5550123", "10 digits"),
    ("1-800-FLOWERS", "letters"),
    ("N/A", "letters"),
    ("415-555-0123 call after 5", "letters"),
    ("415+555+0123", "letters"),
    ("+", "no digits"),
    ("011", "nothing after"),
    ("()", "no digits"),
    ("+999 1234", "phonenumbers"),
    ("+1234567890123456", "North American"),
    ("+4412345678901234567", "more than 15"),
    ("４１５５５５０１２３", "letters"),  # full-width digits are not silently converted
]


@pytest.mark.parametrize(("raw", "e164"), VALID)
def test_valid_formats(raw, e164):
    result = normalize_phones(pl.Series([raw], dtype=pl.String)).row(0, named=True)
    assert result["phone_error"] is None, result
    assert result["phone_e164"] == e164
    assert result["phone_key"] == int(e164[1:])


@pytest.mark.parametrize(("raw", "reason"), INVALID)
def test_invalid_formats(raw, reason):
    result = normalize_phones(pl.Series([raw], dtype=pl.String)).row(0, named=True)
    assert result["phone_e164"] is None
    assert result["phone_key"] is None
    assert reason in result["phone_error"]


def test_numeric_excel_cells_do_not_grow_a_digit():
    # int and float cells rendered to text by the XLSX reader, or by pandas in a CSV
    cells = pl.concat(
        [
            pl.Series([4155550123]).cast(pl.String),
            pl.Series([4155550123.0, 14155550123.0]).cast(pl.String),
        ]
    )
    result = normalize_phones(cells)
    assert result.get_column("phone_e164").to_list() == ["+14155550123"] * 3


def test_rows_keep_their_order_when_the_library_path_is_mixed_in():
    raws = ["+44 20 7946 0958", "4155550123", "+49 30 901820", "2125550147", "bad"] * 40
    result = normalize_phones(pl.Series(raws))
    expected = ["+442079460958", "+14155550123", "+4930901820", "+12125550147", None] * 40
    assert result.get_column("phone_e164").to_list() == expected


def test_default_region_for_national_numbers():
    result = normalize_phones(pl.Series(["020 7946 0958", "4155550123"]), "GB")
    assert result.get_column("phone_e164").to_list() == ["+442079460958", None]


def test_canadian_region_uses_the_nanp_fast_path():
    result = normalize_phones(pl.Series(["(416) 555-0123"]), "CA")
    assert result.get_column("phone_e164").to_list() == ["+14165550123"]


def test_unknown_region_is_an_option_error():
    with pytest.raises(OptionError, match="--default-region 'XX'"):
        normalize_phones(pl.Series(["4155550123"]), "XX")


def test_the_north_american_regions_are_the_librarys():
    import phonenumbers

    from reconcile.phones import _NANP_REGIONS

    assert frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]) == _NANP_REGIONS


def test_a_north_american_run_does_not_load_phonenumbers():
    import subprocess
    import sys

    code = (
        "import sys, polars as pl\n"
        "from reconcile.phones import normalize_phones, validate_region\n"
        "validate_region('ca')\n"
        "normalize_phones(pl.Series(['(415) 555-0101', '', 'call me']), 'US')\n"
        "assert 'phonenumbers' not in sys.modules\n"
        "normalize_phones(pl.Series(['+44 20 7946 0958']), 'US')\n"
        "assert 'phonenumbers' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_e164_text_is_the_key_s_own_digits():
    import polars as pl

    from reconcile.phones import add_e164, normalize_phones

    raw = pl.Series(
        [
            "(415) 555-0101",
            "+1 415 555 0102 x7",
            "+44 20 7946 0958",
            "011 33 1 42 68 53 00",
            "+49 30 901820",
            "",
            "call me",
            "4.15555E+09",
            *(raw for raw, _e164 in VALID),
        ]
    )
    with_text = normalize_phones(raw, "US")
    without = normalize_phones(raw, "US", with_e164=False)
    assert without.columns == ["phone_key", "phone_error"]
    assert without.equals(with_text.drop("phone_e164"))
    made = add_e164(without).get_column("phone_e164")
    assert made.to_list() == with_text.get_column("phone_e164").to_list()
    assert with_text.get_column("phone_e164").null_count() == 3  # the three invalid cells
    general = normalize_phones(raw, "GB", with_e164=False)  # the general path alone
    assert general.columns == ["phone_key", "phone_error"]


def test_011_is_an_international_prefix_only_in_north_america():
    gb = normalize_phones(pl.Series(["0113 496 0000", "011 44 20 7946 0958", "447911123456"]), "GB")
    assert gb["phone_e164"].to_list() == ["+441134960000", None, "+447911123456"]
    us = normalize_phones(pl.Series(["011 44 20 7946 0958"]), "US")
    assert us["phone_e164"].to_list() == ["+442079460958"]


_SEPARATOR = st.sampled_from(["", " ", "-", ".", "/", "  ", "\t", "\n", "\u00a0"])


@st.composite
def _nanp_like(draw: st.DrawFn) -> str:
    """A cell in or near the fast path's shapes: prefixes, separators of every kind,
    extensions with whitespace (line breaks too) around their marker."""
    prefix = draw(st.sampled_from(["", "1", "+1", "+1 ", "001 ", "011 1 ", "tel:", "TEL: +1"]))
    area = draw(st.sampled_from(["415", "212", "(415)", "(212) ", "115", "999"]))
    exchange = draw(st.sampled_from(["555", "200", "155"]))
    line = draw(st.sampled_from(["0123", "9999", "01234"]))
    extension = draw(
        st.sampled_from(
            ["", " x12", "x1", " ext. 45", "\next 7", " #99", ";ext=12", " EXT 1234567"]
        )
    )
    tail = draw(st.sampled_from(["", " ", "\n", "\t"]))
    parts = [prefix, area, draw(_SEPARATOR), exchange, draw(_SEPARATOR), line, extension, tail]
    return draw(_SEPARATOR).join(parts[:2]) + "".join(parts[2:])


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(_nanp_like(), min_size=1, max_size=20))
def test_the_fast_path_answers_as_the_general_rules_do(cells):
    from reconcile.phones import _normalize_general

    raw = pl.Series(cells, dtype=pl.String)
    fast = normalize_phones(raw, "US", with_e164=False)
    general = _normalize_general(raw, "US").select("phone_key", "phone_error")
    assert fast.get_column("phone_key").to_list() == general.get_column("phone_key").to_list()
