"""A loopback sink that refuses every request and echoes it back, as some real sinks and
proxies do in their error pages: the body is the request's headers as JSON, and the reason
phrase of the status line repeats one header's value if asked. For tests that a value sent
to a sink never comes back out through a dead letter, a status file or a log.

Fixture:
    echo_sink_factory   `make(status=400, reason_header=None) -> EchoSink`; all closed after
                        the test
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class EchoSink:
    """Answers every POST with `status`, the request's headers as a JSON body, and (with
    `reason_header`) that header's value as the reason phrase."""

    def __init__(self, status: int = 400, reason_header: str | None = None) -> None:
        self.status = status
        self.reason_header = reason_header
        self._lock = threading.Lock()
        self._headers: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = False  # joined on close
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="echo-sink", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events"

    @property
    def received_headers(self) -> list[dict[str, str]]:
        """The headers of every request so far (lower-cased names), in arrival order."""
        with self._lock:
            return list(self._headers)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with sink._lock:
                    sink._headers.append(headers)
                body = json.dumps({"you sent": headers}).encode()
                reason = headers.get(sink.reason_header, "") if sink.reason_header else None
                self.send_response(sink.status, reason or None)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def echo_sink_factory() -> Iterator[Callable[..., EchoSink]]:
    sinks: list[EchoSink] = []

    def make(status: int = 400, reason_header: str | None = None) -> EchoSink:
        sink = EchoSink(status, reason_header)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close()
