"""A loopback CloudEvents sink that records *when* each request arrived and was answered,
for the overlapping-delivery tests: how many requests were in flight at once, and whether an
event of a user arrived only after the sink had answered that user's previous one.

    with OverlapSink(decide=...) as sink:
        sink.url
        sink.requests        every request: its events, ticks of arrival and answer, status
        sink.max_in_flight   the most requests the sink held at once

Time is a tick counter under the sink's lock (arrival and answer each take one), so that
"after" means after, whatever the machine's speed. `decide(ids, attempt)` says how to answer
a request (status, delay in seconds): `ids` are its event ids, `attempt` how many requests
carried its first event before (0 on the first).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.peers.sink_server import parse_request

Decide = Callable[[tuple[str, ...], int], tuple[int, float]]


@dataclass
class Request:
    ids: tuple[str, ...]
    users: tuple[str, ...]  # the Username of each event, in the request's order
    arrived: int  # tick
    answered: int | None = None  # tick; None: not (yet) answered
    status: int | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class OverlapSink:
    def __init__(self, decide: Decide | None = None) -> None:
        self._decide = decide or (lambda ids, attempt: (202, 0.0))
        self._lock = threading.Condition()
        self._tick = 0
        self._in_flight = 0
        self.max_in_flight = 0
        self._requests: list[Request] = []
        self._attempts: dict[str, int] = {}
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = False
        self._server.request_queue_size = 64
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="overlap-sink", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def accepted_ids(self) -> list[str]:
        """Ids of accepted events, in order of their answers."""
        done = sorted((r for r in self.requests if r.accepted), key=lambda r: r.answered or 0)
        return [event_id for r in done for event_id in r.ids]

    def wait_for_accepted(self, count: int, timeout: float = 30.0) -> None:
        with self._lock:
            ok = self._lock.wait_for(
                lambda: sum(len(r.ids) for r in self._requests if r.accepted) >= count, timeout
            )
        if not ok:
            raise AssertionError(f"the sink took fewer than {count} events in {timeout}s")

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        """Block until `count` requests arrived (answered or not)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= count, timeout):
                raise AssertionError(f"the sink got fewer than {count} requests in {timeout}s")

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> OverlapSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _arrive(self, ids: tuple[str, ...], users: tuple[str, ...]) -> tuple[Request, int]:
        with self._lock:
            self._tick += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            request = Request(ids, users, self._tick)
            self._requests.append(request)
            self._lock.notify_all()
            attempt = self._attempts.get(ids[0], 0) if ids else 0
            if ids:
                self._attempts[ids[0]] = attempt + 1
            return request, attempt

    def _answer(self, request: Request, status: int | None) -> None:
        with self._lock:
            self._tick += 1
            self._in_flight -= 1
            request.answered, request.status = self._tick, status
            self._lock.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def handle(self) -> None:
                with contextlib.suppress(ConnectionError):  # a SIGKILLed client
                    super().handle()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                events = parse_request(headers, body).events
                ids = tuple(e.get_id() for e in events)
                users = tuple(str((e.get_data() or {}).get("Username", "")) for e in events)  # type: ignore[union-attr]
                request, attempt = sink._arrive(ids, users)
                status, delay = sink._decide(ids, attempt)
                if delay and sink._closing.wait(delay):
                    sink._answer(request, None)
                    return
                # Counted as answered before the bytes leave: the client cannot have seen
                # the answer earlier than this tick.
                sink._answer(request, status)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def user_order_problems(requests: list[Request], expected: Sequence[tuple[str, str]]) -> list[str]:
    """Where a user's events broke order, given `expected` (event id, username) in seq order:
    an event that first arrived before the sink had accepted that user's previous event
    (unless both came in one batch, in order), or one that never arrived while a later one
    did. Empty when each user's events went strictly one after another."""
    accepted_at: dict[str, int] = {}  # event id -> tick of its first accepted answer
    first: dict[str, tuple[int, int]] = {}  # event id -> (its first request, index in it)
    for number, r in enumerate(requests):
        for index, event_id in enumerate(r.ids):
            first.setdefault(event_id, (number, index))
            if r.accepted and r.answered is not None:  # the earliest, whatever arrived first
                accepted_at[event_id] = min(accepted_at.get(event_id, r.answered), r.answered)
    by_user: dict[str, list[str]] = {}
    for event_id, user in expected:
        by_user.setdefault(user, []).append(event_id)
    problems: list[str] = []
    for user, ids in by_user.items():
        for earlier, later in itertools.pairwise(ids):
            if later not in first:
                continue
            if earlier not in first:
                problems.append(f"{user}: {later} was sent, {earlier} never")
                continue
            (req_e, idx_e), (req_l, idx_l) = first[earlier], first[later]
            if req_e == req_l and idx_e < idx_l:
                continue  # one batch, in order
            arrived = requests[req_l].arrived
            if earlier not in accepted_at or arrived < accepted_at[earlier]:
                problems.append(f"{user}: {later} arrived before {earlier} was accepted")
    return problems
