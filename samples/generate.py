"""Regenerate the sample contact files and change files (seeded: the output never varies).

    python samples/generate.py

The contacts are messy the way CRM exports are: every phone format the SPEC lists,
consent dates in ISO, US and Salesforce styles, blanks, junk, quoted commas and line
breaks, ZIP codes with leading zeros. The change files are API JSON pages (metadata and
records) plus one bare CSV, chosen so that every verdict occurs.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import random
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent
CHANGES = HERE / "changes"
RANDOM = random.Random(2026)
UTC = dt.UTC

FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dev",
    "Eli",
    "Fatima",
    "Gus",
    "Hana",
    "Ivan",
    "Jo",
    "Kai",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tomás",
    "Uma",
    "Vik",
    "Wen",
    "Xavi",
    "Yara",
    "Zoe",
]
LAST = [
    "Alvarez",
    "Brown",
    "Chen",
    "Diaz",
    "Evans",
    "Garcia",
    "Hughes",
    "Ito",
    "Jones",
    "Kim",
    "Lopez",
    "Müller",
    "Nguyen",
    "O'Brien",
    "Patel",
    "Reyes",
    "Smith",
    "Tran",
]
ZIPS = ["02134", "10001", "94110", "60614", "07302", "73301", "98101", "00501", "33109"]

REPORTS = [
    # report id, operator, network id, from, to, fetched?
    ("5d7c1a2e-vz-1001", "Verizon Wireless", 1717, "2026-10-01", "2026-10-15", True),
    ("5d7c1a2e-vz-1015", "Verizon Wireless", 1717, "2026-10-15", "2026-11-01", True),
    ("5d7c1a2e-vz-1101", "Verizon Wireless", 1717, "2026-11-01", "2026-11-20", True),
    ("8a41f0c3-att-1001", "AT&T Mobility", 1733, "2026-10-01", "2026-10-15", True),
    ("8a41f0c3-att-1015", "AT&T Mobility", 1733, "2026-10-15", "2026-10-22", False),
    ("8a41f0c3-att-1022", "AT&T Mobility", 1733, "2026-10-22", "2026-11-20", True),
    ("c93e77d1-tmo-1001", "T-Mobile USA", 1750, "2026-10-01", "2026-11-20", True),
]
COVERAGE_START = dt.datetime(2026, 10, 1, tzinfo=UTC)


def nanp(generator: random.Random = RANDOM) -> str:
    area = f"{generator.randint(2, 9)}{generator.randint(0, 99):02d}"
    return f"1{area}{generator.randint(2, 9)}{generator.randint(0, 999999):06d}"


def written(digits: str, generator: random.Random = RANDOM) -> str:
    """One of the ways a CRM holds a US number."""
    area, exchange, line = digits[1:4], digits[4:7], digits[7:]
    return generator.choice(
        [
            f"+1 ({area}) {exchange}-{line}",
            f"{area}.{exchange}.{line}",
            f"{area}{exchange}{line}",
            f"1-{area}-{exchange}-{line}",
            f"({area}) {exchange}-{line}",
            f"+1{area}{exchange}{line}",
            f"({area}) {exchange}-{line} x{generator.randint(10, 999)}",
            f"{area}-{exchange}-{line} ext. 45",
            f"tel:+1{area}{exchange}{line}",
            f"001{area}{exchange}{line}",
            f" {area} {exchange} {line} ",
        ]
    )


def consent_text(moment: dt.datetime) -> str:
    """One of the ways a CRM exports a consent date."""
    hour12 = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    return RANDOM.choice(
        [
            moment.strftime("%Y-%m-%d"),
            moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            f"{moment.month}/{moment.day}/{moment.year}",
            f"{moment.month}/{moment.day}/{moment.year} {hour12}:{moment.minute:02d} {meridiem}",
            moment.astimezone(dt.timezone(dt.timedelta(hours=-5))).strftime(
                "%Y-%m-%dT%H:%M:%S-05:00"
            ),
        ]
    )


def event_time(start: dt.datetime, end: dt.datetime) -> dt.datetime:
    span = int((end - start).total_seconds())
    return start + dt.timedelta(seconds=RANDOM.randrange(span) // 60 * 60)


def main() -> None:
    contacts: list[dict[str, object]] = []
    events: dict[str, list[dict[str, str]]] = {report[0]: [] for report in REPORTS}
    csv_events: list[dict[str, str]] = []
    fetched = [report for report in REPORTS if report[5]]

    def report_for(moment: dt.datetime) -> str:
        day = moment.strftime("%Y-%m-%d")
        choices = [r[0] for r in fetched if r[3] <= day < r[4]]
        return RANDOM.choice(choices)

    def add_event(number: str, kind: str, moment: dt.datetime, new: str | None = None) -> None:
        record = {
            "date": moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "destination": number,
            "type": kind,
        }
        if new:
            record["newDestination"] = new
        events[report_for(moment)].append(record)

    plan = (
        ["deactivated"] * 22
        + ["reconsented"] * 8
        + ["suspended"] * 8
        + ["reactivated"] * 5
        + ["old_consent"] * 22
        + ["no_consent"] * 9
        + ["bad_consent"] * 3
        + ["invalid"] * 12
        + ["international"] * 6
        + ["ok"] * 105
    )
    RANDOM.shuffle(plan)
    end = dt.datetime(2026, 11, 20, tzinfo=UTC)
    invalid_cells = [
        "(123) 555-0123",
        "4.15555E+09",
        "555-0199",
        "",
        "N/A",
        "1-800-FLOWERS",
        "+44 20 7946 095",
        "415555012345",
        "  ",
        "(212) 055-0147",
        "call office",
        "",
    ]
    international = [
        "+44 20 7946 0958",
        "011 44 20 7946 0321",
        "+49 30 901820",
        "+33 1 42 68 53 00",
        "+52 55 5062 7000",
        "0061 2 9374 4000",
    ]
    for index, kind in enumerate(plan, start=1):
        digits = nanp()
        consent = event_time(
            dt.datetime(2026, 10, 2, tzinfo=UTC), dt.datetime(2026, 11, 10, tzinfo=UTC)
        )
        phone: str = written(digits)
        consent_cell = consent_text(consent)
        if kind == "deactivated":
            moment = event_time(consent, end)
            add_event(
                digits,
                RANDOM.choice(["DEACTIVATION"] * 5 + ["ACTIVATION"]),
                moment,
                nanp() if RANDOM.random() < 0.3 else None,
            )
        elif kind == "reconsented":
            add_event(digits, "DEACTIVATION", event_time(COVERAGE_START, consent))
        elif kind == "suspended":
            add_event(digits, "SUSPENSION", event_time(COVERAGE_START, end))
        elif kind == "reactivated":
            moment = event_time(COVERAGE_START, end - dt.timedelta(days=5))
            add_event(digits, "SUSPENSION", moment)
            add_event(digits, "REACTIVATION", moment + dt.timedelta(days=RANDOM.randint(1, 4)))
        elif kind == "old_consent":
            consent_cell = consent_text(
                event_time(dt.datetime(2025, 3, 1, tzinfo=UTC), COVERAGE_START)
            )
        elif kind == "no_consent":
            consent_cell = RANDOM.choice(["", " ", ""])
        elif kind == "bad_consent":
            consent_cell = RANDOM.choice(["2026-02-30", "13/45/2026", "last spring"])
        elif kind == "invalid":
            phone = invalid_cells.pop()
        elif kind == "international":
            phone = international.pop()
        first, last = RANDOM.choice(FIRST), RANDOM.choice(LAST)
        notes = RANDOM.choice(
            [
                "",
                "",
                "",
                "VIP",
                "prefers SMS, not calls",
                'moved from "Old CRM"',
                "line one\nline two",
                "called 3x; no answer",
            ]
        )
        contacts.append(
            {
                "Contact ID": f"C-{1000 + index}",
                "First Name": first,
                "Last Name": last,
                "Email": f"{first.lower()}.{last.lower().replace(chr(39), '')}@example.com",
                "Mobile Phone": phone,
                "Opt-In Date": consent_cell,
                "Zip": RANDOM.choice(ZIPS),
                "Notes": notes,
            }
        )
    # operator noise: numbers that are not in the file
    for _ in range(240):
        add_event(
            nanp(),
            RANDOM.choice(["DEACTIVATION"] * 8 + ["SUSPENSION", "REACTIVATION"]),
            event_time(COVERAGE_START, end),
        )
    # a duplicate report of one deactivation, and a bare CSV from another provider
    deactivated = next(iter(e for e in events["5d7c1a2e-vz-1101"] if e["type"] == "DEACTIVATION"))
    events["8a41f0c3-att-1022"].append(dict(deactivated))
    for _ in range(12):
        csv_events.append(
            {
                "destination": nanp(),
                "date": event_time(dt.datetime(2026, 10, 5, tzinfo=UTC), end).strftime(
                    "%Y-%m-%dT%H:%M:%S.000+0000"
                ),
                "type": "DEACTIVATION",
            }
        )

    columns = list(contacts[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(contacts)
    (HERE / "contacts.csv").write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    sheet.append(columns)
    for contact in contacts:
        row = dict(contact)
        phone = str(row["Mobile Phone"])
        if phone.isdigit() and len(phone) == 10:
            row["Mobile Phone"] = int(phone)  # a numeric cell, as Excel stores it
        consent = str(row["Opt-In Date"])
        with contextlib.suppress(ValueError):
            row["Opt-In Date"] = dt.datetime.strptime(consent, "%Y-%m-%d")  # a date cell
        sheet.append([row[column] or None for column in columns])
    for cell in sheet["F"][1:]:
        if isinstance(cell.value, dt.datetime):
            cell.number_format = "yyyy-mm-dd"
    # fixed document dates, so that regenerating gives the same bytes
    workbook.properties.created = workbook.properties.modified = dt.datetime(2026, 11, 21)
    workbook.save(HERE / "contacts.xlsx")

    CHANGES.mkdir(exist_ok=True)
    for old in CHANGES.iterdir():
        old.unlink()
    metadata = [
        {
            "reportId": report_id,
            "networkName": operator,
            "networkId": network_id,
            "generatedDate": f"{date_to}T00:00:00Z",
            "dateFrom": f"{date_from}T00:00:00Z",
            "dateTo": date_to,
            "expiryDate": (dt.date.fromisoformat(date_to) + dt.timedelta(days=60)).isoformat(),
        }
        for report_id, operator, network_id, date_from, date_to, _ in REPORTS
    ]
    page = {
        "results": metadata,
        "paging": {"page": 0, "size": 20, "totalPages": 1, "totalResults": len(metadata)},
    }
    (CHANGES / "network-reports.json").write_text(json.dumps(page, indent=2) + "\n")
    for report_id, *_rest, was_fetched in REPORTS:
        if not was_fetched:
            continue
        records = sorted(events[report_id], key=lambda record: record["date"])
        size = 100
        pages = max(1, -(-len(records) // size))
        for number in range(pages):
            chunk = records[number * size : (number + 1) * size]
            body = {
                "results": chunk,
                "paging": {
                    "page": number,
                    "size": size,
                    "totalPages": pages,
                    "totalResults": len(records),
                },
            }
            (CHANGES / f"{report_id}.records.page{number}.json").write_text(
                json.dumps(body, indent=2) + "\n"
            )
    with (CHANGES / "other-provider.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["destination", "date", "type"])
        writer.writeheader()
        writer.writerows(csv_events)
    salesforce_report()


# The footer a Salesforce report export ("Details Only", CSV) ends with.
SALESFORCE_FOOTER = [
    "Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved.",
    "Confidential Information - Do Not Distribute",
    "Generated By:  Sam Admin  11/28/2026 6:15 AM",
    "Acme Home Services",
]


def salesforce_report() -> None:
    """``salesforce-report.csv``: a Salesforce contact report with Phone and Mobile, a
    label or two numbers in some cells, and the report footer, against the same
    change files."""
    generator = random.Random(77)  # its own: the other samples stay as they are
    deactivated: list[str] = []
    for path in sorted(CHANGES.glob("*.records.page*.json")):
        for record in json.loads(path.read_text())["results"]:
            if record["type"] == "DEACTIVATION" and record["date"] >= "2026-10-04":
                deactivated.append(record["destination"])
    header = [
        "Contact ID",
        "First Name",
        "Last Name",
        "Phone",
        "Mobile",
        "Email",
        "SMS Opt-In Date",
    ]

    def number(digits: str | None = None) -> str:
        return written(digits or nanp(generator), generator)

    rows = []
    for index in range(40):
        first, last = generator.choice(FIRST), generator.choice(LAST)
        phone, mobile = number(), number()
        gone = deactivated[(index * 7) % len(deactivated)]
        kind = index % 8
        if kind == 1:  # the mobile was deactivated after consent
            mobile = number(gone)
        elif kind == 2:  # a labelled cell hides a deactivated number
            mobile = "Mobile: " + number(gone).strip()
        elif kind == 3:  # two numbers in one cell, the second deactivated
            phone = f"{number().strip()} / {number(gone).strip()}"
        elif kind == 4:
            phone = ""
        elif kind == 5:
            mobile = f"{mobile.strip()} (cell)"
        elif kind == 6:
            phone, mobile = "", ""
        consent = dt.date(2026, 10, 1) + dt.timedelta(days=generator.randrange(3))
        rows.append(
            [
                f"0035e00000{generator.randrange(36**5):05X}"[:15],
                first,
                last,
                phone,
                mobile,
                f"{first.lower()}.{last.lower()}@example.com",
                f"{consent.month}/{consent.day}/{consent.year}",
            ]
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    buffer.write("\r\n")
    for line in SALESFORCE_FOOTER:
        writer.writerow([line])
    (HERE / "salesforce-report.csv").write_bytes(buffer.getvalue().encode("utf-8"))


if __name__ == "__main__":
    main()
