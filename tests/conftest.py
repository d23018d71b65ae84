"""Fixtures: a small history on disk as change files, and a CLI runner."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

from reconcile.cli import main
from tests.fake_infobip import FakeInfobip, make_reports

# CI replays the same examples every time (a red build must mean a change broke
# something); local runs draw new ones and keep searching.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

METADATA = {
    "results": [
        {
            "reportId": "rep-vz-1",
            "networkName": "Verizon Wireless",
            "networkId": 1717,
            "generatedDate": "2024-04-01T00:00:00Z",
            "dateFrom": "2024-03-01T00:00:00Z",
            "dateTo": "2024-04-01T00:00:00Z",
            "expiryDate": "2024-05-31T00:00:00Z",
        },
        {
            "reportId": "rep-att-1",
            "networkName": "AT&T Mobility",
            "networkId": 1733,
            "generatedDate": "2024-06-01",
            "dateFrom": "2024-03-01",
            "dateTo": "2024-06-01",
            "expiryDate": "2024-07-31",
        },
    ],
    "paging": {"page": 0, "size": 20, "totalPages": 1, "totalResults": 2},
}

# numbers the tests use: 4155550101 deactivated, ...0102 suspended, ...0103 re-consented
RECORDS_VZ = {
    "results": [
        {
            "date": "2024-03-10T11:00:00.000+0000",
            "destination": "14155550101",
            "type": "DEACTIVATION",
            "newDestination": "14155550999",
        },
        {
            "date": "2024-03-12T08:00:00.000+0000",
            "destination": "14155550102",
            "type": "SUSPENSION",
        },
    ],
    "paging": {"page": 0, "size": 20, "totalPages": 1, "totalResults": 2},
}
RECORDS_ATT = {
    "results": [
        {
            "date": "2024-03-05T00:00:00.000+0000",
            "destination": "14155550103",
            "type": "DEACTIVATION",
        },
        # the same deactivation reported twice by two reports counts once
        {
            "date": "2024-03-10T11:00:00.000+0000",
            "destination": "14155550101",
            "type": "DEACTIVATION",
        },
    ],
    "paging": {"page": 0, "size": 20, "totalPages": 1, "totalResults": 2},
}


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test touches the user's data directory or sees a real API key."""
    monkeypatch.setenv("RECONCILE_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    for name in (
        "INFOBIP_API_KEY",
        "INFOBIP_BASE_URL",
        "INFOBIP_AUTH_SCHEME",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_BASE_URL",
        "VONAGE_API_KEY",
        "VONAGE_API_SECRET",
        "VONAGE_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def history_dir(tmp_path: Path) -> Path:
    """A folder of change files: one metadata page and two records pages."""
    folder = tmp_path / "changes"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps(METADATA))
    (folder / "rep-vz-1.json").write_text(json.dumps(RECORDS_VZ))
    (folder / "records-rep-att-1-page0.json").write_text(json.dumps(RECORDS_ATT))
    return folder


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """Run the CLI in-process; stdout and stderr are kept apart."""

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)

    return run


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes: to show nothing was written."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# The fake Infobip that command-line tests fetch from: the CLI runs on the real clock, so
# its reports start ten days ago; the key is planted, then searched for in every output.
CLI_KEY = "SeCrEt-KeY-4f1c9a77e2"
RECENT = date.today() - timedelta(days=10)


@pytest.fixture
def server() -> Iterator[FakeInfobip]:
    """Four daily reports (one long: 57 records, 6 pages of 10) on 127.0.0.1."""
    with FakeInfobip(make_reports(start=RECENT), key=CLI_KEY) as fake:
        yield fake


@pytest.fixture
def api_env(server: FakeInfobip, monkeypatch: pytest.MonkeyPatch) -> None:
    """INFOBIP_API_KEY and INFOBIP_BASE_URL pointing at ``server``."""
    monkeypatch.setenv("INFOBIP_API_KEY", CLI_KEY)
    monkeypatch.setenv("INFOBIP_BASE_URL", server.base_url)
