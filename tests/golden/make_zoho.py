"""Writes zoho-contacts.xlsx, the Zoho CRM shape: numbers as numeric cells, dates as
date cells, ids as text. Re-saved through LibreOffice where it is installed
(`soffice --headless --convert-to xlsx`), as the issue's file was."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent

workbook = openpyxl.Workbook()
sheet = workbook.active
sheet.title = "Contacts"
sheet.append(
    [
        "Record Id",
        "First Name",
        "Last Name",
        "Phone",
        "Mobile",
        "Home Phone",
        "Opt-In Date",
        "Lead Source",
    ]
)
sheet.append(
    [
        "5725767000000412001",
        "Vik",
        "Vo",
        2125550143,
        4155550123,
        None,
        dt.datetime(2024, 3, 5),
        "Web",
    ]
)
sheet.append(
    [
        "5725767000000412002",
        "Wen",
        "Wu",
        None,
        3125550199.0,
        None,
        dt.datetime(2024, 4, 5),
        "Trade Show",
    ]
)
sheet.append(
    [
        "5725767000000412003",
        "Xavi",
        "Xu",
        None,
        None,
        "617-555-0142",
        dt.datetime(2024, 3, 5),
        "Web",
    ]
)
sheet.append(
    ["5725767000000412004", "Yara", "Young", None, None, None, dt.datetime(2024, 3, 5), "Referral"]
)
sheet.append(
    [
        "5725767000000412005",
        "Zoe",
        "Zhang",
        "(212) 555-0143 (cell)",
        None,
        None,
        dt.datetime(2024, 3, 5),
        "Web",
    ]
)
target = HERE / "zoho-contacts.xlsx"
workbook.save(target)
office = shutil.which("soffice") or shutil.which("libreoffice")
if office:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [office, "--headless", "--convert-to", "xlsx", "--outdir", folder, str(target)],
            check=True,
            capture_output=True,
        )
        shutil.copy(Path(folder) / target.name, target)
