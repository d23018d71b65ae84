"""Real HTTP servers on 127.0.0.1 that speak the Twilio and Vonage day-list APIs.

`FakeTwilio` answers ``GET /v1/Deactivations?Date=`` with ``{"redirect_to": URL}``, a
"signed" URL on *another* server (`FakeFiles`, its own port), which serves the day's
text file; `FakeVonage` answers ``GET /v1/numbers/deactivations?date=`` with a zip.
Both check HTTP Basic credentials, record every request with its headers, and can
misbehave on demand: a status for a day (with a body), a day not ready (Twilio's 30114),
an answer given instead of the real one the first N times, a redirect to a URL of the
test's choosing.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Override:
    """An answer given instead of the real one, ``times`` times (None: always)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None
    times: int | None = None
    content_type: str = "application/json"


class _Server:
    """A threaded server on 127.0.0.1 that records requests; subclasses answer them."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.overrides: dict[str, Override] = {}  # by day (YYYY-MM-DD) or path
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def override(self, key: str) -> Override | None:
        with self._lock:
            found = self.overrides.get(key)
            if found is None:
                return None
            if found.times is not None:
                if found.times <= 0:
                    return None
                found.times -= 1
            return found

    def answer(
        self, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes, str, dict[str, str]]:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                params = {key: values[-1] for key, values in parse_qs(split.query).items()}
                headers = {name.lower(): value for name, value in self.headers.items()}
                with server._lock:
                    server.requests.append((self.path, params, headers))
                status, body, content_type, extra = server.answer(split.path, params, headers)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


class FakeFiles(_Server):
    """Where Twilio's signed URLs point: ``/lists/DAY.txt?Signature=...`` serves a day's
    list; it never needs (and must never see) the Twilio credentials."""

    def __init__(self) -> None:
        super().__init__()
        self.lists: dict[str, str] = {}

    def answer(
        self, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes, str, dict[str, str]]:
        found = self.override(path)
        if found is not None:
            return found.status, found.body, found.content_type, found.headers or {}
        day = path.rsplit("/", 1)[-1].removesuffix(".txt")
        if not path.startswith("/lists/") or day not in self.lists or "Signature" not in params:
            return 403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml", {}
        return 200, self.lists[day].encode(), "text/plain", {}


class FakeTwilio(_Server):
    """Twilio's ``/v1/Deactivations``: a redirect to ``files`` for every day whose list is
    known; error 30114 for a day at or after ``not_ready_from``."""

    def __init__(
        self,
        files: FakeFiles,
        lists: dict[date, list[str]],
        *,
        sid: str = "AC0123456789abcdef",
        token: str = "tw-SeCrEt-token-77",  # noqa: S107  (the fake server's test token)
        not_ready_from: date | None = None,
    ) -> None:
        super().__init__()
        self.files = files
        self.sid, self.token = sid, token
        self.not_ready_from = not_ready_from
        self.redirect_for: Callable[[str], str] | None = None
        for day, numbers in lists.items():
            files.lists[f"{day:%Y-%m-%d}"] = "\n".join(numbers) + "\n"

    def answer(
        self, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes, str, dict[str, str]]:
        if headers.get("authorization") != _basic(self.sid, self.token):
            body = {"code": 20003, "message": "Authenticate", "status": 401}
            return 401, _json(body), "application/json", {}
        if path != "/v1/Deactivations" or "Date" not in params:
            return 404, _json({"code": 20404, "message": "Not found"}), "application/json", {}
        day = params["Date"]
        found = self.override(day)
        if found is not None:
            return found.status, found.body, found.content_type, found.headers or {}
        if self.not_ready_from is not None and day >= f"{self.not_ready_from:%Y-%m-%d}":
            body = {
                "code": 30114,
                "message": "The deactivation list for the requested date is not available yet",
                "status": 400,
            }
            return 400, _json(body), "application/json", {}
        if day not in self.files.lists:
            # every real day has deactivations: one in Alaska, numbered by the day
            self.files.lists[day] = f"+1907555{int(day[-2:]):04d}\n"
        target = (
            self.redirect_for(day)
            if self.redirect_for is not None
            else f"{self.files.base_url}/lists/{day}.txt?Expires=120&Signature=c2lnbmVk"
        )
        return 200, _json({"redirect_to": target}), "application/json", {}


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


class FakeVonage(_Server):
    """Vonage's ``/v1/numbers/deactivations``: a zip holding the day's list (a CSV with a
    header line)."""

    def __init__(
        self,
        lists: dict[date, list[str]],
        *,
        key: str = "vonage-key",
        secret: str = "vo-SeCrEt-99",  # noqa: S107  (the fake server's test secret)
    ) -> None:
        super().__init__()
        self.lists = {f"{day:%Y-%m-%d}": numbers for day, numbers in lists.items()}
        self.key, self.secret = key, secret

    def answer(
        self, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes, str, dict[str, str]]:
        if headers.get("authorization") != _basic(self.key, self.secret):
            body = {"type": "https://developer.vonage.com/api-errors#unauthorized"}
            body["title"] = "Unauthorized"
            return 401, _json(body), "application/json", {}
        if path != "/v1/numbers/deactivations" or "date" not in params:
            return 404, _json({"title": "Not found"}), "application/json", {}
        day = params["date"]
        found = self.override(day)
        if found is not None:
            return found.status, found.body, found.content_type, found.headers or {}
        # every real day has deactivations: one in Alaska, numbered by the day
        numbers = self.lists.get(day) or [f"1907555{int(day[-2:]):04d}"]
        text = "msisdn,deactivation_date\n" + "".join(f"{number},{day}\n" for number in numbers)
        return 200, zipped(f"deactivations-{day}.csv", text), "application/zip", {}


def zip_bomb(megabytes: int = 300) -> bytes:
    """A zip whose one entry inflates to ``megabytes`` MiB of zeros (a few hundred KiB)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("list.csv", "w") as entry,
    ):
        block = b"0" * (1 << 20)
        for _ in range(megabytes):
            entry.write(block)
    return buffer.getvalue()
