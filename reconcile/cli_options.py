"""The command line's option bundles, as decorators, and the options object built from
them: each option is spelled here once, and `clean_options` turns what `clean` was told
into the library's `CleanOptions` (which checks itself where it is built)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import click

import reconcile

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "action_overrides",
    "changes_option",
    "clean_option_bundle",
    "clean_options",
    "data_dir_option",
    "engine_options",
    "import_options",
    "json_option",
    "ledger_options",
    "open_ledger",
    "reading_options",
    "since_option",
    "spark_engine",
    "verbose_option",
]


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--since must be a date: a usage error (exit 2) otherwise."""
    try:
        return reconcile.check_since(value)
    except reconcile.OptionError as error:
        raise click.BadParameter(
            str(error).removeprefix(f"--since {value!r} "), ctx, param
        ) from None


def _verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["reconcile.verbose"] = True


def verbose_option(function: F) -> F:
    """-v after a command too (``reconcile clean -v FILE``)."""
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_verbose,
        help="Show full tracebacks on errors.",
    )(function)


def wait_option(function: F) -> F:
    """--wait SECONDS, for every command that holds the ledger."""
    return click.option(
        "--wait",
        type=click.FloatRange(min=0),
        default=0,
        show_default=True,
        help="Seconds to wait for another run that holds the ledger.",
    )(function)


def data_dir_option(function: F) -> F:
    """--data-dir, for every command that uses the ledger."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where the ledger lives (default: RECONCILE_DATA_DIR, else the user data directory).",
    )(function)


def engine_options(function: F) -> F:
    """--engine and --spark-master, for `clean`."""
    function = click.option(
        "--spark-master",
        metavar="URL",
        default=None,
        help="Spark master for --engine spark (default: local[*], or spark-submit's).",
    )(function)
    return click.option(
        "--engine",
        type=click.Choice(["local", "spark"]),
        default="local",
        show_default=True,
        help="local: this machine, in bounded memory. spark: Apache Spark (the spark "
        "extra); FILES may then be folders of CSV or Parquet files.",
    )(function)


def spark_engine() -> ModuleType:
    """`reconcile.spark_run`, imported only when asked for (pyspark is an optional extra,
    and the engine says so in one line when it is missing)."""
    return importlib.import_module("reconcile.spark_run")


def ledger_options(function: F) -> F:
    """--data-dir and --wait."""
    return data_dir_option(wait_option(function))


def import_options(function: F) -> F:
    """`ledger import`'s --label, --report-id, and a day list's --deactivated-on and
    --source."""
    options = [
        click.option(
            "--label",
            default="manual",
            show_default=True,
            help="Where the reports came from (kept as import:LABEL).",
        ),
        click.option(
            "--report-id",
            help="The report id of record files no metadata names (default: from their content).",
        ),
        click.option(
            "--deactivated-on",
            metavar="YYYY-MM-DD",
            help="PATHS are a day list: the numbers deactivated on this day (UTC), one a "
            "line (needs --source).",
        ),
        click.option(
            "--source",
            metavar="NAME",
            help="The provider of the day list (twilio, vonage or any name); with "
            "--deactivated-on.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def open_ledger(data_dir: Path | None) -> reconcile.Ledger:
    """The ledger in the data directory the options and environment name."""
    return reconcile.Ledger(reconcile.resolve_data_dir(data_dir))


def action_overrides(function: F) -> F:
    """One --VERDICT ACTION option per verdict (--unverified remove, ...)."""
    for verdict in reversed(reconcile.VERDICTS):
        option = "--" + verdict.replace("_", "-")
        function = click.option(
            option,
            verdict,
            type=click.Choice(reconcile.ACTIONS),
            default=None,
            help=f"Action for {verdict} rows (default {reconcile.DEFAULT_ACTIONS[verdict]}).",
        )(function)
    return function


def json_option(what: str) -> Callable[[F], F]:
    """--json, printing ``what`` as JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def changes_option(help_text: str) -> Callable[[F], F]:
    """--changes PATH (repeatable): change files instead of the ledger."""
    return click.option("--changes", multiple=True, type=click.Path(path_type=Path), help=help_text)


def reading_options(function: F) -> F:
    """--default-region and --consent-timezone: how numbers and dates are read."""
    function = click.option(
        "--consent-timezone",
        default="UTC",
        show_default=True,
        help="Time zone of consent dates without an offset (IANA name).",
    )(function)
    return click.option(
        "--default-region",
        default="US",
        show_default=True,
        help="Region of numbers written without a country code.",
    )(function)


def since_option(help_text: str) -> Callable[[F], F]:
    """--since DATE, a usage error (exit 2) when it is not a date."""
    return click.option("--since", callback=_since, help=help_text)


def clean_option_bundle(function: F) -> F:
    """How `clean` reads, decides and writes: --mode, the columns, the reading options,
    the outputs and one --VERDICT ACTION per verdict (read by `clean_options`)."""
    return _clean_bundle(action_overrides(function))


def _clean_bundle(function: F) -> F:
    """The options of `clean_option_bundle` but the action overrides."""
    decorators: list[Callable[[F], F]] = [
        click.option(
            "--mode",
            type=click.Choice(reconcile.MODES),
            default="strip",
            show_default=True,
            help="strip: drop removed and suppressed rows. blank: keep every row, empty the "
            "phone cells of removed and suppressed numbers. flag: keep every row, add "
            "reconcile_* columns.",
        ),
        click.option(
            "--phone-column",
            "phone_columns",
            multiple=True,
            help="A phone column to check (repeatable; default: every column named like a phone "
            "or holding phone numbers).",
        ),
        click.option(
            "--not-phone-column",
            "not_phone_columns",
            multiple=True,
            help="A column guessed as a phone column to leave unchecked (repeatable).",
        ),
        click.option(
            "--consent-column", help="Consent date column (default: guessed: Opt-In Date, ...)."
        ),
        click.option("--id-column", help="Column echoed into the change list as id."),
        click.option(
            "--include-columns",
            "include_columns",
            multiple=True,
            metavar="NAME,...",
            help="Contact columns (a name, an email) echoed into the change list and the "
            "workbook's action sheets; comma-separated or repeated. Default: none.",
        ),
        reading_options,
        click.option("--consent-format", help="strftime format for consent values, e.g. %d/%m/%Y."),
        click.option(
            "--sheet", help="XLSX sheet name or 1-based number (default: the first visible)."
        ),
        click.option("--encoding", help="CSV encoding (default: detect UTF-8 or Windows-1252)."),
        click.option(
            "--delimiter",
            type=click.Choice(reconcile.DELIMITER_NAMES),
            metavar="DELIMITER",  # the choices' own list, [,|;|||tab], cannot be read
            help="CSV delimiter: , ; | or tab (default: the one that splits every row into the "
            "header's number of fields).",
        ),
        click.option("--out-dir", type=click.Path(path_type=Path), help="Folder for the outputs."),
        click.option("--force", is_flag=True, help="Replace outputs that exist already."),
        click.option(
            "--report/--no-report",
            default=True,
            show_default=True,
            help="Write the audit workbook NAME.report.xlsx.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def clean_options(given: Mapping[str, Any]) -> reconcile.CleanOptions:
    """`CleanOptions` from the values of `clean_option_bundle`'s options (an OptionError
    names the flag)."""
    return reconcile.CleanOptions(
        columns=reconcile.ColumnChoice(
            phones=given["phone_columns"],
            consent=given["consent_column"],
            id=given["id_column"],
            include=reconcile.split_column_names(given["include_columns"]),
            not_phones=given["not_phone_columns"],
        ),
        mode=given["mode"],
        actions={verdict: given[verdict] for verdict in reconcile.VERDICTS if given[verdict]},
        default_region=given["default_region"],
        consent_timezone=given["consent_timezone"],
        consent_format=given["consent_format"],
        sheet=given["sheet"],
        encoding=given["encoding"],
        delimiter=given["delimiter"],
        out_dir=given["out_dir"],
        force=given["force"],
        report=given["report"],
    )
