"""What the Cognito benches share (`scan.py`, `budget.py`): the credentials their runner
clients resolve, and moto's server over HTTP with an admin client on it.

Importing it puts the repository root on `sys.path`, for `tests.peers`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.peers

from runner.model import AwsAuth, AwsCredentials, SecretRef
from tests.peers.moto_server import CognitoAdmin

CREDENTIALS = {
    "BRIDGE_VAR_BENCH_KEY_ID": "AKIABENCHKEY00000001",
    "BRIDGE_VAR_BENCH_SECRET": "bench-secret-value",
}
AUTH = AwsAuth(
    credentials=AwsCredentials(
        SecretRef("env", "BRIDGE_VAR_BENCH_KEY_ID"), SecretRef("env", "BRIDGE_VAR_BENCH_SECRET")
    )
)


@contextmanager
def moto_admin() -> Iterator[tuple[str, CognitoAdmin]]:
    """moto's server on a free port of 127.0.0.1: its endpoint and an admin client on it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    admin = CognitoAdmin(endpoint)
    try:
        yield endpoint, admin
    finally:
        admin.close()
        server.stop()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window)."""
    ordered, best, start = sorted(times), 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
