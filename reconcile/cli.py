"""The `reconcile` command line: click commands over the library, nothing more.

Exit codes: 0 success, 1 a failure reported in one line (no traceback unless -v),
2 a usage error (click's own).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from reconcile import __version__
from reconcile.changefiles import load_change_files
from reconcile.clean import CleanOptions, CleanResult, clean_files
from reconcile.contacts import ColumnChoice
from reconcile.errors import ReconcileError
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


@click.group(cls=ReconcileGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Keep SMS and voice contact lists safe to message.

    Strips or flags every number that mobile operators reported deactivated since the
    contact's consent, using Infobip's Number Activation State reports.
    """
    ctx.obj = {"verbose": verbose}


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
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@action_overrides
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
    as_json: bool,
    **overrides: str | None,
) -> None:
    """Reconcile contact files (CSV or XLSX) against the operator history.

    Writes NAME.cleaned.EXT (the list to message) and NAME.changes.csv (every row
    that is not ok, with the reason and evidence) beside each input.

    Example:

        reconcile clean samples/contacts.csv --changes samples/changes
    """
    if not changes:
        raise click.UsageError(
            "no history given: pass --changes PATH (API JSON pages, CSV, or a folder of them)."
        )
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
    )
    history = load_change_files(list(changes))
    results = clean_files(list(files), history, options, datetime.now(UTC))
    if as_json:
        click.echo(json.dumps([result.summary() for result in results], indent=2))
    else:
        for result in results:
            click.echo(format_summary(result))


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
    lines.append(f"  wrote {outputs['cleaned']} and {outputs['changes']}")
    return "\n".join(lines)
