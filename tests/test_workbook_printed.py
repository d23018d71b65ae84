"""The audit workbook as a person sees it: opened by LibreOffice and printed to PDF."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tools() -> tuple[str, str, str]:
    office = shutil.which("soffice") or shutil.which("libreoffice")
    text, info = shutil.which("pdftotext"), shutil.which("pdfinfo")
    if office and text and info:
        return office, text, info
    message = "LibreOffice (libreoffice-calc-nogui) and poppler-utils are needed"
    if os.environ.get("CI"):  # .ci/run installs them: missing there is a failure
        pytest.fail(message)
    pytest.skip(message)


def test_the_sample_workbook_prints_readably(run_cli, tmp_path, monkeypatch):
    office, pdftotext, pdfinfo = _tools()
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    result = run_cli(
        "clean", "samples/contacts.csv", "--changes", "samples/changes", "--out-dir", out
    )
    assert result.exit_code == 0, result.output
    profile = tmp_path / "profile"
    subprocess.run(
        [
            office,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(out / "contacts.report.xlsx"),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    pdf = tmp_path / "contacts.report.pdf"
    pages = int(
        next(
            line.split()[-1]
            for line in subprocess.run(
                [pdfinfo, str(pdf)], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            if line.startswith("Pages:")
        )
    )
    assert pages <= 12  # 39 before the page setup
    first_page = subprocess.run(
        [pdftotext, "-layout", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # the Summary reads on one page: its labels and their values side by side
    assert "Input SHA-256" in first_page and "Coverage end (UTC): verdicts hold as of" in first_page
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for header in ("Field", "Contact id", "Reason", "Operator", "Report id", "Week starting (UTC)"):
        assert header in text, header
    assert "###" not in text  # no value too wide for its column
