"""One request path for every deactivation source (Infobip, Twilio, Vonage).

`SourceClient.send` is the only place a request is made: the rate limit, the deadline
(before every request, between the chunks of an answer, before every retry's wait),
retries with backoff for temporary failures (429 with ``Retry-After``, 5xx, timeouts,
dropped connections), the bound on an answer's size across every ``Content-Encoding``
layer, and the redaction of every secret the server may echo. Each source's client
says what its answers mean; tests pass a clock that never sleeps.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import tenacity

from reconcile._decoding import ACCEPTED_ENCODINGS, DecodingRefused, decode_bounded
from reconcile._http import (
    MAX_JSON_CONTAINERS,
    MAX_JSON_DEPTH,
    MAX_PAGE_BYTES,
    Clock,
    RateLimiter,
    SystemClock,
    capped_timeout,
    caused_by_tls,
    json_depth,
    printable,
    retry_after,
    secret_forms,
)
from reconcile.errors import ApiError, MalformedResponseError

__all__ = [
    "Answer",
    "DeadlineReached",
    "NotJson",
    "Refused",
    "SourceClient",
    "Temporary",
]


_T = TypeVar("_T")


class Temporary(Exception):
    """A failure worth retrying; ``wait`` is the server's Retry-After, if any."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class NotJson(Temporary):
    """A 200 whose body is not a JSON object: retried, then a malformed response."""


class DeadlineReached(ApiError):
    """The fetch's deadline passed (checked before every request, between the chunks of
    an answer, and before every retry's wait): what was received is kept."""


class Refused(MalformedResponseError):
    """An answer refused outright (too large, nested too deep): not retried."""


@dataclass(frozen=True)
class Answer:
    """One answer: its status, ``Retry-After`` (seconds), and its body decoded and with
    every secret replaced by ``***``."""

    status: int
    wait: float | None
    body: bytes
    content_type: str


class _StopAtDeadline(tenacity.stop.stop_base):
    """A tenacity stop that asks the client whether the next wait passes the deadline."""

    def __init__(self, check: Callable[[tenacity.RetryCallState], bool]) -> None:
        self._check = check

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._check(retry_state)


class SourceClient:
    """What every source's client shares: one rate-limited, bounded, redacting request
    path with retries and a deadline. ``url_hint`` names the setting to check when a
    request cannot be made (``INFOBIP_BASE_URL``)."""

    def __init__(
        self,
        http: httpx.Client,
        secrets: Iterable[str],
        *,
        url_hint: str,
        clock: Clock | None = None,
        rate: float = 1.0,
        attempts: int = 6,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        jitter: random.Random | None = None,
    ) -> None:
        self._http = http
        self._url_hint = url_hint
        # every form a server may echo a secret in (raw, percent-encoded, base64),
        # longest first
        self._secrets = sorted(
            {form for secret in secrets if secret for form in secret_forms(secret)},
            key=len,
            reverse=True,
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

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, Temporary) and error.wait is not None:
            wait = float(error.wait)
        else:
            exponent = int(state.attempt_number) - 1
            backoff: float = min(self._backoff_max, self._backoff_initial * 2.0**exponent)
            wait = backoff * (0.5 + self._jitter.random() / 2)
        self.retry_waits.append(wait)
        return wait

    # -- secrets -----------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``, in every form a server may
        write it: raw, percent-encoded, base64."""
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

    # -- one request -------------------------------------------------------------

    def _body(self, response: httpx.Response, what: str) -> bytes:
        """The answer's bytes, bounded after decompression (across every layer)."""

        def raw() -> Iterator[bytes]:
            for chunk in response.iter_raw():
                # a body that trickles in (a byte at a time) is bounded by the deadline,
                # which a read timeout per chunk is not
                self._check_deadline(what)
                yield chunk

        encoding = response.headers.get("Content-Encoding", "")
        try:
            # decoded here, not by httpx: the bound holds across every encoding layer
            return b"".join(decode_bounded(encoding, raw(), MAX_PAGE_BYTES))
        except DecodingRefused as refused:
            raise Refused(f"{what}: {refused}; refused") from None

    def json_of(self, body: bytes, what: str) -> object:
        """An answer's JSON with secrets the server echoed replaced (the body is redacted
        already; escaped forms are redacted once decoded); None when it is not JSON."""
        try:
            text = body.decode("utf-8")
            if text.count("{") + text.count("[") > MAX_JSON_CONTAINERS:
                raise Refused(
                    f"{what}: the answer holds more than {MAX_JSON_CONTAINERS:,} JSON objects "
                    "and lists; refused"
                )
            document = json.loads(text)
            if "\\" in text:
                # only a JSON escape (\u0053, \/) makes a decoded string differ from the
                # text redacted already: then every decoded string is redacted again
                document = self._redact_decoded(document)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        except ValueError:  # an integer of thousands of digits (Python's own bound)
            raise Refused(f"{what}: the answer holds a number too long to read; refused") from None
        except RecursionError:
            raise Refused(f"{what}: the answer nests deeper than {MAX_JSON_DEPTH} levels") from None
        if json_depth(document) > MAX_JSON_DEPTH:
            raise Refused(f"{what}: the answer nests deeper than {MAX_JSON_DEPTH} levels")
        return document

    def send(
        self,
        url: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        what: str,
    ) -> Answer:
        """One GET, rate-limited and within the deadline; transport failures raised as
        `Temporary` (to retry) or ApiError (a TLS failure, a request that cannot be
        made). The body is redacted as bytes, so no secret leaves this method."""
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
                url,
                # no params at all for a URL that carries its own query (a signed URL):
                # httpx replaces a URL's query with the params given, even empty ones
                params=dict(params) or None,
                headers={**headers, "Accept-Encoding": ACCEPTED_ENCODINGS},
                timeout=timeout,
            ) as response:
                status = response.status_code
                wait = retry_after(response, self._clock.now())
                content_type = response.headers.get("Content-Type", "")
                body = self._body(response, what)
        except httpx.TimeoutException:
            self._check_deadline(what)
            raise Temporary(f"{what}: the server did not answer in time") from None
        except httpx.ConnectError as error:
            if caused_by_tls(error):
                # a certificate or TLS failure does not get better by asking again
                raise ApiError(
                    f"{what}: the TLS handshake with {urlsplit(url).hostname} failed "
                    f"({printable(self.redact(str(error)))[:160]}); check {self._url_hint}."
                ) from None
            raise Temporary(f"{what}: connection failed ({type(error).__name__})") from None
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            raise ApiError(
                f"{what}: the request cannot be made ({type(error).__name__}); check "
                f"{self._url_hint} and the credentials."
            ) from None
        except httpx.TransportError as error:
            raise Temporary(f"{what}: connection failed ({type(error).__name__})") from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Answer(status, wait, body, content_type)  # binary (a zip): no text to echo
        return Answer(status, wait, self.redact(text).encode("utf-8"), content_type)

    def retried(self, attempt: Callable[[], _T]) -> _T:
        """``attempt`` tried again on `Temporary` failures (backoff with jitter, or the
        server's Retry-After), never past the deadline; ApiError (or MalformedResponse-
        Error for answers that are not JSON) once the tries are spent."""
        self._deadline_hit = False
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Temporary),
            # the wait is computed before the stop (tenacity >= 9), so a Retry-After
            # longer than the time left ends the fetch instead of sleeping past it
            stop=tenacity.stop_after_attempt(self._attempts)
            | _StopAtDeadline(self._stop_for_deadline),
            wait=self._wait,
            sleep=self._clock.sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except Temporary as error:
            if self._deadline_hit:
                raise DeadlineReached(
                    f"{error}; the fetch's deadline passes before the next try"
                ) from None
            kind = MalformedResponseError if isinstance(error, NotJson) else ApiError
            raise kind(f"{error}, after {self._attempts} attempts; try again later.") from None
