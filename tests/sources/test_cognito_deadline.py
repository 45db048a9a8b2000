"""A Cognito endpoint that accepts connections and never answers (issue 9): every call is
bounded, the scan gives up instead of re-asking for minutes, and SourceReady turns False.

The peer is a real TCP server on 127.0.0.1 that accepts, reads and never writes a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.errors import SourceUnavailable
from runner.model import Bridge, CognitoSource, Delivery, PoolArn, Sink, Target
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.client import CognitoClients, CognitoSettings
from tests.sources.conftest import bridge_poller

pytestmark = pytest.mark.usefixtures("dummy_aws_credentials")

POOL = PoolArn(
    arn="arn:aws:cognito-idp:us-west-2:123456789012:userpool/us-west-2_silent001",
    partition="aws",
    region="us-west-2",
    account="123456789012",
    pool_id="us-west-2_silent001",
)


class SilentServer:
    """Accepts every connection and keeps it open without answering."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_the_defaults_turn_a_silent_endpoint_unready_within_a_minute() -> None:
    defaults = CognitoSettings()
    worst_call = defaults.connect_timeout + defaults.max_attempts * defaults.read_timeout
    assert defaults.call_deadline <= 60.0
    assert worst_call <= defaults.call_deadline  # the deadline is what bounds a call


def test_a_silent_endpoint_is_not_asked_again_after_boto3s_attempts(
    make_clients: Callable[..., CognitoClients], silent: SilentServer
) -> None:
    settings = CognitoSettings(max_attempts=2, connect_timeout=1.0, read_timeout=0.5)
    clients = make_clients(settings=settings)
    source = CognitoSource(pool=POOL, endpoint=silent.endpoint)
    result = asyncio.run(clients.pool(source).scan())
    assert not result.complete
    assert isinstance(result.error, SourceUnavailable)
    assert result.error.reason == "EndpointUnreachable"
    # boto3's two attempts, each on a fresh connection after its read timeout; without the
    # fix the page was asked for again page_retries (5) more times, 12 connections in all.
    assert silent.connections == settings.max_attempts


def test_the_call_deadline_ends_a_call_boto3_would_still_wait_for(
    make_clients: Callable[..., CognitoClients], silent: SilentServer
) -> None:
    # A read timeout far beyond the deadline: only the deadline can end this call.
    settings = CognitoSettings(max_attempts=1, read_timeout=60.0, call_deadline=0.5)
    clients = make_clients(settings=settings)
    source = CognitoSource(pool=POOL, endpoint=silent.endpoint)
    with pytest.raises(SourceUnavailable, match=r"no answer within 0\.5s") as raised:
        asyncio.run(clients.pool(source).describe())
    assert raised.value.reason == "EndpointUnreachable"


def test_a_silent_endpoint_turns_source_ready_false(
    tmp_path: Path,
    make_clients: Callable[..., CognitoClients],
    secrets: SecretResolver,
    silent: SilentServer,
) -> None:
    settings = CognitoSettings(max_attempts=1, connect_timeout=1.0, read_timeout=0.5)
    clients = make_clients(settings=settings)
    bridge = Bridge(
        id="silent",
        file=Path("silent.yaml"),
        name="silent",
        source=CognitoSource(pool=POOL, endpoint=silent.endpoint, poll_interval=1.0),
        sink=Sink(Target("http://127.0.0.1:9/"), format="binary", timeout=1.0),
        delivery=Delivery(backoff_delay=0.01, max_backoff=0.05),
    )

    async def poll() -> tuple[str, str]:
        async with bridge_poller(
            bridge, clients=clients, secrets=secrets, state_dir=tmp_path / "state"
        ) as poller:
            await poller.poll_once()
            return poller.source_health.status, poller.source_health.reason

    assert asyncio.run(poll()) == ("False", "EndpointUnreachable")
