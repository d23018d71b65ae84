"""Twilio and Vonage day lists fetched from fake servers on 127.0.0.1: the signed URL on
another host (without the credentials), a day not ready (30114), refused credentials, a
zip bomb, junk lines, retries on the injected clock, and which days are asked for."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from reconcile import _xlsx_checks
from reconcile._http import ApiKey
from reconcile.day_sources import DayListClient
from reconcile.errors import AuthError
from reconcile.ledger import Ledger
from reconcile.lifecycle import ReportEntry, ReportStatus
from reconcile.settings import day_list_settings
from reconcile.sync_sources import days_to_fetch, fetch_day_lists
from tests.fake_day_lists import FakeFiles, FakeTwilio, FakeVonage, Override, zip_bomb
from tests.fake_infobip import FakeClock

NOW = datetime(2024, 4, 2, 10, 0, tzinfo=UTC)
YESTERDAY = date(2024, 4, 1)
TWILIO_LISTS = {
    date(2024, 3, 30): ["+14155550123", "+12125550143"],
    date(2024, 3, 31): ["14155550177"],
    YESTERDAY: ["+13105550100", "3105550101"],
}


@pytest.fixture
def files():
    with FakeFiles() as server:
        yield server


@pytest.fixture
def twilio(files):
    with FakeTwilio(files, TWILIO_LISTS) as server:
        yield server


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(server, source: str, clock: FakeClock | None = None, **settings: object):
    options = day_list_settings(source, base_url=server.base_url, rate=1000.0, **settings)
    user, secret = (server.sid, server.token) if source == "twilio" else (server.key, server.secret)
    http = httpx.Client(timeout=5)
    _OPEN.append(http)
    return DayListClient(http, options, user, ApiKey(secret), clock=clock or FakeClock())


def _fetch(tmp_path: Path, client: DayListClient, since: str | None = "2024-03-30"):
    ledger = Ledger(tmp_path)
    with ledger.locked(0):
        result = fetch_day_lists(ledger, client, now=NOW, since=since)
    return ledger, result


def test_twilio_days_land_in_the_ledger_as_day_only_deactivations(tmp_path, twilio, files):
    ledger, result = _fetch(tmp_path, _client(twilio, "twilio"))
    assert result.complete
    assert [report for report, _records, _pages in result.fetched] == [
        "twilio-2024-03-30",
        "twilio-2024-03-31",
        "twilio-2024-04-01",
    ]
    entries = ledger.entries()
    day = entries["twilio-2024-03-31"]
    assert (day.status, day.network_name, day.source) == (ReportStatus.COMPLETE, "Twilio", "twilio")
    assert (day.date_from, day.date_to) == (
        datetime(2024, 3, 31, tzinfo=UTC),
        datetime(2024, 4, 1, tzinfo=UTC),
    )
    events = ledger.history().events.sort("number")
    assert events.get_column("number").to_list() == [
        12125550143,
        13105550100,
        13105550101,
        14155550123,
        14155550177,
    ]
    assert events.get_column("day_only").to_list() == [True] * 5
    assert set(events.get_column("network_name")) == {"Twilio"}
    coverage = ledger.history().coverage()
    assert (coverage.start, coverage.end) == (
        datetime(2024, 3, 30, tzinfo=UTC),
        datetime(2024, 4, 2, tzinfo=UTC),
    )


def test_the_signed_url_is_fetched_without_the_credentials(tmp_path, twilio, files):
    _fetch(tmp_path, _client(twilio, "twilio"))
    assert files.requests, "the list host was never asked"
    for path, _params, headers in files.requests:
        assert "authorization" not in headers
        assert twilio.token not in path and twilio.token not in str(headers)
    assert all(
        headers.get("authorization", "").startswith("Basic ")
        for _path, _params, headers in twilio.requests
    )


def test_a_day_not_ready_stops_the_fetch_there_and_the_next_fetch_resumes(tmp_path, files):
    with FakeTwilio(files, TWILIO_LISTS, not_ready_from=YESTERDAY) as server:
        ledger, result = _fetch(tmp_path, _client(server, "twilio"))
        assert result.complete  # not a failure: the day is fetched next time
        assert [report for report, _r, _p in result.fetched] == [
            "twilio-2024-03-30",
            "twilio-2024-03-31",
        ]
        assert "not processed yet (error 30114)" in " ".join(result.warnings())
        server.not_ready_from = None
        _ledger, again = _fetch(tmp_path, _client(server, "twilio"))
    # from the day after the latest held, not --since again
    assert [report for report, _r, _p in again.fetched] == ["twilio-2024-04-01"]
    assert "twilio-2024-04-01" in ledger.entries()


def test_refused_credentials_stop_with_a_line_that_names_them_and_not_the_secret(tmp_path, twilio):
    client = _client(twilio, "twilio")
    twilio.token = "rotated"
    with pytest.raises(AuthError) as refused:
        _fetch(tmp_path, client)
    message = str(refused.value)
    assert "Twilio refused the credentials (HTTP 401" in message
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in message
    assert "tw-SeCrEt-token-77" not in message


def test_a_secret_echoed_by_the_server_is_redacted(tmp_path, twilio):
    client = _client(twilio, "twilio")
    echoed = f'{{"code": 20500, "message": "bad request for tw-SeCrEt-token-77 {client._authorization}"}}'
    twilio.overrides["2024-03-30"] = Override(400, echoed.encode())
    _ledger, result = _fetch(tmp_path, client)
    text = " ".join(result.warnings())
    assert "HTTP 400" in text and "***" in text
    assert "tw-SeCrEt-token-77" not in text and client._authorization not in text


def test_server_errors_are_retried_on_the_injected_clock(tmp_path, twilio, files):
    clock = FakeClock(start=NOW)
    twilio.overrides["2024-03-31"] = Override(503, b"{}", times=2)
    files.overrides["/lists/2024-04-01.txt"] = Override(500, b"oops", times=1)
    _ledger, result = _fetch(tmp_path, _client(twilio, "twilio", clock))
    assert result.complete and len(result.fetched) == 3
    assert len(clock.sleeps) == 3 and all(wait > 0 for wait in clock.sleeps)


def test_an_expired_signed_url_asks_twilio_for_a_fresh_one(tmp_path, twilio, files):
    files.overrides["/lists/2024-03-30.txt"] = Override(403, b"<Error>expired</Error>", times=1)
    _ledger, result = _fetch(tmp_path, _client(twilio, "twilio"))
    assert result.complete
    asked = [params.get("Date") for _path, params, _headers in twilio.requests]
    assert asked.count("2024-03-30") == 2


def test_a_redirect_that_is_not_https_is_refused_and_the_day_is_a_gap(tmp_path, twilio, files):
    twilio.redirect_for = lambda day: (
        f"http://files.example.com/lists/{day}.txt?Signature=x"
        if day == "2024-03-31"
        else f"{files.base_url}/lists/{day}.txt?Signature=x"
    )
    ledger, result = _fetch(tmp_path, _client(twilio, "twilio"))
    assert not result.complete
    assert [report for report, _message in result.failed] == ["twilio-2024-03-31"]
    assert "not https://" in result.failed[0][1]
    assert ledger.entries()["twilio-2024-03-31"].status == ReportStatus.LISTED
    coverage = ledger.history().coverage()
    assert [(start.date(), end.date()) for start, end in coverage.operators[0].gaps] == [
        (date(2024, 3, 31), date(2024, 4, 1))
    ]
    # the next fetch asks for the failed day again
    twilio.redirect_for = None
    _ledger, again = _fetch(tmp_path, _client(twilio, "twilio"))
    assert [report for report, _r, _p in again.fetched] == ["twilio-2024-03-31"]
    assert ledger.entries()["twilio-2024-03-31"].status == ReportStatus.COMPLETE


def test_junk_lines_are_counted_and_a_header_is_not(tmp_path, files):
    lists = {YESTERDAY: ["phone_number", "+14155550123", "call me", "", "n/a", "4155550199"]}
    with FakeTwilio(files, lists) as server:
        ledger, result = _fetch(tmp_path, _client(server, "twilio"), since="2024-04-01")
    assert result.fetched == [("twilio-2024-04-01", 2, 1)]
    assert any(
        "2 line(s) are not a phone number" in line and "'call me'" in line
        for line in result.warnings()
    )
    assert ledger.history().events.height == 2


def test_vonage_zip_lists_say_they_may_be_ports(tmp_path):
    lists = {date(2024, 3, 31): ["14155550123"], YESTERDAY: ["12125550143", "+13105550100"]}
    with FakeVonage(lists) as server:
        ledger, result = _fetch(tmp_path, _client(server, "vonage"), since="2024-03-31")
    assert result.complete
    assert [report for report, _r, _p in result.fetched] == [
        "vonage-2024-03-31",
        "vonage-2024-04-01",
    ]
    events = ledger.history().events
    assert set(events.get_column("detail")) == {"may be a port"}
    assert set(events.get_column("network_name")) == {"Vonage"}


def test_a_vonage_zip_bomb_is_refused_and_the_other_days_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(_xlsx_checks, "_BOMB_FROM", 8 << 20)  # 256 MiB for real
    lists = {date(2024, 3, 31): ["14155550123"], YESTERDAY: ["12125550143"]}
    with FakeVonage(lists) as server:
        server.overrides["2024-03-31"] = Override(200, zip_bomb(40), content_type="application/zip")
        ledger, result = _fetch(tmp_path, _client(server, "vonage"), since="2024-03-31")
    assert [report for report, _message in result.failed] == ["vonage-2024-03-31"]
    assert "zip bomb" in result.failed[0][1]
    assert [report for report, _r, _p in result.fetched] == ["vonage-2024-04-01"]
    assert ledger.history().events.get_column("number").to_list() == [12125550143]


def test_vonage_refused_credentials(tmp_path):
    with FakeVonage({}) as server:
        client = _client(server, "vonage")
        server.secret = "other"
        with pytest.raises(AuthError, match="VONAGE_API_KEY and VONAGE_API_SECRET"):
            _fetch(tmp_path, client)


def _held(report_id: str, day: date, status: ReportStatus) -> ReportEntry:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return ReportEntry(report_id, status, date_from=start, date_to=start + timedelta(days=1))


def test_days_asked_for_follow_the_windows_and_what_is_held():
    now = datetime(2024, 4, 2, 1, 30, tzinfo=UTC)
    # nothing held, no --since: the whole window up to the last ready day
    twilio = days_to_fetch({}, "twilio", 30, now)
    assert (twilio[0], twilio[-1], len(twilio)) == (date(2024, 3, 3), date(2024, 4, 1), 30)
    # Vonage's day is ready after 02:00 UTC the next day: at 01:30 yesterday is not yet
    vonage = days_to_fetch({}, "vonage", 31, now)
    assert (vonage[0], vonage[-1]) == (date(2024, 3, 2), date(2024, 3, 31))
    assert days_to_fetch({}, "vonage", 31, now + timedelta(hours=1))[-1] == date(2024, 4, 1)
    # from the day after the latest held; a failed day in the window is asked again
    held = {
        "twilio-2024-03-28": _held("twilio-2024-03-28", date(2024, 3, 28), ReportStatus.COMPLETE),
        "twilio-2024-03-20": _held("twilio-2024-03-20", date(2024, 3, 20), ReportStatus.LISTED),
        "vonage-2024-03-31": _held("vonage-2024-03-31", date(2024, 3, 31), ReportStatus.COMPLETE),
    }
    assert days_to_fetch(held, "twilio", 30, now, since="2024-01-01") == [
        date(2024, 3, 20),
        date(2024, 3, 29),
        date(2024, 3, 30),
        date(2024, 3, 31),
        date(2024, 4, 1),
    ]
    # --since before the window is cut to the window; nothing ready: nothing asked
    assert days_to_fetch({}, "twilio", 30, now, since="2023-01-01")[0] == date(2024, 3, 3)
    assert days_to_fetch(held, "vonage", 31, now) == []


def test_day_list_events_reach_the_verdicts(tmp_path, twilio):
    from reconcile.verdicts import decide
    from tests.helpers import contacts_frame

    ledger, _result = _fetch(tmp_path, _client(twilio, "twilio"))
    history = ledger.history()
    contacts = contacts_frame(
        [
            ("(415) 555-0123", "2024-03-30"),  # the day itself: deactivated
            ("(415) 555-0123", "2024-03-31T12:00:00Z"),  # D+1 12:00 UTC, a tie: deactivated
            ("(415) 555-0123", "2024-03-31T12:00:01Z"),  # after: re-consented
        ]
    )
    decided = decide(contacts, history.lazy_events(), history.coverage().start)
    assert decided.get_column("verdict").to_list() == ["deactivated", "deactivated", "ok"]
    assert decided.item(0, "event_date") == "2024-03-30 (day only)"
    assert decided.item(0, "network") == "Twilio"
    assert decided.item(2, "reason") == "deactivated before consent (re-consented)"
    assert pl.Series(decided.get_column("report_id")).to_list()[:2] == [
        "twilio-2024-03-30",
        "twilio-2024-03-30",
    ]


@pytest.mark.parametrize(
    "form",
    ["token", "token_unpadded", "token_percent_lower", "every_byte_percent", "secret_b64"],
)
def test_every_echoed_form_of_the_credentials_is_redacted(tmp_path, twilio, form):
    import base64
    from urllib.parse import quote

    client = _client(twilio, "twilio")
    token = client._authorization.split(" ", 1)[1]
    echoed = {
        "token": token,
        "token_unpadded": token.rstrip("="),
        "token_percent_lower": quote(token, safe="").replace("%3D", "%3d"),
        "every_byte_percent": "".join(f"%{byte:02X}" for byte in twilio.token.encode()),
        "secret_b64": base64.b64encode(twilio.token.encode()).decode(),
    }[form]
    assert token.endswith("=")  # the unpadded form differs from the padded one
    body = f'{{"code": 20500, "message": "bad auth {echoed}"}}'.encode()
    twilio.overrides["2024-03-30"] = Override(400, body)
    _ledger, result = _fetch(tmp_path, client)
    text = " ".join(result.warnings())
    assert "HTTP 400" in text and "bad auth ***" in text
    assert echoed not in text


def test_a_file_that_cannot_be_read_is_one_line_naming_it(tmp_path):
    import errno

    from reconcile.day_lists import read_errors
    from reconcile.errors import ChangeFileError

    cases = [
        (FileNotFoundError(errno.ENOENT, "gone"), "no such file."),
        (IsADirectoryError(errno.EISDIR, "dir"), "a folder; name the file."),
        (PermissionError(errno.EACCES, "Permission denied"), "cannot read the file"),
    ]
    for error, said in cases:
        expected = pytest.raises(ChangeFileError, match=f"^{tmp_path / 'x.json'}: {said}")
        with expected, read_errors(tmp_path / "x.json"):
            raise error
