"""The `reconcile` command line: click commands over the library, nothing more.

Each command parses its options, calls the public library (`reconcile`), prints, and
maps the one exception tree to exit codes: 0 success, 1 a failure reported in one line
(no traceback unless -v), 2 a usage error (click's own), 3 for `run`: done, but read
the output.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

import reconcile
from reconcile import ReconcileError, printed
from reconcile.cli_options import (
    changes_option,
    clean_option_bundle,
    clean_options,
    data_dir_option,
    engine_options,
    import_options,
    json_option,
    ledger_options,
    open_ledger,
    reading_options,
    since_option,
    spark_engine,
    verbose_option,
)

EXIT_ATTENTION = 3


class ReconcileGroup(click.Group):
    """A click group that turns ReconcileError into one line on stderr and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        def verbose() -> bool:
            return bool(ctx.params.get("verbose") or ctx.meta.get("reconcile.verbose"))

        try:
            return super().invoke(ctx)
        except ReconcileError as error:
            _fail(ctx, verbose(), str(error))
        except OSError as error:
            target = f"{error.filename}: " if error.filename else ""
            _fail(ctx, verbose(), f"{target}{error.strerror or error}")
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001  (the edge: one line, never a traceback)
            _fail(
                ctx,
                verbose(),
                f"{type(error).__name__}: {reconcile.first_line(error, 300)} "
                "(run with -v for the traceback and report it)",
                label="internal error",
            )


def _show_version(ctx: click.Context) -> object:
    click.echo(f"reconcile, version {reconcile.version()}")
    return ctx.exit()


def _fail(ctx: click.Context, verbose: bool, message: str, label: str = "error") -> None:
    if verbose:
        traceback.print_exc()
    click.echo(f"reconcile: {label}: {message}", err=True)
    ctx.exit(1)


@click.group(cls=ReconcileGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: _show_version(ctx) if value else None,
    help="Show the version and exit.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks on errors.")
def main(verbose: bool) -> None:  # verbose is read by ReconcileGroup.invoke
    """Keep SMS and voice contact lists safe to message.

    Strips or flags every number that mobile operators reported deactivated since the
    contact's consent, using Infobip's Number Activation State reports.

    Example (the samples, no account needed):

    \b
        reconcile clean samples/contacts.csv --changes samples/changes
    """


def _print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2))


def _print_lines(lines: list[str]) -> None:
    click.echo("\n".join(lines))


@main.command()
@verbose_option
# text, not Path: a Spark path may be a URL (s3a://...), which Path would fold
@click.argument("files", nargs=-1, required=True, type=click.Path())
@changes_option("Change file or folder (API JSON pages, CSV destination,date,type). Repeatable.")
@clean_option_bundle
@json_option("the summary")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to wait for another run that writes to the same output folder.",
)
@engine_options
@data_dir_option
def clean(
    files: tuple[str, ...],
    changes: tuple[Path, ...],
    as_json: bool,
    wait: float,
    engine: str,
    spark_master: str | None,
    data_dir: Path | None,
    **given: Any,
) -> None:
    """Reconcile contact files (CSV or XLSX) against the operator history.

    Writes NAME.cleaned.EXT (the list to message) and NAME.changes.csv (one line per
    number that is not ok, with the reason and evidence) beside each input. The history is
    the ledger (see `reconcile fetch`), or the change files given with --changes.

    Example:

        reconcile clean samples/contacts.csv --changes samples/changes

    With --engine spark, each FILE may be a folder of CSV or Parquet files (or a URL
    Spark reads); the outputs are Spark output folders.
    """
    options = clean_options(given)
    if changes:
        history = reconcile.load_change_files(list(changes))
    else:
        history = open_ledger(data_dir).history_warning_if_empty()
    now = datetime.now(UTC)
    if engine == "spark":
        summaries = spark_engine().clean_paths(list(files), history, options, now, spark_master)
    else:
        if spark_master is not None:
            raise reconcile.OptionError("--spark-master needs --engine spark.")
        results = reconcile.clean_files([Path(f) for f in files], history, options, now, wait)
        summaries = [result.summary() for result in results]
    if as_json:
        _print_json(summaries)
    else:
        for summary in summaries:
            _print_lines(printed.summary_lines(summary))


# --- fetch ------------------------------------------------------------------------


@main.command()
@verbose_option
@since_option("Only reports generated on or after this date (YYYY-MM-DD).")
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
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Seconds the whole fetch may take: checked before every request and while an "
    "answer arrives; what came by then is kept (incomplete) and the rest waits for the "
    "next fetch.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(reconcile.SOURCES),
    help="Fetch only this source (repeatable; default: every source whose credentials are set).",
)
@json_option("the result")
@ledger_options
def fetch(
    since: str | None,
    page_size: int,
    rate: float,
    timeout: float,
    deadline: float,
    sources: tuple[str, ...],
    as_json: bool,
    data_dir: Path | None,
    wait: float,
) -> None:
    """Sync new operator reports from Infobip, and the Twilio and Vonage day lists, into
    the ledger.

    Infobip: INFOBIP_API_KEY and INFOBIP_BASE_URL (your personal base URL, default
    https://api.infobip.com); INFOBIP_AUTH_SCHEME picks App (default), Basic, Bearer or
    IBSSO. Twilio: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN. Vonage: VONAGE_API_KEY and
    VONAGE_API_SECRET. Only reports and days not yet complete are fetched.

    Exit codes: 0 everything listed was fetched; 1 failed (one line on stderr; what was
    committed before stays); 3 kept some but not all (a report failed, came incomplete
    or was left at the deadline, or the report list was cut short): run it again.

    Example:

        INFOBIP_API_KEY=... reconcile fetch --since 2024-03-01

        TWILIO_ACCOUNT_SID=... TWILIO_AUTH_TOKEN=... reconcile fetch --source twilio
    """
    settings = reconcile.api_settings_from_environment(
        rate=rate, page_size=page_size, timeout=timeout, since=since, deadline=deadline
    )
    day_lists = [
        reconcile.day_list_settings(
            source, rate=rate, timeout=timeout, since=since, deadline=deadline
        )
        for source in reconcile.SOURCES
        if source != "infobip"
    ]
    infobip, chosen = reconcile.sources_to_fetch(sources, settings, day_lists)
    with printed.fetch_progress(sys.stderr.isatty() and not as_json) as progress:
        result = reconcile.fetch_sources(
            open_ledger(data_dir),
            infobip,
            chosen,
            now=datetime.now(UTC),
            wait=wait,
            progress=progress,
        )
    if as_json:
        _print_json(result.summary())
    else:
        _print_lines(printed.fetch_lines(result))
    if not result.complete:
        # kept something but not everything: a failed, incomplete, late or cut-short part
        click.get_current_context().exit(EXIT_ATTENTION)


# --- ledger -------------------------------------------------------------------------


@main.group()
def ledger() -> None:
    """Inspect, import into and export from the local ledger.

    Example:

        reconcile ledger status
    """


@ledger.command()
@verbose_option
@json_option("the status")
@data_dir_option
def status(as_json: bool, data_dir: Path | None) -> None:
    """Reports, events, coverage per operator and the last sync.

    Example:

        reconcile ledger status --json
    """
    info = reconcile.ledger_status(open_ledger(data_dir), datetime.now(UTC))
    if as_json:
        _print_json(info)
    else:
        _print_lines(printed.status_lines(info))


@ledger.command(name="import")
@verbose_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@import_options
@ledger_options
def import_(
    paths: tuple[Path, ...],
    label: str,
    report_id: str | None,
    deactivated_on: str | None,
    source: str | None,
    data_dir: Path | None,
    wait: float,
) -> None:
    """Import reports: API JSON pages, CSV (destination,date,type[,newDestination]),
    Parquet, Infobip delivery reports (JSON or JSON Lines), or a day list.

    Examples:

        reconcile ledger import samples/changes --label samples

        reconcile ledger import 2024-03-10.txt --deactivated-on 2024-03-10 --source twilio
    """
    if (deactivated_on is None) != (source is None):
        raise click.UsageError("--deactivated-on and --source go together (a day list).")
    if deactivated_on is not None and report_id is not None:
        raise click.UsageError("a day list's report id is its source and day: drop --report-id.")
    store = open_ledger(data_dir)
    with store.locked(wait):
        if deactivated_on is not None and source is not None:
            info = reconcile.import_day_lists(
                store,
                list(paths),
                source=source,
                deactivated_on=deactivated_on,
                label=label,
                now=datetime.now(UTC),
            )
        else:
            info = reconcile.import_change_files(
                store, list(paths), label, datetime.now(UTC), report_id=report_id
            )
    _print_lines(printed.import_lines(info))


@ledger.command()
@verbose_option
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    default=None,
    help="Output format (default: from the file name's extension).",
)
@click.option("--force", is_flag=True, help="Replace TARGET if it exists.")
@data_dir_option
def export(target: Path, fmt: str | None, force: bool, data_dir: Path | None) -> None:
    """Write every event in the ledger to Parquet or CSV.

    Example:

        reconcile ledger export events.parquet
    """
    count = reconcile.export_events(
        open_ledger(data_dir), target, "csv" if fmt == "csv" else "parquet" if fmt else None, force
    )
    click.echo(f"wrote {count} events to {target}")


@ledger.command()
@verbose_option
@json_option("the findings")
@data_dir_option
def verify(as_json: bool, data_dir: Path | None) -> None:
    """Check the manifest and the events files against each other (changes nothing).

    Exit 1 when a named file is missing or unreadable or its events do not match.

    Example:

        reconcile ledger verify
    """
    found = reconcile.verify_ledger(open_ledger(data_dir))
    if as_json:
        _print_json(found)
    else:
        _print_lines(printed.verify_lines(found))
    if not found["ok"]:
        click.get_current_context().exit(1)


@ledger.command()
@verbose_option
@json_option("what was restored")
@ledger_options
def rebuild(as_json: bool, data_dir: Path | None, wait: float) -> None:
    """Restore a lost, damaged or older manifest from the events files.

    Every report the files hold comes back, each in its most complete and latest
    version; nothing is deleted.

    Example:

        reconcile ledger rebuild
    """
    done = reconcile.rebuild_ledger(open_ledger(data_dir), wait)
    if as_json:
        _print_json(done)
    else:
        _print_lines(printed.rebuild_lines(done))


# --- run and check ------------------------------------------------------------------


@main.command()
@verbose_option
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
@json_option("the run summary")
@ledger_options
def run(
    config_path: Path, dry_run: bool, as_json: bool, data_dir: Path | None, wait: float
) -> None:
    """Fetch new reports, then clean every input of the config into a dated folder.

    Exit codes for cron: 0 done; 1 failed (one line on stderr, nothing half-written);
    2 usage error; 3 done, but with warnings to read (the fetch failed and the ledger as
    it was was used, or the history is more than 3 days old).

    Example:

        reconcile run --config reconcile.toml
    """
    config = reconcile.load_config(config_path)
    with printed.fetch_progress(sys.stderr.isatty() and not as_json) as progress:
        report = reconcile.run_once(
            config,
            datetime.now(UTC),
            data_dir=reconcile.resolve_data_dir(data_dir, config.data_dir),
            dry_run=dry_run,
            wait=wait,
            progress=progress,
        )
    if as_json:
        _print_json(report.to_json())
    else:
        _print_lines(printed.run_lines(report))
    if report.attention:
        click.get_current_context().exit(EXIT_ATTENTION)


@main.command()
@verbose_option
@click.argument("number")
@since_option("The consent date: was the number deactivated since then?")
@changes_option("Change files to answer from instead of the ledger. Repeatable.")
@reading_options
@json_option("the answer")
@data_dir_option
def check(
    number: str,
    since: str | None,
    changes: tuple[Path, ...],
    default_region: str,
    consent_timezone: str,
    as_json: bool,
    data_dir: Path | None,
) -> None:
    """Was NUMBER deactivated since --since? yes / no / no data, with the evidence.

    Answers as the FCC's Reassigned Numbers Database does, from the same rules as
    `reconcile clean`: without --since, any deactivation counts.

    Example:

        reconcile check "+1 415 555 0123" --since 2024-03-01
    """
    source = reconcile.load_change_files(list(changes)) if changes else open_ledger(data_dir)
    answer = reconcile.check_number(
        number,
        since,
        source,
        default_region=default_region,
        consent_timezone=consent_timezone,
        now=datetime.now(UTC),
    )
    if as_json:
        _print_json(answer)
    else:
        _print_lines(printed.check_lines(answer))
