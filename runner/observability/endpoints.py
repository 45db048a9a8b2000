"""The HTTP endpoints of `--metrics-addr HOST:PORT`: /metrics, /healthz, /readyz (DESIGN §5).

    parse_listen_address("HOST:PORT") -> ListenAddress   the flag (port 0: any free port)
    serve_metrics(address, reconciler, budgets)          async context manager; None: off
    MetricsServer                                        the server thread and loop heartbeat

    /metrics   Prometheus text format (OpenMetrics when the scraper asks for it), gzipped when
               the client accepts it: prometheus_client's own WSGI app (`make_wsgi_app`) over
               the collector of runner.observability.metrics
    /healthz   200 "ok" while the event loop beats; 503 once it has been silent STUCK_AFTER s
    /readyz    200 when every selected, non-suspended bridge is Ready; otherwise 503 listing
               the bridges that are not and why, or "starting" before the first reconcile
               has finished. Plain text, or JSON if the client accepts application/json.

Each answers HEAD too (the GET's status and headers, no body), for tools that check an
endpoint without reading it. The server is wsgiref's, as prometheus_client's own
`start_wsgi_server` uses, with the request threads joined on stop, a request timeout and no DNS
lookup at bind time (which that function does not give).

Why a thread and not the event loop: /healthz must still answer when the loop is stuck, to
say so. The other endpoints read the reconciler's state by scheduling the read on the loop
(`call_soon_threadsafe`), so that they see it consistent without locks; a loop that does not
answer within LOOP_ANSWER_TIMEOUT makes them answer 503.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import html
import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, NamedTuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app

from runner._kits.wording import plural
from runner.errors import UsageError
from runner.observability.metrics import (
    ReconcilerView,
    RunnerCollector,
    RunnerSnapshot,
    take_snapshot,
)
from runner.secrets.redaction import Redactor
from runner.sources.cognito.budget import RequestBudgets

log = logging.getLogger(__name__)

STUCK_AFTER = 30.0  # seconds without a loop heartbeat before /healthz answers 503
HEARTBEAT_INTERVAL = 1.0  # seconds between heartbeats of the event loop
LOOP_ANSWER_TIMEOUT = 5.0  # seconds a request waits for the loop to read the state
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request before it is dropped
SERVE_POLL_INTERVAL = 0.2  # seconds: how soon the serve loop notices a shutdown
SERVER_NAME = "bridge-runner"  # the Server header: no Python version


class ListenAddress(NamedTuple):
    host: str  # "" means every interface
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen_address(text: str) -> ListenAddress:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (every interface); port 0 picks a free port.

    Raises ValueError with a message for people."""
    host, colon, port = text.strip().rpartition(":")
    if not colon or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 0.0.0.0:9090 or 127.0.0.1:0)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, e.g. [::]:9090")
    number = int(port)
    if number > 65535:
        raise ValueError(f"{text!r}: the port must be 0..65535")
    return ListenAddress(host, number)


class LoopUnresponsive(Exception):
    """The event loop did not read the state in time (stuck, or already stopped)."""


class MetricsServer:
    """The HTTP endpoints (a thread) and the event loop's heartbeat (a task).

    `start()` and `stop()` are awaited on the event loop; `stop()` leaves no thread or socket.
    `clock`, `stuck_after` and `heartbeat_interval` are there for tests.
    """

    def __init__(
        self,
        address: ListenAddress,
        reconciler: ReconcilerView,
        budgets: RequestBudgets | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        stuck_after: float = STUCK_AFTER,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        bridges_dir: Path | None = None,
    ) -> None:
        self.address = address
        self.reconciler = reconciler
        self.bridges_dir = bridges_dir  # /readyz is never "ok" while it is missing
        self.budgets = budgets
        self.registry = CollectorRegistry()
        self.registry.register(RunnerCollector(self.snapshot))
        ProcessCollector(registry=self.registry)  # process_*: memory, CPU, open files
        # prometheus_client's own app renders the exposition (format, gzip); the routing,
        # /healthz and /readyz are ours (`_WsgiApp`).
        self.exposition = make_wsgi_app(self.registry)
        self._clock = clock
        self._stuck_after = stuck_after
        self._heartbeat_interval = heartbeat_interval
        self._last_beat = clock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def bound(self) -> ListenAddress:
        """The address listened on (with the real port when 0 was asked for)."""
        if self._http is None:
            raise RuntimeError("the metrics server is not running")
        host, port = self._http.socket.getsockname()[:2]
        return ListenAddress(host, port)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._http = _HttpServer(self.address, self)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UsageError(f"--metrics-addr {self.address}: cannot listen: {reason}") from None
        self._last_beat = self._clock()
        self._heartbeat = asyncio.create_task(self._beat(), name="metrics-heartbeat")
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_INTERVAL},
            name="metrics-server",
        )
        self._thread.start()
        log.info("serving http://%s/metrics, /healthz and /readyz", self.bound)

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
        # Off the loop: closing waits for requests in flight, which may need the loop.
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        http, thread = self._http, self._thread
        self._http = self._thread = None
        if http is None:
            return
        if thread is not None:
            http.shutdown()
            thread.join()
        http.server_close()  # closes the socket and joins the request threads

    async def _beat(self) -> None:
        while True:
            self._last_beat = self._clock()
            await asyncio.sleep(self._heartbeat_interval)

    # -- called from request threads ---------------------------------------------------------

    def loop_stuck_for(self) -> float | None:
        """Seconds since the event loop last beat, when that is more than `stuck_after`."""
        silence = self._clock() - self._last_beat
        return silence if silence > self._stuck_after else None

    def snapshot(self) -> RunnerSnapshot:
        """A snapshot taken on the event loop's thread; LoopUnresponsive if it does not come."""
        loop = self._loop
        if loop is None:
            raise LoopUnresponsive("the runner has not started")
        result: concurrent.futures.Future[RunnerSnapshot] = concurrent.futures.Future()

        def read() -> None:
            if not result.set_running_or_notify_cancel():
                return  # the request has given up waiting
            try:
                result.set_result(take_snapshot(self.reconciler, self.budgets))
            except Exception as exc:
                result.set_exception(exc)

        try:
            loop.call_soon_threadsafe(read)
        except RuntimeError:  # the loop is closed
            raise LoopUnresponsive("the event loop has stopped") from None
        try:
            return result.result(LOOP_ANSWER_TIMEOUT)
        except TimeoutError:
            result.cancel()
            raise LoopUnresponsive(
                f"the event loop did not answer within {LOOP_ANSWER_TIMEOUT:g}s"
            ) from None


@contextlib.asynccontextmanager
async def serve_metrics(
    address: ListenAddress | None,
    reconciler: ReconcilerView,
    budgets: RequestBudgets | None = None,
    *,
    bridges_dir: Path | None = None,
) -> AsyncIterator[MetricsServer | None]:
    """Serve the endpoints while the block runs; nothing at all when `address` is None."""
    if address is None:
        yield None
        return
    server = MetricsServer(address, reconciler, budgets, bridges_dir=bridges_dir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --- the answers (called in request threads) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    status: HTTPStatus
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    content_encoding: str | None = None


def _text(status: HTTPStatus, text: str) -> Reply:
    return Reply(status, text.encode("utf-8"))


def metrics_reply(app: MetricsServer, accept: str, accept_encoding: str = "") -> Reply:
    """The exposition, as prometheus_client's own WSGI app (`make_wsgi_app`) answers: the
    format `accept` asks for (OpenMetrics when asked), gzipped when `accept_encoding` allows it
    (Prometheus always asks; measured ~5x smaller for three bridges, more with more)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
    if accept:
        environ["HTTP_ACCEPT"] = accept
    if accept_encoding:
        environ["HTTP_ACCEPT_ENCODING"] = accept_encoding
    answer: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Callable[..., Any]:
        answer.append((status, headers))
        return _no_write

    try:
        body = b"".join(app.exposition(environ, start_response))
    except LoopUnresponsive as exc:
        return _text(HTTPStatus.SERVICE_UNAVAILABLE, f"metrics unavailable: {exc}\n")
    status, headers = answer[0]
    named = {name.lower(): value for name, value in headers}
    return Reply(
        HTTPStatus(int(status.split(" ", 1)[0])),
        body,
        named.get("content-type", "text/plain; charset=utf-8"),
        named.get("content-encoding"),
    )


def _no_write(_: bytes) -> None:
    raise RuntimeError("the exposition app does not write")  # it returns its body


def healthz_reply(app: MetricsServer) -> Reply:
    stuck_for = app.loop_stuck_for()
    if stuck_for is not None:
        return _text(HTTPStatus.SERVICE_UNAVAILABLE, f"event loop stuck for {stuck_for:.0f}s\n")
    return _text(HTTPStatus.OK, "ok\n")


def readyz_reply(app: MetricsServer, accept: str) -> Reply:
    root = app.bridges_dir
    # A missing directory reads as one without bridges (all stopped): that is no reason to
    # say "ok". Checked here, on the request's thread, so a stalled mount never stalls the loop.
    if root is not None and not root.is_dir():
        return _readiness(False, f"not ready: the bridges directory {root} is missing", {}, accept)
    try:
        snapshot = app.snapshot()
    except LoopUnresponsive as exc:
        return _readiness(False, f"unknown: {exc}", {}, accept)
    if not snapshot.started:
        return _readiness(False, "starting", {}, accept)
    total = len(snapshot.bridges)
    if snapshot.not_ready:
        summary = f"not ready: {len(snapshot.not_ready)} of {plural(total, 'bridge')}"
        return _readiness(False, summary, snapshot.not_ready, accept)
    return _readiness(True, f"ok: {plural(total, 'bridge')} Ready", {}, accept)


def _readiness(ready: bool, summary: str, not_ready: Mapping[str, str], accept: str) -> Reply:
    status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
    # The reasons come from status documents, already redacted; a second pass is cheap.
    reasons = {bid: Redactor.redact(why) for bid, why in sorted(not_ready.items())}
    if "application/json" in accept:
        document = {"ready": ready, "summary": summary, "notReady": reasons}
        return Reply(status, json.dumps(document).encode("utf-8") + b"\n", "application/json")
    lines = [summary, *(f"{bid}: {why}" for bid, why in reasons.items())]
    return _text(status, "\n".join(lines) + "\n")


# --- HTTP plumbing: wsgiref, as prometheus_client's own start_wsgi_server ----------------------


def _unsupported(method: str, start_response: Callable[..., Any]) -> list[bytes]:
    """What http.server answers a method it has no handler for, as the endpoints always did
    (but for its `Connection: close`, which WSGI leaves to the server: HTTP/1.0 closes anyway)."""
    message = f"Unsupported method ({method!r})"
    body = BaseHTTPRequestHandler.error_message_format % {
        "code": HTTPStatus.NOT_IMPLEMENTED.value,
        "message": html.escape(message, quote=False),
        "explain": html.escape(HTTPStatus.NOT_IMPLEMENTED.description, quote=False),
    }
    data = body.encode("utf-8", "replace")
    headers = [
        ("Server", SERVER_NAME),
        ("Content-Type", BaseHTTPRequestHandler.error_content_type),
        ("Content-Length", str(len(data))),
    ]
    start_response(f"{HTTPStatus.NOT_IMPLEMENTED.value} {message}", headers)
    return [data]


class _WsgiApp:
    """The endpoints as one WSGI application: routing, HEAD, the headers every answer has."""

    def __init__(self, app: MetricsServer) -> None:
        self._app = app

    def __call__(
        self, environ: Mapping[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if method not in ("GET", "HEAD"):
            return _unsupported(method, start_response)
        reply = self._reply(environ, path)
        headers = [("Content-Type", reply.content_type)]
        if reply.content_encoding is not None:
            headers.append(("Content-Encoding", reply.content_encoding))
        headers += [
            ("Content-Length", str(len(reply.body))),
            ("Cache-Control", "no-store"),
            ("Server", SERVER_NAME),
        ]
        start_response(f"{reply.status.value} {reply.status.phrase}", headers)
        # HEAD: the GET's status and headers (Content-Length included), no body.
        return [] if method == "HEAD" else [reply.body]

    def _reply(self, environ: Mapping[str, Any], path: str) -> Reply:
        accept = environ.get("HTTP_ACCEPT", "")
        try:
            if path == "/metrics":
                return metrics_reply(self._app, accept, environ.get("HTTP_ACCEPT_ENCODING", ""))
            if path == "/healthz":
                return healthz_reply(self._app)
            if path == "/readyz":
                return readyz_reply(self._app, accept)
            return _text(HTTPStatus.NOT_FOUND, "not found: see /metrics, /healthz, /readyz\n")
        except Exception:
            log.exception("metrics endpoint %s failed", path)
            return _text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")


class _HttpServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = False  # server_close() joins request threads: none outlives stop()

    def __init__(self, address: ListenAddress, app: MetricsServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        super().__init__((address.host, address.port), _Handler)
        self.set_app(_WsgiApp(app))

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can wait on DNS for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper that hangs up mid-answer is not worth a traceback on stderr.
        log.debug("metrics request from %s failed", client_address, exc_info=True)


class _Handler(WSGIRequestHandler):
    server_version = SERVER_NAME
    timeout = REQUEST_TIMEOUT

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_message(self, format: str, *args: Any) -> None:
        # A line per scrape and probe would drown the runner's own log.
        log.debug("%s %s", self.address_string(), format % args)
