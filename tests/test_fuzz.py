"""Fuzzing the parsers with hypothesis: nothing but our own errors may come out."""

from __future__ import annotations

import contextlib

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconcile._csvfields import header_names, read_columns
from reconcile._csvscan import scan_csv
from reconcile._encodings import detect_encoding
from reconcile.api_pages import parse_metadata_page, parse_records_page
from reconcile.consent import parse_consent, parse_utc_instants
from reconcile.errors import ChangeFileError, ReconcileError
from reconcile.phones import normalize_phones

ANY_TEXT = st.text(max_size=40)
CSV_BYTES = st.binary(max_size=300) | st.lists(
    st.sampled_from(
        [
            b",",
            b";",
            b'"',
            b"\n",
            b"\r\n",
            b"\r",
            b"a",
            b"1",
            b" ",
            b"\t",
            b"|",
            b"\xe9",
            b"\xc3\xa9",
        ]
    ),
    max_size=80,
).map(b"".join)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.none() | ANY_TEXT, max_size=20))
def test_phone_normalizer_never_raises(values):
    result = normalize_phones(pl.Series(values, dtype=pl.String))
    assert result.height == len(values)
    valid = result.filter(pl.col("phone_error").is_null())
    assert valid.get_column("phone_e164").str.contains(r"^\+[0-9]{7,15}$").all()


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.none() | ANY_TEXT, max_size=20))
def test_consent_parser_never_raises(values):
    result = parse_consent(pl.Series(values, dtype=pl.String), "America/New_York")
    assert result.height == len(values)
    assert set(result.get_column("consent_status").to_list()) <= {
        "parsed",
        "missing",
        "unparseable",
    }
    assert parse_utc_instants(pl.Series(values, dtype=pl.String)).len() == len(values)


@settings(max_examples=200, deadline=None)
@given(body=CSV_BYTES)
# CR-only lines with an LF inside a field: polars' reader must not answer for them
@example(body=b"\x01\r\x01\n\r\x01")
def test_csv_reader_raises_only_our_errors(body):
    try:
        encoding = detect_encoding("f.csv", body, has_bom=False)
        scan = scan_csv("f.csv", body)
        names = header_names(scan, encoding)
        if scan.row_count:
            every = list(range(len(names)))
            columns = read_columns(scan, every, encoding, 0, scan.row_count)
            assert all(column.len() == scan.row_count for column in columns)
            # read in two chunks, the same values come back
            half = scan.row_count // 2
            if half:
                parts = zip(
                    read_columns(scan, every, encoding, 0, half),
                    read_columns(scan, every, encoding, half, scan.row_count),
                    strict=True,
                )
                for whole, (head, tail) in zip(columns, parts, strict=True):
                    assert head.append(tail).to_list() == whole.to_list()
    except ReconcileError:
        pass


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(ANY_TEXT, children, max_size=3)
    ),
    max_leaves=8,
)
RECORD = st.fixed_dictionaries(
    {},
    optional={
        "destination": st.sampled_from(["14155550101", "+14155550101", "", "abc"]) | JSON_VALUE,
        "date": st.sampled_from(["2024-03-05T11:00:00.000+0000", "2024-03-05", "bad"]) | JSON_VALUE,
        "type": st.sampled_from(["DEACTIVATION", "SUSPENSION", "PORTED"]) | JSON_VALUE,
        "newDestination": st.sampled_from(["14155550999", ""]) | JSON_VALUE,
        "reportId": ANY_TEXT | JSON_VALUE,
        "dateFrom": st.sampled_from(["2024-03-01", "2024-03-01T00:00:00Z"]) | JSON_VALUE,
        "dateTo": st.sampled_from(["2024-03-02"]) | JSON_VALUE,
        "networkId": st.integers() | JSON_VALUE,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORD | JSON_VALUE, max_size=5))
def test_api_page_parsers_raise_only_change_file_errors(records):
    for parse in (
        lambda: parse_records_page("page", records, "r1"),
        lambda: parse_metadata_page("page", records),
    ):
        with contextlib.suppress(ChangeFileError):
            parse()
