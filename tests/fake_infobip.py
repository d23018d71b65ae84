"""A real HTTP server on 127.0.0.1 that speaks the Number Activation State contract.

It serves generated reports, pages them with its own maximum page size, checks the
Authorization header, records every request (with the injected clock's time) and can
misbehave on demand: any status (429 with or without Retry-After, 5xx, 404), slow
answers, dropped connections, invalid or truncated JSON, HTML with status 200, paging
totals that change mid-report, a key revoked mid-run, or a request held until the test
kills the client.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = "/number-activation-state/1/network-reports"


class FakeClock:
    """A clock that moves only when slept on; shared by the client and the server."""

    def __init__(self, start: datetime = datetime(2024, 4, 2, tzinfo=UTC)) -> None:
        self._offset = 0.0
        self._start = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return 1000.0 + self._offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._offset += max(seconds, 0.0)

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._offset)


def make_reports(
    seed: int = 7, sizes: tuple[int, ...] = (23, 0, 57, 9), start: date = date(2024, 3, 1)
) -> dict[str, dict[str, Any]]:
    """Daily reports of three operators with records of every type, from ``start``."""
    generator = random.Random(seed)
    operators = [("Verizon Wireless", 1717), ("AT&T Mobility", 1733), ("T-Mobile USA", 1750)]
    reports: dict[str, dict[str, Any]] = {}
    for index, size in enumerate(sizes):
        name, network_id = operators[index % len(operators)]
        day = start + timedelta(days=index)
        report_id = f"{index:04d}aaaa-{generator.randrange(16**8):08x}"
        records = []
        for _ in range(size):
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                seconds=generator.randrange(86400)
            )
            record = {
                "date": moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                "destination": f"1{generator.randint(2, 9)}{generator.randrange(10**9):09d}",
                "type": generator.choice(
                    ["DEACTIVATION"] * 6 + ["SUSPENSION", "REACTIVATION", "ACTIVATION"]
                ),
            }
            if record["type"] == "DEACTIVATION" and generator.random() < 0.2:
                record["newDestination"] = (
                    f"1{generator.randint(2, 9)}{generator.randrange(10**9):09d}"
                )
            records.append(record)
        reports[report_id] = {
            "metadata": {
                "reportId": report_id,
                "networkName": name,
                "networkId": network_id,
                "generatedDate": f"{day + timedelta(days=1)}T00:00:00Z",
                "dateFrom": f"{day}T00:00:00Z" if index % 2 else str(day),
                "dateTo": str(day + timedelta(days=1)),
                "expiryDate": f"{day + timedelta(days=61)}T00:00:00Z",
            },
            "records": records,
        }
    return reports


@dataclass
class Fault:
    """Misbehave on requests matching ``when``, ``times`` times (None: always)."""

    when: Callable[[str, dict[str, str]], bool]
    # status, slow, drop, garbage, truncate, html, shift_totals, hold, echo, raw, same_page,
    # dynamic, encode
    action: str
    times: int | None = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    # "dynamic": the body made from the request's parameters
    body_for: Callable[[dict[str, str]], bytes] | None = None
    # "encode": the true answer, its bytes passed through this (a Content-Encoding)
    encode: Callable[[bytes], bytes] | None = None


def records_of(report_id: str, page: int | None = None) -> Callable[[str, dict[str, str]], bool]:
    """Match requests for one report's records (one page, or any)."""

    def when(path: str, params: dict[str, str]) -> bool:
        return path == f"{PREFIX}/{report_id}/records" and (
            page is None or params.get("page") == str(page)
        )

    return when


def any_request(path: str, params: dict[str, str]) -> bool:
    return True


def metadata_request(path: str, params: dict[str, str]) -> bool:
    return path == PREFIX


class FakeInfobip:
    """The server and its state; use as a context manager."""

    def __init__(
        self,
        reports: dict[str, dict[str, Any]],
        *,
        key: str = "test-key-0000",
        clock: FakeClock | None = None,
        max_page_size: int = 10,
        scheme: str = "App",
    ) -> None:
        self.reports = reports
        self.key = key
        self.scheme = scheme
        self.clock = clock or FakeClock()
        self.max_page_size = max_page_size
        self.faults: list[Fault] = []
        self.log: list[tuple[float, str, dict[str, str], int]] = []
        self.request_headers: list[dict[str, str]] = []  # each request's, names lowercased
        self.revoke_after: int | None = None
        self.held = threading.Event()
        self.release = threading.Event()
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

    def __enter__(self) -> FakeInfobip:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def fail(
        self, when: Callable[[str, dict[str, str]], bool], action: str, **options: Any
    ) -> Fault:
        fault = Fault(when, action, **options)
        self.faults.append(fault)
        return fault

    def requests_to(self, prefix: str) -> list[tuple[float, str, dict[str, str], int]]:
        return [entry for entry in self.log if entry[1].startswith(prefix)]

    # -- answering ------------------------------------------------------------

    def _fault_for(self, path: str, params: dict[str, str]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (fault.times is None or fault.times > 0) and fault.when(path, params):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _page(self, items: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
        page = int(params.get("page", "0"))
        size = min(int(params.get("size", "20")), self.max_page_size)
        total_pages = math.ceil(len(items) / size)
        return {
            "results": items[page * size : (page + 1) * size],
            "paging": {
                "page": page,
                "size": size,
                "totalPages": total_pages,
                "totalResults": len(items),
            },
        }

    def answer(
        self, path: str, params: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        if authorization != f"{self.scheme} {self.key}" or (
            self.revoke_after is not None and len(self.log) > self.revoke_after
        ):
            return 401, {
                "requestError": {
                    "serviceException": {
                        "messageId": "UNAUTHORIZED",
                        "text": "Invalid login details",
                    }
                }
            }
        if path == PREFIX:
            listed = [report["metadata"] for report in self.reports.values()]
            since = params.get("generatedDateFrom")
            if since:
                listed = [meta for meta in listed if meta["generatedDate"][:10] >= since]
            return 200, self._page(listed, params)
        if path.startswith(PREFIX + "/") and path.endswith("/records"):
            report_id = unquote(path[len(PREFIX) + 1 : -len("/records")])
            if report_id not in self.reports:
                return 404, {}
            return 200, self._page(self.reports[report_id]["records"], params)
        return 404, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def _send(
                self,
                status: int,
                body: bytes,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
                cut: bool = False,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                if cut:
                    self.close_connection = True

            def do_GET(self) -> None:
                with server._lock:
                    server.request_headers.append(
                        {name.lower(): value for name, value in self.headers.items()}
                    )
                split = urlsplit(self.path)
                params = {key: values[-1] for key, values in parse_qs(split.query).items()}
                path = split.path
                fault = server._fault_for(path, params)
                status, payload = server.answer(path, params, self.headers.get("Authorization"))
                if fault is not None and fault.action == "status":
                    status = fault.status
                    payload = json.loads(fault.body) if fault.body else {}
                with server._lock:
                    server.log.append((server.clock.monotonic(), path, params, status))
                if fault is not None and fault.action == "encode" and fault.encode is not None:
                    self._send(status, fault.encode(json.dumps(payload).encode()), fault.headers)
                elif fault is None or fault.action in ("status", "slow", "shift_totals"):
                    if fault is not None and fault.action == "slow":
                        time.sleep(fault.delay)
                    if fault is not None and fault.action == "shift_totals" and status == 200:
                        payload["paging"]["totalPages"] += 1
                        payload["paging"]["totalResults"] += server.max_page_size
                    headers = fault.headers if fault is not None else {}
                    self._send(status, json.dumps(payload).encode(), headers)
                elif fault.action == "echo":  # an error page that repeats the request
                    echoed = json.dumps(
                        {
                            "requestError": {
                                "serviceException": {
                                    "messageId": "UNAUTHORIZED",
                                    "text": "Invalid login details: "
                                    + str(self.headers.get("Authorization")),
                                }
                            }
                        }
                    ).encode()
                    self._send(fault.status, echoed)
                elif fault.action == "dynamic" and fault.body_for is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    self._send(fault.status, fault.body_for(params), fault.headers)
                elif fault.action == "raw":  # exactly the status, headers and bytes given
                    self._send(fault.status, fault.body, fault.headers)
                elif fault.action == "same_page":  # a mock that answers its one example
                    example = {
                        "results": server.reports[next(iter(server.reports))]["records"][:2],
                        "paging": {"page": 0, "size": 2, "totalPages": 11, "totalResults": 21},
                    }
                    self._send(200, json.dumps(example).encode())
                elif fault.action == "drop":
                    self.close_connection = True
                elif fault.action == "garbage":
                    self._send(200, fault.body or b'{"results": [1, 2')
                elif fault.action == "truncate":
                    self._send(200, json.dumps(payload).encode(), cut=True)
                elif fault.action == "html":
                    self._send(
                        200,
                        b"<html><body>Service Unavailable</body></html>",
                        content_type="text/html",
                    )
                elif fault.action == "hold":
                    server.held.set()
                    server.release.wait(timeout=30)
                    self.close_connection = True

        return Handler
