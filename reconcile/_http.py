"""What an HTTP client of a deactivation source needs that is not the source's own:
an injectable clock, an API key that never prints, a rate limiter, the https rule for a
base URL, ``Retry-After``, the forms a secret may be echoed in, and the bounds on an
answer (its size, depth and containers). `api.InfobipClient` is built from these.
"""

from __future__ import annotations

import base64
import math
import re
import ssl
import threading
import time
from collections import deque
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import quote

import httpx

from reconcile._text import printable
from reconcile.errors import OptionError
from reconcile.settings import AUTH_SCHEMES, check_base_url, is_plain_url

_MAX_RETRY_AFTER = 300.0

__all__ = [
    "MAX_JSON_CONTAINERS",
    "MAX_JSON_DEPTH",
    "MAX_PAGE_BYTES",
    "ApiKey",
    "Clock",
    "RateLimiter",
    "SystemClock",
    "authorization_header",
    "capped_timeout",
    "caused_by_tls",
    "check_base_url",
    "is_plain_url",
    "json_depth",
    "printable",
    "retry_after",
    "secret_forms",
    "service_message",
]


class Clock(Protocol):
    """Time as the client sees it: injected so that tests never wait."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


class ApiKey:
    """An API key that never shows itself in a repr, a str or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str, name: str = "INFOBIP_API_KEY") -> None:
        value = value.strip()
        if not value:
            raise OptionError(f"{name} is empty; set it to your credential.")
        if not value.isascii() or any(not character.isprintable() for character in value):
            raise OptionError(
                f"{name} holds a character an HTTP header cannot carry (a line break, "
                "a control or non-ASCII character); copy it again."
            )
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('***')"

    __str__ = __repr__


def authorization_header(key: ApiKey, scheme: str = "App") -> str:
    """The Authorization header value for one of the contract's schemes."""
    if scheme not in AUTH_SCHEMES:
        raise OptionError(
            f"INFOBIP_AUTH_SCHEME {scheme!r} is not one of {', '.join(AUTH_SCHEMES)}."
        )
    if scheme == "Basic":
        # Basic takes "username:password", base64-encoded as the header wants it.
        return "Basic " + base64.b64encode(key.reveal().encode()).decode()
    return f"{scheme} {key.reveal()}"


class RateLimiter:
    """At most ``rate`` requests in any one-second window, and evenly spaced below 1/s."""

    def __init__(self, rate: float, clock: Clock) -> None:
        if not rate > 0 or math.isinf(rate):
            raise OptionError(f"--rate {rate} must be a positive number of requests per second.")
        self._clock = clock
        self._per_window = max(1, math.floor(rate))
        self._interval = 1.0 / rate if rate < 1 else 0.0
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait (on the clock) until one more request fits, then count it."""
        with self._lock:
            now = self._clock.monotonic()
            wait = 0.0
            if self._sent and self._interval:
                wait = max(wait, self._sent[-1] + self._interval - now)
            if len(self._sent) >= self._per_window:
                wait = max(wait, self._sent[-self._per_window] + 1.0 - now)
            if wait > 0:
                self._clock.sleep(wait)
                now = self._clock.monotonic()
            self._sent.append(now)
            while len(self._sent) > self._per_window:
                self._sent.popleft()


def retry_after(response: httpx.Response, now: datetime) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None  # "nan" or "inf": no usable wait, so the backoff decides
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def secret_forms(secret: str) -> set[str]:
    """The forms a server may echo a secret in: raw, percent-encoded, base64."""
    raw = secret.encode()
    encoded = {
        secret,
        # a secret that is itself base64 (a Basic token) without its padding
        secret.rstrip("="),
        quote(secret, safe=""),
        quote(secret),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        # every byte percent-encoded
        "".join(f"%{byte:02X}" for byte in raw),
    }
    # percent-encoding with lowercase hex digits (the text around them as it was)
    forms = encoded | {
        _LOWER_HEX.sub(lambda found: found.group(0).lower(), form) for form in encoded
    }
    return {form for form in forms if form}


_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")


def capped_timeout(timeout: httpx.Timeout, seconds: float) -> httpx.Timeout:
    """``timeout`` with no part longer than ``seconds`` (the time the deadline leaves)."""

    def cap(value: float | None) -> float:
        return seconds if value is None else min(value, seconds)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )


def service_message(body: object) -> str:
    """The contract's requestError text, if the body carries one (already redacted)."""
    try:
        text = body["requestError"]["serviceException"]["text"]  # type: ignore[index]
    except (KeyError, TypeError, IndexError):
        return ""
    return f": {printable(str(text))[:200]}" if text else ""


def caused_by_tls(error: BaseException) -> bool:
    """Whether a connection failed in its TLS handshake (a certificate, a protocol)."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) or "SSL" in str(seen)[:200]:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# A page larger than this (after decompression) is refused: no real page comes near it.
MAX_PAGE_BYTES = 64 << 20


# JSON nested deeper than this is refused: the contract's answers are four levels deep.
MAX_JSON_DEPTH = 64


# Objects and lists an answer may hold: 64 MiB of "{}," parses into gigabytes of Python
# objects; a real page of records holds a few per record.
MAX_JSON_CONTAINERS = 1_000_000


def json_depth(value: object) -> int:
    """How deeply ``value`` nests (iteratively: a hostile document cannot overflow)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            return level
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest
