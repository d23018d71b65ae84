"""The Infobip Number Activation State client: pages, rate limit, retries, typed errors.

The `httpx.Client` and the `Clock` are passed in, so tests run against a real server on
127.0.0.1 with a clock that never sleeps. Retries (tenacity) are only for temporary
failures: 429 (waiting for ``Retry-After`` when given, else exponential backoff with
jitter), 5xx, timeouts, dropped connections and bodies cut short. 401/403 stop at once;
404 on a report raises ReportGoneError for the caller to record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import tenacity

from reconcile._decoding import ACCEPTED_ENCODINGS, DecodingRefused, decode_bounded
from reconcile._http import (
    MAX_JSON_CONTAINERS,
    MAX_JSON_DEPTH,
    MAX_PAGE_BYTES,
    ApiKey,
    Clock,
    RateLimiter,
    SystemClock,
    authorization_header,
    capped_timeout,
    caused_by_tls,
    check_base_url,
    json_depth,
    printable,
    retry_after,
    secret_forms,
    service_message,
)
from reconcile.errors import (
    ApiError,
    AuthError,
    MalformedResponseError,
    OptionError,
    ReportGoneError,
)
from reconcile.settings import DEFAULT_BASE_URL, ApiSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiKey",
    "Clock",
    "DeadlineReached",
    "InfobipClient",
    "Page",
    "PagingError",
    "RateLimiter",
    "SystemClock",
    "open_client",
]

REPORTS_PATH = "/number-activation-state/1/network-reports"
# The contract names no maximum page size. Asked for more than a server takes, one that
# answers 400 is asked again with this size, which Infobip's paged APIs accept.
FALLBACK_PAGE_SIZE = 1000


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


class PagingError(MalformedResponseError):
    """A server whose paging does not add up: the pages read so far are kept (as an
    incomplete report), and the next fetch tries again. ``results`` holds what the
    refused page brought (evidence is never thrown away)."""

    def __init__(self, message: str, results: list[object] | None = None) -> None:
        super().__init__(message)
        self.results = results or []


class DeadlineReached(ApiError):
    """The fetch's deadline passed (checked before every request, between the chunks of
    an answer, and before every retry's wait): what was received is kept."""


class _Refused(MalformedResponseError):
    """An answer refused outright (too large, nested too deep): not retried."""


# the fields that make a record (or a report's metadata) what it is: extra fields a
# server adds cannot make a repeated page look new
_IDENTITY_FIELDS = ("destination", "date", "type", "newDestination", "reportId")


def _page_digest(results: list[object]) -> str:
    """A digest of a page's records by their own fields, to notice a page repeated."""
    identities = [
        [item.get(name) for name in _IDENTITY_FIELDS] if isinstance(item, dict) else item
        for item in results
    ]
    return hashlib.sha256(json.dumps(identities, sort_keys=True, default=str).encode()).hexdigest()


# paging numbers are 32-bit integers in the contract; more is not a real answer
_MAX_PAGING = 2**31 - 1


class _StopAtDeadline(tenacity.stop.stop_base):
    """A tenacity stop that asks the client whether the next wait passes the deadline."""

    def __init__(self, check: Callable[[tenacity.RetryCallState], bool]) -> None:
        self._check = check

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._check(retry_state)


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
        base_url = check_base_url(base_url)
        self._http = http
        self._base_url = base_url
        self._authorization = authorization_header(api_key, auth_scheme)
        # what must never be shown or stored: the key, and the header that carries it
        secrets = {api_key.reveal(), self._authorization, self._authorization.split(" ", 1)[-1]}
        # every form a server may echo them in (raw, percent-encoded, base64), longest first
        self._secrets = sorted(
            {form for secret in secrets for form in secret_forms(secret)}, key=len, reverse=True
        )
        self._clock = clock or SystemClock()
        self.clock = self._clock
        self._limiter = RateLimiter(rate, self._clock)
        self._attempts = attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._jitter = jitter or random.Random()  # noqa: S311  (jitter, not security)
        self.requests = 0
        self.retry_waits: list[float] = []  # what each retry waited, for logs and tests
        self._page_size_cap: int | None = None
        self._deadline_at: float | None = None
        self._deadline_hit = False

    # -- the deadline: a wall-clock bound on the whole fetch ---------------------

    def start_deadline(self, seconds: float | None) -> None:
        """From now on, no request, chunk or retry wait runs past ``seconds``."""
        self._deadline_at = None if seconds is None else self._clock.monotonic() + seconds

    def time_left(self) -> float | None:
        """Seconds until the deadline (None: no deadline)."""
        if self._deadline_at is None:
            return None
        return self._deadline_at - self._clock.monotonic()

    def _check_deadline(self, what: str) -> None:
        left = self.time_left()
        if left is not None and left <= 0:
            raise DeadlineReached(f"{what}: the fetch's deadline passed")

    def _stop_for_deadline(self, state: tenacity.RetryCallState) -> bool:
        """Stop retrying when the coming wait would end past the deadline."""
        left = self.time_left()
        if left is None:
            return False
        if (state.upcoming_sleep or 0.0) >= left:
            self._deadline_hit = True
            return True
        return False

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

    def redact(self, text: str) -> str:
        """``text`` with the key and the Authorization value replaced by ``***``, in every
        form a server may write them: raw, percent-encoded, base64."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _redact_decoded(self, value: object) -> object:
        """Every string of a decoded JSON document redacted (JSON escapes such as
        ``\\u0053`` are decoded by then), iteratively."""
        if isinstance(value, str):
            return self.redact(value)
        if not isinstance(value, (dict, list)):
            return value
        stack: list[dict[str, object] | list[object]] = [value]
        while stack:
            container = stack.pop()
            if isinstance(container, dict):
                for name, item in container.items():
                    if isinstance(item, str):
                        container[name] = self.redact(item)
                    elif isinstance(item, (dict, list)):
                        stack.append(item)
            else:
                for index, item in enumerate(container):
                    if isinstance(item, str):
                        container[index] = self.redact(item)
                    elif isinstance(item, (dict, list)):
                        stack.append(item)
        return value

    def _read(self, response: httpx.Response, what: str) -> object:
        """The answer's JSON, read with a bound on its size after decompression, with
        secrets the server echoed replaced; None when it is not JSON."""

        def raw() -> Iterator[bytes]:
            for chunk in response.iter_raw():
                # a body that trickles in (a byte at a time) is bounded by the deadline,
                # which a read timeout per chunk is not
                self._check_deadline(what)
                yield chunk

        encoding = response.headers.get("Content-Encoding", "")
        try:
            # decoded here, not by httpx: the bound holds across every encoding layer
            chunks = list(decode_bounded(encoding, raw(), MAX_PAGE_BYTES))
        except DecodingRefused as refused:
            raise _Refused(f"{what}: {refused}; refused") from None
        try:
            text = self.redact(b"".join(chunks).decode("utf-8"))
            if text.count("{") + text.count("[") > MAX_JSON_CONTAINERS:
                raise _Refused(
                    f"{what}: the answer holds more than {MAX_JSON_CONTAINERS:,} JSON objects "
                    "and lists; refused"
                )
            body = json.loads(text)
            if "\\" in text:
                # only a JSON escape (\u0053, \/) makes a decoded string differ from the
                # text redacted above: then every decoded string is redacted again
                body = self._redact_decoded(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        except ValueError:  # an integer of thousands of digits (Python's own bound)
            raise _Refused(f"{what}: the answer holds a number too long to read; refused") from None
        except RecursionError:
            raise _Refused(
                f"{what}: the answer nests deeper than {MAX_JSON_DEPTH} levels"
            ) from None
        if json_depth(body) > MAX_JSON_DEPTH:
            raise _Refused(f"{what}: the answer nests deeper than {MAX_JSON_DEPTH} levels")
        return body

    def _get_once(self, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        self._check_deadline(what)
        self._limiter.acquire()
        self._check_deadline(what)
        self.requests += 1
        left = self.time_left()
        timeout = (
            httpx.USE_CLIENT_DEFAULT
            if left is None
            else capped_timeout(self._http.timeout, max(left, 0.001))
        )
        try:
            with self._http.stream(
                "GET",
                self._base_url + path,
                params=params,
                headers={
                    "Authorization": self._authorization,
                    "Accept": "application/json",
                    "Accept-Encoding": ACCEPTED_ENCODINGS,
                },
                timeout=timeout,
            ) as response:
                status = response.status_code
                wait = retry_after(response, self._clock.now())
                body = self._read(response, what)
        except httpx.TimeoutException:
            self._check_deadline(what)
            raise _Temporary(f"{what}: the API did not answer in time") from None
        except httpx.ConnectError as error:
            if caused_by_tls(error):
                # a certificate or TLS failure does not get better by asking again
                raise ApiError(
                    f"{what}: the TLS handshake with {urlsplit(self._base_url).hostname} failed "
                    f"({printable(self.redact(str(error)))[:160]}); check INFOBIP_BASE_URL."
                ) from None
            raise _Temporary(f"{what}: connection failed ({type(error).__name__})") from None
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            raise ApiError(
                f"{what}: the request cannot be made ({type(error).__name__}); check "
                "INFOBIP_BASE_URL and INFOBIP_API_KEY."
            ) from None
        except httpx.TransportError as error:
            raise _Temporary(f"{what}: connection failed ({type(error).__name__})") from None
        if status in (401, 403):
            raise AuthError(
                f"{what}: the API refused the key (HTTP {status}{service_message(body)}); "
                "check INFOBIP_API_KEY and INFOBIP_BASE_URL, and that Number Activation State "
                "is enabled on the account (ask your Infobip account manager)."
            )
        if status == 404:
            raise ReportGoneError(f"{what}: not found (HTTP 404)")
        if status == 429:
            raise _Temporary(f"{what}: still throttled (HTTP 429)", wait)
        if status >= 500:
            raise _Temporary(f"{what}: server error (HTTP {status})")
        if status == 400:
            raise _BadRequest(
                f"{what}: the API refused the request (HTTP 400{service_message(body)})."
            )
        if status != 200:
            raise ApiError(f"{what}: unexpected HTTP {status}{service_message(body)}.")
        if body is None:
            # a 200 with HTML or a body cut short: often a proxy hiccup, so retried
            raise _NotJson(f"{what}: the answer is not JSON")
        if not isinstance(body, dict):
            raise _NotJson(f"{what}: the answer is not a JSON object")
        return body

    def _get(self, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        self._deadline_hit = False
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Temporary),
            # the wait is computed before the stop (tenacity >= 9), so a Retry-After
            # longer than the time left ends the fetch instead of sleeping past it
            stop=tenacity.stop_after_attempt(self._attempts)
            | _StopAtDeadline(self._stop_for_deadline),
            wait=self._wait,
            sleep=self._clock.sleep,
            reraise=True,
        )
        try:
            return retrying(self._get_once, path, params, what)
        except _Temporary as error:
            if self._deadline_hit:
                raise DeadlineReached(
                    f"{error}; the fetch's deadline passes before the next try"
                ) from None
            kind = MalformedResponseError if isinstance(error, _NotJson) else ApiError
            raise kind(f"{error}, after {self._attempts} attempts; try again later.") from None

    def _page(self, path: str, params: dict[str, Any], what: str) -> Page:
        body = self._get(path, params, what)
        results, paging = body.get("results"), body.get("paging")
        if not isinstance(results, list) or not isinstance(paging, dict):
            raise MalformedResponseError(f"{what}: the answer has no results list and paging.")
        numbers = [paging.get(key) for key in ("page", "size", "totalPages", "totalResults")]
        if not all(
            isinstance(number, int) and not isinstance(number, bool) and number >= 0
            for number in numbers
        ):
            raise MalformedResponseError(
                f"{what}: paging holds no whole numbers: {printable(repr(paging))[:200]}."
            )
        if any(number > _MAX_PAGING for number in numbers):  # type: ignore[operator]
            raise PagingError(
                f"{what}: paging numbers larger than the contract's 32-bit fields "
                f"({printable(repr(paging))[:120]}); refused"
            )
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
        first: Page | None = None
        seen: dict[str, int] = {}  # each page's records, by digest: a repeat is refused
        while True:
            if first is not None:
                # never more pages than the declared results can fill, and one to spare
                bound = math.ceil(first.total_results / max(first.size, 1)) + 1
                if number >= bound:
                    raise PagingError(
                        f"{what}: more than {bound} pages for {first.total_results} results "
                        f"of {first.size}"
                    )
            params = {**filters, "page": number, "size": page_size}
            try:
                page = self._page(path, params, f"{what}, page {number}")
            except _BadRequest:
                if number != 0 or page_size <= FALLBACK_PAGE_SIZE:
                    raise
                # the server refused the size: ask for less, now and from now on
                page_size = self._page_size_cap = FALLBACK_PAGE_SIZE
                continue
            first = first or page
            if page.page != number:
                raise PagingError(
                    f"{what}: page {number} was asked for, page {page.page} came", page.results
                )
            if (page.total_pages, page.total_results) != (first.total_pages, first.total_results):
                raise PagingError(
                    f"{what}: the totals changed while it was read ({first.total_results} "
                    f"results in {first.total_pages} pages, then {page.total_results} in "
                    f"{page.total_pages})",
                    page.results,
                )
            if page.results:
                digest = _page_digest(page.results)
                if digest in seen:
                    # a server that answers the same records for every page number (even
                    # echoing the page asked for) would otherwise pass for complete
                    raise PagingError(
                        f"{what}: page {number} repeats the records of page {seen[digest]}"
                    )
                seen[digest] = number
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
