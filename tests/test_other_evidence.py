"""Other evidence from the command line: `fetch --source` against fake Twilio and Vonage
servers, `ledger import` of day lists and of Infobip delivery reports, `run` configs with
the sources, and the verdicts, change list and workbook that cite them."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import openpyxl
import polars as pl
import pytest

from reconcile.day_lists import day_list_report_id
from reconcile.ledger import Ledger
from tests.fake_day_lists import FakeFiles, FakeTwilio, FakeVonage
from tests.test_fetch_cli import every_byte_under

TODAY = date.today()


def _import_list(run_cli, listing, data, *, day="2024-03-10", source="twilio"):  # type: ignore[no-untyped-def]
    """`ledger import LISTING --deactivated-on DAY --source SOURCE --data-dir DATA`."""
    return run_cli(
        "ledger", "import", listing, "--deactivated-on", day, "--source", source, "--data-dir", data
    )


DAY = TODAY - timedelta(days=3)


@pytest.fixture
def twilio(monkeypatch):
    lists = {DAY: ["+14155550123", "+12125550143"], DAY + timedelta(days=1): ["13105550100"]}
    with FakeFiles() as files, FakeTwilio(files, lists) as server:
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", server.sid)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", server.token)
        monkeypatch.setenv("TWILIO_BASE_URL", server.base_url)
        yield server


def test_fetch_with_only_twilio_credentials_fetches_its_day_lists(run_cli, twilio, tmp_path):
    result = run_cli("fetch", "--data-dir", tmp_path, "--rate", "1000", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sources"] == ["twilio"] and summary["complete"]
    # the 30-day window up to yesterday, a report per day (empty days too)
    assert len(summary["fetched"]) == 30
    held = Ledger(tmp_path).history().events.filter(pl.col("number") < 19070000000)
    assert sorted(held.get_column("number").to_list()) == [12125550143, 13105550100, 14155550123]
    text = run_cli("ledger", "status", "--data-dir", tmp_path).stdout
    assert "Twilio:" in text and "30 reports (30 complete)" in text
    # the token never reaches the list host, output or ledger
    assert all("authorization" not in headers for _p, _q, headers in twilio.files.requests)
    assert twilio.token.encode() not in every_byte_under(tmp_path)
    assert twilio.token not in result.output


def test_the_cleaned_list_change_list_and_workbook_cite_the_day_list(run_cli, twilio, tmp_path):
    assert (
        run_cli("fetch", "--source", "twilio", "--data-dir", tmp_path, "--rate", "1000").exit_code
        == 0
    )
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "Phone,Opt-In Date\n"
        f"(415) 555-0123,{DAY:%Y-%m-%d}\n"  # consent the same day: deactivated
        f"(212) 555-0143,{DAY + timedelta(days=1):%Y-%m-%d}T11:59:00Z\n"  # next morning: too
        f"(212) 555-0143,{DAY + timedelta(days=1):%Y-%m-%d}T12:00:01Z\n"  # after D+1 12:00
        f"(646) 555-0199,{DAY:%Y-%m-%d}\n"  # no event: ok
    )
    result = run_cli("clean", contacts, "--data-dir", tmp_path, "--out-dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    changes = pl.read_csv(tmp_path / "out" / "contacts.changes.csv", infer_schema=False)
    assert changes.get_column("row").to_list() == ["1", "2"]
    assert set(changes.get_column("network")) == {"Twilio"}
    assert changes.item(0, "event_date") == f"{DAY:%Y-%m-%d} (day only)"
    assert f"DEACTIVATION on {DAY:%Y-%m-%d} (day only)" in changes.item(0, "reason")
    cleaned = (tmp_path / "out" / "contacts.cleaned.csv").read_text().splitlines()
    assert len(cleaned) == 3  # the header, the re-consented row and the one without events
    workbook = openpyxl.load_workbook(tmp_path / "out" / "contacts.report.xlsx")
    coverage = [row[0] for row in workbook["Coverage"].iter_rows(min_row=2, values_only=True)]
    assert coverage == ["Twilio"]
    reports = {row[1] for row in workbook["Reports"].iter_rows(min_row=2, values_only=True)}
    assert reports == {"Twilio"}
    assert workbook["Deactivations"].cell(1, 2).value == "Twilio"
    assert "Deactivation history from ledger" in workbook["Summary"]["B4"].value
    assert "(Twilio)" in workbook["Summary"]["B4"].value
    removed = list(workbook["Remove"].iter_rows(min_row=2, values_only=True))
    assert [row[10] for row in removed] == ["Twilio", "Twilio"]
    assert [row[8] for row in removed] == ["DEACTIVATION (day only)"] * 2
    assert removed[0][9].date() == DAY


def test_a_source_asked_for_without_its_credentials_is_one_line(run_cli, tmp_path):
    result = run_cli("fetch", "--source", "vonage", "--data-dir", tmp_path)
    assert result.exit_code == 1
    assert result.stderr == (
        "reconcile: error: --source vonage: VONAGE_API_KEY and VONAGE_API_SECRET must both "
        "be set.\n"
    )


def test_refused_twilio_credentials_exit_1_without_the_secret(run_cli, twilio, tmp_path):
    twilio.token = "rotated-elsewhere"
    result = run_cli("-v", "fetch", "--source", "twilio", "--data-dir", tmp_path, "--rate", "1000")
    assert result.exit_code == 1
    assert "Twilio refused the credentials (HTTP 401" in result.stderr
    assert "tw-SeCrEt-token-77" not in result.output


def test_vonage_fetch_from_the_command_line(run_cli, tmp_path, monkeypatch):
    with FakeVonage({DAY: ["14155550123"]}) as server:
        monkeypatch.setenv("VONAGE_API_KEY", server.key)
        monkeypatch.setenv("VONAGE_API_SECRET", server.secret)
        monkeypatch.setenv("VONAGE_BASE_URL", server.base_url)
        result = run_cli(
            "fetch",
            "--source",
            "vonage",
            "--since",
            f"{DAY:%Y-%m-%d}",
            "--data-dir",
            tmp_path,
            "--rate",
            "1000",
        )
    assert result.exit_code == 0, result.output
    # DAY up to the last day Vonage has ready (yesterday, after 02:00 UTC)
    assert re.match(r"vonage: (\d) reports listed, \1 fetched \(\1 records\)", result.stdout)
    events = Ledger(tmp_path).history().events
    assert set(events.get_column("detail")) == {"may be a port"}
    assert 14155550123 in events.get_column("number").to_list()


def test_import_a_day_list_with_its_day_and_source(run_cli, tmp_path):
    listing = tmp_path / "2024-03-10.csv"
    listing.write_text("number,carrier\n+14155550123,X\n4155550124,Y\nnot a number,Z\n")
    data = tmp_path / "data"
    result = _import_list(run_cli, listing, data, day="2024-03-10", source="Acme SMS")
    assert result.exit_code == 0, result.output
    assert "imported 1 report(s), 2 events" in result.stdout
    assert "1 line(s) are not a phone number" in result.stdout
    report_id = day_list_report_id("Acme SMS", date(2024, 3, 10))
    assert report_id.startswith("acme-sms-") and report_id.endswith("-2024-03-10")
    entry = Ledger(data).entries()[report_id]
    assert (entry.network_name, entry.status) == ("Acme SMS", "complete")
    # the same file again changes nothing
    again = _import_list(run_cli, listing, data, day="2024-03-10", source="acme sms")
    assert "imported 0 report(s), 0 events" in again.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--source", "twilio"], 2, "--deactivated-on and --source go together"),
        (["--deactivated-on", "2024-03-10"], 2, "--deactivated-on and --source go together"),
        (["--deactivated-on", "10/03/2024", "--source", "twilio"], 1, "is not a date"),
        (["--deactivated-on", "2999-01-01", "--source", "twilio"], 1, "a day that has ended"),
    ],
)
def test_day_list_import_options_are_checked(run_cli, tmp_path, args, code, message):
    listing = tmp_path / "list.txt"
    listing.write_text("+14155550123\n")
    result = run_cli("ledger", "import", listing, *args, "--data-dir", tmp_path / "data")
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output


DELIVERY_REPORTS = {
    "results": [
        {
            "bulkId": "b-1",
            "messageId": "msg-3041",
            "to": "14155550123",
            "sentAt": "2024-03-12T10:00:00.000+0000",
            "doneAt": "2024-03-12T10:00:04.120+0000",
            "smsCount": 1,
            "status": {"groupId": 5, "groupName": "REJECTED", "id": 6, "name": "REJECTED_NETWORK"},
            "error": {"groupId": 1, "id": 3041, "name": "EC_DEACTIVATED_NUMBER", "permanent": True},
        },
        {
            "messageId": "msg-ok",
            "to": "12125550143",
            "sentAt": "2024-03-12T10:00:00.000+0000",
            "doneAt": "2024-03-12T10:00:03.000+0000",
            "status": {"groupId": 3, "name": "DELIVERED_TO_HANDSET"},
            "error": {"groupId": 0, "id": 0, "name": "NO_ERROR", "permanent": False},
        },
        {
            "messageId": "msg-absent",
            "to": "13105550100",
            "doneAt": "2024-03-12T10:00:03.000+0000",
            "error": {"id": 27, "name": "EC_ABSENT_SUBSCRIBER"},
        },
    ]
}


def test_delivery_failures_become_evidence_without_coverage(run_cli, tmp_path):
    data = tmp_path / "data"
    document = tmp_path / "dlr.json"
    document.write_text(json.dumps(DELIVERY_REPORTS))
    webhook = tmp_path / "webhook.jsonl"
    webhook.write_text(
        json.dumps(
            {
                "results": [
                    {
                        "messageId": "mms-1",
                        "to": "+13105550177",
                        "sentAt": "2024-03-13T08:00:00.000+0000",
                        "error": {"id": 15017, "name": "EC_MMS_DEACTIVATED"},
                    }
                ]
            }
        )
        + "\n\n"
        + json.dumps({"messageId": "x", "to": "13105550188", "error": {"id": 5}})
        + "\n"
    )
    result = run_cli("ledger", "import", document, webhook, "--data-dir", data, "--label", "dlr")
    assert result.exit_code == 0, result.output
    assert "imported 2 report(s), 2 events" in result.stdout
    assert "3 result(s): 1 delivery failure(s)" in result.stdout
    assert "2 with another error or none" in result.stdout
    status = json.loads(run_cli("ledger", "status", "--json", "--data-dir", data).stdout)
    assert status["by_status"] == {"evidence": 2}
    assert status["coverage"]["start"] is None  # delivery failures cover nothing
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "Phone,Opt-In Date\n4155550123,2024-03-12\n3105550177,2024-03-01\n2125550143,2024-03-01\n"
    )
    cleaned = run_cli("clean", contacts, "--data-dir", data, "--out-dir", tmp_path / "out")
    assert cleaned.exit_code == 0, cleaned.output
    changes = pl.read_csv(tmp_path / "out" / "contacts.changes.csv", infer_schema=False)
    assert changes.get_column("verdict").to_list() == ["deactivated", "deactivated", "unverified"]
    assert changes.item(0, "reason").startswith(
        "DELIVERY_FAILED on 2024-03-12T10:00:04.120Z (error 3041 EC_DEACTIVATED_NUMBER, "
        "message id msg-3041), at or after consent 2024-03-12T00:00:00Z"
    )
    assert "error 15017 EC_MMS_DEACTIVATED, message id mms-1" in changes.item(1, "reason")
    assert changes.item(1, "event_date") == "2024-03-13T08:00:00Z"
    workbook = openpyxl.load_workbook(tmp_path / "out" / "contacts.report.xlsx")
    coverage = list(workbook["Coverage"].iter_rows(min_row=2, values_only=True))
    assert [row[0] for row in coverage] == ["Infobip delivery reports"]
    assert "they cover nothing" in coverage[0][5]
    evidence = workbook["Summary"]["B4"].value
    assert evidence.startswith("No coverage")
    assert "Events only, which cover nothing" in evidence
    assert "Infobip delivery reports (2 report(s))" in evidence


def test_a_delivery_failure_before_consent_is_not_evidence_against_it(run_cli, tmp_path):
    data = tmp_path / "data"
    document = tmp_path / "dlr.json"
    document.write_text(json.dumps(DELIVERY_REPORTS))
    assert run_cli("ledger", "import", document, "--data-dir", data).exit_code == 0
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("Phone,Opt-In Date\n4155550123,2024-03-12T10:00:05Z\n")
    result = run_cli("clean", contacts, "--data-dir", data, "--out-dir", tmp_path / "out", "--json")
    summary = json.loads(result.stdout)[0]
    # re-consented after the failure; no coverage, so still unverified
    assert summary["verdicts"]["unverified"] == 1 and summary["verdicts"]["deactivated"] == 0


def test_delivery_reports_that_are_not_json_are_one_line(run_cli, tmp_path):
    broken = tmp_path / "dlr.jsonl"
    broken.write_text('{"messageId": "a", "to": "1415", "error": {"id": 3041}}\n{"messageId": \n')
    result = run_cli("ledger", "import", broken, "--data-dir", tmp_path / "data")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"reconcile: error: {broken}: line 2 is not JSON")
    assert not (tmp_path / "data" / "ledger" / "events").exists() or not any(
        (tmp_path / "data" / "ledger" / "events").iterdir()
    )


def test_run_fetches_the_configured_day_lists(run_cli, twilio, tmp_path, monkeypatch):
    monkeypatch.delenv("RECONCILE_DATA_DIR")
    monkeypatch.setenv("MY_SID", twilio.sid)
    monkeypatch.setenv("MY_TOKEN", twilio.token)
    (tmp_path / "contacts.csv").write_text(f"Phone,Opt-In Date\n4155550123,{DAY:%Y-%m-%d}\n")
    config = tmp_path / "reconcile.toml"
    config.write_text(
        f"""
[twilio]
base_url = "{twilio.base_url}"
account_sid_env = "MY_SID"
auth_token_env = "MY_TOKEN"
rate = 1000
since = "{DAY:%Y-%m-%d}"
[ledger]
data_dir = "data"
[[inputs]]
path = "contacts.csv"
"""
    )
    result = run_cli("run", "--config", config, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fetch"]["sources"] == ["twilio"]
    assert len(summary["fetch"]["fetched"]) == 3  # DAY up to yesterday
    assert summary["inputs"][0]["verdicts"]["deactivated"] == 1


def test_a_secret_written_into_a_day_list_table_is_refused(run_cli, tmp_path):
    (tmp_path / "contacts.csv").write_text("Phone\n4155550123\n")
    config = tmp_path / "reconcile.toml"
    config.write_text('[twilio]\ntoken = "abc"\n[[inputs]]\npath = "contacts.csv"\n')
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1
    assert "[twilio].token: an API key written in the config file" in result.stderr


def test_a_ledger_written_before_day_lists_still_reads_and_grows(tmp_path, run_cli, history_dir):
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    ledger = Ledger(data)
    before = ledger.history().events.sort("number", "occurred_at", "type")
    # every events file as an earlier version wrote it: without day_only and detail, and
    # a manifest without checksums
    for path in ledger.events_dir.glob("*.parquet"):
        table = pq.read_table(path)
        assert "day_only" in table.column_names
        pq.write_table(table.drop_columns(["day_only", "detail"]), path)
    manifest = json.loads(ledger.manifest_path.read_text())
    manifest["files"] = {
        name: {"reports": info["reports"]} for name, info in manifest["files"].items()
    }
    ledger.manifest_path.write_text(json.dumps(manifest))
    after = Ledger(data).history().events.sort("number", "occurred_at", "type")
    assert after.equals(before)
    assert after.get_column("day_only").null_count() == after.height
    listing = tmp_path / "list.txt"
    listing.write_text("+14155550999\n")
    added = _import_list(run_cli, listing, data, day="2024-03-10", source="twilio")
    assert added.exit_code == 0, added.output
    assert Ledger(data).history().events.height == before.height + 1
    assert run_cli("ledger", "verify", "--data-dir", data).exit_code == 0


def test_a_lost_manifest_is_rebuilt_with_every_source(run_cli, tmp_path):
    data = tmp_path / "data"
    listing = tmp_path / "list.txt"
    listing.write_text("+14155550123\n")
    _import_list(run_cli, listing, data, day="2024-03-10", source="twilio")
    document = tmp_path / "dlr.json"
    document.write_text(json.dumps(DELIVERY_REPORTS))
    run_cli("ledger", "import", document, "--data-dir", data)
    before = json.loads(run_cli("ledger", "status", "--json", "--data-dir", data).stdout)
    assert before["by_status"] == {"complete": 1, "evidence": 1}
    assert before["evidence_only"] == [
        {"network": "Infobip delivery reports", "reports": 1, "events": 1}
    ]
    text = run_cli("ledger", "status", "--data-dir", data).stdout
    assert "Infobip delivery reports: 1 report(s), 1 event(s) (events only" in text
    Ledger(data).manifest_path.unlink()
    rebuilt = run_cli("ledger", "rebuild", "--data-dir", data)
    assert rebuilt.exit_code == 0, rebuilt.output
    after = json.loads(run_cli("ledger", "status", "--json", "--data-dir", data).stdout)
    for key in ("by_status", "events", "coverage", "evidence_only"):
        assert after[key] == before[key], key
    assert run_cli("ledger", "verify", "--data-dir", data).exit_code == 0
    events = Ledger(data).history().events.sort("type")
    assert events.get_column("day_only").to_list() == [True, False]
    assert events.get_column("detail").to_list() == [
        None,
        "error 3041 EC_DEACTIVATED_NUMBER, message id msg-3041",
    ]


class _Ticking:
    """A clock whose every reading is 100 s after the last (a fetch that takes long)."""

    def __init__(self) -> None:
        self.readings = 0

    def monotonic(self) -> float:
        self.readings += 1
        return 100.0 * self.readings

    def sleep(self, seconds: float) -> None:
        raise AssertionError("the sources' loop never sleeps")

    def now(self):  # type: ignore[no-untyped-def]
        raise AssertionError("not asked")


def test_the_deadline_is_the_whole_fetchs_across_sources(twilio, tmp_path, monkeypatch):
    from reconcile.settings import day_list_settings
    from reconcile.sync_sources import fetch_sources

    with FakeVonage({DAY: ["14155550123"]}) as vonage:
        monkeypatch.setenv("VONAGE_API_KEY", vonage.key)
        monkeypatch.setenv("VONAGE_API_SECRET", vonage.secret)
        sources = [
            day_list_settings("twilio", rate=1000.0, deadline=150.0, since=f"{DAY:%Y-%m-%d}"),
            day_list_settings("vonage", base_url=vonage.base_url, rate=1000.0, deadline=150.0),
        ]
        result = fetch_sources(
            Ledger(tmp_path), None, sources, now=datetime.now(UTC), clock=_Ticking()
        )
        assert not vonage.requests  # its turn came after the deadline
    assert result.sources == ["twilio", "vonage"]
    assert result.late == ["vonage (not started)"] and not result.complete
    assert len(result.fetched) == 3


def test_a_folder_of_delivery_reports_is_imported_and_mixing_is_refused(run_cli, tmp_path):
    folder = tmp_path / "webhooks"
    folder.mkdir()
    (folder / "monday.json").write_text(json.dumps(DELIVERY_REPORTS))
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    data = tmp_path / "data"
    result = run_cli("ledger", "import", folder, "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert "imported 1 report(s), 1 events from 1 file(s)" in result.stdout
    (folder / "changes.csv").write_text(
        "destination,date,type\n14155550123,2024-03-01,DEACTIVATION\n"
    )
    mixed = run_cli("ledger", "import", folder, "--data-dir", data)
    assert mixed.exit_code == 1
    assert "on their own, not mixed with change files" in mixed.stderr


@pytest.mark.parametrize(
    ("content", "outcome"),
    [
        (b"", "0 line(s) hold a phone number"),
        (b"phone_number\n", "0 line(s) hold a phone number"),
        (b"<html><body>Service Unavailable</body></html>\n", "that is not a day list"),
        ("+14155550123\n".encode("utf-16"), 1),  # UTF-16 with its BOM: read
        (b"\x00\x01\x02binary", "binary data"),
        (b"1-415-555-0123\n(212) 555-0143\n", 2),  # formatted numbers: read
        (b"14155550123 2024-03-10\n", 1),  # a first line with a number is no header
        (b"msisdn\r\n+14155550123\r\njunk\r\n+12125550143\r\n", 2),
        (b"a\nb\nc\n+14155550123\n", "1 line(s) hold a phone number and 2 do not"),
    ],
)
def test_a_list_without_numbers_is_never_coverage(run_cli, tmp_path, content, outcome):
    listing = tmp_path / "list.txt"
    listing.write_bytes(content)
    data = tmp_path / "data"
    result = _import_list(run_cli, listing, data, day="2024-03-10", source="twilio")
    if isinstance(outcome, int):
        assert result.exit_code == 0, result.output
        assert Ledger(data).history().events.height == outcome
    else:
        assert result.exit_code == 1
        assert outcome in result.stderr and result.stderr.count("\n") == 1
        assert not Ledger(data).entries()


def test_a_twilio_answer_that_is_no_list_is_a_gap_fetched_again(run_cli, twilio, tmp_path):
    from tests.fake_day_lists import Override

    yesterday = TODAY - timedelta(days=1)
    twilio.files.overrides[f"/lists/{yesterday:%Y-%m-%d}.txt"] = Override(
        200, b"<html>maintenance</html>", content_type="text/html", times=1
    )
    first = run_cli(
        "fetch",
        "--source",
        "twilio",
        "--since",
        f"{yesterday:%Y-%m-%d}",
        "--data-dir",
        tmp_path,
        "--rate",
        "1000",
    )
    assert first.exit_code == 3
    assert "that is not a day list" in first.stdout
    assert Ledger(tmp_path).entries()[f"twilio-{yesterday:%Y-%m-%d}"].status == "listed"
    again = run_cli("fetch", "--source", "twilio", "--data-dir", tmp_path, "--rate", "1000")
    assert again.exit_code == 0, again.output
    assert Ledger(tmp_path).entries()[f"twilio-{yesterday:%Y-%m-%d}"].status == "complete"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[twilio]\nauth_token_env = "0123456789abcdef0123456789abcdef"\n',
            "[twilio].auth_token_env: not the name of an environment variable",
        ),
        (
            '[vonage]\napi_secret_env = "s3cr3t-value!"\n',
            "[vonage].api_secret_env: not the name of an environment variable",
        ),
        ('[twilio]\nsince = " garbage"\n', "[twilio].since: ' garbage' is not a date"),
        (
            '[vonage]\nbase_url = "http://api.example.com"\n',
            "[vonage].base_url: 'http://api.example.com' uses plain http",
        ),
        ('[infobip]\nsince = "2024-13-45"\n', "[infobip].since: '2024-13-45' is not a date"),
    ],
)
def test_day_list_tables_are_checked_before_anything_is_fetched(run_cli, tmp_path, table, message):
    (tmp_path / "contacts.csv").write_text("Phone\n4155550123\n")
    config = tmp_path / "reconcile.toml"
    config.write_text(table + '[[inputs]]\npath = "contacts.csv"\n')
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert "0123456789abcdef0123456789abcdef" not in result.output
    assert "s3cr3t-value!" not in result.output


def test_json_nested_too_deeply_is_one_line(run_cli, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"results": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = run_cli("ledger", "import", deep, "--data-dir", tmp_path / "data")
    assert result.exit_code == 1
    assert "nested too deeply" in result.stderr and "Traceback" not in result.output


def test_a_day_long_before_the_reports_leaves_a_hole_that_is_said(run_cli, tmp_path, history_dir):
    data = tmp_path / "data"
    assert run_cli("ledger", "import", history_dir, "--data-dir", data).exit_code == 0
    listing = tmp_path / "old.txt"
    listing.write_text("+13105550100\n")
    _import_list(run_cli, listing, data, day="2023-01-05", source="twilio")
    status = run_cli("ledger", "status", "--data-dir", data).stdout
    assert "warning: no source covers 2023-01-06T00:00:00Z to 2024-03-01T00:00:00Z" in status
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("Phone,Opt-In Date\n4155550199,2023-06-01\n")
    result = run_cli("clean", contacts, "--data-dir", data, "--out-dir", tmp_path / "out")
    assert "no source covers 2023-01-06 to 2024-03-01: a deactivation then would be missed" in (
        result.stdout
    )


def _damaged_zip() -> bytes:
    from tests.fake_day_lists import zipped

    data = bytearray(zipped("list.csv", "".join(f"+1415555{i:04d}\n" for i in range(2000))))
    middle = len(data) // 2
    data[middle : middle + 40] = bytes(40)  # the deflate stream broken
    return bytes(data)


def test_a_damaged_zip_is_one_line_on_import_and_a_gap_on_fetch(run_cli, tmp_path, monkeypatch):
    from tests.fake_day_lists import Override

    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(_damaged_zip())
    result = _import_list(run_cli, damaged, tmp_path / "data", day="2024-03-10", source="acme")
    assert result.exit_code == 1 and "internal error" not in result.stderr
    assert result.stderr.count("\n") == 1
    with FakeVonage({DAY: ["14155550123"]}) as server:
        monkeypatch.setenv("VONAGE_API_KEY", server.key)
        monkeypatch.setenv("VONAGE_API_SECRET", server.secret)
        monkeypatch.setenv("VONAGE_BASE_URL", server.base_url)
        server.overrides[f"{DAY:%Y-%m-%d}"] = Override(
            200, damaged.read_bytes(), content_type="application/zip"
        )
        fetched = run_cli(
            "fetch",
            "--source",
            "vonage",
            "--since",
            f"{DAY:%Y-%m-%d}",
            "--data-dir",
            tmp_path / "fetched",
            "--rate",
            "1000",
        )
    assert fetched.exit_code == 3, fetched.output
    assert "damaged zip entry" in fetched.stdout
    entries = Ledger(tmp_path / "fetched").entries()
    assert entries[f"vonage-{DAY:%Y-%m-%d}"].status == "listed"
    assert any(entry.status == "complete" for entry in entries.values())


def test_a_zip_of_many_files_is_not_a_day_list(run_cli, tmp_path):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(150):
            archive.writestr(f"part-{index}.txt", f"+1415555{index:04d}\n")
    many = tmp_path / "many.zip"
    many.write_bytes(buffer.getvalue())
    result = _import_list(run_cli, many, tmp_path / "data", day="2024-03-10", source="acme")
    assert result.exit_code == 1 and "a zip of 150 files" in result.stderr


def test_an_excel_float_is_not_a_digit(run_cli, tmp_path):
    listing = tmp_path / "floats.txt"
    listing.write_text("4155550100.0\n4155550101.0\n2125550143.0\n")
    data = tmp_path / "data"
    _import_list(run_cli, listing, data, day="2024-03-10", source="acme")
    numbers = sorted(Ledger(data).history().events.get_column("number").to_list())
    assert numbers == [12125550143, 14155550100, 14155550101]


def test_delivery_report_numbers_and_day_only_times(run_cli, tmp_path):
    results = [
        {"messageId": "a", "to": "(415) 555-0121", "doneAt": "2026-11-15T10:00:00Z"},
        {"messageId": "b", "to": "4155550122", "doneAt": "2026-11-15T10:00:00Z"},
        {"messageId": "c", "to": "tel:+14155550123", "doneAt": "2026-11-15T10:00:00Z"},
        {"messageId": "d", "to": "41793026727", "doneAt": "2026-11-15T10:00:00Z"},
        {"messageId": "e", "to": "14155550127", "doneAt": "2026-11-15"},
    ]
    document = tmp_path / "dlr.json"
    document.write_text(json.dumps({"results": [{**r, "error": {"id": 3041}} for r in results]}))
    data = tmp_path / "data"
    assert run_cli("ledger", "import", document, "--data-dir", data).exit_code == 0
    events = Ledger(data).history().events.sort("number")
    assert events.get_column("number").to_list() == [
        14155550121,
        14155550122,
        14155550123,
        14155550127,
        41793026727,
    ]
    assert events.get_column("day_only").to_list() == [False, False, False, True, False]
    # a failure known by its day is compared as day lists are: D+1 12:00 UTC
    check = run_cli("check", "4155550127", "--since", "2026-11-15T10:00:00Z", "--data-dir", data)
    assert check.stdout.startswith("yes:"), check.output


def test_numbers_too_long_to_read_are_one_line(run_cli, tmp_path):
    big = tmp_path / "big.json"
    big.write_text('{"results": [{"messageId": "a", "to": ' + "9" * 5000 + "}]}")
    result = run_cli("ledger", "import", big, "--data-dir", tmp_path / "data")
    assert result.exit_code == 1 and "too long to read" in result.stderr


def test_a_pasted_token_in_an_env_key_and_a_bad_host_are_refused(run_cli, tmp_path):
    (tmp_path / "contacts.csv").write_text("Phone\n4155550123\n")
    config = tmp_path / "reconcile.toml"
    for table, message in (
        ('[twilio]\nauth_token_env = "a8f3c2e1d4b5a6978877665544332211"\n', "auth_token_env"),
        ('[vonage]\napi_secret_env = "Zx8kQ2mN4pR7tV1w"\n', "api_secret_env"),
        ('[vonage]\nbase_url = "https://xn--"\n', "the host is not a valid name"),
    ):
        config.write_text(table + '[[inputs]]\npath = "contacts.csv"\n')
        result = run_cli("run", "--config", config)
        assert result.exit_code == 1 and message in result.stderr, result.stderr
        assert "a8f3c2e1" not in result.output and "Zx8kQ2mN" not in result.output


def test_a_since_written_loosely_is_its_day(twilio, run_cli, tmp_path):
    result = run_cli(
        "fetch",
        "--source",
        "twilio",
        "--since",
        f"{DAY:%Y-%m}-{DAY.day}",
        "--data-dir",
        tmp_path,
        "--rate",
        "1000",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fetched"][0]["report_id"] == f"twilio-{DAY:%Y-%m-%d}"
