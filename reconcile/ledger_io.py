"""The ledger looked after: export its events, its status, verify and rebuild it
(imports are `ledger_import`'s)."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Literal, TypedDict

import polars as pl

from reconcile._atomic import OutputBatch
from reconcile._text import first_line as _first_line
from reconcile._text import iso_instant
from reconcile._text import iso_utc as _iso
from reconcile.errors import LedgerError, OutputError
from reconcile.ledger import Ledger, ReportEntry
from reconcile.ledger_files import describe_file, entries_in, file_problem, read_file_metadata
from reconcile.lifecycle import ReportStatus, expiry_of_unfetched, rank_of

__all__ = [
    "LedgerStatus",
    "RebuildSummary",
    "VerifyReport",
    "export_events",
    "ledger_status",
    "rebuild_ledger",
    "verify_ledger",
]


class OperatorStatus(TypedDict):
    network: str
    start: str | None
    end: str | None
    reports: int
    gaps: list[list[str | None]]
    assumed: bool


class CoverageStatus(TypedDict):
    start: str | None
    end: str | None
    operators: list[OperatorStatus]
    # spans no source covers that are no one operator's gap
    holes: list[list[str | None]]
    notes: list[str]


class EvidenceSource(TypedDict):
    """A source of events only (delivery failures): named, never coverage."""

    network: str
    reports: int
    events: int


class LedgerStatus(TypedDict):
    """`ledger status` as JSON."""

    ledger: str
    reports: int
    by_status: dict[str, int]
    events: int
    evidence_only: list[EvidenceSource]
    last_sync: str | None
    coverage: CoverageStatus
    expired_unfetched: list[str]
    expiring_soon: list[str]
    unknown_files: list[str]
    replaced_files: list[str]


def export_events(
    ledger: Ledger,
    target: Path,
    fmt: Literal["parquet", "csv"] | None = None,
    force: bool = False,
) -> int:
    """Write every event in the ledger to ``target`` (Parquet, or CSV when ``fmt`` says
    so or, without ``fmt``, the file name ends in ``.csv``); return how many."""
    if fmt is None:
        suffix = target.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise OutputError(
                f"{target}: name the file .parquet or .csv, or say which with --format."
            )
        fmt = "csv" if suffix == ".csv" else "parquet"
    if target.exists() and not force:
        raise OutputError(f"{target} already exists; pass --force to replace it.")
    events = ledger.scan_events().sort(["occurred_at", "number", "report_id"]).collect()
    buffer = io.BytesIO()
    if fmt == "parquet":
        events.write_parquet(buffer)
    else:
        # every digit of the instant: a truncated one could read as before a consent
        events.with_columns(iso_instant(pl.col("occurred_at"))).write_csv(buffer)
    batch = OutputBatch()
    batch.add_bytes(target, buffer.getvalue())
    batch.commit()
    return events.height


def ledger_status(ledger: Ledger, now: datetime) -> LedgerStatus:
    """Reports by status, events, coverage per operator, last sync, expiry warnings."""
    entries = ledger.entries()
    history = ledger.history()
    coverage = history.coverage()
    statuses: dict[str, int] = {}
    evidence: dict[str, EvidenceSource] = {}
    for entry in entries.values():
        statuses[entry.status] = statuses.get(entry.status, 0) + 1
        if entry.status == ReportStatus.EVIDENCE:
            name = entry.network_name or "(operator not named)"
            source = evidence.setdefault(name, {"network": name, "reports": 0, "events": 0})
            source["reports"] += 1
            source["events"] += entry.records
    expired, expiring = expiry_of_unfetched(entries.values(), now)
    replaced = ledger.replaced_files()
    return {
        "ledger": str(ledger.root),
        "reports": len(entries),
        "by_status": dict(sorted(statuses.items())),
        "events": history.events.height,
        "evidence_only": [evidence[name] for name in sorted(evidence)],
        "last_sync": _iso(ledger.last_sync()),
        "coverage": {
            "start": _iso(coverage.start),
            "end": _iso(coverage.end),
            "operators": [
                {
                    "network": operator.network,
                    "start": _iso(operator.start),
                    "end": _iso(operator.end),
                    "reports": operator.reports,
                    "gaps": [[_iso(start), _iso(end)] for start, end in operator.gaps],
                    "assumed": operator.assumed,
                }
                for operator in coverage.operators
            ],
            "holes": [[_iso(start), _iso(end)] for start, end in coverage.holes],
            "notes": coverage.notes,
        },
        "expired_unfetched": sorted(entry.report_id for entry in expired),
        "expiring_soon": sorted(entry.report_id for entry in expiring),
        "unknown_files": [name for name in ledger.unknown_files() if name not in replaced],
        "replaced_files": replaced,
    }


class RebuildSummary(TypedDict):
    """What `rebuild_ledger` restored."""

    ledger: str
    reports: int
    by_status: dict[str, int]
    events: int
    files_used: int
    files_kept: list[str]
    files_unreadable: list[str]


def rebuild_ledger(ledger: Ledger, wait: float = 0) -> RebuildSummary:
    """Restore the manifest from the events files: every report they hold, from every
    file that reads whole (and matches the checksum a readable manifest keeps), with
    what a readable manifest adds (reports listed but never fetched). Each report takes
    its most complete, largest and latest version; every other whole version then goes
    through the one commit path, which keeps each event it adds. Nothing is deleted;
    the files not chosen are kept."""
    with ledger.locked(wait, rebuilding=True):
        try:
            current = ledger.entries()
            last_sync = ledger.last_sync()
            described = ledger.file_descriptions()
        except LedgerError:
            current, last_sync, described = {}, None, {}
        candidates: dict[str, list[tuple[tuple[int, int, int, str, int], ReportEntry]]] = {}
        file_reports: dict[str, int] = {}
        unreadable: list[str] = []
        whole: dict[str, bool] = {}

        def is_whole(name: str) -> bool:
            if name not in whole:
                whole[name] = file_problem(ledger.root / name, described.get(name)) is None
            return whole[name]

        def offer(entry: ReportEntry, when: str, order: int) -> None:
            rank = (rank_of(entry.status), 1 if entry.file else 0, entry.records, when, order)
            candidates.setdefault(entry.report_id, []).append((rank, entry))

        for order, entry in enumerate(current.values()):
            # a manifest entry whose file is gone or damaged is not offered: the files
            # that are whole decide (the report drops out if none holds it)
            if entry.file is None or is_whole(entry.file):
                # a readable manifest knows more than the files (metadata imported later):
                # among equals its entry wins; any other version's events are merged
                offer(entry, "~", order)
        for order, path in enumerate(ledger.event_files_on_disk()):
            name = f"events/{path.name}"
            try:
                if not is_whole(name):
                    raise LedgerError(name)
                metadata = read_file_metadata(path)
                entries = _file_entries(ledger, path, name, metadata, current)
            except LedgerError:
                unreadable.append(name)
                continue
            file_reports[name] = len(entries)
            when = str(metadata.get("committed_at") or "") if metadata else ""
            for entry in entries:
                offer(entry, when, order)
            # the reports each file's commit knew without events (listed, gone): every
            # file's, since an older manifest restored may have written the newest
            for known in entries_in(metadata.get("without_files") if metadata else None):
                offer(replace(known, file=None, records=0), when, -1)
        chosen: dict[str, ReportEntry] = {}
        others: list[ReportEntry] = []
        for report_id, offers in candidates.items():
            ranked = sorted(offers, key=lambda offer: offer[0], reverse=True)
            chosen[report_id] = ranked[0][1]
            seen = {ranked[0][1].file}
            for _rank, entry in ranked[1:]:
                if entry.file is not None and entry.file not in seen:
                    seen.add(entry.file)
                    others.append(entry)
        named = {entry.file for entry in chosen.values() if entry.file}
        ledger.commit_rebuilt(
            dict(sorted(chosen.items())),
            last_sync,
            {
                name: describe_file(ledger.root / name, count)
                for name, count in file_reports.items()
                if name in named
            },
            sorted(set(file_reports) - named),
        )
        # the versions not chosen: any event they hold that the chosen one lacks is kept
        ledger.commit([(replace(entry, file=None), ledger.events_of(entry)) for entry in others])
        ledger.carry_metadata()  # files of 0.1 learn their reports' status and span
        restored = ledger.entries()
        kept = sorted(set(file_reports) - {e.file for e in restored.values() if e.file})
    statuses: dict[str, int] = {}
    for entry in restored.values():
        statuses[entry.status] = statuses.get(entry.status, 0) + 1
    return {
        "ledger": str(ledger.root),
        "reports": len(restored),
        "by_status": dict(sorted(statuses.items())),
        "events": sum(entry.records for entry in restored.values() if entry.file),
        "files_used": len({entry.file for entry in restored.values() if entry.file}),
        "files_kept": kept,
        "files_unreadable": sorted(unreadable),
    }


def _file_entries(
    ledger: Ledger,
    path: Path,
    name: str,
    metadata: dict[str, object] | None,
    current: dict[str, ReportEntry],
) -> list[ReportEntry]:
    """The reports one events file holds, as entries naming it."""
    if metadata is not None:
        return [replace(entry, file=name) for entry in entries_in(metadata.get("reports"))]
    # a file written before files carried their metadata: the manifest's entries that
    # name it, else its reports as assumed from their events
    named = [entry for entry in current.values() if entry.file == name]
    if named:
        return named
    try:
        spans = (
            pl.scan_parquet(path)
            .group_by("report_id")
            .agg(
                records=pl.len(),
                start=pl.col("occurred_at").min(),
                end=pl.col("occurred_at").max(),
                network_id=pl.col("network_id").first(),
                network_name=pl.col("network_name").first(),
            )
            .collect()
        )
    except (OSError, pl.exceptions.PolarsError) as error:
        raise LedgerError(f"{path}: not a readable events file ({_first_line(error)}).") from None
    return [
        ReportEntry(
            report_id=str(report_id),
            status=ReportStatus.ASSUMED,
            network_id=network_id,
            network_name=network_name,
            date_from=start,
            date_to=end,
            records=int(records),
            file=name,
            source="rebuilt",
        )
        for report_id, records, start, end, network_id, network_name in spans.iter_rows()
    ]


class VerifyReport(TypedDict):
    """What `verify_ledger` found: problems make it fail; the rest is information."""

    ledger: str
    ok: bool
    reports: int
    files_named: int
    problems: list[str]
    unknown_files: list[str]
    replaced_files: list[str]


def verify_ledger(ledger: Ledger) -> VerifyReport:
    """Check the manifest and the events files against each other (reads only)."""
    problems: list[str] = []
    try:
        entries = ledger.entries()
    except LedgerError as error:
        return {
            "ledger": str(ledger.root),
            "ok": False,
            "reports": 0,
            "files_named": 0,
            "problems": [str(error)],
            "unknown_files": [f"events/{path.name}" for path in ledger.event_files_on_disk()],
            "replaced_files": [],
        }
    files = ledger.event_files()
    described = ledger.file_descriptions()
    for file, report_ids in sorted(files.items()):
        path = ledger.root / file
        if not path.is_file():
            problems.append(f"{file} is named by the manifest but missing")
            continue
        # read whole, against the checksum the manifest keeps
        problem = file_problem(path, described.get(file))
        if problem is not None:
            problems.append(f"{file} is {problem}")
            continue
        try:
            metadata = read_file_metadata(path)
            counts = dict(
                pl.scan_parquet(path).group_by("report_id").agg(pl.len()).collect().iter_rows()
            )
        except (LedgerError, OSError, pl.exceptions.PolarsError) as error:
            problems.append(f"{file} cannot be read ({_first_line(error)})")
            continue
        held = (
            {entry.report_id for entry in entries_in(metadata.get("reports"))} if metadata else None
        )
        for report_id in report_ids:
            entry = entries[report_id]
            if held is not None and report_id not in held:
                problems.append(f"{file} does not carry report {report_id}")
            if int(counts.get(report_id, 0)) != entry.records:
                problems.append(
                    f"report {report_id}: the manifest counts {entry.records} events, "
                    f"{file} holds {int(counts.get(report_id, 0))}"
                )
    return {
        "ledger": str(ledger.root),
        "ok": not problems,
        "reports": len(entries),
        "files_named": len(files),
        "problems": problems,
        "unknown_files": [
            name for name in ledger.unknown_files() if name not in set(ledger.replaced_files())
        ],
        "replaced_files": ledger.replaced_files(),
    }
