"""A segmented scan never reports a user deleted only because no segment covers its `sub`
(issue 9). Against moto's Cognito server over HTTP, with a real SQLite outbox and sink."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.model import Bridge, Delivery, Sink, Target
from runner.polling import poll as poller_module
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.client import CognitoClients
from runner.sources.cognito.scan import segments_cover
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.sink_server import SinkServer
from tests.sources.conftest import bridge_poller

DELETED = "com.amazon.cognito-idp.user_deleted"


@pytest.mark.parametrize(
    ("sub", "segments", "covered"),
    [
        ("0f0d6fc9-9c3b-412e-b34b-de6c5affcd74", 16, True),
        ("f0", 256, True),
        ("Qq-odd", 16, False),  # uppercase: ListUsers' `sub ^= "q"` need not list it
        ("-abc", 16, False),
        ("a", 256, False),  # too short for a two-character prefix
        ("", 16, False),
        (None, 16, False),
        ("Qq-odd", 1, True),  # one segment is the whole pool
    ],
)
def test_which_subs_the_segments_cover(sub: str | None, segments: int, covered: bool) -> None:
    assert segments_cover(sub, segments) is covered


@pytest.mark.usefixtures("dummy_aws_credentials")
def test_a_user_outside_the_segments_is_not_reported_deleted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clients: CognitoClients,
    secrets: SecretResolver,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = cognito_pool()
    for name in ("ann", "ben", "odd"):
        cognito_admin.create_user(pool.id, name)
    # moto, unlike Cognito, lets a sub be rewritten: a sub that no `sub ^= "0".."f"` lists.
    cognito_admin.update_user(pool.id, "odd", {"sub": "Qq-not-a-lowercase-uuid"})
    bridge = Bridge(
        id="cover",
        file=Path("cover.yaml"),
        name="cover",
        source=pool.source(moto_server.endpoint, poll_interval=1.0, initial_sync="baseline"),
        sink=Sink(Target(sink_server.url), format="binary", timeout=5.0),
        delivery=Delivery(backoff_delay=0.01, max_backoff=0.05),
    )
    counts: list[int] = []

    async def three_polls() -> list[tuple[bool, str]]:
        results = []
        async with bridge_poller(
            bridge, clients=clients, secrets=secrets, state_dir=tmp_path / "state"
        ) as poller:
            for n in range(3):  # whole (baseline), segmented, whole from then on
                if n == 1:
                    # Segment from now on, as soon as one user is tracked, instead of seeding
                    # 1,200 users (the first scan, of a 3-user pool, is whole).
                    monkeypatch.setattr(poller_module, "SEGMENT_THRESHOLD_USERS", 1)
                before = poller.source_counters.pages_read
                outcome = await poller.poll_once()
                counts.append(poller.source_counters.pages_read - before)
                await poller.deliver_once()
                results.append((outcome.complete, poller.source_health.status))
        return results

    results = asyncio.run(three_polls())
    assert [e["type"] for e in sink_server.events()] == []  # nothing changed: nothing sent
    # Every poll complete and Ready: the segmented scan that missed "odd" did not sweep it,
    # and the poller reads the pool whole from then on.
    assert results == [(True, "True")] * 3
    assert counts == [1, 16, 1]  # pages: whole, 16 segments, whole
    assert any("outside the 16 scan segments" in r.getMessage() for r in caplog.records)
