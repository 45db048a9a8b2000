"""The bridge's worker end to end: its delivery after each poll, its two loops, and how it
stops. moto's Cognito over HTTP -> SQLite outbox -> loopback sink."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from runner.model import Bridge
from runner.state.outbox import Outbox
from tests.peers.faults import CrashBeforeMarking
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.sink_server import Reply, SinkServer
from tests.polling.conftest import Boom, Harness, changes_of, make_bridge


@pytest.fixture
def slow_harness(tmp_path: Path, dummy_aws_credentials: None) -> Iterator[Harness]:
    """A request budget of one per 60 s: the scan after DescribeUserPool waits a minute."""
    h = Harness(tmp_path / "state", rps=1 / 60)
    yield h
    h.close()


# -- delivery after a poll ------------------------------------------------------------------


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
    # One request at a time: with several in flight when the crash comes, one cut off may
    # reach the sink only after `first_ids` is read, and look like a resend of nothing.
    bridge = replace(bridge, sink=replace(bridge.sink, max_in_flight=1))
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
    by_id = {e.get_id(): changes_of([e]) for e in events}
    for event in events:
        assert changes_of([event]) == by_id[event.get_id()]


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
    worker = harness.pass_(bridge)
    ids = sink_server.ids(accepted_only=True)
    assert len(ids) == 6 and len(set(ids)) == 6
    assert worker.sink_counters.retried >= 3
    assert worker.sink_counters.pending == 0


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
    # One request at a time, so that the third (held by the sink) is the one cancelled and
    # the five after it are not sent at all; overlapping requests cancelled mid-flight:
    # tests/delivery/test_overlap.py.
    bridge = replace(bridge, sink=replace(bridge.sink, max_in_flight=1))
    sink_server.script(Reply(202), Reply(202), Reply(202, delay=30.0))

    async def interrupted() -> None:
        async with httpx.AsyncClient() as http:
            worker = harness.worker(bridge, http)
            await worker.poll_once()
            delivery = asyncio.create_task(worker.deliver_once())
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


# -- the loops: run() ---------------------------------------------------------------------------


def test_run_first_delivers_what_an_earlier_run_left_pending(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    # An earlier run committed three events and stopped before sending them. The next run's
    # polls find nothing new, so only the delivery loop's first round can send them.
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 3)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    harness.pass_(bridge, deliver=False)
    assert harness.outbox.count_pending(bridge.id) == 3
    assert sink_server.events() == []

    async def run_until_sent() -> int:
        async with httpx.AsyncClient() as http:
            worker = harness.worker(bridge, http)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            await asyncio.to_thread(sink_server.wait_for_events, 3)
            stop.set()
            await asyncio.wait_for(task, 30)
            return worker.sink_counters.emitted

    emitted = asyncio.run(run_until_sent())
    assert emitted == 0  # nothing new was committed by this run
    assert len(set(sink_server.ids(accepted_only=True))) == 3
    assert harness.outbox.count_pending(bridge.id) == 0


def test_stopping_lets_the_request_in_flight_finish(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    # A graceful stop: delivery is not cancelled, so the request the sink is answering
    # finishes and is recorded as delivered; what was not sent yet stays pending.
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 3)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    # One request at a time, so that two events are still unsent when the stop comes.
    bridge = replace(bridge, sink=replace(bridge.sink, max_in_flight=1))
    sink_server.script(Reply(202, delay=1.0))

    async def stop_mid_request() -> None:
        async with httpx.AsyncClient() as http:
            worker = harness.worker(bridge, http)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            await asyncio.to_thread(sink_server.wait_for_requests, 1)
            stop.set()
            await asyncio.wait_for(task, 30)

    asyncio.run(stop_mid_request())
    assert len(sink_server.ids(accepted_only=True)) == 1
    assert harness.outbox.count_pending(bridge.id) == 2
    assert harness.outbox.stats(bridge.id).delivered == 1


def test_stopping_never_waits_for_a_scan(
    slow_harness: Harness,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    # The scan after DescribeUserPool waits a minute for its request token. Stopping the
    # bridge must not wait for it (nothing counts before the commit).
    pool = cognito_pool()
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)

    async def run_then_stop() -> float:
        async with httpx.AsyncClient() as http:
            worker = slow_harness.worker(bridge, http)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            await asyncio.sleep(1.0)
            assert not task.done()
            stopped_at = asyncio.get_running_loop().time()
            stop.set()
            await task
            return asyncio.get_running_loop().time() - stopped_at

    took = asyncio.run(run_then_stop())
    slow_harness.outbox.close()
    assert took < 30  # far below the minute the scan would have waited
    assert not outbox_has_baseline(slow_harness.state_dir, bridge)


def outbox_has_baseline(state: Path, bridge: Bridge) -> bool:
    with Outbox.open(state) as outbox:
        return outbox.has_baseline(bridge.id, bridge.source.pool.arn)


def test_a_failing_delivery_loop_is_raised_not_left_dead(
    harness: Harness,
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
    crashing = CrashBeforeMarking(harness.outbox, Boom("after the sink accepted"))

    async def run_it() -> None:
        async with httpx.AsyncClient() as http:
            worker = harness.worker(bridge, http, outbox=crashing)
            await asyncio.wait_for(worker.run(asyncio.Event()), 60)

    with pytest.raises(Boom):
        asyncio.run(run_it())
    assert crashing.crashed
