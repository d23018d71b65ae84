"""Writes dynamics-contacts.xlsx, the Dynamics 365 "Export to Excel" shape: the import keys
in hidden "(Do Not Modify)" columns A:C, a hidden sheet of metadata, dates as date cells
with their number format, numbers as text."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent

workbook = openpyxl.Workbook()
sheet = workbook.active
sheet.title = "My Active Contacts"
sheet.append(
    [
        "(Do Not Modify) Contact",
        "(Do Not Modify) Row Checksum",
        "(Do Not Modify) Modified On",
        "Full Name",
        "Email",
        "Business Phone",
        "Mobile Phone",
        "Company Name",
        "Created On",
        "SMS Opt-In Date",
    ]
)
consent = dt.datetime(2024, 3, 5, 9, 0)
created = dt.datetime(2024, 2, 1, 9, 0)
rows = [
    ("2f6c1a4e-0c3b-ef11-8409-000d3a5b1c01", "Tara Ueno", "212-555-0190", "415-555-0123"),
    ("2f6c1a4e-0c3b-ef11-8409-000d3a5b1c02", "Umar Vance", "(312) 555-0199", ""),
    ("2f6c1a4e-0c3b-ef11-8409-000d3a5b1c03", "Vera Wolf", "", "617-555-0142"),
    ("2f6c1a4e-0c3b-ef11-8409-000d3a5b1c04", "Will Xi", "212-555-0191", ""),
]
for key, name, business, mobile in rows:
    sheet.append(
        [
            key,
            "k3Qd+Zx1mQ==",
            dt.datetime(2024, 3, 6, 8, 0),
            name,
            f"{name.split()[0].lower()}@example.com",
            business or None,
            mobile or None,
            "Contoso",
            created,
            consent,
        ]
    )
for column in "ABC":
    sheet.column_dimensions[column].hidden = True
for cells in sheet.iter_rows(min_row=2, min_col=9, max_col=10):
    for cell in cells:
        cell.number_format = "m/d/yyyy h:mm AM/PM"
hidden = workbook.create_sheet("hiddenDataSheet")
hidden.sheet_state = "hidden"
hidden.append(["contact:ZrXq0...", "entity", "contact"])
workbook.save(HERE / "dynamics-contacts.xlsx")
