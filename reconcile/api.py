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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from reconcile._client import DeadlineReached, NotJson, SourceClient, Temporary
from reconcile._http import (
    ApiKey,
    Clock,
    RateLimiter,
    SystemClock,
    authorization_header,
    check_base_url,
    printable,
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


class PagingError(MalformedResponseError):
    """A server whose paging does not add up: the pages read so far are kept (as an
    incomplete report), and the next fetch tries again. ``results`` holds what the
    refused page brought (evidence is never thrown away)."""

    def __init__(self, message: str, results: list[object] | None = None) -> None:
        super().__init__(message)
        self.results = results or []


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


class InfobipClient(SourceClient):
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
        authorization = authorization_header(api_key, auth_scheme)
        # what must never be shown or stored: the key, and the header that carries it
        super().__init__(
            http,
            {api_key.reveal(), authorization, authorization.split(" ", 1)[-1]},
            url_hint="INFOBIP_BASE_URL",
            clock=clock,
            rate=rate,
            attempts=attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            jitter=jitter,
        )
        self._base_url = base_url
        self._authorization = authorization
        self._page_size_cap: int | None = None

    def _get_once(self, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        answer = self.send(
            self._base_url + path,
            params,
            {"Authorization": self._authorization, "Accept": "application/json"},
            what,
        )
        status = answer.status
        body = self.json_of(answer.body, what)
        if status in (401, 403):
            raise AuthError(
                f"{what}: the API refused the key (HTTP {status}{service_message(body)}); "
                "check INFOBIP_API_KEY and INFOBIP_BASE_URL, and that Number Activation State "
                "is enabled on the account (ask your Infobip account manager)."
            )
        if status == 404:
            raise ReportGoneError(f"{what}: not found (HTTP 404)")
        if status == 429:
            raise Temporary(f"{what}: still throttled (HTTP 429)", answer.wait)
        if status >= 500:
            raise Temporary(f"{what}: server error (HTTP {status})")
        if status == 400:
            raise _BadRequest(
                f"{what}: the API refused the request (HTTP 400{service_message(body)})."
            )
        if status != 200:
            raise ApiError(f"{what}: unexpected HTTP {status}{service_message(body)}.")
        if body is None:
            # a 200 with HTML or a body cut short: often a proxy hiccup, so retried
            raise NotJson(f"{what}: the answer is not JSON")
        if not isinstance(body, dict):
            raise NotJson(f"{what}: the answer is not a JSON object")
        return body

    def _get(self, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        return self.retried(lambda: self._get_once(path, params, what))

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
