"""Where settings come from: the data directory and the Infobip settings, in one place.

Every command resolves the data directory the same way, and `fetch` and `run` build
their API client (`api.open_client`) from the same `ApiSettings` (read from the
environment by `fetch`, from ``[infobip]`` by `run`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconcile.errors import OptionError

__all__ = [
    "AUTH_SCHEMES",
    "DATA_DIR_VARIABLE",
    "DEFAULT_BASE_URL",
    "ApiSettings",
    "api_settings_from_environment",
    "base_url_from_environment",
    "default_data_dir",
    "resolve_data_dir",
]

DEFAULT_BASE_URL = "https://api.infobip.com"
DATA_DIR_VARIABLE = "RECONCILE_DATA_DIR"
AUTH_SCHEMES = ("App", "Basic", "Bearer", "IBSSO")


@dataclass(frozen=True)
class ApiSettings:
    """How to reach the Infobip API; the key itself stays in the environment."""

    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = "INFOBIP_API_KEY"
    auth_scheme: str = "App"
    rate: float = 1.0
    page_size: int = 10_000
    timeout: float = 30.0
    since: str | None = None
    # no report is started after this many seconds of a fetch
    deadline: float = 3600.0


def base_url_from_environment(environment: Mapping[str, str] = os.environ) -> str:
    """INFOBIP_BASE_URL, else the default: for `fetch`, and for `run` when its
    ``[infobip]`` table names no ``base_url``."""
    return environment.get("INFOBIP_BASE_URL") or DEFAULT_BASE_URL


def api_settings_from_environment(
    *,
    rate: float,
    page_size: int,
    timeout: float,
    since: str | None,
    deadline: float = 3600.0,
    environment: Mapping[str, str] = os.environ,
) -> ApiSettings:
    """`reconcile fetch`'s settings: INFOBIP_BASE_URL and INFOBIP_AUTH_SCHEME, and options."""
    for name, value in (("--rate", rate), ("--timeout", timeout), ("--deadline", deadline)):
        if not (math.isfinite(value) and value > 0):
            raise OptionError(f"{name} {value} must be a positive number.")
    return ApiSettings(
        base_url=base_url_from_environment(environment),
        auth_scheme=environment.get("INFOBIP_AUTH_SCHEME") or "App",
        rate=rate,
        page_size=page_size,
        timeout=timeout,
        since=since,
        deadline=deadline,
    )


def default_data_dir() -> Path:
    """The user's data directory for reconcile (platformdirs)."""
    import platformdirs

    return Path(platformdirs.user_data_path("reconcile", appauthor=False))


def resolve_data_dir(
    option: Path | None,
    configured: Path | None = None,
    environment: Mapping[str, str] = os.environ,
) -> Path:
    """The data directory: ``--data-dir``, then RECONCILE_DATA_DIR, then the config
    file's ``data_dir``, then the user's data directory (SPEC "The ledger")."""
    from_environment = environment.get(DATA_DIR_VARIABLE)
    if option is not None:
        chosen, source = option, "--data-dir"
    elif from_environment:
        chosen, source = Path(from_environment), DATA_DIR_VARIABLE
    elif configured is not None:
        chosen, source = configured, "data_dir"
    else:
        return default_data_dir()
    if chosen.exists() and not chosen.is_dir():
        raise OptionError(f"{source} {chosen} is a file, not a folder; name a folder.")
    return chosen
