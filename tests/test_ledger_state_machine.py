"""A stateful property test of the ledger (issue 18): random sequences of fetched pages,
404s, imports (metadata, partial, complete, the same again), killed commits and rebuilds,
checked against a model after every step.

Invariants: no event the ledger held is ever lost; a report is complete (its span is
coverage) only once a complete copy was committed, and stays complete; `verify` passes;
`rebuild` restores what the model holds. Replacing `lifecycle.merged_events`'s union by
"the new copy wins" fails it (tests/test_ledger_state_machine.py::test_the_machine_*).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from reconcile.api_pages import parse_records_page
from reconcile.errors import MalformedResponseError
from reconcile.ledger import Ledger, ReportEntry
from reconcile.ledger_import import import_change_files
from reconcile.ledger_io import rebuild_ledger, verify_ledger
from reconcile.lifecycle import ReportStatus, after_gone

NOW = datetime(2024, 4, 2, tzinfo=UTC)
REPORTS = ("rep-aaa-0001", "rep-bbb-0002", "rep-ccc-0003")
DAY = {
    report_id: datetime(2024, 3, 1 + index, tzinfo=UTC) for index, report_id in enumerate(REPORTS)
}
# every report's true records: six of them, one day each
RECORDS = {
    report_id: [
        {
            "date": (DAY[report_id] + timedelta(hours=2 * number)).strftime(
                "%Y-%m-%dT%H:%M:%S.000+0000"
            ),
            "destination": f"1415555{index}{number:03d}",
            "type": ("DEACTIVATION", "SUSPENSION", "REACTIVATION")[number % 3],
        }
        for number in range(6)
    ]
    for index, report_id in enumerate(REPORTS)
}


def metadata(report_id: str) -> dict[str, object]:
    day = DAY[report_id]
    return {
        "reportId": report_id,
        "networkName": "Verizon Wireless",
        "networkId": 1717,
        "generatedDate": f"{(day + timedelta(days=1)):%Y-%m-%d}T00:00:00Z",
        "dateFrom": f"{day:%Y-%m-%d}",
        "dateTo": f"{(day + timedelta(days=1)):%Y-%m-%d}",
        "expiryDate": f"{(day + timedelta(days=61)):%Y-%m-%d}T00:00:00Z",
    }


def key(record: dict[str, str]) -> tuple[int, str, datetime]:
    moment = datetime.strptime(record["date"], "%Y-%m-%dT%H:%M:%S.000+0000").replace(tzinfo=UTC)
    return int(record["destination"]), record["type"], moment


class Killed(Exception):
    """The process dies inside a commit (after its files moved, before the manifest)."""


class KillableLedger(Ledger):
    armed = False

    def _write_manifest(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.armed:
            self.armed = False
            raise Killed
        return super()._write_manifest(*args, **kwargs)


@dataclass
class Model:
    events: dict[str, set[tuple[int, str, datetime]]] = field(default_factory=dict)
    complete: set[str] = field(default_factory=set)
    known_metadata: set[str] = field(default_factory=set)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-machine-"))
        self.ledger = KillableLedger(self.folder / "data")
        self.model = Model()
        self.imports = 0
        self.last_import: Path | None = None
        # reports whose killed commit left its file in events/: the next writer (or a
        # rebuild) rolls it forward, since its events may be fetched nowhere again
        self.limbo: set[str] = set()

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize()
    def empty(self) -> None:
        with self.ledger.locked():
            self.ledger.commit(last_sync=NOW)

    # -- what happens to a ledger ---------------------------------------------------

    def _rolled_forward(self) -> None:
        """The next writer commits what a killed commit had written: a complete copy."""
        for report_id in self.limbo:
            self.model.events.setdefault(report_id, set()).update(
                key(r) for r in RECORDS[report_id]
            )
            self.model.complete.add(report_id)
            self.model.known_metadata.add(report_id)
        self.limbo.clear()

    def _commit_fetch(
        self, report_id: str, records: list[dict[str, str]], complete: bool, killed: bool = False
    ) -> None:
        listed = ReportEntry.from_row(
            {
                "report_id": report_id,
                "network_id": 1717,
                "network_name": "Verizon Wireless",
                "date_from": DAY[report_id],
                "date_to": DAY[report_id] + timedelta(days=1),
            }
        )
        events = parse_records_page("test", records, report_id, MalformedResponseError, NOW)
        status = ReportStatus.COMPLETE if complete else ReportStatus.INCOMPLETE
        self._rolled_forward()
        with self.ledger.locked():
            self.ledger.armed = killed  # the commit itself dies, after any roll-forward
            self.ledger.commit(
                [(replace(listed, status=status, fetched_at=NOW), events)], metadata=[listed]
            )
        self.model.events.setdefault(report_id, set()).update(key(r) for r in records)
        self.model.known_metadata.add(report_id)
        if complete:
            self.model.complete.add(report_id)

    @rule(report_id=st.sampled_from(REPORTS))
    def fetch_complete(self, report_id: str) -> None:
        self._commit_fetch(report_id, RECORDS[report_id], True)

    @rule(report_id=st.sampled_from(REPORTS), taken=st.sets(st.integers(0, 5), max_size=5))
    def fetch_incomplete(self, report_id: str, taken: set[int]) -> None:
        # pages that did not add up (repeats, a deadline): some records, kept incomplete
        self._commit_fetch(report_id, [RECORDS[report_id][i] for i in sorted(taken)], False)

    @rule(report_id=st.sampled_from(REPORTS))
    def answered_404(self, report_id: str) -> None:
        self._rolled_forward()
        with self.ledger.locked():
            held = self.ledger.entries().get(report_id)
            if held is not None:
                self.ledger.commit([(after_gone(held), None)])

    def _import(self, files: dict[str, object]) -> None:
        self.imports += 1
        folder = self.folder / f"import-{self.imports}"
        folder.mkdir()
        for name, document in files.items():
            (folder / name).write_text(json.dumps(document))
        self._rolled_forward()
        with self.ledger.locked():
            import_change_files(self.ledger, [folder], f"i{self.imports}", NOW)
        self.last_import = folder

    @rule(report_id=st.sampled_from(REPORTS))
    def import_metadata(self, report_id: str) -> None:
        self._import({"metadata.json": {"results": [metadata(report_id)]}})
        self.model.known_metadata.add(report_id)

    @rule(report_id=st.sampled_from(REPORTS), page=st.integers(0, 2))
    def import_one_page(self, report_id: str, page: int) -> None:
        records = RECORDS[report_id][page * 2 : page * 2 + 2]
        document = {
            "results": records,
            "paging": {"page": page, "size": 2, "totalPages": 3, "totalResults": 6},
        }
        with_metadata = report_id in self.model.known_metadata
        self._import({f"records-{report_id}-{page}.json": document})
        if with_metadata:
            self.model.events.setdefault(report_id, set()).update(key(r) for r in records)
        else:
            # no metadata names it: a report of its own (named by content)
            self.model.events.setdefault(f"other:{report_id}:{page}", set()).update(
                key(r) for r in records
            )

    @rule(report_id=st.sampled_from(REPORTS))
    def import_complete(self, report_id: str) -> None:
        pages = {
            f"{report_id}-{page}.json": {
                "results": RECORDS[report_id][page * 2 : page * 2 + 2],
                "paging": {"page": page, "size": 2, "totalPages": 3, "totalResults": 6},
            }
            for page in range(3)
        }
        self._import({"metadata.json": {"results": [metadata(report_id)]}, **pages})
        self.model.events.setdefault(report_id, set()).update(key(r) for r in RECORDS[report_id])
        self.model.known_metadata.add(report_id)
        self.model.complete.add(report_id)

    @precondition(lambda self: self.last_import is not None)
    @rule()
    def import_the_same_again(self) -> None:
        assert self.last_import is not None
        self._rolled_forward()
        with self.ledger.locked():  # a killed commit is rolled forward as the lock is taken
            before = self.ledger.manifest_path.read_bytes()
            import_change_files(self.ledger, [self.last_import], "again", NOW)
        assert self.ledger.manifest_path.read_bytes() == before  # nothing changes

    @rule(report_id=st.sampled_from(REPORTS))
    def killed_mid_commit(self, report_id: str) -> None:
        try:
            self._commit_fetch(report_id, RECORDS[report_id], True, killed=True)
        except Killed:
            self.limbo.add(report_id)  # not committed yet: the next writer rolls it forward
        finally:
            self.ledger.armed = False

    @rule(lose_manifest=st.booleans())
    def rebuild(self, lose_manifest: bool) -> None:
        if lose_manifest:
            self.ledger.manifest_path.unlink()
        self._rolled_forward()  # its file, whole, is read by the rebuild either way
        rebuild_ledger(self.ledger)
        if lose_manifest:
            # metadata known to the lost manifest alone (no events file carries it) is
            # known as far as the files tell: the model reads what the rebuild restored
            entries = Ledger(self.ledger.data_dir).entries()
            self.model.known_metadata = {
                report_id
                for report_id, entry in entries.items()
                if entry.date_from is not None and entry.status != ReportStatus.ASSUMED
            }
            self.last_import = None

    # -- what must always hold ------------------------------------------------------

    def _held(self) -> dict[str, set[tuple[int, str, datetime]]]:
        events = Ledger(self.ledger.data_dir).history().events
        held: dict[str, set[tuple[int, str, datetime]]] = {}
        for number, kind, moment, report_id in events.select(
            "number", "type", "occurred_at", "report_id"
        ).iter_rows():
            held.setdefault(report_id, set()).add((number, kind, moment))
        return held

    @invariant()
    def no_event_is_ever_lost(self) -> None:
        held = self._held()
        everything = set().union(*held.values()) if held else set()
        for report_id, expected in self.model.events.items():
            if report_id.startswith("other:"):
                assert expected <= everything
            else:
                assert expected <= held.get(report_id, set()), report_id

    @invariant()
    def complete_only_from_a_complete_copy_and_never_lowered(self) -> None:
        entries = Ledger(self.ledger.data_dir).entries()
        for report_id in REPORTS:
            entry = entries.get(report_id)
            is_complete = entry is not None and entry.status == ReportStatus.COMPLETE
            assert is_complete == (report_id in self.model.complete), (report_id, entry)

    @invariant()
    def coverage_never_includes_an_incomplete_report(self) -> None:
        history = Ledger(self.ledger.data_dir).history()
        coverage = history.coverage()
        counted = {
            report_id
            for report_id, status in history.reports.select("report_id", "status").iter_rows()
            if status in ("complete", "assumed")
        }
        assert counted & set(REPORTS) <= self.model.complete
        for report_id in set(REPORTS) - self.model.complete:
            day = DAY[report_id]
            for operator in coverage.operators:  # its day is a gap, or outside the span
                inside = operator.start <= day and day + timedelta(days=1) <= operator.end
                in_gap = any(start <= day < end for start, end in operator.gaps)
                assert not inside or in_gap or self._assumed_covers(day), report_id

    def _assumed_covers(self, day: datetime) -> bool:
        # records imported without metadata are assumed to cover their own span
        return any(
            key.startswith("other:")
            and any(moment.date() == day.date() for _n, _t, moment in found)
            for key, found in self.model.events.items()
        )

    @invariant()
    def verify_passes(self) -> None:
        report = verify_ledger(Ledger(self.ledger.data_dir))
        assert report["ok"], report["problems"]


LedgerMachine.TestCase.settings = settings(
    # CI's profile; RECONCILE_THOROUGH=1 runs the thorough one before a release
    max_examples=400 if os.environ.get("RECONCILE_THOROUGH") else 25,
    stateful_step_count=25 if os.environ.get("RECONCILE_THOROUGH") else 12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_machine_keeps_every_event_and_never_lowers_a_report = LedgerMachine.TestCase


def test_the_rule_is_what_the_machine_checks(monkeypatch):
    """Mutating the "never lower" rule (the new copy replaces the held one) must fail
    the machine: the property is not vacuous."""
    from reconcile import ledger as ledger_module

    def new_copy_wins(held: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
        return new

    monkeypatch.setattr(ledger_module, "merged_events", new_copy_wins)
    machine = LedgerMachine()
    try:
        machine.empty()
        machine.fetch_complete(REPORTS[0])
        machine.fetch_incomplete(REPORTS[0], {0})
        try:
            machine.no_event_is_ever_lost()
        except AssertionError:
            return
        raise AssertionError("the machine did not notice a lowered report")
    finally:
        machine.teardown()
