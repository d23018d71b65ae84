"""Change files (``--changes`` and ``ledger import``): API JSON pages, bare CSV, folders.

A PATH is one of:

- a JSON records page as the API answers it; its report id is the metadata ``reportId``
  that the file name contains, else the file's stem;
- a JSON metadata page (recognized by its ``reportId`` fields): coverage and operators;
- a CSV ``destination,date,type[,newDestination]`` (a header row is optional);
- a folder of such files (searched recursively, hidden files skipped).
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from reconcile._csvscan import check_line_lengths, scan_csv
from reconcile._text import first_line
from reconcile.api_pages import events_from_text, parse_metadata_page, parse_records_page
from reconcile.errors import ChangeFileError, MalformedCSVError
from reconcile.history import EVENT_SCHEMA, REPORT_SCHEMA, History
from reconcile.lifecycle import ReportEntry, ReportStatus, is_content_digest

__all__ = ["change_file_batches", "expand_paths", "load_change_files"]

_FILE_SUFFIXES = (".json", ".csv")
# One change file is one API page or one report's CSV: a file larger than this is refused
# before it is read (read whole, it takes about ten times its size in memory: a 124 MB
# CSV of 2.3M events peaked at 1.2 GB, within `ledger import`'s 2 GiB).
MAX_CHANGE_FILE_BYTES = 128 << 20
# `change_file_batches` groups about this many bytes of record files (whole reports).
BATCH_BYTES = 128 << 20
_CSV_COLUMNS = ("destination", "date", "type", "newdestination")


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Every change file named by ``paths``: files as given, folders searched."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                candidate
                for candidate in path.rglob("*")
                if candidate.is_file()
                and candidate.suffix.lower() in _FILE_SUFFIXES
                and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
            )
            if not found:
                raise ChangeFileError(
                    f"{path}: the folder holds no change files (.json API pages or .csv)."
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ChangeFileError(f"{path}: no such change file or folder.")
    return files


def _check_size(path: Path) -> int:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ChangeFileError(f"{path}: cannot read the file ({error.strerror}).") from None
    if size > MAX_CHANGE_FILE_BYTES:
        raise ChangeFileError(
            f"{path}: {size / 2**20:,.0f} MiB is more than one report's change file holds (at "
            f"most {MAX_CHANGE_FILE_BYTES >> 20} MiB); split it by day, or import the events "
            "as Parquet with a report_id column (the columns `reconcile ledger export` writes)."
        )
    return size


def _load_json(path: Path) -> dict[str, Any]:
    _check_size(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ChangeFileError(f"{path}: not UTF-8 text, so not an API JSON page.") from None
    except OSError as error:
        raise ChangeFileError(f"{path}: cannot read the file ({error.strerror}).") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ChangeFileError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})."
        ) from None
    except RecursionError:
        raise ChangeFileError(f"{path}: JSON nested too deeply to be an API page.") from None
    except ValueError:  # an integer of thousands of digits (Python's own bound)
        raise ChangeFileError(f"{path}: a number too long to read; refused.") from None
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise ChangeFileError(f'{path}: not an API page: expected an object with a "results" list.')
    return document


def _is_metadata(document: dict[str, Any]) -> bool:
    results = document["results"]
    return bool(results) and isinstance(results[0], dict) and "reportId" in results[0]


def _paging(name: str, document: dict[str, Any]) -> tuple[int | None, int | None]:
    paging = document.get("paging")
    if not isinstance(paging, dict):
        return None, None
    page, total = paging.get("page"), paging.get("totalPages")
    if not (isinstance(page, int) and isinstance(total, int)) or page < 0 or total < 0:
        raise ChangeFileError(f'{name}: "paging" needs whole numbers page and totalPages.')
    return page, total


def _read_csv_changes(path: Path) -> pl.DataFrame:
    _check_size(path)
    try:
        raw = path.read_bytes()
        check_line_lengths(str(path), raw)
        if raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        _check_utf8(raw)
    except MalformedCSVError as error:
        raise ChangeFileError(str(error)) from None
    except UnicodeDecodeError:
        raise ChangeFileError(f"{path}: not UTF-8 text.") from None
    except OSError as error:
        raise ChangeFileError(f"{path}: cannot read the file ({error.strerror}).") from None
    # the first line only: a split would copy the rest of the file
    first_break = raw.find(b"\n")
    header_line = raw[: first_break if first_break >= 0 else len(raw)].decode().strip().lower()
    has_header = "destination" in header_line
    try:
        frame = pl.read_csv(
            raw, has_header=has_header, infer_schema=False, truncate_ragged_lines=False
        )
    except pl.exceptions.NoDataError:
        return pl.DataFrame(
            schema=dict.fromkeys(("destination", "date", "type", "newDestination"), pl.String)
        )
    except pl.exceptions.PolarsError as error:
        _name_the_bad_line(path, raw)
        raise ChangeFileError(f"{path}: not a readable CSV ({first_line(error)}).") from None
    if has_header:
        names = {name.strip().lower(): name for name in frame.columns}
        missing = [column for column in _CSV_COLUMNS[:3] if column not in names]
        if missing:
            raise ChangeFileError(
                f"{path}: the header lacks {', '.join(missing)}; expected "
                "destination,date,type[,newDestination]."
            )
        frame = frame.select(
            destination=pl.col(names["destination"]),
            date=pl.col(names["date"]),
            type=pl.col(names["type"]),
            newDestination=pl.col(names["newdestination"])
            if "newdestination" in names
            else pl.lit(None, pl.String),
        )
    else:
        if frame.width not in (3, 4):
            raise ChangeFileError(
                f"{path}: expected the columns destination,date,type[,newDestination], "
                f"found {frame.width} columns and no header."
            )
        frame.columns = list(("destination", "date", "type", "newDestination")[: frame.width])
        if frame.width == 3:
            frame = frame.with_columns(newDestination=pl.lit(None, pl.String))
    if frame.get_column("type").null_count():
        # a row without its type is refused anyway: a short row is named by its line
        _name_the_bad_line(path, raw)
    return frame


def _name_the_bad_line(path: Path, raw: bytes) -> None:
    """Raise ChangeFileError naming the line where ``raw`` breaks its CSV structure (a
    ragged row, an unclosed quote), when the scan finds one."""
    try:
        scan_csv(str(path), raw, ",", footer=False)
    except MalformedCSVError as error:
        raise ChangeFileError(str(error)) from None


def _check_utf8(raw: bytes) -> None:
    """Raise UnicodeDecodeError unless ``raw`` is UTF-8, a megabyte at a time (the file
    is never held twice, as bytes and as text)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    for start in range(0, len(raw), 1 << 20):
        decoder.decode(view[start : start + (1 << 20)])
    decoder.decode(b"", final=True)


@dataclass
class _RecordPages:
    frames: list[pl.DataFrame] = field(default_factory=list)
    pages: set[int] = field(default_factory=set)
    total_pages: int | None = None
    paged: bool = True
    sources: list[str] = field(default_factory=list)


class _ReportIds:
    """The report each record file belongs to: the metadata ``reportId`` its name
    contains; else ``explicit``; else its content's. A file whose content is held already
    (by the ledger, or by an earlier file of the same import) belongs to that report,
    whatever its name; two files that are different reports stay two reports even when
    their names are the same."""

    def __init__(
        self, known_ids: Sequence[str], explicit: str | None, held: Mapping[str, str]
    ) -> None:
        self.known_ids = known_ids
        self.explicit = explicit
        self.by_digest = held

    def assign(self, paths: Sequence[Path]) -> list[tuple[str, bool, str]]:
        """Each file's report id, whether the same content was read before it in this
        import (then it adds nothing), and its content digest. Files named by a report
        id, or given one, are taken first: a copy of one under another name joins that
        report."""
        digests = [content_digest(path) for path in paths]
        named = [self._named(path) for path in paths]
        first: dict[str, str] = {}
        for digest, found in zip(digests, named, strict=True):
            if found is not None:
                first.setdefault(digest, found)
        assigned: list[tuple[str, bool, str]] = []
        read: set[tuple[str, str]] = set()
        for digest, found, path in zip(digests, named, paths, strict=True):
            if found is None:
                found = first.setdefault(
                    digest, self.by_digest.get(digest, f"{path.stem}-{digest}")
                )
            assigned.append((found, (digest, found) in read, digest))
            read.add((digest, found))
        return assigned

    def _named(self, path: Path) -> str | None:
        matches = [known for known in self.known_ids if known and known in path.name]
        if matches:
            return max(matches, key=len)
        return self.explicit


def held_contents(entries: Collection[ReportEntry]) -> dict[str, str]:
    """The ledger's reports by the digests of their content: those its entries list, and
    the ids made of a file's stem and digest (ledgers written before entries listed
    them)."""
    held: dict[str, str] = {}
    for entry in sorted(entries, key=lambda entry: entry.report_id, reverse=True):
        _stem, dash, tail = entry.report_id.rpartition("-")
        if dash and is_content_digest(tail):
            held[tail] = entry.report_id
    for entry in entries:
        held.update(dict.fromkeys(entry.contents, entry.report_id))
    return held


def content_digest(path: Path) -> str:
    """Ten hex digits of a file's SHA-256: what identifies an import's content."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise ChangeFileError(f"{path}: cannot read the file ({error.strerror}).") from None
    return digest.hexdigest()[:10]


def change_file_batches(
    paths: Sequence[Path],
    *,
    report_id: str | None = None,
    now: datetime | None = None,
    known_report_ids: Sequence[str] = (),
    held: Mapping[str, str] | None = None,
) -> list[list[Path]]:
    """``paths`` as batches for `load_change_files`, so that an import of many files
    holds one batch in memory at a time: each batch has every metadata page and the
    record files of whole reports (every page of a report in one batch), about
    BATCH_BYTES of them. Every file is checked here (its size, its JSON) before any is
    imported."""
    files = expand_paths(paths)
    metadata: list[Path] = []
    known: list[str] = list(known_report_ids)
    records: list[tuple[Path, int]] = []
    for path in files:
        size = _check_size(path)
        if path.suffix.lower() == ".json":
            document = _load_json(path)
            if _is_metadata(document):
                metadata.append(path)
                page = parse_metadata_page(str(path), document["results"], ChangeFileError, now)
                known.extend(page.get_column("report_id").to_list())
                continue
        records.append((path, size))
    by_report: dict[str, list[tuple[Path, int]]] = {}
    assigned = _ReportIds(known, report_id, held or {}).assign([path for path, _size in records])
    for (path, size), (found_id, _read_before, _digest) in zip(records, assigned, strict=True):
        by_report.setdefault(found_id, []).append((path, size))
    batches: list[list[Path]] = []
    batch: list[Path] = []
    batch_bytes = 0
    for group in by_report.values():
        group_bytes = sum(size for _path, size in group)
        if batch and batch_bytes + group_bytes > BATCH_BYTES:
            batches.append(metadata + batch)
            batch, batch_bytes = [], 0
        batch.extend(path for path, _size in group)
        batch_bytes += group_bytes
    if batch or not batches:
        batches.append(metadata + batch)
    return batches


def load_change_files(
    paths: Sequence[Path],
    *,
    report_id: str | None = None,
    now: datetime | None = None,
    known_report_ids: Sequence[str] = (),
    held: Mapping[str, str] | None = None,
) -> History:
    """Read change files into a History; raise ChangeFileError naming the file at fault.

    ``report_id`` names the report of record files that no metadata names; a record
    file whose name contains one of ``known_report_ids`` (reports whose metadata the
    ledger holds) belongs to that report; dates outside 2000-01-01 .. one day after
    ``now`` are refused.
    """
    files = expand_paths(paths)
    metadata: list[pl.DataFrame] = []
    record_files: list[tuple[Path, dict[str, Any] | None]] = []
    for path in files:
        if path.suffix.lower() == ".json":
            document = _load_json(path)
            if _is_metadata(document):
                metadata.append(
                    parse_metadata_page(str(path), document["results"], ChangeFileError, now)
                )
            else:
                record_files.append((path, document))
        else:
            record_files.append((path, None))
    reports = (
        pl.concat(metadata).unique("report_id", keep="last", maintain_order=True)
        if metadata
        else pl.DataFrame(schema=REPORT_SCHEMA)
    )
    known_ids = reports.get_column("report_id").to_list() + list(known_report_ids)
    by_report: dict[str, _RecordPages] = {}
    assigned = _ReportIds(known_ids, report_id, held or {}).assign(
        [path for path, _ in record_files]
    )
    contents: dict[str, set[str]] = {}
    for (path, page_document), (found_id, read_before, digest) in zip(
        record_files, assigned, strict=True
    ):
        pages = by_report.setdefault(found_id, _RecordPages())
        pages.sources.append(str(path))
        contents.setdefault(found_id, set()).add(digest)
        if read_before:
            continue
        if page_document is None:
            raw = _read_csv_changes(path)
            pages.frames.append(
                events_from_text(str(path), raw, found_id, "data row {}", 1, ChangeFileError, now)
            )
            pages.paged = False
            continue
        page, total = _paging(str(path), page_document)
        pages.frames.append(
            parse_records_page(str(path), page_document["results"], found_id, ChangeFileError, now)
        )
        if page is None or total is None:
            pages.paged = False
        else:
            if page in pages.pages:
                raise ChangeFileError(f"{path}: page {page} of report {found_id} is given twice.")
            pages.pages.add(page)
            pages.total_pages = (
                total if pages.total_pages is None else max(pages.total_pages, total)
            )
    history = _assemble(reports, by_report, [str(path) for path in files])
    history.contents = {found_id: tuple(sorted(found)) for found_id, found in contents.items()}
    return history


def _assemble(
    reports: pl.DataFrame, by_report: dict[str, _RecordPages], sources: list[str]
) -> History:
    warnings: list[str] = []
    events_parts: list[pl.DataFrame] = []
    statuses: dict[str, tuple[str, int, str]] = {}
    for report_id, pages in by_report.items():
        events = pl.concat(pages.frames) if pages.frames else pl.DataFrame(schema=EVENT_SCHEMA)
        events_parts.append(events)
        missing: list[int] = []
        if pages.paged and pages.total_pages is not None:
            missing = sorted(set(range(pages.total_pages)) - pages.pages)
        status: str = ReportStatus.COMPLETE
        if missing:
            status = ReportStatus.INCOMPLETE
            shown = ", ".join(str(page) for page in missing[:5])
            warnings.append(
                f"report {report_id}: record page(s) {shown} of {pages.total_pages} missing; "
                "its events are used but it does not count as coverage"
            )
        statuses[report_id] = (status, events.height, "; ".join(pages.sources))
    known = set(reports.get_column("report_id").to_list())
    status_frame = pl.DataFrame(
        {
            "report_id": list(statuses),
            "found_status": [value[0] for value in statuses.values()],
            "found_records": [value[1] for value in statuses.values()],
            "found_source": [value[2] for value in statuses.values()],
        },
        schema={
            "report_id": pl.String,
            "found_status": pl.String,
            "found_records": pl.Int64,
            "found_source": pl.String,
        },
    )
    reports = (
        reports.join(status_frame, on="report_id", how="left", maintain_order="left")
        .with_columns(
            status=pl.coalesce("found_status", "status"),
            records=pl.coalesce("found_records", "records"),
            source=pl.coalesce("found_source", "source"),
        )
        .select(list(REPORT_SCHEMA))
    )
    assumed = status_frame.filter(~pl.col("report_id").is_in(list(known))).select(
        "report_id",
        network_id=pl.lit(None, pl.Int64),
        network_name=pl.lit(None, pl.String),
        generated_date=pl.lit(None, EVENT_SCHEMA["occurred_at"]),
        date_from=pl.lit(None, EVENT_SCHEMA["occurred_at"]),
        date_to=pl.lit(None, EVENT_SCHEMA["occurred_at"]),
        expiry_date=pl.lit(None, EVENT_SCHEMA["occurred_at"]),
        status=pl.when(pl.col("found_status") == ReportStatus.COMPLETE)
        .then(pl.lit(ReportStatus.ASSUMED.value))
        .otherwise(pl.col("found_status")),
        records=pl.col("found_records"),
        source=pl.col("found_source"),
    )
    reports = pl.concat([reports, assumed])
    events = (pl.concat(events_parts) if events_parts else pl.DataFrame(schema=EVENT_SCHEMA)).drop(
        ["network_id", "network_name"]
    )
    events = events.join(
        reports.select("report_id", "network_id", "network_name"),
        on="report_id",
        how="left",
        maintain_order="left",
    ).select(list(EVENT_SCHEMA))
    return History(
        events=events,
        reports=reports,
        sources=sources,
        warnings=warnings,
        description="change files: "
        + ", ".join(sources[:20])
        + (" …" if len(sources) > 20 else ""),
    )
