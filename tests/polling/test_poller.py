"""The poller end to end: moto's Cognito over HTTP -> diff -> SQLite outbox -> loopback sink.

Issue 3's acceptance: a 1,000-user backfill, one event per later change, none for an
unchanged rescan, conformance of every event, and crash safety between every two steps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.model import Bridge, Delivery, Sink, Target
from runner.polling.poller import BridgePoller, Checkpoint
from runner.schemas import validator
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import RequestBudgets
from runner.sources.cognito.client import CognitoClients
from runner.state.outbox import Outbox
from tests.peers.faults import CrashBeforeMarking
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.sink_server import Reply, SinkServer

SYNC = "com.amazon.cognito-idp.sync_trigger"
DELETED = "com.amazon.cognito-idp.user_deleted"


@pytest.fixture(autouse=True)
def _dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bridges here use boto3's default chain; moto accepts any keys.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


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
    """Builds pollers over one state directory, as successive runs of the runner would."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.outbox = Outbox.open(state_dir)
        self.secrets = SecretResolver(state_dir / "secrets", env={})
        self.clients = CognitoClients(self.secrets, RequestBudgets(1000.0))

    def close(self) -> None:
        self.clients.close()
        self.outbox.close()

    def reopen_outbox(self) -> None:
        """A restart: the SQLite file is opened afresh."""
        self.outbox.close()
        self.outbox = Outbox.open(self.state_dir)

    def pass_(
        self,
        bridge: Bridge,
        *,
        checkpoint: Checkpoint | None = None,
        outbox: Any = None,
        deliver: bool = True,
    ) -> BridgePoller:
        """One poll (and delivery) as a fresh poller: what one run of the runner does."""

        async def go() -> BridgePoller:
            async with httpx.AsyncClient() as http:
                poller = BridgePoller(
                    bridge,
                    outbox=outbox or self.outbox,
                    clients=self.clients,
                    http=http,
                    state_dir=self.state_dir,
                    secrets=self.secrets,
                    **({"checkpoint": checkpoint} if checkpoint else {}),
                )
                await poller.poll_once()
                if deliver:
                    await poller.deliver_once()
                return poller

        return asyncio.run(go())


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "state")
    yield h
    h.close()


def assert_conformant(sink: SinkServer) -> None:
    """Every event valid: the sink checked each envelope and its data against the project's
    schemas (and the CloudEvents and TriggerMesh ones, where ../shared/conformance is)."""
    assert sink.problems == []
    assert sink.events()
    for event in sink.events():
        data = event.get_data()
        if event.get_type() == SYNC:
            assert list(validator("sync_trigger").iter_errors(data)) == [], data
        else:
            assert event.get_type() == DELETED
            assert list(validator("user_deleted").iter_errors(data)) == []


def test_backfill_then_one_event_per_change(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 1000)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)

    first = harness.pass_(bridge)
    events = sink_server.events(accepted_only=True)
    assert len(events) == 1000
    assert len({e.get_id() for e in events}) == 1000
    assert sorted(e.get_data()["Username"] for e in events) == sorted(names)  # type: ignore[index]
    assert {e.get_extension("changetype") for e in events} == {"created"}
    assert {e.get_type() for e in events} == {SYNC}
    assert {e.get_source() for e in events} == {pool.arn}
    assert {e.get_subject() for e in events} == {pool.id}
    assert first.source_counters.users_tracked == 1000
    assert first.sink_counters.delivered == 1000
    assert first.sink_counters.pending == 0

    # Unchanged rescan: nothing.
    harness.pass_(bridge)
    assert len(sink_server.events()) == 1000

    cognito_admin.create_user(pool.id, "newcomer", {"email": "new@example.com"})
    cognito_admin.update_user(pool.id, names[1], {"email": "changed@example.com"})
    cognito_admin.disable_user(pool.id, names[2])
    cognito_admin.delete_user(pool.id, names[3])
    harness.pass_(bridge)
    later = sink_server.events()[1000:]
    by_user = {
        (e.get_data()["Username"], e.get_extension("changetype"), e.get_type())  # type: ignore[index]
        for e in later
    }
    assert len(later) == 4
    assert by_user == {
        ("newcomer", "created", SYNC),
        (names[1], "updated", SYNC),
        (names[2], "updated", SYNC),
        (names[3], "deleted", DELETED),
    }
    disabled = next(e for e in later if e.get_data()["Username"] == names[2])  # type: ignore[index]
    assert disabled.get_data()["Enabled"] is False  # type: ignore[index]
    deleted = next(e for e in later if e.get_type() == DELETED)
    assert deleted.get_data()["sub"]  # type: ignore[index]
    assert_conformant(sink_server)


def test_baseline_sends_nothing_then_the_first_change(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 5)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
    poller = harness.pass_(bridge)
    assert sink_server.events() == []
    assert poller.source_counters.users_tracked == 5

    cognito_admin.create_user(pool.id, "after-baseline")
    harness.pass_(bridge)
    assert [e.get_data()["Username"] for e in sink_server.events()] == ["after-baseline"]  # type: ignore[index]


def test_empty_pool_is_a_baseline_so_the_first_user_is_sent(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    # TriggerMesh bug #35: the first user ever created in an empty pool was never sent.
    pool = cognito_pool()
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
    harness.pass_(bridge)
    cognito_admin.create_user(pool.id, "first-ever")
    harness.pass_(bridge)
    events = sink_server.events()
    assert [(e.get_data()["Username"], e.get_extension("changetype")) for e in events] == [  # type: ignore[index]
        ("first-ever", "created")
    ]


def test_without_emit_deletions_the_snapshot_still_forgets_the_user(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.create_user(pool.id, "ghost")
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url, emit_deletions=False)
    harness.pass_(bridge)
    cognito_admin.delete_user(pool.id, "ghost")
    harness.pass_(bridge)
    assert [e.get_type() for e in sink_server.events()] == [SYNC]  # no user_deleted
    cognito_admin.create_user(pool.id, "ghost")  # the same name again is a new user
    harness.pass_(bridge)
    assert [e.get_extension("changetype") for e in sink_server.events()] == ["created", "created"]


# -- crash safety: an exception between any two steps loses nothing -------------------------


class Boom(Exception):
    """The injected crash."""


def crash_at(step: str) -> Checkpoint:
    def checkpoint(name: str) -> None:
        if name == step:
            raise Boom(step)

    return checkpoint


def _changes(events: Sequence[Any]) -> Counter[tuple[str, str]]:
    return Counter((e.get_data()["Username"], e.get_extension("changetype")) for e in events)


@pytest.mark.parametrize("step", ["after_scan", "after_commit"])
def test_crash_in_the_poll_loses_nothing(
    step: str,
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 70)  # two pages
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    with pytest.raises(Boom):
        harness.pass_(bridge, checkpoint=crash_at(step))
    assert sink_server.events() == []  # nothing is sent before the commit
    harness.reopen_outbox()
    harness.pass_(bridge)  # the restarted runner
    events = sink_server.events(accepted_only=True)
    assert len({e.get_id() for e in events}) == 70
    assert set(_changes(events)) == {(f"user{i:06d}", "created") for i in range(70)}


def test_crash_after_the_sink_accepted_resends_with_the_same_id(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 10)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    crashing = CrashBeforeMarking(harness.outbox, Boom("after the sink accepted"))
    with pytest.raises(Boom):
        harness.pass_(bridge, outbox=crashing)
    first_ids = sink_server.ids(accepted_only=True)
    assert first_ids  # the sink took some before the crash
    harness.reopen_outbox()
    harness.pass_(bridge)
    all_ids = sink_server.ids(accepted_only=True)
    assert len(set(all_ids)) == 10  # every change, none lost
    duplicates = [i for i, n in Counter(all_ids).items() if n > 1]
    assert duplicates  # at-least-once: the unmarked ones came again ...
    assert set(duplicates) <= set(first_ids)  # ... with the ids they had the first time
    events = sink_server.events(accepted_only=True)
    by_id = {e.get_id(): _changes([e]) for e in events}
    for event in events:
        assert _changes([event]) == by_id[event.get_id()]


def test_sink_down_mid_delivery_then_back_loses_nothing(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 6)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    bridge = replace(bridge, delivery=replace(bridge.delivery, retry=None))
    # Three events in, the sink fails: 503 twice, a dropped connection, then recovers.
    sink_server.script(Reply(202), Reply(202), Reply(202), Reply(503), Reply(503), Reply(drop=True))
    poller = harness.pass_(bridge)
    ids = sink_server.ids(accepted_only=True)
    assert len(ids) == 6 and len(set(ids)) == 6
    assert poller.sink_counters.retried >= 3
    assert poller.sink_counters.pending == 0


def test_cancelled_mid_delivery_the_rest_stays_pending(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 8)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    sink_server.script(Reply(202), Reply(202), Reply(202, delay=30.0))

    async def interrupted() -> None:
        async with httpx.AsyncClient() as http:
            poller = BridgePoller(
                bridge,
                outbox=harness.outbox,
                clients=harness.clients,
                http=http,
                state_dir=harness.state_dir,
                secrets=harness.secrets,
            )
            await poller.poll_once()
            delivery = asyncio.create_task(poller.deliver_once())
            # The sink is a thread: poll its record (no event to await across threads).
            await asyncio.to_thread(sink_server.wait_for_requests, 3)
            delivery.cancel()  # the process is told to stop mid-request
            await asyncio.gather(delivery, return_exceptions=True)

    asyncio.run(interrupted())
    assert harness.outbox.count_pending(bridge.id) >= 6
    harness.reopen_outbox()
    harness.pass_(bridge)
    accepted = sink_server.ids(accepted_only=True)
    assert len(set(accepted)) == 8


def test_incomplete_scan_never_emits_deletions(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    cognito_proxy: Any,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 130)  # three pages
    bridge = make_bridge(pool, cognito_proxy.endpoint, sink_server.url)
    harness.pass_(bridge)
    assert len(sink_server.events()) == 130
    # Every pagination token is rejected from now on: each restart sees only the first
    # page, so the scan gives up incomplete with 70 users unseen.
    cognito_proxy.reject_token_next(1000)
    poller = harness.pass_(bridge)
    assert len(sink_server.events()) == 130  # no deletions from a partial scan
    assert poller.source_health.ready is False


def test_stopping_never_waits_for_a_scan(
    tmp_path: Path,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    # A budget of one request per 60 s: the scan after DescribeUserPool waits a minute for its
    # token. Stopping the bridge must not wait for it (nothing counts before the commit).
    pool = cognito_pool()
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    outbox = Outbox.open(tmp_path / "state")
    secrets = SecretResolver(tmp_path / "secrets", env={})
    clients = CognitoClients(secrets, RequestBudgets(1 / 60))

    async def run_then_stop() -> float:
        async with httpx.AsyncClient() as http:
            poller = BridgePoller(
                bridge,
                outbox=outbox,
                clients=clients,
                http=http,
                state_dir=tmp_path / "state",
                secrets=secrets,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(poller.run(stop))
            await asyncio.sleep(1.0)
            assert not task.done()
            stopped_at = asyncio.get_running_loop().time()
            stop.set()
            await task
            return asyncio.get_running_loop().time() - stopped_at

    try:
        took = asyncio.run(run_then_stop())
    finally:
        clients.close()
        outbox.close()
    assert took < 30  # far below the minute the scan would have waited
    assert not outbox_has_baseline(tmp_path / "state", bridge)


def outbox_has_baseline(state: Path, bridge: Bridge) -> bool:
    with Outbox.open(state) as outbox:
        return outbox.has_baseline(bridge.id, bridge.source.pool.arn)


def test_a_failing_delivery_loop_is_raised_not_left_dead(
    tmp_path: Path,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    # The outbox cannot record a delivery (a full disk, a locked database): the running
    # bridge must not keep polling with its delivery silently dead. run() raises, so that
    # its owner logs the error and restarts the bridge.
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 3)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    outbox = Outbox.open(tmp_path / "state")
    crashing = CrashBeforeMarking(outbox, Boom("after the sink accepted"))
    secrets = SecretResolver(tmp_path / "secrets", env={})
    clients = CognitoClients(secrets, RequestBudgets(1000.0))

    async def run_it() -> None:
        async with httpx.AsyncClient() as http:
            poller = BridgePoller(
                bridge,
                outbox=crashing,
                clients=clients,
                http=http,  # type: ignore[arg-type]
                state_dir=tmp_path / "state",
                secrets=secrets,
            )
            await asyncio.wait_for(poller.run(asyncio.Event()), 60)

    try:
        with pytest.raises(Boom):
            asyncio.run(run_it())
    finally:
        clients.close()
        outbox.close()
    assert crashing.crashed
