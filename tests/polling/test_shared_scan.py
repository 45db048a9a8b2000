"""Bridges on one pool share its scans (issue 14): moto's Cognito behind the counting proxy
-> one scan -> each bridge's own stream, outbox and loopback sink."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.errors import StateError
from runner.model import AwsAuth, AwsCredentials, Bridge, SecretRef
from runner.polling import shared_scan
from runner.polling.shared_scan import PoolScans
from runner.polling.worker import BridgeWorker
from tests.peers.cognito_proxy import CognitoProxy
from tests.peers.faults import OutboxProxy
from tests.peers.moto_server import CognitoAdmin, PoolInfo
from tests.peers.sink_server import SinkServer
from tests.polling.conftest import DELETED, SYNC, Harness, changes_of, make_bridge

WAIT = 20.0  # seconds a test waits for what should come within a few
DEAD_SINK = "http://127.0.0.1:9/"  # the discard port: nothing listens, connections refused


def named(bridge: Bridge, name: str, **source: Any) -> Bridge:
    bridge = replace(bridge, id=f"team/{name}", file=Path(f"team/{name}.yaml"), name=name)
    return replace(bridge, source=replace(bridge.source, **source)) if source else bridge


def sent_to(bridge: Bridge, sink: SinkServer, fmt: str) -> Bridge:
    target = replace(bridge.sink.target, uri=sink.url)
    return replace(bridge, sink=replace(bridge.sink, target=target, format=fmt))


def keyed(bridge: Bridge, access_key: str) -> Bridge:
    """The bridge with static credentials of its own (moto takes any)."""
    auth = AwsAuth(
        AwsCredentials(SecretRef("value", literal=access_key), SecretRef("value", literal="s"))
    )
    return replace(bridge, source=replace(bridge.source, auth=auth))


@dataclass
class Runner:
    """Bridges running their two loops over one set of shared scans, as `run` runs them."""

    harness: Harness
    http: httpx.AsyncClient
    scans: PoolScans
    workers: dict[str, BridgeWorker] = field(default_factory=dict)
    _loops: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=dict)

    def start(self, bridge: Bridge, outbox: Any = None) -> BridgeWorker:
        worker = self.worker(bridge, outbox)
        stop = asyncio.Event()
        self._loops[bridge.id] = (stop, asyncio.create_task(worker.run(stop)))
        self.workers[bridge.id] = worker
        return worker

    def worker(self, bridge: Bridge, outbox: Any = None) -> BridgeWorker:
        h = self.harness
        return BridgeWorker(
            bridge,
            outbox=outbox or h.outbox,
            clients=h.clients,
            http=self.http,
            state_dir=h.state_dir,
            secrets=h.secrets,
            scans=self.scans,
        )

    async def stop(self, bridge_id: str) -> None:
        stop, task = self._loops.pop(bridge_id)
        stop.set()
        await task

    async def stop_all(self) -> None:
        for bridge_id in list(self._loops):
            await self.stop(bridge_id)

    async def scanned(self, *bridge_ids: str, scans: int = 1) -> None:
        """Wait until each bridge has `scans` more complete scans than now."""
        targets = {b: self.workers[b].source_counters.scans + scans for b in bridge_ids}
        async with asyncio.timeout(WAIT):
            while True:
                if all(self.workers[b].source_counters.scans >= n for b, n in targets.items()):
                    return
                await asyncio.sleep(0.05)


@asynccontextmanager
async def running(harness: Harness) -> AsyncIterator[Runner]:
    async with httpx.AsyncClient() as http:
        runner = Runner(harness, http, PoolScans(harness.clients, join_window=0.1))
        try:
            yield runner
        finally:
            await runner.stop_all()
    assert not runner.scans.scans  # the last bridge to leave stopped the pool's scans


async def events(sink: SinkServer, count: int) -> list[Any]:
    return await asyncio.to_thread(sink.wait_for_events, count)


def test_bridges_on_one_pool_each_get_exactly_their_events_from_shared_scans(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server_factory: Callable[[], SinkServer],
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 3)
    sinks = [sink_server_factory() for _ in range(3)]
    base = make_bridge(pool, cognito_proxy.endpoint, sinks[0].url)
    emit = named(base, "emit")
    baseline = sent_to(named(base, "baseline", initial_sync="baseline"), sinks[1], "structured")
    no_deletions = sent_to(named(base, "nodel", emit_deletions=False), sinks[2], "batch")
    ids = [emit.id, baseline.id, no_deletions.id]

    async def go() -> None:
        async with running(harness) as runner:
            for bridge in (emit, baseline, no_deletions):
                runner.start(bridge)
            await runner.scanned(*ids)
            await events(sinks[0], 3)
            await events(sinks[2], 3)
            cognito_admin.create_user(pool.id, "newbie")
            cognito_admin.update_user(pool.id, "user000000", {"name": "Ada"})
            cognito_admin.delete_user(pool.id, "user000001")
            await events(sinks[0], 6)
            await events(sinks[1], 3)
            await events(sinks[2], 5)
            await runner.scanned(*ids, scans=2)  # anything more would have come by now
            shared = runner.scans.scans
            assert len(shared) == 1
            pool_scan = next(iter(shared.values()))
            assert pool_scan.subscribers == 3
            started = pool_scan.scans
            listed = cognito_proxy.count("ListUsers")
        # One page a scan: one ListUsers call per shared scan, not one per bridge (the last
        # scan may have been stopped before its call).
        assert started - 1 <= listed <= started
        assert cognito_proxy.count("DescribeUserPool") == 1

    asyncio.run(go())
    created = {(f"user00000{i}", "created") for i in range(3)}
    changed = {("newbie", "created"), ("user000000", "updated"), ("user000001", "deleted")}
    assert changes_of(sinks[0].events()) == Counter(created | changed)
    assert changes_of(sinks[1].events()) == Counter(changed)
    assert changes_of(sinks[2].events()) == Counter(created | changed - {("user000001", "deleted")})
    assert DELETED not in {e.get_type() for e in sinks[2].events()}
    assert {e.get_type() for e in sinks[1].events()} == {SYNC, DELETED}
    assert {r.mode for r in sinks[0].received} == {"binary"}
    assert {r.mode for r in sinks[1].received} == {"structured"}
    assert {r.mode for r in sinks[2].received} == {"batch"}
    for sink in sinks:
        assert not sink.problems


def test_n_bridges_on_one_pool_cost_the_list_users_calls_of_one(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 130)  # three pages
    base = make_bridge(pool, cognito_proxy.endpoint, sink_server.url, initial_sync="baseline")

    async def one_round(bridges: list[Bridge]) -> list[Any]:
        async with running(harness) as runner:
            workers = [runner.worker(bridge) for bridge in bridges]
            return await asyncio.gather(*(w.poll_once() for w in workers))

    alone = asyncio.run(one_round([named(base, "alone")]))
    one = (cognito_proxy.count("ListUsers"), cognito_proxy.count("DescribeUserPool"))
    cognito_proxy.reset_stats()
    together = asyncio.run(one_round([named(base, f"b{i}") for i in range(4)]))
    assert one == (3, 1)
    assert (cognito_proxy.count("ListUsers"), cognito_proxy.count("DescribeUserPool")) == one
    assert all(outcome.complete and outcome.baseline for outcome in alone + together)


def test_bridges_with_different_auth_do_not_share(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 2)
    base = make_bridge(pool, cognito_proxy.endpoint, sink_server.url, initial_sync="baseline")
    bridges = [
        keyed(named(base, "a1"), "AKIDAAAAAAAAAAAAAAAA"),
        keyed(named(base, "a2"), "AKIDAAAAAAAAAAAAAAAA"),  # the same auth as a1: shares
        keyed(named(base, "b"), "AKIDBBBBBBBBBBBBBBBB"),
    ]

    async def go() -> int:
        async with running(harness) as runner:
            workers = [runner.worker(bridge) for bridge in bridges]
            polls = [asyncio.create_task(w.poll_once()) for w in workers]
            await asyncio.sleep(0)  # each has joined its scan
            pools = len(runner.scans.scans)
            await asyncio.gather(*polls)
            return pools

    assert asyncio.run(go()) == 2
    listings = [r for r in cognito_proxy.requests if r.operation == "ListUsers"]
    keys = Counter(r.authorization.split("Credential=")[1].split("/")[0] for r in listings)
    assert keys == Counter({"AKIDAAAAAAAAAAAAAAAA": 1, "AKIDBBBBBBBBBBBBBBBB": 1})


def test_a_dead_sink_does_not_delay_the_other_bridges_events(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 3)
    alive = named(make_bridge(pool, cognito_proxy.endpoint, sink_server.url), "alive")
    dead = named(make_bridge(pool, cognito_proxy.endpoint, DEAD_SINK), "dead")
    dead = replace(dead, delivery=replace(dead.delivery, retry=None))

    async def go() -> tuple[int, int]:
        async with running(harness) as runner:
            stuck = runner.start(dead)
            runner.start(alive)
            await events(sink_server, 3)
            cognito_admin.create_user(pool.id, "late")
            await events(sink_server, 4)
            await runner.scanned(dead.id)
            return stuck.sink_counters.emitted, stuck.sink_counters.delivered

    emitted, delivered = asyncio.run(go())
    assert (emitted, delivered) == (4, 0)  # its events wait in its own outbox
    assert changes_of(sink_server.events())[("late", "created")] == 1


def test_removing_or_adding_a_bridge_leaves_the_others_places_intact(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server_factory: Callable[[], SinkServer],
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 2)
    stays_sink, leaves_sink, joins_sink = (sink_server_factory() for _ in range(3))
    stays = named(make_bridge(pool, cognito_proxy.endpoint, stays_sink.url), "stays")
    leaves = named(make_bridge(pool, cognito_proxy.endpoint, leaves_sink.url), "leaves")
    joins = named(make_bridge(pool, cognito_proxy.endpoint, joins_sink.url), "joins")
    slow = {"poll_interval": 3600.0}

    async def go() -> None:
        async with running(harness) as runner:
            runner.start(stays)
            runner.start(named(leaves, "leaves", **slow))
            await events(stays_sink, 2)
            await events(leaves_sink, 2)
            await runner.stop("team/leaves")
            cognito_admin.create_user(pool.id, "third")
            await events(stays_sink, 3)
            runner.start(joins)  # emits the whole pool as it is
            await events(joins_sink, 3)
            await runner.scanned(stays.id, joins.id)
            cognito_admin.update_user(pool.id, "third", {"name": "Tri"})
            await events(stays_sink, 4)
            await events(joins_sink, 4)
            await runner.scanned(stays.id, joins.id)

    asyncio.run(go())
    users = {("user000000", "created"), ("user000001", "created"), ("third", "created")}
    update = Counter({("third", "updated"): 1})
    assert changes_of(stays_sink.events()) == Counter(users) + update  # nothing again
    assert changes_of(joins_sink.events()) == Counter(users) + update
    assert changes_of(leaves_sink.events()) == Counter(users - {("third", "created")})
    assert len(set(stays_sink.ids())) == 4


class BrokenCommits(OutboxProxy):
    """One bridge's state cannot be written."""

    def commit_scan(self, *args: Any, **kwargs: Any) -> Any:
        raise StateError("database disk image is malformed")


def test_one_bridges_failing_commit_leaves_only_its_scan_incomplete(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 3)
    good = named(make_bridge(pool, cognito_proxy.endpoint, sink_server.url), "good")
    broken = named(make_bridge(pool, cognito_proxy.endpoint, DEAD_SINK), "broken")

    async def go() -> tuple[Any, ...]:
        async with running(harness) as runner:
            ok = runner.worker(good)
            bad = runner.worker(broken, BrokenCommits(harness.outbox))
            outcomes = await asyncio.gather(ok.poll_once(), bad.poll_once())
            await ok.deliver_once()
            return (*outcomes, ok.source_health, bad.source_health)

    ok, bad, ok_health, bad_health = asyncio.run(go())
    assert ok.complete and ok.events == 3
    assert not bad.complete
    assert ok_health.status == "True"
    assert bad_health.status == "False" and "malformed" in bad_health.message
    assert cognito_proxy.count("ListUsers") == 1
    assert len(sink_server.events()) == 3


def test_each_bridge_joins_the_scans_its_own_interval_asks_for(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server_factory: Callable[[], SinkServer],
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 2)
    hourly_sink, newcomer_sink, fast_sink = (sink_server_factory() for _ in range(3))
    base = make_bridge(pool, cognito_proxy.endpoint, hourly_sink.url)
    hourly = named(base, "hourly", poll_interval=3600.0)
    newcomer = sent_to(named(base, "new", poll_interval=3600.0), newcomer_sink, "binary")
    fast = sent_to(named(base, "fast"), fast_sink, "binary")

    async def go() -> list[int]:
        async with running(harness) as runner:
            runner.start(hourly)
            await runner.scanned(hourly.id)
            cognito_admin.create_user(pool.id, "between")
            runner.start(newcomer)
            await runner.scanned(newcomer.id)  # its first scan: soon, not in an hour
            runner.start(fast)
            await runner.scanned(fast.id, scans=3)  # the pool scanned each second for it
            counters = [runner.workers[b.id].source_counters for b in (hourly, newcomer, fast)]
            return [c.scans for c in counters] + [cognito_proxy.count("ListUsers")]

    hourly_scans, newcomer_scans, fast_scans, listed = asyncio.run(go())
    # The scans started for the newcomers and the fast bridge cost the hourly bridges no
    # diff and no commit: they wait for the hour they asked for.
    assert (hourly_scans, newcomer_scans) == (1, 1)
    assert listed - 2 - fast_scans in (0, 1)  # one scan each; the last may be under way
    assert changes_of(hourly_sink.events()) == Counter(
        {("user000000", "created"): 1, ("user000001", "created"): 1}
    )
    assert len(newcomer_sink.events()) == 3
    assert len(fast_sink.events()) == 3


class SlowCommits(OutboxProxy):
    """A bridge whose commits take 0.6 s each."""

    def commit_scan(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.6)
        return self._outbox.commit_scan(*args, **kwargs)


def _fast_and_lagging(
    harness: Harness,
    pool: PoolInfo,
    endpoint: str,
    sink_url: str,
) -> tuple[Any, ...]:
    fast = named(make_bridge(pool, endpoint, sink_url), "fast")
    slow = named(make_bridge(pool, endpoint, DEAD_SINK), "slow")

    async def go() -> tuple[Any, ...]:
        async with running(harness) as runner:
            quick = runner.worker(fast)
            lagging = runner.worker(slow, SlowCommits(harness.outbox))
            outcomes = await asyncio.gather(quick.poll_once(), lagging.poll_once())
            return (*outcomes, lagging.source_health)

    return asyncio.run(go())


def test_a_subscriber_whose_commits_lag_holds_the_scan_and_completes_it(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Dropping a lagging subscriber would leave one that is always a little slower than the
    # pages (many bridges diffing one large pool) without a complete scan, ever: the scan
    # waits for it instead, and both bridges complete theirs.
    monkeypatch.setattr(shared_scan, "MAX_PAGES_BEHIND", 1)
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 300)  # five pages
    quick, lagging, health = _fast_and_lagging(
        harness, pool, cognito_proxy.endpoint, sink_server.url
    )
    assert quick.complete and quick.events == 300
    assert lagging.complete and lagging.events == 300 and health.status == "True"
    assert cognito_proxy.count("ListUsers") == 5


def test_a_subscriber_that_takes_no_page_for_long_drops_out_of_the_scan(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Commits of 0.6 s against a stall limit of 0.2 s: a stuck state file, as far as the
    # scan can tell. It drops out; the other bridge's scan completes.
    monkeypatch.setattr(shared_scan, "MAX_PAGES_BEHIND", 1)
    monkeypatch.setattr(shared_scan, "STALL_TIMEOUT", 0.2)
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 300)  # five pages
    quick, lagging, health = _fast_and_lagging(
        harness, pool, cognito_proxy.endpoint, sink_server.url
    )
    assert quick.complete and quick.events == 300
    assert not lagging.complete and health.reason == "FellBehind"
    assert cognito_proxy.count("ListUsers") == 5


class WatchedCommits(OutboxProxy):
    """Commits that take a while, and say when one starts and when it has ended."""

    def __init__(self, outbox: Any) -> None:
        super().__init__(outbox)
        self.started = threading.Event()
        self.ended = threading.Event()

    def commit_scan(self, *args: Any, **kwargs: Any) -> Any:
        self.started.set()
        time.sleep(0.3)
        try:
            return self._outbox.commit_scan(*args, **kwargs)
        finally:
            self.ended.set()


def test_a_bridge_stopped_mid_scan_waits_for_its_commit_and_the_others_go_on(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server_factory: Callable[[], SinkServer],
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 2)
    stays_sink, stops_sink = sink_server_factory(), sink_server_factory()
    stays = named(make_bridge(pool, cognito_proxy.endpoint, stays_sink.url), "stays")
    stops = named(make_bridge(pool, cognito_proxy.endpoint, stops_sink.url), "stops")
    watched = WatchedCommits(harness.outbox)

    async def go() -> bool:
        async with running(harness) as runner:
            runner.start(stays)
            runner.start(stops, watched)
            await asyncio.to_thread(watched.started.wait, WAIT)
            await runner.stop(stops.id)
            ended_before_the_stop_returned = watched.ended.is_set()
            cognito_admin.create_user(pool.id, "later")
            await events(stays_sink, 3)
            return ended_before_the_stop_returned

    assert asyncio.run(go())
    assert changes_of(stays_sink.events())[("later", "created")] == 1


def test_a_failed_shared_scan_is_reported_to_every_subscriber(
    harness: Harness,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 2)
    base = make_bridge(pool, cognito_proxy.endpoint, sink_server.url)
    bridges = [named(base, "one"), named(base, "two", initial_sync="baseline")]
    cognito_proxy.error_next(1, "NotAuthorizedException", "denied", operation="ListUsers")

    async def go() -> list[Any]:
        async with running(harness) as runner:
            workers = [runner.worker(bridge) for bridge in bridges]
            outcomes = await asyncio.gather(*(w.poll_once() for w in workers))
            return [*outcomes, *(w.source_health for w in workers)]

    one, two, one_health, two_health = asyncio.run(go())
    assert not one.complete and not two.complete
    assert one_health.status == two_health.status == "False"
    assert one_health.reason == two_health.reason != ""
    assert cognito_proxy.count("ListUsers") == 1
    assert not sink_server.received
