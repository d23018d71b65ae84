"""A server that lies, echoes, bombs or never ends (SPEC "Fetching"), on 127.0.0.1.

Every test plants the same key; none of it may reach an output, a file or an error.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import tracemalloc
import zlib
from pathlib import Path

import httpx
import pytest

import reconcile._client as _client
from reconcile.api import ApiKey, InfobipClient, check_base_url
from reconcile.errors import ApiError, AuthError, MalformedResponseError, OptionError
from reconcile.ledger import Ledger
from reconcile.sync import fetch
from tests.fake_infobip import FakeInfobip, any_request, make_reports, metadata_request, records_of

KEY = "s3cr3t-KEY-planted-1234567890"


@pytest.fixture(autouse=True)
def _the_key_is_found_nowhere(tmp_path, capsys):
    """After every test: no file it wrote and nothing it printed holds the planted key."""
    yield
    captured = capsys.readouterr()
    _nowhere(tmp_path, texts=(captured.out, captured.err))


@pytest.fixture
def server():
    with FakeInfobip(make_reports(), key=KEY) as fake:
        yield fake


def _fetch(server: FakeInfobip, data_dir: Path, key: str = KEY):
    ledger = Ledger(data_dir)
    with httpx.Client(timeout=2.0) as http, ledger.locked():
        client = InfobipClient(
            http, ApiKey(key), base_url=server.base_url, clock=server.clock, rate=1000.0
        )
        return fetch(ledger, client, now=server.clock.now(), page_size=1000)


def _nowhere(*places: Path, texts: tuple[str, ...] = ()) -> None:
    for text in texts:
        assert KEY not in text
    for place in places:
        for path in place.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path


def test_a_key_echoed_by_the_server_is_redacted(server, tmp_path, run_cli, monkeypatch):
    server.fail(any_request, "echo", status=401, times=None)
    with pytest.raises(AuthError) as caught:
        _fetch(server, tmp_path / "data")
    assert "Invalid login details: ***" in str(caught.value)
    monkeypatch.setenv("INFOBIP_API_KEY", KEY)
    monkeypatch.setenv("INFOBIP_BASE_URL", server.base_url)
    result = run_cli("fetch", "--data-dir", tmp_path / "data")
    assert result.exit_code == 1 and "Invalid login details: ***" in result.stderr
    # under run, the attention line is stored in the run history too
    (tmp_path / "contacts.csv").write_text("Phone,Opt-In Date\n4155550101,2024-03-09\n")
    (tmp_path / "reconcile.toml").write_text(
        f'[infobip]\nbase_url = "{server.base_url}"\n[[inputs]]\npath = "contacts.csv"\n'
    )
    ran = run_cli("run", "--config", tmp_path / "reconcile.toml", "--data-dir", tmp_path / "data")
    assert ran.exit_code == 3
    _nowhere(tmp_path, texts=(str(caught.value), result.stderr, result.stdout, ran.stdout))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.example.com", "uses plain http: the key would travel in clear text"),
        ("https://user:pw@api.example.com", "must not hold a user or password"),
        ("https://api.example.com/?x=1", "must not hold a query (?) or a fragment (#)"),
        ("https://api.example.com/#top", "must not hold a query (?) or a fragment (#)"),
        ("http://[::1", "is not a URL"),
        ("https://", "must be https://HOST"),
        ("ftp://api.example.com", "must be https://HOST"),
    ],
)
def test_base_urls_that_would_leak_the_key_or_go_astray(url, message):
    with pytest.raises(
        OptionError, match=message.replace("?", r"\?").replace("(", r"\(").replace(")", r"\)")
    ):
        check_base_url(url)
    assert check_base_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_base_url("https://xyz.api.infobip.com") == "https://xyz.api.infobip.com"


@pytest.mark.parametrize("key", ["abc\ndef", "clé-non-ascii", "tab\tkey"])
def test_a_key_an_http_header_cannot_carry_is_refused_at_once(key):
    with pytest.raises(OptionError, match="holds a character an HTTP header cannot carry"):
        ApiKey(key)


def test_a_gzip_bomb_is_refused_after_64_mib_of_what_is_read(server, tmp_path, monkeypatch):
    monkeypatch.setattr(_client, "MAX_PAGE_BYTES", 1 << 20)  # 1 MiB in the test, 64 MiB for real
    bomb = gzip.compress(b" " * (8 << 20))
    server.fail(
        metadata_request, "raw", status=200, body=bomb, headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(
        MalformedResponseError, match=re.escape("larger than 1 MiB (after decompression); refused")
    ):
        _fetch(server, tmp_path / "data")
    assert len(server.requests_to("/number")) == 1  # refused outright, not retried


def test_gzip_inside_gzip_is_bounded_across_every_layer(server, tmp_path, monkeypatch, run_cli):
    """`Content-Encoding: gzip, gzip` with 64 MiB inside: refused at the bound, with
    memory near the bound (httpx alone decodes each layer whole: 64 MiB at once)."""
    monkeypatch.setenv("INFOBIP_API_KEY", KEY)
    monkeypatch.setenv("INFOBIP_BASE_URL", server.base_url)
    monkeypatch.setattr(_client, "MAX_PAGE_BYTES", 1 << 20)
    bomb = gzip.compress(gzip.compress(b" " * (64 << 20), compresslevel=9), compresslevel=9)
    assert len(bomb) < 1 << 20
    server.fail(
        metadata_request,
        "raw",
        status=200,
        body=bomb,
        headers={"Content-Encoding": "gzip, gzip"},
        times=None,
    )
    tracemalloc.start()
    try:
        result = run_cli("fetch", "--data-dir", tmp_path / "data")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 1
    assert "the answer is larger than 1 MiB (after decompression); refused" in result.stderr
    assert peak < 16 << 20, peak
    assert len(server.requests_to("/number")) == 1  # refused outright, not retried


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # the zlib format, as the RFC says
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some send
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
        ("identity", lambda data: data),
    ],
)
def test_every_encoding_asked_for_is_read(server, tmp_path, encoding, encode):
    server.fail(
        any_request, "encode", encode=encode, headers={"Content-Encoding": encoding}, times=None
    )
    result = _fetch(server, tmp_path / "data")
    assert result.complete
    assert all("gzip" in headers.get("accept-encoding", "") for headers in server.request_headers)


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("br", b"\x0b\x02\x80{}\x03", "the answer is encoded as 'br', which was not asked for"),
        ("gzip", b"\x1f\x8b not gzip at all", "the answer's gzip encoding is damaged; refused"),
    ],
)
def test_an_encoding_not_asked_for_or_damaged_is_one_line(
    server, tmp_path, run_cli, monkeypatch, encoding, body, message
):
    monkeypatch.setenv("INFOBIP_API_KEY", KEY)
    monkeypatch.setenv("INFOBIP_BASE_URL", server.base_url)
    server.fail(
        metadata_request,
        "raw",
        status=200,
        body=body,
        headers={"Content-Encoding": encoding},
        times=None,
    )
    result = run_cli("fetch", "--data-dir", tmp_path / "data")
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_small_answer_of_millions_of_objects_is_refused_before_it_is_parsed(
    server, tmp_path, monkeypatch
):
    """64 KiB of gzip held 63 MiB of "{}," and parsed into 6 GB of Python objects (found
    by the adversarial review); the objects and lists are counted first."""
    monkeypatch.setattr(_client, "MAX_JSON_CONTAINERS", 1000)
    body = b'{"results": [' + b"{}," * 5000 + b'{}], "paging": {}}'
    server.fail(
        metadata_request,
        "raw",
        status=200,
        body=gzip.compress(body),
        headers={"Content-Encoding": "gzip"},
        times=None,
    )
    with pytest.raises(
        MalformedResponseError, match="the answer holds more than 1,000 JSON objects and lists"
    ):
        _fetch(server, tmp_path / "data")
    assert len(server.requests_to("/number")) == 1  # refused outright, not retried


def test_a_gzip_answer_of_several_members_is_read_whole(server, tmp_path):
    """RFC 1952 allows several members one after another; each is read."""

    def two_members(data: bytes) -> bytes:
        return gzip.compress(data[:7]) + gzip.compress(data[7:])

    server.fail(
        any_request, "encode", encode=two_members, headers={"Content-Encoding": "gzip"}, times=None
    )
    assert _fetch(server, tmp_path / "data").complete


def test_deeply_nested_json_is_refused(server, tmp_path):
    server.fail(metadata_request, "raw", status=200, body=b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(MalformedResponseError, match="nests deeper than 64 levels"):
        _fetch(server, tmp_path / "data")


def test_a_mock_that_answers_its_example_for_every_page_keeps_what_it_gave(server, tmp_path):
    target = next(report_id for report_id, r in server.reports.items() if len(r["records"]) > 2)
    server.fail(records_of(target), "same_page", times=None)
    result = _fetch(server, tmp_path / "data")
    [(report_id, problem)] = result.incomplete
    assert report_id == target and "page 1 was asked for, page 0 came" in problem
    entry = Ledger(tmp_path / "data").entries()[target]
    assert entry.status == "incomplete" and entry.records == 2
    assert (
        sum(1 for _ in server.requests_to(f"/number-activation-state/1/network-reports/{target}"))
        == 2
    )
    assert any("kept incomplete" in warning for warning in result.warnings())


def test_endless_pages_stop_at_what_the_totals_allow(server, tmp_path):
    target = next(report_id for report_id, r in server.reports.items() if len(r["records"]) > 2)
    records = server.reports[target]["records"]
    endless = {
        "results": records[:10] if len(records) >= 10 else records,
        "paging": {"page": 0, "size": 10, "totalPages": 1_000_000_000, "totalResults": 21},
    }
    pages = []

    def answer(path, params):
        return path.endswith(f"{target}/records")

    for page in range(5):
        # records of their own on every page (a repeat is refused earlier, on its own)
        distinct = [
            dict(record, destination=str(int(record["destination"]) + page))
            for record in endless["results"]
        ]
        body = dict(endless, results=distinct, paging=dict(endless["paging"], page=page))
        pages.append(
            server.fail(
                lambda p, q, n=page: answer(p, q) and q.get("page") == str(n),
                "raw",
                status=200,
                body=json.dumps(body).encode(),
            )
        )
    result = _fetch(server, tmp_path / "data")
    [(report_id, problem)] = result.incomplete
    assert report_id == target and "more than 4 pages for 21 results of 10" in problem
    assert len(server.requests_to(f"/number-activation-state/1/network-reports/{target}")) == 4


def test_one_report_failing_forever_does_not_stop_the_others(server, tmp_path):
    target = next(iter(server.reports))
    server.fail(records_of(target), "status", status=500, times=None)
    result = _fetch(server, tmp_path / "data")
    assert [report_id for report_id, _message in result.failed] == [target]
    assert len(result.fetched) == len(server.reports) - 1
    assert result.expired_unfetched is not None  # the expiry warnings are still computed


def test_retry_after_nan_waits_by_the_backoff(server, tmp_path):
    server.fail(metadata_request, "status", status=429, headers={"Retry-After": "nan"}, times=2)
    _fetch(server, tmp_path / "data")
    waits = server.clock.sleeps
    assert waits and all(wait > 0 for wait in waits[:2])


def test_a_tls_failure_is_said_at_once(server, tmp_path):
    ledger = Ledger(tmp_path / "data")
    https_url = server.base_url.replace("http://", "https://")  # a plain-HTTP server
    with httpx.Client(timeout=2.0) as http, ledger.locked():
        client = InfobipClient(
            http, ApiKey(KEY), base_url=https_url, clock=server.clock, rate=1000.0
        )
        with pytest.raises(ApiError, match=re.escape("the TLS handshake with 127.0.0.1 failed")):
            fetch(ledger, client, now=server.clock.now(), page_size=1000)
    assert server.clock.sleeps == []  # no retry


@pytest.mark.parametrize(
    ("report_id", "name"), [("../../etc", "Verizon"), ("good-id\nfetched report x", "Verizon")]
)
def test_report_ids_must_be_plain_tokens(server, tmp_path, report_id, name):
    first = next(iter(server.reports))
    server.reports[first]["metadata"]["reportId"] = report_id
    with pytest.raises(MalformedResponseError, match="is not a plain token"):
        _fetch(server, tmp_path / "data")


def test_control_characters_in_operator_names_are_escaped(server, tmp_path):
    first = next(iter(server.reports))
    server.reports[first]["metadata"]["networkName"] = "Evil\x1b[31m\x07Net"
    _fetch(server, tmp_path / "data")
    assert Ledger(tmp_path / "data").entries()[first].network_name == "Evil\ufffd[31m\ufffdNet"


@pytest.mark.parametrize("form", ["json-escaped", "percent", "base64"])
def test_an_echoed_key_is_redacted_in_every_form(server, tmp_path, form):
    from urllib.parse import quote

    escaped = {
        "json-escaped": "".join(f"\\u{ord(c):04x}" for c in server.key),
        "percent": quote(server.key, safe=""),
        "base64": base64.b64encode(server.key.encode()).decode(),
    }[form]
    listed = [dict(report["metadata"]) for report in server.reports.values()]
    body = json.dumps(
        {
            "results": listed,
            "paging": {"page": 0, "size": 10, "totalPages": 1, "totalResults": len(listed)},
        }
    )
    body = body.replace('"Verizon Wireless"', f'"Verizon {escaped}"')
    server.fail(
        lambda p, q: p.endswith("network-reports"),
        "raw",
        times=None,
        status=200,
        body=body.encode(),
    )
    _fetch(server, tmp_path / "data")
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert server.key.encode() not in stored and escaped.encode() not in stored
    names = {entry.network_name for entry in Ledger(tmp_path / "data").entries().values()}
    assert "Verizon ***" in names
