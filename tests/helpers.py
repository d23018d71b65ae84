"""Shared test helpers: build histories and contacts without touching the disk."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from reconcile.consent import parse_consent, parse_utc_instants
from reconcile.history import EVENT_SCHEMA
from reconcile.phones import normalize_phones
from reconcile.verdicts import decide


def utc(text: str) -> datetime:
    """A UTC datetime from ISO text ('2024-03-10' or '2024-03-10T11:00:00Z')."""
    value = parse_utc_instants(pl.Series([text])).item()
    assert value is not None, text
    return value


def events_frame(rows: list[tuple[int, str, str]] | list[tuple]) -> pl.DataFrame:
    """Events from (number, type, ISO date[, report_id[, new_number[, network]]]) tuples."""
    records = []
    for row in rows:
        number, kind, date, *rest = row
        report_id = rest[0] if len(rest) > 0 else "report-1"
        new_number = rest[1] if len(rest) > 1 else None
        network = rest[2] if len(rest) > 2 else "Verizon Wireless"
        records.append(
            {
                "number": number,
                "type": kind,
                "occurred_at": utc(date),
                "new_number": new_number,
                "report_id": report_id,
                "network_id": 1717,
                "network_name": network,
            }
        )
    return pl.DataFrame(records, schema=EVENT_SCHEMA)


def contacts_frame(
    rows: list[tuple[str | None, str | None]], timezone: str = "UTC"
) -> pl.DataFrame:
    """Contacts as reconcile_file builds them, from (phone, consent) raw cells."""
    values = pl.DataFrame(
        {
            "row": list(range(1, len(rows) + 1)),
            "phone": [phone for phone, _ in rows],
            "consent": [consent for _, consent in rows],
            "id": [f"C{index}" for index in range(1, len(rows) + 1)],
        },
        schema={"row": pl.UInt32, "phone": pl.String, "consent": pl.String, "id": pl.String},
    )
    phones = normalize_phones(values.get_column("phone"))
    consent = parse_consent(values.get_column("consent"), timezone)
    return pl.concat([values, phones, consent], how="horizontal")


def decide_one(
    phone: str | None,
    consent: str | None,
    events: list[tuple],
    coverage_start: str | None = "2024-03-01",
    timezone: str = "UTC",
) -> dict[str, object]:
    """The decision row for one contact against the given events."""
    start = utc(coverage_start) if coverage_start else None
    result = decide(contacts_frame([(phone, consent)], timezone), events_frame(events), start)
    return result.row(0, named=True)


NOW = datetime(2024, 6, 2, tzinfo=UTC)

# How CRMs write a NANP number ({a} area code, {b} exchange, {c} line): the generated
# files of the property tests and of the Spark agreement tests draw from these.
NANP_FORMATS = (
    "{a}{b}{c}",
    "({a}) {b}-{c}",
    "+1 {a} {b} {c}",
    "1-{a}-{b}-{c}",
    "{a}.{b}.{c} x7",
    "tel:+1{a}{b}{c}",
    "001{a}{b}{c}",
    "011 1 {a} {b} {c}",
    " {a} {b} {c} ",
    "{a}{b}{c}.0",
)


# SPEC "Outputs": the columns flag mode appends, in order.
FLAG_COLUMNS = (
    "reconcile_verdict",
    "reconcile_action",
    "reconcile_reason",
    "reconcile_phone_e164",
    "reconcile_event_date",
    "reconcile_suggested_number",
)


def run_clean(path, history_dir, **options):
    """clean_files on one input against a change-file folder, with the test clock."""
    from reconcile.clean import CleanOptions, clean_files
    from reconcile.history_files import load_change_files

    return clean_files(
        [path], load_change_files([history_dir]), CleanOptions(**options), NOW, keep_decisions=True
    )


def rewrite_sheet(source, edit, *, target=None, rename=None) -> None:  # type: ignore[no-untyped-def]
    """``source`` (written to ``target``, else in place) with its first sheet's XML passed
    through ``edit(text) -> text``, and moved to ``rename`` with its relationship and
    content type following."""
    import zipfile

    with zipfile.ZipFile(source) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    sheet = "xl/worksheets/sheet1.xml"
    edited = edit(parts.pop(sheet).decode()).encode()
    if rename:
        for name in ("xl/_rels/workbook.xml.rels", "[Content_Types].xml"):
            parts[name] = parts[name].replace(
                b"worksheets/sheet1.xml", rename.removeprefix("xl/").encode()
            )
    parts[rename or sheet] = edited
    with zipfile.ZipFile(target or source, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
