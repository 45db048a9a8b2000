"""Streamed scans (issue 11): events leave before the scan ends, each chunk commits its own
events and rows, a crash between chunks loses and repeats nothing, an interrupted scan sweeps
nothing, and a large pool's first scan is segmented from DescribeUserPool's estimate.

Against moto's Cognito over HTTP (through the fault proxy where a request must be held or
refused), a real SQLite outbox and a loopback sink.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from runner.polling import poll as poll_module
from runner.polling import stream as stream_module
from runner.state.outbox import Outbox
from tests.peers.faults import OutboxProxy
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.sink_server import SinkServer
from tests.polling.conftest import DELETED, Boom, Harness, changes_of, make_bridge


class NoWholeSnapshot(OutboxProxy):
    """The real outbox, but loading a bridge's whole snapshot fails the test: a streamed
    poll reads only the entries of each chunk's users."""

    def load_snapshot(self, bridge_id: str, pool_arn: str) -> Any:
        raise AssertionError("a poll loaded the whole snapshot")


def test_first_events_reach_the_sink_before_the_scan_ends(
    harness: Harness,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    cognito_proxy: Any,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 600)  # 10 pages
    bridge = make_bridge(pool, cognito_proxy.endpoint, sink_server.url)
    pages = 0
    released_by_an_event = threading.Event()
    held_in_vain = threading.Event()

    def hold_the_last_pages(operation: str, body: dict[str, Any]) -> None:
        # From the 4th page on, the scan is held until the sink has an event (at most 30 s):
        # a poll that sent nothing before its scan ended would be held the whole 30 s.
        nonlocal pages
        if operation != "ListUsers":
            return
        pages += 1
        if pages >= 4 and not released_by_an_event.is_set():
            try:
                sink_server.wait_for_events(1, timeout=30.0)
            except AssertionError:
                held_in_vain.set()
                return
            released_by_an_event.set()

    cognito_proxy.before_forward = hold_the_last_pages

    async def run() -> None:
        async with httpx.AsyncClient() as http:
            worker = harness.worker(bridge, http, outbox=NoWholeSnapshot(harness.outbox))
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            await asyncio.to_thread(sink_server.wait_for_events, 600, 30.0)
            stop.set()
            await task

    asyncio.run(run())
    # The first event arrived while the first scan was held.
    assert not held_in_vain.is_set()
    assert released_by_an_event.is_set()
    events = sink_server.events(accepted_only=True)
    assert sorted(e.get_data()["Username"] for e in events) == sorted(names)  # type: ignore[index]
    assert len({e.get_id() for e in events}) == 600


class CrashOnCommit(OutboxProxy):
    """The real outbox, but the process dies as the `n`th scan commit begins (nothing of it
    written): the earlier chunks are in, the rest of the scan is not."""

    def __init__(self, outbox: Outbox, n: int) -> None:
        super().__init__(outbox)
        self._left = n

    def commit_scan(self, *args: Any, **kwargs: Any) -> list[int]:
        self._left -= 1
        if self._left == 0:
            raise Boom("between chunks")
        return self._outbox.commit_scan(*args, **kwargs)


def test_a_crash_between_chunks_loses_nothing_and_repeats_nothing(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 300)  # chunks of 60, 120, 120 users
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    with pytest.raises(Boom):
        harness.pass_(bridge, outbox=CrashOnCommit(harness.outbox, 2))
    assert harness.outbox.count_pending(bridge.id) == 60  # the first chunk was committed
    harness.reopen_outbox()
    harness.pass_(bridge)  # the restarted runner
    events = sink_server.events(accepted_only=True)
    assert len(events) == 300  # nobody twice: the first chunk's users were in the snapshot
    assert len({e.get_id() for e in events}) == 300
    assert set(changes_of(events)) == {(f"user{i:06d}", "created") for i in range(300)}
    harness.pass_(bridge)  # and the next scan finds nothing to send, or to delete
    assert len(sink_server.events()) == 300


def test_an_interrupted_scan_sweeps_nothing_and_the_next_complete_one_does(
    harness: Harness,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    cognito_proxy: Any,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 130)  # three pages
    bridge = make_bridge(pool, cognito_proxy.endpoint, sink_server.url)
    harness.pass_(bridge)
    cognito_admin.delete_user(pool.id, names[-1])  # on the last page
    cognito_admin.create_user(pool.id, "aaa-newcomer")  # moto lists it after the others
    cognito_proxy.reject_token_next(1000)  # every scan now ends after its first page
    interrupted = harness.pass_(bridge)
    assert interrupted.source_health.status == "False"
    assert [e for e in sink_server.events() if e.get_type() == DELETED] == []
    cognito_proxy.reset_faults()
    harness.pass_(bridge)
    later = changes_of(sink_server.events()[130:])
    assert later == {(names[-1], "deleted"): 1, ("aaa-newcomer", "created"): 1}


def test_a_large_pools_first_scan_is_segmented_from_its_estimated_size(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    cognito_proxy: Any,
) -> None:
    # A 150-user pool stands for one of 1,200 or more: the threshold is lowered to 100.
    monkeypatch.setattr(poll_module, "SEGMENT_THRESHOLD_USERS", 100)
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 150)
    bridge = make_bridge(pool, cognito_proxy.endpoint, sink_server.url)
    asked: list[tuple[str, str | None]] = []
    cognito_proxy.before_forward = lambda op, body: asked.append((op, body.get("Filter")))
    worker = harness.pass_(bridge)
    assert asked[0] == ("DescribeUserPool", None)
    filters = {f for op, f in asked if op == "ListUsers"}
    assert filters == {f'sub ^= "{c}"' for c in "0123456789abcdef"}  # no whole-pool scan
    assert worker.source_counters.users_tracked == 150
    events = sink_server.events(accepted_only=True)
    assert sorted(e.get_data()["Username"] for e in events) == sorted(names)  # type: ignore[index]


def test_chunks_grow_from_one_page_to_the_chunk_size(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 1500)  # 25 pages, one segment (the threshold is lifted)
    monkeypatch.setattr(poll_module, "SEGMENT_THRESHOLD_USERS", 10_000)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    sizes: list[int] = []

    class Recording(OutboxProxy):
        def commit_scan(self, bridge_id: str, arn: str, changes: Any, *a: Any, **k: Any) -> Any:
            sizes.append(len(changes))
            return self._outbox.commit_scan(bridge_id, arn, changes, *a, **k)

    harness.pass_(bridge, outbox=Recording(harness.outbox), deliver=False)
    # 60, 120, 240, 480, then 600 at most; then the sweep's (empty) transactions.
    assert stream_module.CHUNK_USERS == 600
    assert [n for n in sizes if n] == [60, 120, 240, 480, 600]
