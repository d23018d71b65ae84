"""The run configuration, ``reconcile.toml``, read strictly.

Every key is known, every value has the type it should, every input file exists, and an
API key written into the file is refused: the file names the environment variable that
holds the key (``api_key_env``), never the key itself.

    [infobip]                       # optional: without it, `run` does not fetch
    base_url = "https://xxxxx.api.infobip.com"
    api_key_env = "INFOBIP_API_KEY"
    [twilio]                        # optional: the Twilio day lists
    account_sid_env = "TWILIO_ACCOUNT_SID"
    auth_token_env = "TWILIO_AUTH_TOKEN"
    [vonage]                        # optional: the Vonage day lists
    api_key_env = "VONAGE_API_KEY"
    api_secret_env = "VONAGE_API_SECRET"
    [ledger]
    data_dir = "/var/lib/reconcile"
    [output]
    dir = "reconcile-runs"          # a dated folder per run is made inside
    [[inputs]]
    path = "exports/contacts.csv"
    phone_column = "Mobile Phone"
    [inputs.actions]
    unverified = "remove"
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import polars as pl

from reconcile.columns import ColumnChoice
from reconcile.consent import parse_utc_instants
from reconcile.errors import ConfigError, OptionError
from reconcile.options import CleanOptions
from reconcile.settings import (
    AUTH_SCHEMES,
    ApiSettings,
    DayListSettings,
    base_url_from_environment,
    check_base_url,
    day_list_settings,
)
from reconcile.verdicts import ACTIONS, MODES, VERDICTS

__all__ = ["InputConfig", "RunConfig", "load_config"]

_SECRET_KEYS = frozenset(
    {"api_key", "apikey", "key", "password", "token", "secret", "authorization"}
)


@dataclass(frozen=True)
class InputConfig:
    """One ``[[inputs]]`` table: a contact file and how to clean it (the same options
    object `reconcile clean` builds from its flags)."""

    path: Path
    options: CleanOptions


@dataclass(frozen=True)
class RunConfig:
    """The whole file: where to fetch from (if anywhere), the ledger, the outputs."""

    path: Path
    infobip: ApiSettings | None
    data_dir: Path | None
    output_dir: Path
    inputs: list[InputConfig]
    # the day-list sources configured ([twilio], [vonage]), fetched before cleaning
    day_lists: list[DayListSettings] = field(default_factory=list)


class _Reader:
    """Type-checked access to one TOML table, with errors that name the key."""

    def __init__(
        self, source: Path, where: str, table: Any, known: dict[str, type | tuple[type, ...]]
    ):
        self.source, self.where, self.known = source, where, known
        if not isinstance(table, dict):
            self.fail("", f"expected a table, got {type(table).__name__}")
        self.table: dict[str, Any] = table
        for key in table:
            if key.lower() in _SECRET_KEYS:
                self.fail(
                    key,
                    "an API key written in the config file can be read by anyone who can read "
                    "the file, and ends up in backups and version control; put it in an "
                    'environment variable and name that variable with api_key_env = "..."',
                )
            if key not in known:
                self.fail(key, f"unknown key (known keys: {', '.join(sorted(known))})")

    def fail(self, key: str, message: str) -> NoReturn:
        name = f"{self.where}.{key}" if key and self.where else (key or self.where or "top level")
        raise ConfigError(f"{self.source}: {name}: {message}.")

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        expected = self.known[key]
        types = expected if isinstance(expected, tuple) else (expected,)
        if isinstance(value, bool) and bool not in types:
            value_ok = False
        else:
            value_ok = isinstance(value, types)
        if not value_ok:
            wanted = " or ".join(_TYPE_NAMES.get(kind, kind.__name__) for kind in types)
            self.fail(
                key,
                f"expected {wanted}, got "
                f"{_TYPE_NAMES.get(type(value), type(value).__name__)} {value!r}",
            )
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(key, default)
        if value not in options:
            self.fail(key, f"expected one of {', '.join(options)}, got {value!r}")
        return str(value)


_TYPE_NAMES = {
    str: "text",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "a list",
}


# an environment variable's name as people write them: capitals, digits and _ (a key or
# token pasted in by mistake is lowercase or mixed, or long without a _)
_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def _variable(section: _Reader, key: str) -> str | None:
    """A ``*_env`` key's value: the NAME of an environment variable. Anything else (a
    key or token pasted in by mistake) is refused without being repeated."""
    value = section.get(key)
    if value is not None and (
        not _VARIABLE_NAME.fullmatch(value) or (len(value) >= 16 and "_" not in value)
    ):
        section.fail(
            key,
            "not the name of an environment variable (capitals, digits and _, such as "
            "TWILIO_AUTH_TOKEN): write the variable's NAME here and keep its value in the "
            "environment",
        )
    return None if value is None else str(value)


def _since(section: _Reader) -> str | None:
    """A ``since`` key: a date (YYYY-MM-DD), checked before anything is fetched."""
    value = section.get("since")
    if value is not None and parse_utc_instants(pl.Series([value])).item() is None:
        section.fail("since", f"{value!r} is not a date (use YYYY-MM-DD)")
    return None if value is None else str(value).strip()


def _base_url(section: _Reader, variable: str) -> str | None:
    """A ``base_url`` key, held to the https rule before anything is fetched."""
    value = section.get("base_url")
    if value is None:
        return None
    try:
        return check_base_url(str(value), "base_url")
    except OptionError as error:
        section.fail("base_url", str(error).removeprefix("base_url ").rstrip("."))


# a day-list source's table: the keys that name the variables of its user and secret
_DAY_LIST_KEYS = {
    "twilio": ("account_sid_env", "auth_token_env"),
    "vonage": ("api_key_env", "api_secret_env"),
}


def _day_list(path: Path, source: str, table: Any) -> DayListSettings:
    """A ``[twilio]`` or ``[vonage]`` table: where the credentials are (variables, never
    the values), the base URL, rate, timeout, since and deadline."""
    user_key, secret_key = _DAY_LIST_KEYS[source]
    section = _Reader(
        path,
        f"[{source}]",
        table,
        {
            "base_url": str,
            user_key: str,
            secret_key: str,
            "rate": (int, float),
            "timeout": (int, float),
            "since": str,
            "deadline": (int, float),
        },
    )
    defaults = day_list_settings(source)
    settings = day_list_settings(
        source,
        base_url=_base_url(section, f"{source.upper()}_BASE_URL"),
        user_env=_variable(section, user_key),
        secret_env=_variable(section, secret_key),
        rate=float(section.get("rate", defaults.rate)),
        timeout=float(section.get("timeout", defaults.timeout)),
        since=_since(section),
        deadline=float(section.get("deadline", defaults.deadline)),
    )
    _positive(section, settings)
    return settings


def _positive(section: _Reader, settings: ApiSettings | DayListSettings) -> None:
    """A source's rate, timeout and deadline: positive numbers, or the key is named."""
    for name in ("rate", "timeout", "deadline"):
        value = getattr(settings, name)
        if not (math.isfinite(value) and value > 0):
            section.fail(name, f"expected a positive number, got {value!r}")


def load_config(path: Path) -> RunConfig:
    """Read and check ``path``; raise ConfigError naming the key at fault."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a BOM, as Notepad writes it
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file ({error}).") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}).") from None
    base = path.parent
    top = _Reader(
        path,
        "",
        document,
        {
            "infobip": dict,
            "twilio": dict,
            "vonage": dict,
            "ledger": dict,
            "output": dict,
            "inputs": list,
        },
    )

    infobip = None
    if "infobip" in document:
        section = _Reader(
            path,
            "[infobip]",
            top.get("infobip"),
            {
                "base_url": str,
                "api_key_env": str,
                "auth_scheme": str,
                "rate": (int, float),
                "page_size": int,
                "timeout": (int, float),
                "since": str,
                "deadline": (int, float),
            },
        )
        defaults = ApiSettings()
        infobip = ApiSettings(
            base_url=_base_url(section, "INFOBIP_BASE_URL") or base_url_from_environment(),
            api_key_env=_variable(section, "api_key_env") or defaults.api_key_env,
            auth_scheme=section.choice("auth_scheme", AUTH_SCHEMES, defaults.auth_scheme),
            rate=float(section.get("rate", defaults.rate)),
            page_size=int(section.get("page_size", defaults.page_size)),
            timeout=float(section.get("timeout", defaults.timeout)),
            since=_since(section),
            deadline=float(section.get("deadline", defaults.deadline)),
        )
        _positive(section, infobip)
        if infobip.page_size <= 0:
            section.fail("page_size", "expected a positive whole number")

    day_lists = [
        _day_list(path, source, top.get(source)) for source in _DAY_LIST_KEYS if source in document
    ]
    ledger = _Reader(path, "[ledger]", document.get("ledger", {}), {"data_dir": str})
    data_dir = ledger.get("data_dir")
    if data_dir is not None and not data_dir.strip():
        ledger.fail("data_dir", "empty: name the folder of the ledger, or leave the key out")
    output = _Reader(path, "[output]", document.get("output", {}), {"dir": str})

    raw_inputs = top.get("inputs")
    if not raw_inputs:
        top.fail("inputs", "no [[inputs]]: name at least one contact file to clean")
    inputs = [_input(path, base, index, table) for index, table in enumerate(raw_inputs, start=1)]
    names: dict[str, int] = {}
    for index, item in enumerate(inputs, start=1):
        if item.path.name in names:
            top.fail(
                "inputs",
                f"[inputs][{names[item.path.name]}] and [inputs][{index}] are both named "
                f"{item.path.name!r}: their outputs would have the same names in the run's "
                "folder; rename one of the files",
            )
        names[item.path.name] = index
    return RunConfig(
        path=path,
        infobip=infobip,
        data_dir=(base / data_dir) if data_dir else None,
        output_dir=base / output.get("dir", "reconcile-runs"),
        inputs=inputs,
        day_lists=day_lists,
    )


def _input(path: Path, base: Path, index: int, table: Any) -> InputConfig:
    section = _Reader(
        path,
        f"[inputs][{index}]",
        table,
        {
            "path": str,
            "phone_column": (str, list),
            "not_phone_column": (str, list),
            "consent_column": str,
            "id_column": str,
            "include_columns": (str, list),
            "sheet": str,
            "encoding": str,
            "delimiter": str,
            "default_region": str,
            "consent_timezone": str,
            "consent_format": str,
            "mode": str,
            "report": bool,
            "actions": dict,
        },
    )
    relative = section.get("path")
    if relative is None:
        section.fail("path", "missing: name the contact file to clean")
    file = base / relative
    if not file.is_file():
        section.fail("path", f"no such file {file}")
    actions_reader = _Reader(
        path, f"[inputs][{index}].actions", section.get("actions", {}), dict.fromkeys(VERDICTS, str)
    )
    actions = {
        verdict: actions_reader.choice(verdict, ACTIONS, "")
        for verdict in VERDICTS
        if verdict in actions_reader.table
    }
    try:
        options = CleanOptions(
            columns=ColumnChoice(
                phones=_column_names(section, "phone_column"),
                consent=section.get("consent_column"),
                id=section.get("id_column"),
                include=_column_names(section, "include_columns"),
                not_phones=_column_names(section, "not_phone_column"),
            ),
            mode=section.choice("mode", MODES, "strip"),
            actions=actions,
            default_region=section.get("default_region", "US"),
            consent_timezone=section.get("consent_timezone", "UTC"),
            consent_format=section.get("consent_format"),
            sheet=section.get("sheet"),
            encoding=section.get("encoding"),
            delimiter=section.get("delimiter"),
            report=section.get("report", True),
        )
    except OptionError as error:  # the option's name is the config key
        section.fail(error.option or "", error.detail.rstrip("."))
    return InputConfig(path=file, options=options)


def _column_names(section: _Reader, key: str) -> tuple[str, ...]:
    """``phone_column``, ``not_phone_column`` or ``include_columns``: one name, or a list
    of names."""
    value = section.get(key)
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not names or not all(isinstance(name, str) and name for name in names):
        section.fail(key, "expected a column name or a list of column names")
    return tuple(names)
