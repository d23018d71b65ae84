"""Issue 18: a report's life through fetch, import and rebuild, case by case, through the
command line against a real server on 127.0.0.1 (tests/fake_infobip.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconcile.ledger import Ledger
from tests.fake_infobip import PREFIX, FakeInfobip, metadata_request, records_of

# `server` and `api_env` (tests/conftest.py): the fake Infobip the command line fetches
# from, with one long report (57 records: 6 pages of 10) between short ones


def long_report(server: FakeInfobip) -> str:
    return next(rid for rid, report in server.reports.items() if len(report["records"]) > 50)


def deactivated_numbers(server: FakeInfobip, report_id: str) -> list[str]:
    return [  # valid North American numbers (the exchange starts 2-9)
        record["destination"]
        for record in server.reports[report_id]["records"]
        if record["type"] == "DEACTIVATION" and record["destination"][4] not in "01"
    ]


def fetch(run_cli, data: Path, *extra: str):
    return run_cli("fetch", "--data-dir", data, "--rate", "1000", *extra)


def answer(run_cli, data: Path, number: str) -> str:
    result = run_cli("check", number, "--data-dir", data, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["answer"]


def page_body(records: list[dict], page: int, size: int, total_pages: int, total: int) -> bytes:
    return json.dumps(
        {
            "results": records,
            "paging": {
                "page": page,
                "size": size,
                "totalPages": total_pages,
                "totalResults": total,
            },
        }
    ).encode()


def test_1_an_incomplete_report_that_later_404s_keeps_its_events(
    run_cli, api_env, server, tmp_path
):
    target = long_report(server)
    # paging that does not add up: the second page never comes, only the first is held
    server.fail(records_of(target, page=1), "shift_totals", times=1)
    first = fetch(run_cli, tmp_path)
    assert first.exit_code == 3, first.output
    held = Ledger(tmp_path).entries()[target]
    assert held.status == "incomplete" and held.records > 0
    number = deactivated_numbers(server, target)[0]
    assert answer(run_cli, tmp_path, number) == "yes"
    server.fail(records_of(target), "status", status=404, times=None)  # expired upstream
    second = fetch(run_cli, tmp_path)
    assert "is gone upstream (HTTP 404)" in second.stdout
    entry = Ledger(tmp_path).entries()[target]
    assert entry.status == "gone" and entry.records == held.records
    assert answer(run_cli, tmp_path, number) == "yes"  # the events still count
    verify = run_cli("ledger", "verify", "--data-dir", tmp_path)
    assert verify.exit_code == 0, verify.output
    status = json.loads(run_cli("ledger", "status", "--data-dir", tmp_path, "--json").stdout)
    assert status["events"] == sum(e.records for e in Ledger(tmp_path).entries().values())


def test_2_a_retry_that_brings_fewer_records_loses_none(run_cli, api_env, server, tmp_path):
    target = long_report(server)
    records = server.reports[target]["records"]
    # first: 40 records, then the totals change (kept incomplete)
    server.fail(records_of(target, page=4), "shift_totals", times=1)
    assert fetch(run_cli, tmp_path).exit_code == 3
    before = Ledger(tmp_path).entries()[target].records
    assert before >= 40
    # the retry: the server now holds 10 of them only, and says so consistently
    server.reports[target]["records"] = records[:10]
    server.fail(records_of(target, page=1), "shift_totals", times=1)
    fetch(run_cli, tmp_path)
    entry = Ledger(tmp_path).entries()[target]
    assert entry.records >= before  # never lowered
    for number in deactivated_numbers(server, target):
        assert answer(run_cli, tmp_path, number) == "yes"


def test_3_the_same_records_for_every_page_are_not_a_complete_report(
    run_cli, api_env, server, tmp_path
):
    target = long_report(server)
    records = server.reports[target]["records"]
    server.fail(
        records_of(target),
        "dynamic",
        times=None,
        status=200,
        # the page echoed as asked, and 10^9 pages declared
        body_for=lambda params: page_body(records[:10], int(params["page"]), 10, 10**9, 2 * 10**9),
    )
    result = fetch(run_cli, tmp_path)
    assert result.exit_code == 3
    assert "page 1 repeats the records of page 0" in result.stdout
    entry = Ledger(tmp_path).entries()[target]
    assert entry.status == "incomplete" and entry.records == 10
    assert len(server.requests_to(f"{PREFIX}/{target}/records")) == 2  # no loop
    # a number deactivated on the real page 2 is "no data" (its day is not coverage),
    # never "no" (the day of a report held incomplete must not count as checked)
    later = next(
        r for r in records[20:] if r["type"] == "DEACTIVATION" and r["destination"][4] not in "01"
    )["destination"]
    assert answer(run_cli, tmp_path, later) != "no"
    status = json.loads(run_cli("ledger", "status", "--data-dir", tmp_path, "--json").stdout)
    day = server.reports[target]["metadata"]["dateTo"]
    assert all(
        operator["end"] is None or not operator["end"].startswith(day)
        for operator in status["coverage"]["operators"]
        if operator["network"] == server.reports[target]["metadata"]["networkName"]
    )


def test_4_a_report_imported_incomplete_is_completed_by_fetch(run_cli, api_env, server, tmp_path):
    target = long_report(server)
    report = server.reports[target]
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "metadata.json").write_text(
        json.dumps({"results": [report["metadata"]], "paging": {"page": 0, "totalPages": 1}})
    )
    (folder / f"{target}-page0.json").write_text(
        page_body(report["records"][:10], 0, 10, 6, len(report["records"])).decode()
    )
    data = tmp_path / "data"
    assert run_cli("ledger", "import", folder, "--data-dir", data).exit_code == 0
    assert Ledger(data).entries()[target].status == "incomplete"
    assert fetch(run_cli, data).exit_code == 0
    entry = Ledger(data).entries()[target]
    assert entry.status == "complete" and entry.records == len(report["records"])


def test_5_metadata_first_then_the_record_pages_make_one_complete_report(run_cli, server, tmp_path):
    target = long_report(server)
    report = server.reports[target]
    data = tmp_path / "data"
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"results": [report["metadata"]]}))
    assert run_cli("ledger", "import", meta, "--data-dir", data).exit_code == 0
    pages = tmp_path / "pages"
    pages.mkdir()
    for page in range(6):
        (pages / f"records-{target}-{page}.json").write_text(
            page_body(
                report["records"][page * 10 : page * 10 + 10], page, 10, 6, len(report["records"])
            ).decode()
        )
    result = run_cli("ledger", "import", pages, "--data-dir", data)
    assert result.exit_code == 0, result.output
    entries = Ledger(data).entries()
    assert list(entries) == [target]  # one report, not two
    assert entries[target].status == "complete"
    status = json.loads(run_cli("ledger", "status", "--data-dir", data, "--json").stdout)
    assert status["coverage"]["start"].startswith(report["metadata"]["dateFrom"][:10])
    assert status["coverage"]["start"][10:19] == "T00:00:00"  # dateFrom, not the first event


def test_6_the_deadline_holds_inside_a_long_report(run_cli, api_env, server, tmp_path):
    target = long_report(server)
    records = server.reports[target]["records"]

    def page(params: dict[str, str]) -> bytes:
        number = int(params["page"])
        shifted = [  # records of their own on each of 300 pages
            dict(record, destination=str(int(record["destination"]) + number))
            for record in records[:10]
        ]
        return page_body(shifted, number, 10, 300, 3000)

    # each page takes 20 ms: 300 pages would take 6 s; the deadline is 0.5 s
    server.fail(records_of(target), "dynamic", times=None, status=200, body_for=page, delay=0.02)
    result = fetch(run_cli, tmp_path, "--deadline", "0.5")
    assert result.exit_code == 3
    asked = len(server.requests_to(f"{PREFIX}/{target}/records"))
    assert 1 <= asked < 100
    entry = Ledger(tmp_path).entries().get(target)
    assert entry is not None and entry.status in ("incomplete", "listed")
    if entry.status == "incomplete":
        assert entry.records == 10 * asked or entry.records == 10 * (asked - 1)
    assert "deadline" in result.stdout


def test_7_a_report_list_that_answers_another_page_still_fetches_what_it_listed(
    run_cli, api_env, server, tmp_path
):
    listed = [report["metadata"] for report in server.reports.values()]
    # a static mock: every list request gets its example, "page 0 of 2" with the first
    # two reports; page 0 adds up, page 1 does not
    server.fail(
        metadata_request,
        "raw",
        times=None,
        status=200,
        body=page_body(listed[:2], 0, 2, 2, 4),
    )
    result = fetch(run_cli, tmp_path)
    assert result.exit_code == 3, result.output
    assert "the report list was cut short" in result.stdout
    entries = Ledger(tmp_path).entries()
    assert set(entries) == {meta["reportId"] for meta in listed[:2]}
    assert all(entry.status == "complete" for entry in entries.values())


def test_7_records_pages_that_always_answer_page_1_are_kept_incomplete(
    run_cli, api_env, server, tmp_path
):
    target = long_report(server)
    two = server.reports[target]["records"][:2]
    server.fail(
        records_of(target), "raw", times=None, status=200, body=page_body(two, 1, 2, 10, 20)
    )
    result = fetch(run_cli, tmp_path)
    assert result.exit_code == 3, result.output
    assert "page 0 was asked for, page 1 came" in result.stdout
    entry = Ledger(tmp_path).entries()[target]
    assert entry.status == "incomplete" and entry.records == 2


def write_config(tmp_path: Path, contacts: Path, extra: str) -> Path:
    config = tmp_path / "reconcile.toml"
    config.write_text(
        # the API's rate high enough that the run's fetch waits for nothing real
        f'[infobip]\nrate = 1000\n[ledger]\ndata_dir = "data"\n[[inputs]]\n'
        f'path = "{contacts.name}"\n{extra}\n'
    )
    return config


def test_8_run_checks_its_config_before_it_fetches(run_cli, api_env, server, tmp_path):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("Phone,Opt-In Date\n4155550123,2024-03-01\n")
    config = write_config(tmp_path, contacts, 'consent_timezone = "Europe/Pariss"')
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1
    assert result.stderr == (
        f"reconcile: error: {config}: [inputs][1].consent_timezone: 'Europe/Pariss' is not a "
        "time zone name (use an IANA name such as UTC or America/New_York).\n"
    )
    assert server.log == []  # nothing was asked of the API
    assert not (tmp_path / "data").exists()
    config = write_config(tmp_path, contacts, 'phone_column = "Mobile"')
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1 and server.log == []
    assert "[inputs][1] (contacts.csv)" in result.stderr and "Mobile" in result.stderr
    config = write_config(tmp_path, contacts, 'delimiter = "tab"')
    result = run_cli("run", "--config", config)
    assert result.exit_code == 1 and server.log == []  # the file has no tab
    config = write_config(tmp_path, contacts, 'delimiter = ","')
    result = run_cli("run", "--config", config)
    # [infobip] without base_url fetches from INFOBIP_BASE_URL; exit 3: the fake's
    # history ends days ago (stale)
    assert result.exit_code == 3, result.output
    assert "fetched 4 report(s) of 4 listed" in result.stdout
    assert "attention: the history is stale" in result.stdout
    # the fetch's progress, as `fetch` shows it when not on a terminal
    assert result.stderr.count("fetched report ") == len(server.reports)


def test_8_delimiter_tab_is_read_from_a_config(run_cli, tmp_path):
    contacts = tmp_path / "contacts.tsv"
    contacts.write_text("Phone\tOpt-In Date\n4155550123\t2024-03-01\n")
    config = tmp_path / "reconcile.toml"
    config.write_text(
        f'[ledger]\ndata_dir = "data"\n[[inputs]]\npath = "{contacts.name}"\ndelimiter = "tab"\n'
    )
    result = run_cli("run", "--config", config, "--dry-run")
    assert result.exit_code == 3, result.output  # no history: every contact unverified
    assert "contacts.tsv: 1 rows -> 1 kept (1 to review)" in result.stdout


@pytest.mark.parametrize(
    ("total", "said"),
    [
        (b"1" + b"0" * 400, "larger than the contract's 32-bit fields"),
        (b"7" * 5000, "a number too long to read"),
    ],
)
def test_paging_numbers_beyond_the_contract_are_refused_with_one_line(
    run_cli, api_env, server, tmp_path, total, said
):
    target = long_report(server)
    server.fail(
        records_of(target),
        "raw",
        times=None,
        status=200,
        body=b'{"results": [], "paging": {"page": 0, "size": 10, "totalPages": 1, '
        b'"totalResults": ' + total + b"}}",
    )
    result = fetch(run_cli, tmp_path)
    assert result.exit_code == 3, result.output
    assert said in result.stdout
    assert "internal error" not in result.output


def test_a_damaged_events_file_is_never_merged_into_a_new_one(run_cli, server, tmp_path):
    target = long_report(server)
    report = server.reports[target]
    data = tmp_path / "data"
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"results": [report["metadata"]]}))
    (folder / f"{target}-0.json").write_text(
        page_body(report["records"][:10], 0, 10, 6, len(report["records"])).decode()
    )
    assert run_cli("ledger", "import", folder, "--data-dir", data).exit_code == 0
    ledger = Ledger(data)
    path = ledger.root / ledger.entries()[target].file
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))
    (folder / f"{target}-0.json").unlink()
    (folder / f"{target}-1.json").write_text(
        page_body(report["records"][10:20], 1, 10, 6, len(report["records"])).decode()
    )
    # a read names the file changed in place, in one line (no internal error)
    for command in (
        ["ledger", "status"],
        ["check", "4155550123"],
        ["ledger", "export", tmp_path / "x.csv"],
    ):
        read = run_cli(*command, "--data-dir", data)
        assert read.exit_code == 1, command
        assert str(path) in read.stderr and read.stderr.count("\n") == 1, read.stderr
    result = run_cli("ledger", "import", folder, "--data-dir", data)
    assert result.exit_code == 1
    assert str(path) in result.stderr and result.stderr.count("\n") == 1
    verify = run_cli("ledger", "verify", "--data-dir", data)
    assert verify.exit_code == 1 and path.name in verify.output
