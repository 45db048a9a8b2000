"""Builders shared by the Cognito source's tests: a secret resolver, Cognito clients closed
after the test, boto3's default chain given dummy keys, and a poller over one bridge with its
own outbox and HTTP client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.model import Bridge
from runner.polling.worker import BridgeWorker
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import RequestBudgets
from runner.sources.cognito.client import CognitoClients, CognitoSettings
from runner.state.outbox import Outbox


@pytest.fixture
def secrets(tmp_path: Path) -> SecretResolver:
    """No secrets and no environment; a test module that needs some overrides this."""
    return SecretResolver(tmp_path / "secrets", env={})


@pytest.fixture
def cognito_settings() -> CognitoSettings:
    """The settings `make_clients` uses unless told; a test module may override this."""
    return CognitoSettings()


@pytest.fixture
def make_clients(
    secrets: SecretResolver, cognito_settings: CognitoSettings
) -> Iterator[Callable[..., CognitoClients]]:
    """Build `CognitoClients` (1,000 requests/s unless told), all closed after the test."""
    made: list[CognitoClients] = []

    def make(
        rate: float = 1000.0, settings: CognitoSettings | None = None, **kwargs: Any
    ) -> CognitoClients:
        clients = CognitoClients(
            kwargs.pop("secrets", secrets),
            RequestBudgets(rate),
            settings=settings or cognito_settings,
            **kwargs,
        )
        made.append(clients)
        return clients

    yield make
    for clients in made:
        clients.close()


@pytest.fixture
def clients(make_clients: Callable[..., CognitoClients]) -> CognitoClients:
    return make_clients()


@pytest.fixture
def dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys for boto3's default chain, for bridges without credentials of their own."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@contextlib.asynccontextmanager
async def bridge_poller(
    bridge: Bridge, *, clients: CognitoClients, secrets: SecretResolver, state_dir: Path
) -> AsyncIterator[BridgeWorker]:
    """A poller for `bridge` with an outbox in `state_dir` and its own HTTP client."""
    outbox = Outbox.open(state_dir)
    try:
        async with httpx.AsyncClient() as http:
            yield BridgeWorker(
                bridge,
                outbox=outbox,
                clients=clients,
                http=http,
                state_dir=state_dir,
                secrets=secrets,
            )
    finally:
        outbox.close()
