"""The Infobip Number Activation State client: pages, rate limit, retries, typed errors.

The `httpx.Client` and the `Clock` are passed in, so tests run against a real server on
127.0.0.1 with a clock that never sleeps. Retries (tenacity) are only for temporary
failures: 429 (waiting for ``Retry-After`` when given, else exponential backoff with
jitter), 5xx, timeouts, dropped connections and bodies cut short. 401/403 stop at once;
404 on a report raises ReportGoneError for the caller to record.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import tenacity

from reconcile.errors import (
    ApiError,
    AuthError,
    MalformedResponseError,
    OptionError,
    ReportGoneError,
)
from reconcile.settings import AUTH_SCHEMES, DEFAULT_BASE_URL, ApiSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiKey",
    "Clock",
    "InfobipClient",
    "Page",
    "RateLimiter",
    "SystemClock",
    "open_client",
]

REPORTS_PATH = "/number-activation-state/1/network-reports"
_MAX_RETRY_AFTER = 300.0
# The contract names no maximum page size. Asked for more than a server takes, one that
# answers 400 is asked again with this size, which Infobip's paged APIs accept.
FALLBACK_PAGE_SIZE = 1000


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

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise OptionError("INFOBIP_API_KEY is empty; set it to your Infobip API key.")
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


@dataclass(frozen=True)
class Page:
    """One page of an API answer."""

    results: list[object]
    page: int
    size: int
    total_pages: int
    total_results: int


class _BadRequest(ApiError):
    """HTTP 400: the request itself was refused (a page size too large, say)."""


class _Temporary(Exception):
    """A failure worth retrying; ``wait`` is the server's Retry-After, if any."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class _NotJson(_Temporary):
    """A 200 whose body is not a JSON object: retried, then a malformed response."""


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _service_message(response: httpx.Response) -> str:
    """The contract's requestError text, if the body carries one."""
    try:
        body = response.json()
        text = body["requestError"]["serviceException"]["text"]
    except (ValueError, KeyError, TypeError):
        return ""
    return f": {str(text)[:200]}" if text else ""


class InfobipClient:
    """Reads network reports and their records, one rate-limited page at a time."""

    def __init__(
        self,
        http: httpx.Client,
        api_key: ApiKey,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock | None = None,
        rate: float = 1.0,
        attempts: int = 6,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        auth_scheme: str = "App",
        jitter: random.Random | None = None,
    ) -> None:
        base_url = base_url.strip().rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise OptionError(
                f"INFOBIP_BASE_URL {base_url!r} must start with https:// "
                "(for example https://xxxxx.api.infobip.com)."
            )
        self._http = http
        self._base_url = base_url
        self._authorization = authorization_header(api_key, auth_scheme)
        self._clock = clock or SystemClock()
        self._limiter = RateLimiter(rate, self._clock)
        self._attempts = attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._jitter = jitter or random.Random()  # noqa: S311  (jitter, not security)
        self.requests = 0
        self.retry_waits: list[float] = []  # what each retry waited, for logs and tests
        self._page_size_cap: int | None = None

    # -- one request -----------------------------------------------------------

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Temporary) and error.wait is not None:
            wait = float(error.wait)
        else:
            exponent = int(state.attempt_number) - 1
            backoff: float = min(self._backoff_max, self._backoff_initial * 2.0**exponent)
            wait = backoff * (0.5 + self._jitter.random() / 2)
        self.retry_waits.append(wait)
        return wait

    def _get_once(self, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        self._limiter.acquire()
        self.requests += 1
        try:
            response = self._http.get(
                self._base_url + path,
                params=params,
                headers={"Authorization": self._authorization, "Accept": "application/json"},
            )
        except httpx.TimeoutException:
            raise _Temporary(f"{what}: the API did not answer in time") from None
        except httpx.TransportError as error:
            raise _Temporary(f"{what}: connection failed ({type(error).__name__})") from None
        status = response.status_code
        if status in (401, 403):
            raise AuthError(
                f"{what}: the API refused the key (HTTP {status}{_service_message(response)}); "
                "check INFOBIP_API_KEY and INFOBIP_BASE_URL, and that Number Activation State "
                "is enabled on the account (ask your Infobip account manager)."
            )
        if status == 404:
            raise ReportGoneError(f"{what}: not found (HTTP 404)")
        if status == 429:
            raise _Temporary(
                f"{what}: still throttled (HTTP 429)", _retry_after(response, self._clock.now())
            )
        if status >= 500:
            raise _Temporary(f"{what}: server error (HTTP {status})")
        if status == 400:
            raise _BadRequest(
                f"{what}: the API refused the request (HTTP 400{_service_message(response)})."
            )
        if status != 200:
            raise ApiError(f"{what}: unexpected HTTP {status}{_service_message(response)}.")
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            # a 200 with HTML or a body cut short: often a proxy hiccup, so retried
            raise _NotJson(f"{what}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise _NotJson(f"{what}: the answer is not a JSON object")
        return body

    def _get(self, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Temporary),
            stop=tenacity.stop_after_attempt(self._attempts),
            wait=self._wait,
            sleep=self._clock.sleep,
            reraise=True,
        )
        try:
            return retrying(self._get_once, path, params, what)
        except _Temporary as error:
            kind = MalformedResponseError if isinstance(error, _NotJson) else ApiError
            raise kind(f"{error}, after {self._attempts} attempts; try again later.") from None

    def _page(self, path: str, params: dict[str, Any], what: str) -> Page:
        body = self._get(path, params, what)
        results, paging = body.get("results"), body.get("paging")
        if not isinstance(results, list) or not isinstance(paging, dict):
            raise MalformedResponseError(f"{what}: the answer has no results list and paging.")
        numbers = [paging.get(key) for key in ("page", "size", "totalPages", "totalResults")]
        if not all(isinstance(number, int) and number >= 0 for number in numbers):
            raise MalformedResponseError(f"{what}: paging holds no whole numbers: {paging!r}.")
        page, size, total_pages, total_results = (int(number) for number in numbers)  # type: ignore[arg-type]
        return Page(results, page, size, total_pages, total_results)

    # -- the two endpoints -----------------------------------------------------

    def report_pages(self, page_size: int, **filters: str) -> Iterator[Page]:
        """Every page of report metadata (``generatedDateFrom=...`` etc. as filters)."""
        yield from self._pages(REPORTS_PATH, page_size, filters, "report list")

    def record_pages(self, report_id: str, page_size: int) -> Iterator[Page]:
        """Every page of one report's records."""
        path = f"{REPORTS_PATH}/{quote(report_id, safe='')}/records"
        yield from self._pages(path, page_size, {}, f"report {report_id}")

    def _pages(
        self, path: str, page_size: int, filters: dict[str, str], what: str
    ) -> Iterator[Page]:
        number = 0
        if self._page_size_cap is not None:
            page_size = min(page_size, self._page_size_cap)
        while True:
            params = {**filters, "page": number, "size": page_size}
            try:
                page = self._page(path, params, f"{what}, page {number}")
            except _BadRequest:
                if number != 0 or page_size <= FALLBACK_PAGE_SIZE:
                    raise
                # the server refused the size: ask for less, now and from now on
                page_size = self._page_size_cap = FALLBACK_PAGE_SIZE
                continue
            yield page
            number += 1
            # Pages are 0-based; the server's own size and totals decide where they end.
            if not page.results or number >= page.total_pages:
                return


@contextlib.contextmanager
def open_client(
    settings: ApiSettings, environment: Mapping[str, str] = os.environ
) -> Iterator[InfobipClient]:
    """An `InfobipClient` on a fresh `httpx.Client`, closed on the way out."""
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
