"""A fault-injecting HTTP proxy in front of moto's Cognito server.

It forwards every request to moto and, when told to, answers instead the way AWS does:
throttling (HTTP 400, `x-amzn-ErrorType: TooManyRequestsException`, JSON `__type`), 5xx,
any other AWS error code, a rejected pagination token, an empty page that still carries
its token, a dropped connection; it can also add latency, shorten pages (by lowering
`Limit`), and enforce a requests/s ceiling (answering TooManyRequestsException above it).
It records every request (operation, Authorization and security-token headers) and the
highest number of requests seen in any one-second window.

Fixture: `cognito_proxy` (function scope) -> a started `CognitoProxy` in front of the
session's moto server; `.endpoint` is its URL. Stopped (and its threads joined) after the test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.peers.moto_server import MotoServer

_ERROR_TYPE_NS = "http://internal.amazon.com/coral/com.amazonaws.cognito.identity.idp.model/"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(slots=True)
class _Fault:
    kind: str  # "error" | "reject_token" | "empty_page" | "drop"
    remaining: int
    operation: str | None = None
    status: int = 400
    code: str = ""
    message: str = ""
    where: Callable[[dict[str, Any]], bool] | None = None  # only requests whose body matches

    def applies_to(self, operation: str, body: dict[str, Any]) -> bool:
        if self.remaining <= 0 or (self.operation and self.operation != operation):
            return False
        if self.where is not None and not self.where(body):
            return False
        if self.kind in ("reject_token", "empty_page"):
            return operation == "ListUsers" and bool(body.get("PaginationToken"))
        return True


@dataclass(frozen=True, slots=True)
class Recorded:
    at: float
    operation: str
    authorization: str
    security_token: str
    answered: str  # "forwarded" or the fault kind / error code


@dataclass
class _RateWindow:
    """Times of events in the last second, and the most ever seen in one second."""

    times: deque[float] = field(default_factory=deque)
    max_seen: int = 0

    def add(self, now: float) -> int:
        self.trim(now)
        self.times.append(now)
        self.max_seen = max(self.max_seen, len(self.times))
        return len(self.times)

    def trim(self, now: float) -> int:
        while self.times and self.times[0] <= now - 1.0:
            self.times.popleft()
        return len(self.times)


class CognitoProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self.latency = 0.0  # seconds added before forwarding each request
        self.page_limit: int | None = None  # rewrite ListUsers Limit down to this
        self.max_rps: float | None = None  # enforced ceiling over any one-second window
        # Called as before_forward(operation, body) just before a request goes to moto.
        self.before_forward: Callable[[str, dict[str, Any]], None] | None = None
        self.requests: list[Recorded] = []
        self._arrivals = _RateWindow()
        self._forwarded = _RateWindow()
        self._sockets: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = False  # so that stop() joins them
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cognito-proxy", daemon=True
        )

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CognitoProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:  # end keep-alive connections a client left open
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join()

    # -- faults ---------------------------------------------------------------------------

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def throttle_next(self, n: int, operation: str | None = "ListUsers") -> None:
        self.error_next(n, "TooManyRequestsException", "Too many requests", operation=operation)

    def fail_next(
        self,
        n: int,
        status: int = 500,
        code: str = "InternalErrorException",
        operation: str | None = "ListUsers",
    ) -> None:
        self.error_next(n, code, "Internal error", status=status, operation=operation)

    def error_next(
        self,
        n: int,
        code: str,
        message: str = "injected",
        *,
        status: int = 400,
        operation: str | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self._add(_Fault("error", n, operation, status, code, message, where))

    def reject_token_next(self, n: int = 1) -> None:
        """Answer the next `n` ListUsers carrying a token with InvalidParameterException."""
        self._add(_Fault("reject_token", n, "ListUsers", 400, "InvalidParameterException"))

    def empty_page_next(self, n: int = 1) -> None:
        """Answer the next `n` ListUsers carrying a token with no users and the same token."""
        self._add(_Fault("empty_page", n, "ListUsers"))

    def drop_next(self, n: int = 1, operation: str | None = "ListUsers") -> None:
        """Close the connection without answering the next `n` requests."""
        self._add(_Fault("drop", n, operation))

    # -- what was seen ------------------------------------------------------------------

    @property
    def observed_max_rate(self) -> int:
        """The most requests that arrived within any one-second window."""
        with self._lock:
            return self._arrivals.max_seen

    def count(self, operation: str, answered: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.operation == operation and (answered is None or r.answered == answered)
            )

    def reset_faults(self) -> None:
        """Forget every fault still to come: requests are forwarded as they are again."""
        with self._lock:
            self._faults.clear()

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self._arrivals = _RateWindow()
            self._forwarded = _RateWindow()

    # -- handling -------------------------------------------------------------------------

    def _decide(self, operation: str, body: dict[str, Any], headers: Any) -> _Fault | None:
        with self._lock:
            now = time.monotonic()
            self._arrivals.add(now)
            fault = next((f for f in self._faults if f.applies_to(operation, body)), None)
            if fault is not None:
                fault.remaining -= 1
            elif self.max_rps is not None and self._forwarded.trim(now) >= self.max_rps:
                fault = _Fault("error", 1, None, 400, "TooManyRequestsException", "Rate exceeded")
            else:
                self._forwarded.add(now)
            answered = "forwarded" if fault is None else (fault.code or fault.kind)
            self.requests.append(
                Recorded(
                    now,
                    operation,
                    headers.get("Authorization", ""),
                    headers.get("X-Amz-Security-Token", ""),
                    answered,
                )
            )
            return fault

    def handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        target = handler.headers.get("X-Amz-Target", "")
        operation = target.rsplit(".", 1)[-1]
        try:
            body: dict[str, Any] = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        fault = self._decide(operation, body, handler.headers)
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.latency:
            time.sleep(self.latency)
        if fault is not None and fault.kind == "empty_page":
            payload = {"Users": [], "PaginationToken": body["PaginationToken"]}
            _send(handler, 200, json.dumps(payload).encode(), _json_headers())
            return
        if fault is not None:
            message = fault.message or "Invalid pagination token"
            _send_error(handler, fault.status, fault.code, message)
            return
        if operation == "ListUsers" and self.page_limit is not None:
            body["Limit"] = min(int(body.get("Limit", 60)), self.page_limit)
            raw = json.dumps(body).encode()
        if self.before_forward is not None:
            self.before_forward(operation, body)
        self._forward(handler, raw)

    def _forward(self, handler: _Handler, raw: bytes) -> None:
        _send(handler, *self._ask_upstream(handler, raw))

    def _ask_upstream(
        self, handler: _Handler, raw: bytes
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """The request, with body `raw`, sent on to moto: its status, body and headers."""
        upstream: http.client.HTTPConnection | None = getattr(handler, "upstream", None)
        if upstream is None:
            upstream = http.client.HTTPConnection(*self._upstream, timeout=30)
            handler.upstream = upstream
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(raw))
        upstream.request(handler.command, handler.path, body=raw, headers=headers)
        response = upstream.getresponse()
        payload = response.read()
        out = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        return response.status, payload, out


def _json_headers() -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]


def _send_error(handler: _Handler, status: int, code: str, message: str) -> None:
    payload = json.dumps({"__type": code, "message": message}).encode()
    headers = [*_json_headers(), ("x-amzn-ErrorType", f"{code}:{_ERROR_TYPE_NS}")]
    _send(handler, status, payload, headers)


def _send(handler: _Handler, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3 expects
    upstream: http.client.HTTPConnection | None = None

    @property
    def proxy(self) -> CognitoProxy:
        return self.server.proxy  # type: ignore[attr-defined,no-any-return]

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.proxy._lock:
            self.proxy._sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.proxy._lock:
                self.proxy._sockets.discard(self.connection)
            if self.upstream is not None:
                self.upstream.close()

    def do_POST(self) -> None:
        try:
            self.proxy.handle(self)
        except (ConnectionError, OSError):
            self.close_connection = True

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def cognito_proxy(moto_server: MotoServer) -> Iterator[CognitoProxy]:
    proxy = CognitoProxy(moto_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()
