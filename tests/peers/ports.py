"""A loopback port that refuses connections, for tests of an unreachable peer."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections while the block runs: bound, never
    listening. Not a port bound and closed again: with tests running in parallel
    (pytest-xdist), a server of another test can take it meanwhile and get this test's
    requests (seen: a sink of another test answered one, and both tests failed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
