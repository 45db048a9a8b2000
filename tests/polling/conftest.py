"""Builders the poll and worker tests share: a bridge over moto's Cognito and the loopback
sink, and a `Harness` that builds workers over one state directory as successive runs of
the runner would."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.model import Bridge, Delivery, Sink, Target
from runner.polling.worker import BridgeWorker
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import RequestBudgets
from runner.sources.cognito.client import CognitoClients
from runner.state.outbox import Outbox
from tests.peers.moto_server import PoolInfo

SYNC = "com.amazon.cognito-idp.sync_trigger"
DELETED = "com.amazon.cognito-idp.user_deleted"


class Boom(Exception):
    """The injected crash."""


def changes_of(events: Sequence[Any]) -> Counter[tuple[str, str]]:
    """(username, changetype) of each event, counted."""
    return Counter((e.get_data()["Username"], e.get_extension("changetype")) for e in events)


def make_bridge(pool: PoolInfo, endpoint: str, sink_url: str, **source: Any) -> Bridge:
    source.setdefault("initial_sync", "emit")
    return Bridge(
        id="team/signups",
        file=Path("team/signups.yaml"),
        name="signups",
        source=pool.source(endpoint, poll_interval=1.0, **source),
        sink=Sink(Target(sink_url), format="binary", timeout=5.0),
        delivery=Delivery(backoff_delay=0.01, max_backoff=0.05),
    )


class Harness:
    """Builds workers over one state directory, as successive runs of the runner would.
    `rps`: the Cognito request budget (requests per second)."""

    def __init__(self, state_dir: Path, rps: float = 1000.0) -> None:
        self.state_dir = state_dir
        self.outbox = Outbox.open(state_dir)
        self.secrets = SecretResolver(state_dir / "secrets", env={})
        self.clients = CognitoClients(self.secrets, RequestBudgets(rps))

    def close(self) -> None:
        self.clients.close()
        self.outbox.close()

    def reopen_outbox(self) -> None:
        """A restart: the SQLite file is opened afresh."""
        self.outbox.close()
        self.outbox = Outbox.open(self.state_dir)

    def worker(
        self, bridge: Bridge, http: httpx.AsyncClient, *, outbox: Any = None
    ) -> BridgeWorker:
        """A fresh worker for `bridge`; `outbox` replaces the real one (a fault injector)."""
        return BridgeWorker(
            bridge,
            outbox=outbox or self.outbox,
            clients=self.clients,
            http=http,
            state_dir=self.state_dir,
            secrets=self.secrets,
        )

    def pass_(self, bridge: Bridge, *, outbox: Any = None, deliver: bool = True) -> BridgeWorker:
        """One poll (and delivery) as a fresh worker: what one run of the runner does."""

        async def go() -> BridgeWorker:
            async with httpx.AsyncClient() as http:
                worker = self.worker(bridge, http, outbox=outbox)
                await worker.poll_once()
                if deliver:
                    await worker.deliver_once()
                return worker

        return asyncio.run(go())


@pytest.fixture
def dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bridges here use boto3's default chain; moto accepts any keys.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def harness(tmp_path: Path, dummy_aws_credentials: None) -> Iterator[Harness]:
    h = Harness(tmp_path / "state")
    yield h
    h.close()
