"""Fetching against a real HTTP server on 127.0.0.1 that misbehaves on demand."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import polars as pl
import pytest

from reconcile.api import ApiKey, InfobipClient
from reconcile.errors import ApiError, AuthError, LedgerError, MalformedResponseError
from reconcile.ledger import Ledger
from reconcile.sync import fetch
from tests.fake_infobip import (
    PREFIX,
    FakeClock,
    FakeInfobip,
    any_request,
    make_reports,
    metadata_request,
    records_of,
)

KEY = "test-key-0000"


@pytest.fixture
def server():
    with FakeInfobip(make_reports()) as fake:
        yield fake


def run_fetch(
    server: FakeInfobip,
    data_dir: Path,
    *,
    rate: float = 1.0,
    page_size: int = 1000,
    timeout: float = 2.0,
    deadline: float | None = None,
    **options,
):
    ledger = Ledger(data_dir)
    with httpx.Client(timeout=timeout) as http, ledger.locked():
        client = InfobipClient(
            http, ApiKey(KEY), base_url=server.base_url, clock=server.clock, rate=rate, **options
        )
        return fetch(ledger, client, now=server.clock.now(), page_size=page_size, deadline=deadline)


def snapshot(data_dir: Path) -> tuple[bytes | None, pl.DataFrame]:
    """The manifest's bytes and every event, sorted: what 'the ledger' is."""
    ledger = Ledger(data_dir)
    manifest = ledger.manifest_path.read_bytes() if ledger.manifest_path.exists() else None
    events = ledger.history().events.sort(["report_id", "occurred_at", "number", "type"])
    return manifest, events


def contents(data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ledger without fetch times: comparable between two runs."""
    ledger = Ledger(data_dir)
    reports = ledger.reports_frame().sort("report_id")
    events = ledger.history().events.sort(["report_id", "occurred_at", "number", "type"])
    return reports, events


def expected_events(server: FakeInfobip) -> int:
    return sum(len(report["records"]) for report in server.reports.values())


def test_clean_fetch_fills_the_ledger_with_ceil_r_over_p_requests(server, tmp_path):
    result = run_fetch(server, tmp_path)
    ledger = Ledger(tmp_path)
    entries = ledger.entries()
    assert {entry.status for entry in entries.values()} == {"complete"}
    assert ledger.history().events.height == expected_events(server)
    page = server.max_page_size  # the server caps the 1000 asked for; its size is trusted
    record_requests = len(server.requests_to(PREFIX + "/"))
    assert record_requests == sum(
        max(1, math.ceil(len(r["records"]) / page)) for r in server.reports.values()
    )
    metadata_requests = len([entry for entry in server.log if entry[1] == PREFIX])
    assert metadata_requests == math.ceil(len(server.reports) / page)
    pages_seen = [(path, params["page"]) for _, path, params, _ in server.log]
    assert len(pages_seen) == len(set(pages_seen))  # no page fetched twice
    assert result.requests == len(server.log)
    # the rate limit is the only wait: no retries, one second between requests at 1/s
    assert result.retry_waits == []
    times = sorted(entry[0] for entry in server.log)
    assert times[-1] - times[0] == pytest.approx(len(times) - 1)
    events = ledger.history().events
    assert events.schema["number"] == pl.UInt64 and events.schema["new_number"] == pl.UInt64
    assert events.filter(pl.col("network_name").is_null()).height == 0


def test_incremental_fetch_asks_only_for_metadata(server, tmp_path):
    run_fetch(server, tmp_path)
    before = contents(tmp_path)
    server.log.clear()
    result = run_fetch(server, tmp_path)
    assert result.fetched == []
    assert all(path == PREFIX for _, path, _, _ in server.log)
    assert contents(tmp_path)[1].equals(before[1])


def test_rate_limit_no_window_holds_more_than_the_rate(server, tmp_path):
    for rate in (1.0, 3.0):
        server.log.clear()
        run_fetch(server, tmp_path / str(rate), rate=rate)
        times = sorted(entry[0] for entry in server.log)
        assert len(times) > 5
        for index, start in enumerate(times):
            in_window = sum(1 for moment in times[index:] if moment < start + 1.0)
            assert in_window <= rate


def test_429_storm_with_retry_after_waits_as_told(server, tmp_path):
    server.fail(any_request, "status", status=429, times=4, headers={"Retry-After": "7"})
    run_fetch(server, tmp_path)
    assert server.clock.sleeps.count(7.0) == 4
    assert contents(tmp_path)[1].height == expected_events(server)


def test_429_storm_without_retry_after_backs_off_with_jitter(server, tmp_path):
    server.fail(metadata_request, "status", status=429, times=4)
    result = run_fetch(server, tmp_path, backoff_initial=1.0)
    backoffs = result.retry_waits
    assert len(backoffs) == 4
    # exponential with jitter: attempt n waits between 2**(n-1)/2 and 2**(n-1) seconds
    for attempt, wait in enumerate(backoffs, start=1):
        assert 2 ** (attempt - 1) / 2 <= wait <= 2 ** (attempt - 1)
    assert len(set(backoffs)) == 4
    assert contents(tmp_path)[1].height == expected_events(server)


@pytest.mark.parametrize(
    ("action", "options"),
    [
        ("status", {"status": 500}),
        ("status", {"status": 503}),
        ("drop", {}),
        ("garbage", {}),
        ("truncate", {}),
        ("html", {}),
        ("slow", {"delay": 0.6}),
    ],
)
def test_temporary_failures_are_retried_to_a_ledger_equal_to_a_clean_fetch(
    tmp_path, action, options
):
    reports = make_reports()
    with FakeInfobip(reports) as clean_server:
        run_fetch(clean_server, tmp_path / "clean")
    busy_report = next(report_id for report_id, r in reports.items() if len(r["records"]) > 20)
    with FakeInfobip(reports) as faulty:
        faulty.fail(records_of(busy_report, page=1), action, times=2, **options)
        faulty.fail(metadata_request, action, times=1, **options)
        run_fetch(faulty, tmp_path / "faulty", timeout=0.3)
    clean, after = contents(tmp_path / "clean"), contents(tmp_path / "faulty")
    assert after[0].equals(clean[0]) and after[1].equals(clean[1])


def test_failures_that_do_not_stop_end_in_a_clear_error_and_an_unchanged_ledger(server, tmp_path):
    run_fetch(server, tmp_path)
    before = snapshot(tmp_path)
    server.reports.update(make_reports(seed=99, sizes=(5,)))  # a new report to fetch
    server.fail(any_request, "status", status=502, times=None)
    with pytest.raises(
        ApiError, match=r"server error \(HTTP 502\), after 6 attempts; try again later"
    ):
        run_fetch(server, tmp_path)
    after = snapshot(tmp_path)
    assert after[0] == before[0] and after[1].equals(before[1])


def test_always_invalid_json_is_a_malformed_response(server, tmp_path):
    server.fail(any_request, "html", times=None)
    with pytest.raises(MalformedResponseError, match="the answer is not JSON"):
        run_fetch(server, tmp_path)
    assert not Ledger(tmp_path).manifest_path.exists()


def test_totals_changing_mid_report_keep_it_incomplete_until_the_next_fetch(tmp_path):
    reports = make_reports()
    busy_report = next(report_id for report_id, r in reports.items() if len(r["records"]) > 20)
    with FakeInfobip(reports) as clean_server:
        run_fetch(clean_server, tmp_path / "clean")
    with FakeInfobip(reports) as faulty:
        faulty.fail(records_of(busy_report, page=2), "shift_totals", times=1)
        result = run_fetch(faulty, tmp_path / "faulty")
        assert [report_id for report_id, _problem in result.incomplete] == [busy_report]
        assert "the totals changed while it was read" in result.incomplete[0][1]
        entry = Ledger(tmp_path / "faulty").entries()[busy_report]
        # the two pages read, and the records of the page whose totals changed: what came
        # is evidence, kept while the report stays incomplete
        assert entry.status == "incomplete" and entry.records == 23
        run_fetch(faulty, tmp_path / "faulty")  # the next fetch tries it again
    assert contents(tmp_path / "faulty")[1].equals(contents(tmp_path / "clean")[1])


def test_a_report_that_404s_mid_fetch_is_recorded_as_gone(server, tmp_path):
    busy_report = next(
        report_id for report_id, r in server.reports.items() if len(r["records"]) > 20
    )
    server.fail(records_of(busy_report, page=1), "status", status=404, times=None)
    result = run_fetch(server, tmp_path)
    assert result.gone == [busy_report]
    assert any("gone upstream (HTTP 404)" in warning for warning in result.warnings())
    entries = Ledger(tmp_path).entries()
    assert entries[busy_report].status == "gone"
    assert entries[busy_report].file is None
    others = [entry for key, entry in entries.items() if key != busy_report]
    assert {entry.status for entry in others} == {"complete"}
    coverage = Ledger(tmp_path).history().coverage()
    assert any(operator.gaps for operator in coverage.operators) or coverage.incomplete_report_notes


def test_key_revoked_mid_run_stops_with_the_ledger_consistent(server, tmp_path):
    server.revoke_after = 4
    with pytest.raises(AuthError, match="Number Activation State is enabled on the account"):
        run_fetch(server, tmp_path)
    ledger = Ledger(tmp_path)
    complete = [entry for entry in ledger.entries().values() if entry.status == "complete"]
    assert ledger.history().events.height == sum(entry.records for entry in complete)
    server.revoke_after = None
    run_fetch(server, tmp_path)  # the next run completes the job
    assert ledger.history().events.height == expected_events(server)


def test_refetching_a_report_replaces_its_rows(server, tmp_path):
    run_fetch(server, tmp_path)
    ledger = Ledger(tmp_path)
    report_id = next(iter(server.reports))
    with ledger.locked():
        entry = ledger.entries()[report_id]
        from reconcile.ledger import ReportEntry

        ledger.commit([(ReportEntry(**{**entry.__dict__, "status": "listed"}), None)])
    run_fetch(server, tmp_path)
    assert ledger.history().events.height == expected_events(server)
    named = {r.file for r in ledger.entries().values() if r.file}
    on_disk = {f"events/{path.name}" for path in ledger.events_dir.glob("*.parquet")}
    # the same records, no duplicate: the file is written again only so that it carries
    # the report's new status; the one it replaced stays (an older manifest may name it)
    assert on_disk == named | set(ledger.replaced_files())
    assert len(ledger.replaced_files()) == 1
    assert ledger.entries()[report_id].status == "complete"


def test_expired_and_expiring_reports_are_warned_about(tmp_path):
    reports = make_reports(sizes=(3, 4, 5))
    first, second, third = list(reports)
    reports[first]["metadata"]["expiryDate"] = "2024-04-01T00:00:00Z"  # before the clock's now
    reports[second]["metadata"]["expiryDate"] = "2024-04-05"  # within 7 days
    reports[third]["metadata"]["expiryDate"] = "2024-03-30"  # past, but still served
    bad_page = b'{"results": "x", "paging": {}}'
    with FakeInfobip(reports, clock=FakeClock()) as server:
        server.fail(records_of(first), "garbage", times=None, body=bad_page)
        server.fail(records_of(second), "garbage", times=None, body=bad_page)
        result = run_fetch(server, tmp_path)  # both fail: they stay listed in the ledger
    assert [report_id for report_id, _ in result.failed] == [first, second]
    assert Ledger(tmp_path).entries()[third].status == "complete"  # past expiry, still fetched
    assert [entry.report_id for entry in result.expired_unfetched] == [first]
    assert [entry.report_id for entry in result.expiring_soon] == [second]
    warnings = "\n".join(result.warnings())
    assert f"report {first}" in warnings and "expired 2024-04-01 before it was fetched" in warnings
    assert f"report {second}" in warnings and "expires 2024-04-05" in warnings


@pytest.mark.parametrize("scheme", ["App", "Bearer", "IBSSO"])
def test_authorization_schemes(tmp_path, scheme):
    with FakeInfobip(make_reports(sizes=(2,)), scheme=scheme) as server:
        run_fetch(server, tmp_path, auth_scheme=scheme)
    assert Ledger(tmp_path).history().events.height == 2


def test_wrong_key_is_refused_at_once(server, tmp_path):
    server.key = "another-key"
    with pytest.raises(AuthError, match="HTTP 401: Invalid login details"):
        run_fetch(server, tmp_path)
    assert len(server.log) == 1


def test_basic_auth_sends_base64_of_user_and_password(tmp_path):
    import base64

    encoded = base64.b64encode(b"me:pa55").decode()
    with FakeInfobip(make_reports(sizes=(2,)), key=encoded, scheme="Basic") as server:
        ledger = Ledger(tmp_path)
        with httpx.Client() as http, ledger.locked():
            client = InfobipClient(
                http,
                ApiKey("me:pa55"),
                base_url=server.base_url,
                clock=server.clock,
                auth_scheme="Basic",
            )
            fetch(ledger, client, now=server.clock.now())
    assert ledger.history().events.height == 2


def test_403_says_the_product_must_be_enabled(server, tmp_path):
    server.fail(
        any_request,
        "status",
        status=403,
        times=None,
        body=b'{"requestError": {"serviceException": {"messageId": "FORBIDDEN", "text": "Forbidden"}}}',
    )
    with pytest.raises(AuthError) as caught:
        run_fetch(server, tmp_path)
    assert "HTTP 403: Forbidden" in str(caught.value)
    assert "Number Activation State is enabled on the account" in str(caught.value)


def test_since_asks_for_reports_generated_from_that_day(server, tmp_path):
    ledger = Ledger(tmp_path)
    with httpx.Client() as http, ledger.locked():
        client = InfobipClient(http, ApiKey(KEY), base_url=server.base_url, clock=server.clock)
        result = fetch(ledger, client, now=server.clock.now(), since="2024-03-04")
    assert server.log[0][2]["generatedDateFrom"] == "2024-03-04"
    assert result.listed == 2  # reports generated on 03-04 and 03-05


def test_api_key_never_shows_in_its_repr():
    key = ApiKey("abc-123")
    assert "abc-123" not in repr(key) and "abc-123" not in str(key) and "abc-123" not in f"{key}"


def test_a_server_that_refuses_large_pages_is_asked_again_with_smaller_ones(server, tmp_path):
    def too_large(path: str, params: dict[str, str]) -> bool:
        return int(params.get("size", "0")) > 1000

    server.fail(
        too_large,
        "status",
        status=400,
        times=None,
        body=b'{"requestError": {"serviceException": {"messageId": "BAD_REQUEST", "text": "size too large"}}}',
    )
    run_fetch(server, tmp_path, page_size=10_000)
    assert Ledger(tmp_path).history().events.height == expected_events(server)
    refused = [entry for entry in server.log if entry[3] == 400]
    assert len(refused) == 1  # refused once, then the smaller size is used throughout
    with pytest.raises(ApiError, match=r"HTTP 400: size too large"):
        server.fail(
            any_request,
            "status",
            status=400,
            times=None,
            body=b'{"requestError": {"serviceException": {"text": "size too large"}}}',
        )
        run_fetch(server, tmp_path / "again", page_size=500)


class _Crash(BaseException):
    """Stands for the process dying: nothing catches it, nothing cleans up after it."""


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4])
def test_a_crash_inside_a_commit_leaves_the_previous_commit(
    server, tmp_path, monkeypatch, crash_at
):
    """Crash on the Nth file rename of a fetch: a staged event file moved into events/ or
    the manifest replaced. Whatever the ledger shows afterwards is a whole commit, and
    the next fetch completes it like an uninterrupted one."""
    with FakeInfobip(make_reports()) as clean_server:
        run_fetch(clean_server, tmp_path / "clean")
    renames = {"count": 0}
    original = Path.replace

    def replace(self, target):
        renames["count"] += 1
        if renames["count"] == crash_at:
            raise _Crash
        return original(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(_Crash):
        run_fetch(server, tmp_path / "crashed")
    monkeypatch.setattr(Path, "replace", original)
    ledger = Ledger(tmp_path / "crashed")
    if crash_at == 3:
        # the first commit's file moved in, no manifest yet: a reader never takes that
        # for an empty ledger; the next writer rolls the commit forward
        with pytest.raises(LedgerError, match=r"manifest\.json is missing, but the ledger holds 1"):
            ledger.entries()
    else:
        committed = [entry for entry in ledger.entries().values() if entry.status == "complete"]
        assert ledger.history().events.height == sum(entry.records for entry in committed)
    run_fetch(server, tmp_path / "crashed")
    assert contents(tmp_path / "crashed")[1].equals(contents(tmp_path / "clean")[1])
    assert list(ledger.staging_dir.iterdir()) == []
    named = {entry.file for entry in ledger.entries().values() if entry.file}
    # a first commit's file without its manifest is kept (a lost manifest may have named
    # it), listed as replaced; no other file is left
    kept = set(ledger.replaced_files())
    assert {f"events/{path.name}" for path in ledger.events_dir.iterdir()} == named | kept
    assert len(kept) == (1 if crash_at == 3 else 0)


def test_the_deadline_holds_inside_a_report_at_the_api_rate(tmp_path):
    """300 pages at 1 request/s (the injected clock) under a 5 s deadline: the fetch ends
    after about 5 requests and keeps the pages received as an incomplete report."""
    reports = make_reports(sizes=(3000,))
    [report_id] = reports
    with FakeInfobip(reports) as server:
        result = run_fetch(server, tmp_path, rate=1.0, deadline=5.0)
        asked = len(server.requests_to(PREFIX + "/"))
    assert 1 <= asked <= 6
    assert [rid for rid, _problem in result.incomplete] == [report_id]
    assert "deadline" in result.incomplete[0][1]
    entry = Ledger(tmp_path).entries()[report_id]
    assert entry.status == "incomplete" and entry.records == 10 * asked
    assert not result.complete


def test_a_retry_after_longer_than_the_time_left_ends_the_fetch_without_waiting(server, tmp_path):
    target = next(iter(server.reports))
    server.fail(records_of(target), "status", status=429, headers={"Retry-After": "300"})
    result = run_fetch(server, tmp_path, deadline=10.0)
    assert max(server.clock.sleeps, default=0) < 10  # never slept the 300 s
    assert server.clock.monotonic() - 1000.0 < 10
    assert not result.complete
    assert target in result.late or target in [rid for rid, _ in result.failed]
