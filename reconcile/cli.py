"""The `reconcile` command line: click commands over the library, nothing more.

Exit codes: 0 success, 1 a failure reported in one line (no traceback unless -v),
2 a usage error (click's own).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from reconcile import __version__
from reconcile.changefiles import load_change_files
from reconcile.clean import CleanOptions, CleanResult, clean_files
from reconcile.contacts import ColumnChoice
from reconcile.errors import OptionError, ReconcileError
from reconcile.history import History
from reconcile.ledger import Ledger, default_data_dir
from reconcile.verdicts import ACTIONS, VERDICTS, resolve_actions

F = TypeVar("F", bound=Callable[..., Any])


class ReconcileGroup(click.Group):
    """A click group that turns ReconcileError into one line on stderr and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        verbose = bool(ctx.params.get("verbose"))
        try:
            return super().invoke(ctx)
        except ReconcileError as error:
            if verbose:
                traceback.print_exc()
            click.echo(f"reconcile: error: {error}", err=True)
            ctx.exit(1)
        except OSError as error:
            if verbose:
                traceback.print_exc()
            target = f"{error.filename}: " if error.filename else ""
            click.echo(f"reconcile: error: {target}{error.strerror or error}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001  (the edge: one line, never a traceback)
            if verbose:
                traceback.print_exc()
            summary = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            click.echo(
                f"reconcile: internal error: {type(error).__name__}: {summary} "
                "(nothing was written; run with -v for the traceback and report it)",
                err=True,
            )
            ctx.exit(1)


def process_main() -> None:
    """The ``reconcile`` process: `main`, then exit without tearing the interpreter down.

    A large run ends holding hundreds of megabytes of frames and arrays; freeing them
    one by one at exit takes a noticeable part of a second, and the system takes the
    memory back at once anyway. Every output is already committed (or discarded) when
    `main` returns, so only the standard streams are left to flush.
    """
    # The modules just imported are not garbage: the collector stops walking them.
    gc.freeze()
    try:
        main()
        code: object = 0
    except SystemExit as stop:
        code = stop.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")  # what sys.exit("message") would print
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe or stream
            stream.flush()
    os._exit(code)


@click.group(cls=ReconcileGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks on errors.")
def main(verbose: bool) -> None:  # verbose is read by ReconcileGroup.invoke
    """Keep SMS and voice contact lists safe to message.

    Strips or flags every number that mobile operators reported deactivated since the
    contact's consent, using Infobip's Number Activation State reports.
    """


def ledger_options(function: F) -> F:
    """--data-dir (or RECONCILE_DATA_DIR) and --wait, for every command that uses the ledger."""
    function = click.option(
        "--wait",
        type=click.FloatRange(min=0),
        default=0,
        show_default=True,
        help="Seconds to wait for another run that holds the ledger.",
    )(function)
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="RECONCILE_DATA_DIR",
        default=None,
        help="Where the ledger lives (default: the user data directory; env RECONCILE_DATA_DIR).",
    )(function)


def open_ledger(data_dir: Path | None) -> Ledger:
    """The ledger in --data-dir, or in the user's data directory."""
    return Ledger(data_dir if data_dir is not None else default_data_dir())


def action_overrides(function: F) -> F:
    """One --VERDICT ACTION option per verdict (--unverified remove, ...)."""
    for verdict in reversed(VERDICTS):
        option = "--" + verdict.replace("_", "-")
        function = click.option(
            option,
            verdict,
            type=click.Choice(ACTIONS),
            default=None,
            help=f"Action for {verdict} rows (default {resolve_actions({})[verdict]}).",
        )(function)
    return function


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--changes",
    "changes",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Change file or folder (API JSON pages, CSV destination,date,type). Repeatable.",
)
@click.option(
    "--mode",
    type=click.Choice(["strip", "flag"]),
    default="strip",
    show_default=True,
    help="strip: drop removed and suppressed rows. flag: keep every row, add reconcile_* columns.",
)
@click.option("--phone-column", help="Phone column name (default: guessed: Phone, Mobile, ...).")
@click.option("--consent-column", help="Consent date column (default: guessed: Opt-In Date, ...).")
@click.option("--id-column", help="Column echoed into the change list as id.")
@click.option(
    "--default-region",
    default="US",
    show_default=True,
    help="Region of numbers written without a country code.",
)
@click.option(
    "--consent-timezone",
    default="UTC",
    show_default=True,
    help="Time zone of consent values without an offset (IANA name).",
)
@click.option("--consent-format", help="strftime format for consent values, e.g. %d/%m/%Y.")
@click.option("--sheet", help="XLSX sheet name or 1-based number (default: the first visible).")
@click.option("--encoding", help="CSV encoding (default: detect UTF-8 or Windows-1252).")
@click.option("--out-dir", type=click.Path(path_type=Path), help="Folder for the outputs.")
@click.option("--force", is_flag=True, help="Replace outputs that exist already.")
@click.option(
    "--report/--no-report",
    default=True,
    show_default=True,
    help="Write the audit workbook NAME.report.xlsx.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@action_overrides
@ledger_options
def clean(
    files: tuple[Path, ...],
    changes: tuple[Path, ...],
    mode: str,
    phone_column: str | None,
    consent_column: str | None,
    id_column: str | None,
    default_region: str,
    consent_timezone: str,
    consent_format: str | None,
    sheet: str | None,
    encoding: str | None,
    out_dir: Path | None,
    force: bool,
    report: bool,
    as_json: bool,
    data_dir: Path | None,
    wait: float,
    **overrides: str | None,
) -> None:
    """Reconcile contact files (CSV or XLSX) against the operator history.

    Writes NAME.cleaned.EXT (the list to message) and NAME.changes.csv (every row
    that is not ok, with the reason and evidence) beside each input. The history is
    the ledger (see `reconcile fetch`), or the change files given with --changes.

    Example:

        reconcile clean samples/contacts.csv --changes samples/changes
    """
    options = CleanOptions(
        columns=ColumnChoice(phone=phone_column, consent=consent_column, id=id_column),
        mode="flag" if mode == "flag" else "strip",
        actions=resolve_actions(overrides),
        default_region=default_region,
        consent_timezone=consent_timezone,
        consent_format=consent_format,
        sheet=sheet,
        encoding=encoding,
        out_dir=out_dir,
        force=force,
        report=report,
    )
    history = load_change_files(list(changes)) if changes else _ledger_history(data_dir, wait)
    results = clean_files(list(files), history, options, datetime.now(UTC))
    if as_json:
        click.echo(json.dumps([result.summary() for result in results], indent=2))
    else:
        for result in results:
            click.echo(format_summary(result))


def _ledger_history(data_dir: Path | None, wait: float) -> History:
    ledger = open_ledger(data_dir)
    with ledger.locked(wait):
        history = ledger.history()
    if history.reports.height == 0:
        history.warnings.append(
            f"the ledger at {ledger.root} is empty: run `reconcile fetch` (or pass --changes PATH)"
        )
    return history


def format_summary(result: CleanResult) -> str:
    """The short human summary of one reconciled file."""
    summary = result.summary()
    if summary["mode"] == "flag":
        head = (
            f"{summary['input']}: {summary['rows']} rows flagged (all stay in the file): "
            f"{summary['kept']} to keep ({summary['review']} to review), "
            f"{summary['removed']} to remove, {summary['suppressed']} to suppress"
        )
    else:
        head = (
            f"{summary['input']}: {summary['rows']} rows -> {summary['kept']} kept "
            f"({summary['review']} to review), {summary['removed']} removed, "
            f"{summary['suppressed']} suppressed"
        )
    lines = [
        head,
        "  " + ", ".join(f"{verdict} {count}" for verdict, count in summary["verdicts"].items()),
    ]
    coverage = summary["coverage"]
    if coverage["start"]:
        lines.append(
            f"  history covers {coverage['start']} to {coverage['end']}; "
            "verdicts hold as of its end"
        )
    else:
        lines.append("  no history: every consent is unverified")
    if summary["blank_rows_skipped"]:
        lines.append(f"  {summary['blank_rows_skipped']} blank row(s) skipped")
    lines.extend(f"  warning: {warning}" for warning in summary["warnings"])
    outputs = summary["outputs"]
    written = [outputs["cleaned"], outputs["changes"]] + (
        [outputs["report"]] if outputs["report"] else []
    )
    lines.append(f"  wrote {', '.join(written[:-1])} and {written[-1]}")
    return "\n".join(lines)


# --- fetch ------------------------------------------------------------------------


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """A progress bar on a terminal; one log line per report otherwise (cron)."""
    bar: Any = None

    def report(event: str, data: dict[str, Any]) -> None:
        nonlocal bar
        if event == "plan" and enabled and data["reports"]:
            bar = click.progressbar(
                length=data["reports"], label="fetching reports", file=sys.stderr
            )
            bar.__enter__()
        elif event == "page" and bar is not None:
            bar.label = f"report {data['report_id']} page {data['page'] + 1}/{data['total_pages']}"
            bar.render_progress()
        elif event in ("report", "gone", "failed"):
            if bar is not None:
                bar.update(1)
            elif event == "report":
                entry = data["entry"]
                click.echo(
                    f"fetched report {entry.report_id} ({entry.network_name}, "
                    f"{entry.date_from:%Y-%m-%d} to {entry.date_to:%Y-%m-%d}): "
                    f"{data['records']} records in {data['pages']} page(s)",
                    err=True,
                )
            elif event == "gone":
                click.echo(f"report {data['report_id']} is gone (HTTP 404)", err=True)
            else:
                click.echo(f"report {data['report_id']} failed: {data['error']}", err=True)

    try:
        yield report
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@main.command()
@click.option("--since", help="Only reports generated on or after this date (YYYY-MM-DD).")
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Records asked for per page; the server's own page size is trusted.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="At most this many requests per second (the API's throttle is 1/s).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for one answer before retrying.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@ledger_options
def fetch(
    since: str | None,
    page_size: int,
    rate: float,
    timeout: float,
    as_json: bool,
    data_dir: Path | None,
    wait: float,
) -> None:
    """Sync new operator reports from Infobip into the ledger.

    Reads INFOBIP_API_KEY and INFOBIP_BASE_URL (your personal base URL, default
    https://api.infobip.com) from the environment; INFOBIP_AUTH_SCHEME picks App
    (default), Basic, Bearer or IBSSO. Only reports not yet complete are fetched.

    Example:

        INFOBIP_API_KEY=... reconcile fetch --since 2024-03-01
    """
    import httpx

    from reconcile.api import DEFAULT_BASE_URL, ApiKey, InfobipClient
    from reconcile.sync import fetch as fetch_reports

    key = os.environ.get("INFOBIP_API_KEY")
    if not key:
        raise OptionError(
            "INFOBIP_API_KEY is not set; export your Infobip API key in that variable."
        )
    if since is not None:
        import polars as pl

        from reconcile.consent import parse_utc_instants

        if parse_utc_instants(pl.Series([since])).item() is None:
            raise OptionError(f"--since {since!r} is not a date (use YYYY-MM-DD).")
    ledger = open_ledger(data_dir)
    with (
        httpx.Client(timeout=httpx.Timeout(timeout)) as http,
        ledger.locked(wait),
        _progress(sys.stderr.isatty() and not as_json) as progress,
    ):
        client = InfobipClient(
            http,
            ApiKey(key),
            base_url=os.environ.get("INFOBIP_BASE_URL") or DEFAULT_BASE_URL,
            rate=rate,
            auth_scheme=os.environ.get("INFOBIP_AUTH_SCHEME") or "App",
        )
        result = fetch_reports(
            ledger,
            client,
            now=datetime.now(UTC),
            page_size=page_size,
            since=since,
            progress=progress,
        )
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2))
    else:
        records = sum(count for _, count, _ in result.fetched)
        click.echo(
            f"{result.listed} reports listed, {len(result.fetched)} fetched ({records} records), "
            f"{len(result.gone)} gone, {len(result.failed)} failed; {result.requests} requests"
        )
        for warning in result.warnings():
            click.echo(f"  warning: {warning}")
    if result.failed:
        raise ReconcileError(
            f"{len(result.failed)} report(s) could not be fetched; run `reconcile fetch` again."
        )


# --- ledger -------------------------------------------------------------------------


@main.group()
def ledger() -> None:
    """Inspect, import into and export from the local ledger.

    Example:

        reconcile ledger status
    """


@ledger.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@ledger_options
def status(as_json: bool, data_dir: Path | None, wait: float) -> None:
    """Reports, events, coverage per operator and the last sync.

    Example:

        reconcile ledger status --json
    """
    from reconcile.ledger_io import ledger_status

    store = open_ledger(data_dir)
    with store.locked(wait):
        info = ledger_status(store, datetime.now(UTC))
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    coverage = info["coverage"]
    by_status = ", ".join(f"{count} {name}" for name, count in info["by_status"].items())
    click.echo(f"ledger {info['ledger']}")
    click.echo(f"  {info['reports']} reports ({by_status or 'none'}), {info['events']} events")
    click.echo(f"  last sync: {info['last_sync'] or 'never'}")
    if coverage["start"]:
        click.echo(f"  coverage {coverage['start']} to {coverage['end']}")
    else:
        click.echo("  no coverage yet: run `reconcile fetch` or `reconcile ledger import`")
    for operator in coverage["operators"]:
        gaps = "; ".join(f"{start} to {end}" for start, end in operator["gaps"]) or "none"
        click.echo(
            f"  {operator['network']}: {operator['start']} to {operator['end']}, "
            f"{operator['reports']} report(s), gaps: {gaps}"
        )
    for report_id in info["expired_unfetched"]:
        click.echo(f"  warning: report {report_id} expired before it was fetched")
    for report_id in info["expiring_soon"]:
        click.echo(f"  warning: report {report_id} expires within 7 days and is not fetched")


@ledger.command(name="import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--label",
    default="manual",
    show_default=True,
    help="Where the reports came from (kept as import:LABEL).",
)
@ledger_options
def import_(paths: tuple[Path, ...], label: str, data_dir: Path | None, wait: float) -> None:
    """Import reports: API JSON pages, CSV (destination,date,type[,newDestination]) or Parquet.

    Example:

        reconcile ledger import samples/changes --label samples
    """
    from reconcile.ledger_io import import_change_files

    store = open_ledger(data_dir)
    with store.locked(wait):
        info = import_change_files(store, list(paths), label, datetime.now(UTC))
    click.echo(
        f"imported {info['reports']} report(s), {info['events']} events from "
        f"{info['files']} file(s) as import:{label}"
    )
    for warning in info["warnings"]:
        click.echo(f"  warning: {warning}")


@ledger.command()
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    default=None,
    help="Output format (default: from the file name's extension).",
)
@click.option("--force", is_flag=True, help="Replace TARGET if it exists.")
@ledger_options
def export(target: Path, fmt: str | None, force: bool, data_dir: Path | None, wait: float) -> None:
    """Write every event in the ledger to Parquet or CSV.

    Example:

        reconcile ledger export events.parquet
    """
    from reconcile.ledger_io import export_events

    chosen = fmt or ("csv" if target.suffix.lower() == ".csv" else "parquet")
    store = open_ledger(data_dir)
    with store.locked(wait):
        count = export_events(store, target, "csv" if chosen == "csv" else "parquet", force)
    click.echo(f"wrote {count} events to {target}")


# --- run and check ------------------------------------------------------------------

EXIT_WARNINGS = 3


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("reconcile.toml"),
    show_default=True,
    help="The run configuration.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Fetch nothing and write nothing: show what the run would decide.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to wait for another run that holds the ledger.",
)
def run(config_path: Path, dry_run: bool, as_json: bool, wait: float) -> None:
    """Fetch new reports, then clean every input of the config into a dated folder.

    Exit codes for cron: 0 done; 1 failed (one line on stderr, nothing half-written);
    2 usage error; 3 done, but with warnings to read (the fetch failed and the ledger as
    it was was used, or the history is more than 3 days old).

    Example:

        reconcile run --config reconcile.toml
    """
    from reconcile.config import load_config
    from reconcile.errors import ApiError
    from reconcile.runs import RunHistory, clean_inputs

    config = load_config(config_path)
    now = datetime.now(UTC)
    store = open_ledger(config.data_dir)
    attention: list[str] = []
    fetched: dict[str, Any] | None = None
    if config.infobip is not None and not dry_run:
        try:
            fetched = _fetch_for_run(config, store, now, wait)
        except (ApiError, OptionError) as error:
            attention.append(f"fetch failed ({error}); cleaned against the ledger as it was")
        if fetched is not None and fetched["failed"]:
            attention.append(f"{len(fetched['failed'])} report(s) could not be fetched")
    with store.locked(wait):
        history = store.history()
    runs = RunHistory(store.data_dir)
    folder, done = clean_inputs(config, history, runs, now, dry_run=dry_run)
    if any("history is stale" in warning for item in done for warning in item.result.warnings):
        attention.append("the history is stale")
    summary = {
        "run_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": str(config_path),
        "dry_run": dry_run,
        "output": str(folder) if folder else None,
        "fetch": fetched,
        "inputs": [{**item.result.summary(), "changes": item.changes} for item in done],
        "attention": attention,
    }
    if not dry_run:
        runs.record(
            {key: summary[key] for key in ("run_at", "config", "output", "attention")}
            | {
                "inputs": [
                    {"input": str(item.result.table.path), **_counts(item.result)} for item in done
                ]
            },
            {item.result.table.path: item.keys for item in done},
        )
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"run {summary['run_at']}" + (" (dry run: nothing written)" if dry_run else ""))
        if fetched is not None:
            click.echo(
                f"  fetched {len(fetched['fetched'])} report(s) of {fetched['listed']} listed"
            )
        for item in done:
            click.echo(format_summary(item.result))
            click.echo("  " + format_changes(item.changes))
        for line in attention:
            click.echo(f"attention: {line}")
    if attention:
        click.get_current_context().exit(EXIT_WARNINGS)


def _counts(result: CleanResult) -> dict[str, Any]:
    summary = result.summary()
    return {key: summary[key] for key in ("rows", "kept", "removed", "suppressed", "verdicts")}


def _fetch_for_run(config: Any, store: Ledger, now: datetime, wait: float) -> dict[str, Any]:
    import httpx

    from reconcile.api import ApiKey, InfobipClient
    from reconcile.sync import fetch as fetch_reports

    settings = config.infobip
    key = os.environ.get(settings.api_key_env)
    if not key:
        raise OptionError(
            f"the environment variable {settings.api_key_env} (api_key_env) is not set"
        )
    with httpx.Client(timeout=httpx.Timeout(settings.timeout)) as http, store.locked(wait):
        client = InfobipClient(
            http,
            ApiKey(key),
            base_url=settings.base_url,
            rate=settings.rate,
            auth_scheme=settings.auth_scheme,
        )
        result = fetch_reports(
            store, client, now=now, page_size=settings.page_size, since=settings.since
        )
    return result.summary()


def format_changes(changes: dict[str, Any]) -> str:
    """What changed since the previous run of one input, in one line."""
    if changes.get("previous_run") is None and not changes["changed"]:
        return "first run of this input: nothing to compare with"

    def named(keys: list[str]) -> str:
        shown = ", ".join(key.split(":", 1)[1] for key in keys[:10])
        return f"{len(keys)}" + (f" ({shown}{', …' if len(keys) > 10 else ''})" if keys else "")

    return (
        f"since the run of {changes['previous_run']}: "
        f"{len(changes['changed'])} changed verdict(s); "
        f"newly removed {named(changes['newly_removed'])}, "
        f"newly suppressed {named(changes['newly_suppressed'])}, "
        f"no longer suppressed {named(changes['no_longer_suppressed'])}; "
        f"{changes['new_contacts']} new contact(s)"
    )


@main.command()
@click.argument("number")
@click.option("--since", help="The consent date: was the number deactivated since then?")
@click.option(
    "--changes",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Change files to answer from instead of the ledger. Repeatable.",
)
@click.option(
    "--default-region",
    default="US",
    show_default=True,
    help="Region of a number written without a country code.",
)
@click.option(
    "--consent-timezone",
    default="UTC",
    show_default=True,
    help="Time zone of --since when it has no offset.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@ledger_options
def check(
    number: str,
    since: str | None,
    changes: tuple[Path, ...],
    default_region: str,
    consent_timezone: str,
    as_json: bool,
    data_dir: Path | None,
    wait: float,
) -> None:
    """Was NUMBER deactivated since --since? yes / no / no data, with the evidence.

    Answers as the FCC's Reassigned Numbers Database does, from the same rules as
    `reconcile clean`: without --since, any deactivation counts.

    Example:

        reconcile check "+1 415 555 0123" --since 2024-03-01
    """
    import polars as pl

    from reconcile.check import check_number, phone_key
    from reconcile.history import compute_coverage

    key = phone_key(number, default_region)
    if changes:
        history = load_change_files(list(changes))
        events, coverage = history.events, history.coverage()
    else:
        store = open_ledger(data_dir)
        with store.locked(wait):
            reports = store.reports_frame()
            scan = store.scan_events()
            # each event file is sorted by number: row-group statistics skip the rest
            events = scan.filter(pl.col("number") == key).collect()
            coverage = compute_coverage(reports, scan)
    answer = check_number(
        number,
        since,
        events,
        coverage,
        default_region=default_region,
        consent_timezone=consent_timezone,
        now=datetime.now(UTC),
    )
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(f"{answer['answer']}: {answer['e164']} ({answer['verdict']})")
    if answer["reason"]:
        click.echo(f"  {answer['reason']}")
    evidence = answer["evidence"]
    if evidence:
        click.echo(
            f"  evidence: {evidence['event_type']} {evidence['event_date']}, "
            f"{evidence['network'] or 'operator not named'}, report {evidence['report_id']}"
        )
    for note in answer["notes"]:
        click.echo(f"  note: {note}")
    cov = answer["coverage"]
    click.echo(
        f"  history covers {cov['start']} to {cov['end']}" if cov["start"] else "  no history"
    )
