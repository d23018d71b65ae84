"""Where settings come from: the data directory and the Infobip settings, in one place.

Every command resolves the data directory the same way, and `fetch` and `run` build
their API client (`api.open_client`) from the same `ApiSettings` (read from the
environment by `fetch`, from ``[infobip]`` by `run`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from reconcile._text import printable
from reconcile.errors import OptionError

__all__ = [
    "AUTH_SCHEMES",
    "DATA_DIR_VARIABLE",
    "DAY_LIST_SOURCES",
    "DEFAULT_BASE_URL",
    "SOURCES",
    "ApiSettings",
    "DayListSettings",
    "api_settings_from_environment",
    "base_url_from_environment",
    "check_base_url",
    "day_list_settings",
    "default_data_dir",
    "is_plain_url",
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


# every source `fetch` knows, in the order a fetch takes them
SOURCES = ("infobip", "twilio", "vonage")


@dataclass(frozen=True)
class DayListSettings:
    """How to reach a provider's day lists (Twilio, Vonage); the credentials stay in the
    environment, named here."""

    source: str
    base_url: str
    user_env: str
    secret_env: str
    # the days a source keeps its lists for, counted back from today
    window_days: int
    rate: float = 1.0
    timeout: float = 30.0
    since: str | None = None
    deadline: float = 3600.0

    @property
    def variable_prefix(self) -> str:
        return self.source.upper()


# per source: the default base URL, the variables of the user and the secret, the window
DAY_LIST_SOURCES: dict[str, tuple[str, str, str, int]] = {
    "twilio": ("https://messaging.twilio.com", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", 30),
    "vonage": ("https://api.nexmo.com", "VONAGE_API_KEY", "VONAGE_API_SECRET", 31),
}


def day_list_settings(
    source: str,
    *,
    base_url: str | None = None,
    user_env: str | None = None,
    secret_env: str | None = None,
    rate: float = 1.0,
    timeout: float = 30.0,
    since: str | None = None,
    deadline: float = 3600.0,
    environment: Mapping[str, str] = os.environ,
) -> DayListSettings:
    """A day-list source's settings: ``{SOURCE}_BASE_URL`` (else its default) unless a
    config names one, and the variables that hold its credentials."""
    default_url, default_user, default_secret, window = DAY_LIST_SOURCES[source]
    return DayListSettings(
        source=source,
        base_url=base_url or environment.get(f"{source.upper()}_BASE_URL") or default_url,
        user_env=user_env or default_user,
        secret_env=secret_env or default_secret,
        window_days=window,
        rate=rate,
        timeout=timeout,
        since=since,
        deadline=deadline,
    )


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


# the hosts a plain http:// URL may name (tests' servers on this machine)
_LOOPBACK = re.compile(r"^(?:localhost|127(?:\.[0-9]{1,3}){3}|\[?::1\]?)$", re.IGNORECASE)


def check_base_url(
    base_url: str, variable: str = "INFOBIP_BASE_URL", key_hint: str = "INFOBIP_API_KEY"
) -> str:
    """The base URL without a trailing slash; OptionError unless it is ``https://HOST``
    (``http://`` for a loopback address only) without user, query or fragment.
    ``variable`` names the setting in messages (a signed URL a source answers with is
    checked by the same rule)."""
    text = base_url.strip().rstrip("/")
    shown = printable(text)
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        raise OptionError(f"{variable} {shown!r} is not a URL.") from None
    if host and not _encodable(host):
        raise OptionError(f"{variable} {shown!r}: the host is not a valid name.")
    if parts.scheme not in ("https", "http") or not host:
        raise OptionError(f"{variable} {shown!r} must be https://HOST.")
    if parts.scheme == "http" and not _LOOPBACK.match(host):
        raise OptionError(
            f"{variable} {shown!r} uses plain http: the key would travel in clear text; "
            "use https://."
        )
    if parts.username is not None or parts.password is not None:
        raise OptionError(
            f"{variable} must not hold a user or password; put the credentials in {key_hint}."
        )
    if parts.query or parts.fragment:
        raise OptionError(f"{variable} {shown!r} must not hold a query (?) or a fragment (#).")
    return text


def is_plain_url(url: str) -> bool:
    """Whether a URL a server answers with may be fetched: ``https://`` (``http://`` for
    a loopback address only), without user or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018
    except ValueError:
        return False
    if not host or not _encodable(host) or parts.username is not None or parts.password is not None:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and bool(_LOOPBACK.match(host)))


def _encodable(host: str) -> bool:
    """Whether a host name can be sent (IDNA, labels of at most 63 characters): httpx
    raises otherwise, deep inside a request."""
    import idna  # httpx's own IDNA rules (stricter than Python's codec)

    if ":" in host or host.startswith("[") or re.fullmatch(r"[0-9.]+", host):
        return True  # an address, not a name
    try:
        idna.encode(host, uts46=True)
    except (idna.IDNAError, UnicodeError, ValueError):
        return False
    return True
