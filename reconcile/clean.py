"""`reconcile clean` as a library: read contact files, decide, write the outputs.

`clean_files` reads and decides every file first and writes nothing until all of them
succeeded; the outputs are then written as temporary files and renamed together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from reconcile._atomic import OutputBatch
from reconcile._text import iso_utc as _iso
from reconcile.consent import parse_consent, reject_future, validate_timezone
from reconcile.contacts import (
    ColumnChoice,
    ContactTable,
    read_contacts,
    write_csv_cleaned,
    write_xlsx_cleaned,
)
from reconcile.errors import OutputError
from reconcile.history import Coverage, History
from reconcile.phones import normalize_phones, validate_region
from reconcile.reports import changes_csv_bytes
from reconcile.verdicts import (
    ACTIONS,
    DEFAULT_ACTIONS,
    DROPPED_ACTIONS,
    VERDICTS,
    decide,
    number_evidence,
)
from reconcile.workbook import RunInfo, write_audit_workbook

__all__ = ["CleanOptions", "CleanResult", "clean_files", "output_paths", "reconcile_file"]

STALE_AFTER = timedelta(days=3)
FLAG_COLUMNS = {
    "reconcile_verdict": "verdict",
    "reconcile_action": "action",
    "reconcile_reason": "reason",
    "reconcile_phone_e164": "phone_e164",
    "reconcile_event_date": "event_date",
    "reconcile_suggested_number": "suggested_number",
}


@dataclass(frozen=True)
class CleanOptions:
    """Everything `reconcile clean` can be told."""

    columns: ColumnChoice = field(default_factory=ColumnChoice)
    mode: Literal["strip", "flag"] = "strip"
    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    default_region: str = "US"
    consent_timezone: str = "UTC"
    consent_format: str | None = None
    sheet: str | None = None
    encoding: str | None = None
    out_dir: Path | None = None
    force: bool = False
    report: bool = True

    def described(self) -> dict[str, Any]:
        """The options that shape verdicts and outputs, for the audit trail."""
        return {
            "mode": self.mode,
            "actions": ", ".join(f"{verdict}={action}" for verdict, action in self.actions.items()),
            "default_region": self.default_region,
            "consent_timezone": self.consent_timezone,
            "consent_format": self.consent_format or "(ISO 8601, M/D/YYYY)",
            "sheet": self.sheet or "(first visible)",
            "encoding": self.encoding or "(detected)",
            "columns": f"phone={self.columns.phone or '(guessed)'}, "
            f"consent={self.columns.consent or '(guessed)'}, id={self.columns.id or '(guessed)'}",
        }

    def validate(self) -> None:
        validate_region(self.default_region)
        validate_timezone(self.consent_timezone)
        assert set(self.actions) == set(VERDICTS)
        assert set(self.actions.values()) <= set(ACTIONS)


@dataclass
class CleanResult:
    """One contact file reconciled: the table, every row's decision, and the outputs."""

    table: ContactTable
    decisions: pl.DataFrame
    coverage: Coverage
    options: CleanOptions
    cleaned_path: Path
    changes_path: Path
    report_path: Path | None
    warnings: list[str]

    @property
    def keep(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        return (~self.decisions.get_column("action").is_in(list(DROPPED_ACTIONS))).to_numpy()

    def summary(self) -> dict[str, Any]:
        """Counts, coverage, outputs and warnings, as plain JSON-ready values."""
        # one comparison per value is far cheaper than hashing a million strings
        verdict_column = self.decisions.get_column("verdict")
        action_column = self.decisions.get_column("action")
        verdicts = {verdict: int((verdict_column == verdict).sum()) for verdict in VERDICTS}
        actions = {action: int((action_column == action).sum()) for action in ACTIONS}
        rows = self.decisions.height
        return {
            "input": str(self.table.path),
            "sheet": self.table.sheet,
            "rows": rows,
            "blank_rows_skipped": self.table.blank_rows,
            "kept": actions["keep"] + actions["review"],
            "removed": actions["remove"],
            "suppressed": actions["suppress"],
            "review": actions["review"],
            "verdicts": {verdict: verdicts[verdict] for verdict in VERDICTS},
            "actions": {action: actions[action] for action in ACTIONS},
            "columns": {
                "phone": self.table.phone_column,
                "consent": self.table.consent_column,
                "id": self.table.id_column,
            },
            "mode": self.options.mode,
            "coverage": {
                "start": _iso(self.coverage.start),
                "end": _iso(self.coverage.end),
            },
            "outputs": {
                "cleaned": str(self.cleaned_path),
                "changes": str(self.changes_path),
                "report": str(self.report_path) if self.report_path else None,
            },
            "warnings": self.warnings,
        }


def output_paths(path: Path, out_dir: Path | None) -> tuple[Path, Path, Path]:
    """``NAME.cleaned.EXT``, ``NAME.changes.csv`` and ``NAME.report.xlsx``."""
    folder = out_dir if out_dir is not None else path.parent
    suffix = ".xlsx" if path.suffix.lower() == ".xlsm" else path.suffix
    return (
        folder / f"{path.stem}.cleaned{suffix}",
        folder / f"{path.stem}.changes.csv",
        folder / f"{path.stem}.report.xlsx",
    )


def reconcile_file(
    path: Path, history: History, options: CleanOptions, now: datetime
) -> CleanResult:
    """Read one contact file and decide every row; nothing is written."""
    table = read_contacts(path, options.columns, sheet=options.sheet, encoding=options.encoding)
    values = table.values
    # polars and numpy release the GIL: phones, consent and the history's evidence are
    # worked out side by side, one per core.
    with ThreadPoolExecutor(max_workers=2) as pool:
        consent_job = pool.submit(
            lambda: reject_future(
                parse_consent(
                    values.get_column("consent"), options.consent_timezone, options.consent_format
                ),
                now,
            )
        )
        phones = normalize_phones(values.get_column("phone"), options.default_region)
        evidence_job = pool.submit(
            number_evidence, phones.get_column("phone_key"), history.lazy_events()
        )
        coverage = history.coverage()
        consent = consent_job.result()
        evidence = evidence_job.result()
    contacts = pl.concat([values, phones, consent], how="horizontal")
    decisions = decide(
        contacts, history.lazy_events(), coverage.start, options.actions, evidence=evidence
    )
    cleaned, changes, report = output_paths(path, options.out_dir)
    return CleanResult(
        table=table,
        decisions=decisions,
        coverage=coverage,
        options=options,
        cleaned_path=cleaned,
        changes_path=changes,
        report_path=report if options.report else None,
        warnings=_warnings(history, coverage, now),
    )


def _warnings(history: History, coverage: Coverage, now: datetime) -> list[str]:
    warnings = list(history.warnings)
    if coverage.end is not None and now - coverage.end > STALE_AFTER:
        age = (now - coverage.end).days
        warnings.append(
            f"the history is stale: it ends {coverage.end:%Y-%m-%d} ({age} days ago); "
            "run `reconcile fetch`"
        )
    for operator in coverage.operators:
        for gap_start, gap_end in operator.gaps:
            warnings.append(
                f"gap in {operator.network}'s history from {gap_start:%Y-%m-%d} to "
                f"{gap_end:%Y-%m-%d}: a deactivation then would be missed"
            )
    warnings.extend(coverage.missing_reports)
    return warnings


def _check_targets(paths: Sequence[Path], options: CleanOptions) -> None:
    inputs = {path.resolve() for path in paths}
    seen: dict[Path, Path] = {}
    existing: list[str] = []
    for path in paths:
        targets = output_paths(path, options.out_dir)
        for target in targets if options.report else targets[:2]:
            resolved = target.resolve()
            if resolved in inputs:
                raise OutputError(
                    f"{target}: the output would overwrite an input; rename the input."
                )
            if resolved in seen:
                raise OutputError(
                    f"{seen[resolved]} and {path} would both write {target}; "
                    "clean them into different --out-dir folders."
                )
            seen[resolved] = path
            if target.exists() and not options.force:
                existing.append(str(target))
    if existing:
        shown = ", ".join(existing[:3]) + (" …" if len(existing) > 3 else "")
        raise OutputError(f"output already exists: {shown}; pass --force to replace it.")


def _flag_extra(decisions: pl.DataFrame) -> pl.DataFrame:
    return decisions.select([pl.col(source).alias(name) for name, source in FLAG_COLUMNS.items()])


def _write(result: CleanResult, history: History, batch: OutputBatch, now: datetime) -> None:
    table = result.table
    extra = _flag_extra(result.decisions) if result.options.mode == "flag" else None
    keep = (
        np.ones(result.decisions.height, dtype=bool)
        if result.options.mode == "flag"
        else result.keep
    )
    # The change list is rendered on the other core while the cleaned file is written.
    # The cleaned file is renamed into place last: whoever finds it finds the change list
    # and the workbook of the same run beside it, even after a crash in between.
    with ThreadPoolExecutor(max_workers=1) as pool:
        changes = pool.submit(changes_csv_bytes, result.decisions)
        if table.kind == "csv":
            batch.add(
                result.cleaned_path,
                lambda temporary: write_csv_cleaned(table, keep, extra, temporary),
                last=True,
            )
        else:
            batch.add(
                result.cleaned_path,
                lambda temporary: write_xlsx_cleaned(table, keep, extra, temporary),
                last=True,
            )
        batch.add_bytes(result.changes_path, changes.result())
    if result.report_path is not None:
        info = RunInfo(
            tool_version=_tool_version(),
            run_at=now,
            history_source=history.description,
            ledger_last_sync=history.last_sync,
            options=result.options.described(),
        )
        batch.add(
            result.report_path,
            lambda temporary: write_audit_workbook(result, history, info, temporary),
        )


def _tool_version() -> str:
    from reconcile import __version__

    return __version__


def clean_files(
    paths: Sequence[Path], history: History, options: CleanOptions, now: datetime
) -> list[CleanResult]:
    """Reconcile every file, then write all outputs; on any error nothing is written."""
    options.validate()
    _check_targets(paths, options)
    results = [reconcile_file(path, history, options, now) for path in paths]
    if options.out_dir is not None:
        try:
            options.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(
                f"--out-dir {options.out_dir}: cannot create the folder ({error.strerror})."
            ) from None
    batch = OutputBatch()
    try:
        for result in results:
            _write(result, history, batch, now)
    except BaseException:
        batch.discard()
        raise
    batch.commit()
    return results
