"""A real loopback CloudEvents sink for tests: a threaded HTTP/1.1 server on 127.0.0.1.

Every request is parsed with the cloudevents SDK (binary, structured and batch modes), and
the structured form of every event is validated against the project's own schemas, always:
the envelope against `runner/schemas/events/cloudevent.json`, the data of our two event types
against their data schemas. Where `../shared/conformance/` is there (tests/conformance.py),
it is also validated against the CloudEvents 1.0 JSON schema and sync_trigger data against
TriggerMesh's. Whatever fails is in `.problems`. What arrived is kept in `.received`
(thread-safe). Responses can be scripted, one per request in order: a status, headers (e.g.
`Retry-After`), a delay, or a dropped connection; without a script the sink answers 202.

Fixtures:
    sink_server           one sink, closed after the test
    sink_server_factory   make more (e.g. a dead-letter sink); all closed after the test
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_binary_event, to_structured_event
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator

from runner.model import EVENT_TYPE_DELETED, EVENT_TYPE_SYNC
from runner.schemas import validator
from tests import conformance

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@dataclass(frozen=True)
class Reply:
    """One scripted response. `drop`: read the request, then close without answering."""

    status: int = 202
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the sink saw it, recorded on arrival, and the status it answered
    (None: dropped). A delayed answer counts as given even if the client stopped waiting:
    the sink did take the event, as a real one would (hence duplicates on a retry)."""

    mode: str  # binary | structured | batch | invalid
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    events: tuple[CloudEvent, ...]
    problems: tuple[str, ...]
    status: int | None


@dataclass
class _Parsed:
    mode: str
    events: list[CloudEvent]
    problems: list[str]


@cache
def envelope_validator() -> Draft202012Validator:
    """The project's own CloudEvents envelope schema, as shipped in the package."""
    text = resources.files("runner").joinpath("schemas", "events", "cloudevent.json").read_text()
    return Draft202012Validator(
        json.loads(text), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def document_problems(document: Any) -> list[str]:
    """What is wrong with one event in JSON format: own schemas, then conformance ones."""
    checks: list[tuple[str, Validator, Any]] = [("cloudevent.json", envelope_validator(), document)]
    kind = document.get("type") if isinstance(document, dict) else None
    data_schema = {EVENT_TYPE_SYNC: "sync_trigger", EVENT_TYPE_DELETED: "user_deleted"}.get(kind)
    has_data = isinstance(document, dict) and "data" in document
    if data_schema and has_data:
        checks.append((f"{data_schema} data", validator(data_schema), document["data"]))
    reference = conformance.load()
    if reference is not None:
        checks.append((conformance.CLOUDEVENTS_SCHEMA, reference.cloudevents, document))
        if kind == EVENT_TYPE_SYNC and has_data:
            checks.append(
                (conformance.SYNC_TRIGGER_SCHEMA, reference.sync_trigger, document["data"])
            )
    return [
        f"{label}: {error.message} (at {error.json_path})"
        for label, check, instance in checks
        for error in check.iter_errors(instance)
    ]


_FORMAT = JSONFormat()


def parse_request(headers: Mapping[str, str], body: bytes) -> _Parsed:
    """Parse one request as a CloudEvents receiver would, validating the structured form."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    problems: list[str] = []
    try:
        if any(name.startswith("ce-") for name in headers):
            event = from_binary_event(HTTPMessage(dict(headers), body))
            mode, events = "binary", [event]
            documents = [json.loads(to_structured_event(event).body)]
        elif content_type == STRUCTURED:
            mode, documents = "structured", [json.loads(body)]
            events = [_FORMAT.read(CloudEvent, body)]
        elif content_type == BATCH:
            mode, documents = "batch", json.loads(body)
            if not isinstance(documents, list):
                raise ValueError("a batch must be a JSON array")
            events = [_FORMAT.read(CloudEvent, json.dumps(doc).encode()) for doc in documents]
        else:
            return _Parsed("invalid", [], [f"not a CloudEvents request: {content_type!r}"])
    except (ValueError, KeyError, TypeError, BaseCloudEventException) as exc:
        return _Parsed("invalid", [], [f"unparseable: {type(exc).__name__}: {exc}"])
    for doc in documents:
        problems.extend(document_problems(doc))
    return _Parsed(mode, [e for e in events if isinstance(e, CloudEvent)], problems)


class SinkServer:
    """A loopback CloudEvents sink (see the module doc). Use as a context manager or close()."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._script: deque[Reply] = deque()
        self._received: list[Received] = []
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = False  # joined on close: no thread outlives a test
        # A short poll interval: shutdown() waits for the serve loop to notice it.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="sink-server", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    # -- scripting and inspection ----------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue responses for the next requests, in order; then back to 202."""
        with self._lock:
            self._script.extend(replies)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def events(self, *, accepted_only: bool = False) -> list[CloudEvent]:
        """Every event received, in arrival order (only those answered 2xx if asked)."""
        return [
            event
            for request in self.received
            if not accepted_only or (request.status is not None and 200 <= request.status < 300)
            for event in request.events
        ]

    def ids(self, *, accepted_only: bool = False) -> list[str]:
        return [event.get_id() for event in self.events(accepted_only=accepted_only)]

    @property
    def problems(self) -> list[str]:
        return [problem for request in self.received for problem in request.problems]

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[CloudEvent]:
        """Block until at least `count` events were answered 2xx; AssertionError on timeout."""
        with self._lock:
            arrived = self._lock.wait_for(lambda: self._accepted_count() >= count, timeout=timeout)
        if not arrived:
            raise AssertionError(
                f"sink got {len(self.events(accepted_only=True))} of {count} events in {timeout}s"
            )
        return self.events(accepted_only=True)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` requests arrived, whatever the answer (in async
        code: `await asyncio.to_thread(sink.wait_for_requests, n)`)."""
        with self._lock:
            arrived = self._lock.wait_for(lambda: len(self._received) >= count, timeout=timeout)
        if not arrived:
            raise AssertionError(f"sink got {len(self.received)} of {count} requests in {timeout}s")
        return self.received

    def _accepted_count(self) -> int:
        return sum(
            len(r.events) for r in self._received if r.status is not None and 200 <= r.status < 300
        )

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # unblock handlers waiting on an idle keep-alive connection
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins every handler thread
        self._thread.join(timeout=10)

    def __enter__(self) -> SinkServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the server side ------------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else Reply()

    def _record(self, request: Received) -> None:
        with self._lock:
            self._received.append(request)
            self._lock.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real sinks do
            timeout = 30  # an idle connection never keeps a handler thread forever

            def setup(self) -> None:
                super().setup()
                with sink._lock:
                    sink._connections.add(self.connection)

            def finish(self) -> None:
                with sink._lock:
                    sink._connections.discard(self.connection)
                with contextlib.suppress(OSError):  # the peer may be gone already
                    super().finish()

            def handle(self) -> None:
                # The client may die mid-request (a SIGKILLed runner): nothing to answer.
                with contextlib.suppress(ConnectionError):
                    super().handle()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # cut off mid-body: an incomplete request is no request
                    self.close_connection = True
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                parsed = parse_request(headers, body)
                reply = sink._next_reply()
                if parsed.mode == "invalid" and reply == Reply():
                    reply = Reply(status=400, body=b"not a valid CloudEvent")
                status = None if reply.drop else reply.status
                sink._record(
                    Received(
                        parsed.mode,
                        self.path,
                        headers,
                        body,
                        tuple(parsed.events),
                        tuple(parsed.problems),
                        status,
                    )
                )
                if reply.delay and sink._closing.wait(reply.delay):
                    reply = Reply(drop=True)  # the sink is closing: do not hold the test up
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:  # the client gave up (its timeout) before the reply
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output (and caplog) to what the code under test logs

        return Handler


@pytest.fixture
def sink_server_factory() -> Iterator[Callable[[], SinkServer]]:
    servers: list[SinkServer] = []

    def make() -> SinkServer:
        server = SinkServer()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def sink_server(sink_server_factory: Callable[[], SinkServer]) -> SinkServer:
    return sink_server_factory()
