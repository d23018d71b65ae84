"""The Twilio and Vonage day-list clients: one day's list of deactivated US numbers.

- Twilio: ``GET {base}/v1/Deactivations?Date=YYYY-MM-DD`` with HTTP Basic ``SID:token``
  answers ``{"redirect_to": URL}``, a signed URL (valid about two minutes) to a text file
  of that day's numbers. The signed URL is fetched *without* the credentials (they never
  travel to another host). A day not processed yet answers error 30114.
- Vonage: ``GET {base}/v1/numbers/deactivations?date=YYYY-MM-DD`` with HTTP Basic
  ``key:secret`` answers a zip holding the day's list, read under the XLSX inflation
  bound.

Every request goes through `_client.SourceClient.send` (rate, retries, deadline, bounds,
redaction), as Infobip's do.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from datetime import date
from urllib.parse import urlsplit

import httpx

from reconcile._client import NotJson, SourceClient, Temporary
from reconcile._http import ApiKey, Clock, check_base_url, is_plain_url, printable
from reconcile.day_lists import day_list_texts
from reconcile.errors import (
    ApiError,
    AuthError,
    ChangeFileError,
    MalformedResponseError,
    OptionError,
    UnsupportedFormatError,
)
from reconcile.settings import DayListSettings

__all__ = ["DayListClient", "DayNotReady", "has_credentials", "open_day_list_client"]

# Twilio's error for a day whose list is not processed yet
NOT_READY_CODE = 30114


class DayNotReady(ApiError):
    """The source has not processed the day yet: the fetch stops there, without failure."""


def _error_text(document: object) -> str:
    """A source's error as a short text: Twilio's ``code``/``message``, Vonage's
    ``title``/``detail`` (already redacted)."""
    if not isinstance(document, dict):
        return ""
    parts = [
        str(document[key])
        for key in ("code", "message", "title", "detail")
        if isinstance(document.get(key), str | int) and not isinstance(document.get(key), bool)
    ]
    return f": {printable(' '.join(parts))[:200]}" if parts else ""


class DayListClient(SourceClient):
    """One source's day lists, a rate-limited request (two for Twilio) per day."""

    def __init__(
        self,
        http: httpx.Client,
        settings: DayListSettings,
        user: str,
        secret: ApiKey,
        *,
        clock: Clock | None = None,
        attempts: int = 6,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        jitter: random.Random | None = None,
    ) -> None:
        prefix = settings.variable_prefix
        self._base_url = check_base_url(
            settings.base_url,
            f"{prefix}_BASE_URL",
            f"{settings.user_env} and {settings.secret_env}",
        )
        token = base64.b64encode(f"{user}:{secret.reveal()}".encode()).decode()
        self._authorization = f"Basic {token}"
        super().__init__(
            http,
            {secret.reveal(), self._authorization, token},
            url_hint=f"{prefix}_BASE_URL",
            clock=clock,
            rate=settings.rate,
            attempts=attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            jitter=jitter,
        )
        self.settings = settings
        self._credentials = f"{settings.user_env} and {settings.secret_env}"

    @property
    def source(self) -> str:
        return self.settings.source

    def day_list(self, day: date) -> list[str]:
        """The text of each file of ``day``'s list; DayNotReady when the source has not made it yet,
        AuthError when the credentials are refused, ApiError (or MalformedResponseError)
        when the day cannot be read after the retries."""
        if self.source == "twilio":
            return self.retried(lambda: self._twilio_day(day))
        return self.retried(lambda: self._vonage_day(day))

    def _refusals(self, status: int, document: object, what: str, wait: float | None) -> None:
        """What every source's answer means alike: refused credentials, throttling, a
        server error, or a day not ready."""
        code = document.get("code") if isinstance(document, dict) else None
        if code == NOT_READY_CODE or code == str(NOT_READY_CODE):
            raise DayNotReady(f"{what}: not processed yet (error {NOT_READY_CODE})")
        if status in (401, 403):
            raise AuthError(
                f"{what}: {self.source.title()} refused the credentials (HTTP {status}"
                f"{_error_text(document)}); check {self._credentials}."
            )
        if status == 429:
            raise Temporary(f"{what}: still throttled (HTTP 429)", wait)
        if status >= 500:
            raise Temporary(f"{what}: server error (HTTP {status})")
        if status != 200:
            raise ApiError(f"{what}: HTTP {status}{_error_text(document)}.")

    def _twilio_day(self, day: date) -> list[str]:
        what = f"Twilio deactivations of {day:%Y-%m-%d}"
        answer = self.send(
            f"{self._base_url}/v1/Deactivations",
            {"Date": f"{day:%Y-%m-%d}"},
            {"Authorization": self._authorization, "Accept": "application/json"},
            what,
        )
        document = self.json_of(answer.body, what)
        self._refusals(answer.status, document, what, answer.wait)
        if document is None:
            raise NotJson(f"{what}: the answer is not JSON")
        target = document.get("redirect_to") if isinstance(document, dict) else None
        if not isinstance(target, str) or not target:
            raise MalformedResponseError(f"{what}: the answer has no redirect_to URL.")
        if not is_plain_url(target):
            raise MalformedResponseError(
                f"{what}: the list's URL is not https:// (or holds a user); refused."
            )
        host = urlsplit(target).hostname
        # the signed URL is fetched without the credentials: they never leave Twilio's host
        listing = self.send(target, {}, {"Accept": "text/plain, text/csv, */*"}, what)
        if listing.status in (401, 403, 404, 410) or 300 <= listing.status < 400:
            # an expired or refused signature (never the credentials, which are not sent
            # there): ask Twilio for a fresh URL
            raise Temporary(f"{what}: the list's URL on {host} answered HTTP {listing.status}")
        self._refusals(listing.status, None, f"{what} (from {host})", listing.wait)
        return _texts(listing.body, what)

    def _vonage_day(self, day: date) -> list[str]:
        what = f"Vonage deactivations of {day:%Y-%m-%d}"
        answer = self.send(
            f"{self._base_url}/v1/numbers/deactivations",
            {"date": f"{day:%Y-%m-%d}"},
            {"Authorization": self._authorization, "Accept": "application/zip"},
            what,
        )
        document = None if answer.body[:2] == b"PK" else self.json_of(answer.body, what)
        self._refusals(answer.status, document, what, answer.wait)
        if document is not None:
            raise MalformedResponseError(f"{what}: the answer is not a zip of the day's list.")
        return _texts(answer.body, what)


def _texts(body: bytes, what: str) -> list[str]:
    """A day list's answer (text, or a zip of texts) as the text of each file; a zip
    bomb, a damaged zip or bytes that are not text fail the day (the others go on)."""
    try:
        return day_list_texts(body, what)
    except (ChangeFileError, UnsupportedFormatError) as error:
        raise MalformedResponseError(str(error)) from None


def has_credentials(settings: DayListSettings, environment: Mapping[str, str]) -> bool:
    """Whether both of a source's credentials are set."""
    return bool(environment.get(settings.user_env)) and bool(environment.get(settings.secret_env))


@contextlib.contextmanager
def open_day_list_client(
    settings: DayListSettings, environment: Mapping[str, str] = os.environ
) -> Iterator[DayListClient]:
    """A `DayListClient` on a fresh `httpx.Client` (no redirects followed), closed on the
    way out."""
    user = environment.get(settings.user_env, "").strip()
    secret = environment.get(settings.secret_env, "")
    if not user or not secret:
        raise OptionError(
            f"{settings.user_env} and {settings.secret_env} must both be set to fetch "
            f"{settings.source.title()}'s day lists."
        )
    with httpx.Client(timeout=httpx.Timeout(settings.timeout), follow_redirects=False) as http:
        yield DayListClient(
            http,
            settings,
            ApiKey(user, settings.user_env).reveal(),
            ApiKey(secret, settings.secret_env),
        )
