"""Where settings come from: the data directory and the Infobip client, in one place.

Every command resolves the data directory the same way, and `fetch` and `run` build
their API client from the same `ApiSettings` (read from the environment by `fetch`,
from ``[infobip]`` by `run`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.errors import OptionError

if TYPE_CHECKING:
    from reconcile.api import InfobipClient

__all__ = [
    "DATA_DIR_VARIABLE",
    "DEFAULT_BASE_URL",
    "ApiSettings",
    "api_settings_from_environment",
    "default_data_dir",
    "open_client",
    "resolve_data_dir",
]

DEFAULT_BASE_URL = "https://api.infobip.com"
DATA_DIR_VARIABLE = "RECONCILE_DATA_DIR"


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


def api_settings_from_environment(
    *,
    rate: float,
    page_size: int,
    timeout: float,
    since: str | None,
    environment: Mapping[str, str] = os.environ,
) -> ApiSettings:
    """`reconcile fetch`'s settings: INFOBIP_BASE_URL and INFOBIP_AUTH_SCHEME, and options."""
    return ApiSettings(
        base_url=environment.get("INFOBIP_BASE_URL") or DEFAULT_BASE_URL,
        auth_scheme=environment.get("INFOBIP_AUTH_SCHEME") or "App",
        rate=rate,
        page_size=page_size,
        timeout=timeout,
        since=since,
    )


@contextlib.contextmanager
def open_client(
    settings: ApiSettings, environment: Mapping[str, str] = os.environ
) -> Iterator[InfobipClient]:
    """An `InfobipClient` on a fresh `httpx.Client`, closed on the way out."""
    import httpx

    from reconcile.api import ApiKey, InfobipClient

    key = environment.get(settings.api_key_env)
    if not key:
        raise OptionError(
            f"{settings.api_key_env} is not set; export your Infobip API key in that variable."
        )
    with httpx.Client(timeout=httpx.Timeout(settings.timeout)) as http:
        yield InfobipClient(
            http,
            ApiKey(key),
            base_url=settings.base_url,
            rate=settings.rate,
            auth_scheme=settings.auth_scheme,
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
    """The data directory: ``--data-dir``, then the config file's ``data_dir``, then
    RECONCILE_DATA_DIR, then the user's data directory."""
    if option is not None:
        return option
    if configured is not None:
        return configured
    from_environment = environment.get(DATA_DIR_VARIABLE)
    if from_environment:
        return Path(from_environment)
    return default_data_dir()
