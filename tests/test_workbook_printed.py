"""The audit workbook as a person sees it: opened by LibreOffice and printed to PDF."""

from __future__ import annotations

import json
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
        "clean", "samples/contacts.csv", "--changes", "samples/changes", "--out-dir", out, "--json"
    )
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
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
    # page 1 is the audit statement: what was checked, decided, on what evidence, and
    # every warning whole and in order (wrapped rows as high as their text)
    labels = ("What was checked", "What was decided", "On what evidence", "What it cannot answer")
    for label in labels:
        assert label in first_page, label
    assert "Input SHA-256" not in first_page  # the run's details follow on the next page
    flowing = first_page
    for label in (*labels, "Field", "Value"):
        flowing = flowing.replace(label, " ")
    flowing = " ".join(flowing.split())
    position = 0
    for warning in summary["warnings"]:
        found = flowing.find(" ".join(warning.split()), position)
        assert found >= 0, warning
        position = found
    assert "200 contacts in contacts.csv" in flowing and "22 removed" in flowing
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for header in ("Field", "Contact id", "Reason", "Operator", "Report id", "Week starting (UTC)"):
        assert header in text, header
    assert "###" not in text  # no value too wide for its column
