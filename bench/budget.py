"""Benchmark: the shared request budget under an emulated Cognito quota (issue 11, item 4).

    .venv/bin/python bench/budget.py            # 24,000 + 300 users, 30 s windows, 3 rounds
    .venv/bin/python bench/budget.py --quick    # 1,500 + 120 users, 4 s windows, 1 round

Cognito's ListUsers quota is 30 requests/s per account and region. Here a fault proxy in front
of moto's server adds 100 ms to every request and answers TooManyRequestsException above 30
requests/s, as Cognito would, and the runner's clients run at `--aws-rps 30` (the whole quota,
the hardest case for "no throttles"). Two pools of one account and region share the budget,
each polled as the runner's poll loop does (polls started `pollInterval` apart, start to
start, back to back when a scan outlasts it):

    big pool     24,000 users, 16 segments, pollInterval 1 s (it cannot keep up: ~410 pages)
    small pool   300 users (5 pages), pollInterval 1 s (the shortest allowed)

1. A pool alone still gets the whole rate: the big pool by itself, share-per-pool bucket.
2. Both pools together, share-per-pool bucket (the runner) beside the first-come bucket of
   before (`RequestBudgets(fair=False)`, the baseline), alternating, in the same run.

Printed per case (the median round's figures; throttles summed over every round): `used`,
the requests the proxy answered in the window / (window x 30) (target >= 0.95; at most 0.98
with the bucket's 2 % margin, less the tail of each segmented scan, when its last segments
cannot use the whole rate); `while waiting`, the slots granted of those due while requests
waited in the bucket (the scheduler's own share: 1.0 when no slot went unused while someone
waited); throttled answers (target 0); the most requests sent in any one second (never above
30). For the small pool: its achieved scan period (`SourceCounters`: the time between the
starts of consecutive complete scans) beside its interval, whether it keeps up, its median
scan time, and the most slots one of its requests waited in the bucket (a slot = 1.02/30 s).
Run on a machine with two cores for everything, the emulated Cognito (in a process of its
own, answering from memory what moto answered once) included.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import multiprocessing
import statistics
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from _cognito import AUTH, CREDENTIALS, max_in_window, moto_admin  # adds the root to sys.path

from runner._kits.aio import sleep_or_wake
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import MARGIN, RequestBudgets, TokenBucket
from runner.sources.cognito.client import CognitoClients, CognitoPool
from runner.sources.cognito.scan import SEGMENT_ALPHABET
from runner.status.counters import SourceCounters
from tests.peers import cognito_proxy
from tests.peers.cognito_proxy import CognitoProxy
from tests.peers.moto_server import PoolInfo, admin_client

AWS_RPS = 30.0
QUOTA = 30.0
LATENCY = 0.1
BIG_INTERVAL = 1.0
SMALL_INTERVAL = 1.0
WARM_UP = 1.0  # seconds before the window opens: every segment is queued by then


class AnsweringProxy(CognitoProxy):
    """The fault proxy, answering a request it has answered before from memory: moto filters
    every user of a pool for each ListUsers (~20 ms at 12,000 users, a core at 30/s), which
    Cognito does not make its callers wait for. Latency and the quota apply all the same."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self._answers: dict[str, tuple[int, bytes, list[tuple[str, str]]]] = {}

    def _forward(self, handler: Any, raw: bytes) -> None:
        target = handler.headers.get("X-Amz-Target", "")
        key = target + json.dumps(json.loads(raw or b"{}"), sort_keys=True)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._ask_upstream(handler, raw)
            if answer[0] == 200:
                self._answers[key] = answer
        cognito_proxy._send(handler, *answer)


def warm_up(endpoint: str, pools: list[PoolInfo]) -> None:
    """Read every page the benchmark's scans will ask for once, so that the proxy knows them."""
    client = admin_client(endpoint)
    try:
        for pool, prefixes in zip(pools, (list(SEGMENT_ALPHABET), [""]), strict=True):
            for prefix in prefixes:
                params: dict[str, Any] = {"UserPoolId": pool.id, "Limit": 60}
                if prefix:
                    params["Filter"] = f'sub ^= "{prefix}"'
                pages = client.get_paginator("list_users").paginate(**params)
                for _ in pages:
                    pass
    finally:
        client.close()


def serve(conn: Connection, sizes: tuple[int, int]) -> None:
    """In a process of its own, as Cognito is: moto's server, the proxy in front of it, and
    the two pools; answers "reset", "requests" and "stop" on `conn`."""
    with moto_admin() as (endpoint, admin):
        proxy = AnsweringProxy(endpoint).start()
        try:
            pools = [admin.create_pool(name) for name in ("bench-big", "bench-small")]
            for pool, users in zip(pools, sizes, strict=True):
                admin.seed_users(pool, users)
            warm_up(proxy.endpoint, pools)
            proxy.latency = LATENCY
            proxy.max_rps = QUOTA
            conn.send((proxy.endpoint, pools))
            while (command := conn.recv()) != "stop":
                if command == "reset":
                    proxy.reset_stats()
                    conn.send(None)
                else:
                    with proxy._lock:
                        conn.send([(r.at, r.answered) for r in proxy.requests])
        finally:
            proxy.stop()


class Cognito:
    """The emulated Cognito endpoint, run by `serve` in another process (CLOCK_MONOTONIC is
    one clock for every process, so the request times it records compare with ours)."""

    def __init__(self, sizes: tuple[int, int]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child, sizes), daemon=True)
        self._process.start()
        self.endpoint, (self.big, self.small) = self._conn.recv()

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def requests(self) -> list[tuple[float, str]]:
        self._conn.send("requests")
        answer: list[tuple[float, str]] = self._conn.recv()
        return answer

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=30)


@dataclass
class Polled:
    """What one pool's poll loop achieved in the window."""

    counters: SourceCounters = field(default_factory=SourceCounters)
    periods: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    throttles: int = 0


async def poll_loop(
    pool: CognitoPool, interval: float, segments: int, stop: asyncio.Event, polled: Polled
) -> None:
    """The runner's poll loop, scans only (no diff, no commit: the budget is measured)."""
    while not stop.is_set():
        started = time.monotonic()
        polled.counters.scan_started(started)
        result = await pool.scan(segments=segments)
        finished = time.monotonic()
        polled.throttles += result.throttles
        if result.complete:
            polled.counters.scan_completed(finished, interval)
            polled.durations.append(finished - started)
            if polled.counters.scan_period is not None:
                polled.periods.append(polled.counters.scan_period)
        await sleep_or_wake(max(0.0, interval - (finished - started)), stop)


@dataclass
class Case:
    used: float  # requests the proxy answered in the window / (window x --aws-rps)
    used_while_waiting: float  # slots granted / slots due while requests waited in the bucket
    throttled: int  # TooManyRequestsException answers in the window
    most_sent: int  # the most requests sent in any one-second window (after our pacing)
    small: Polled | None
    small_slots_waited: float  # the most slots one small-pool request waited for


class Tracked:
    """Wraps a bucket's `acquire` to note, at each grant, whether requests still wait."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.waiting = 0
        self.grants: list[tuple[float, int]] = []  # (when, requests still waiting)
        acquire = bucket.acquire

        async def tracked(key: str | None = None) -> float:
            self.waiting += 1
            try:
                return await acquire(key)
            finally:
                self.waiting -= 1
                self.grants.append((time.monotonic(), self.waiting))

        bucket.acquire = tracked  # type: ignore[method-assign]

    def used_while_waiting(self, opened: float, closed: float, interval: float) -> float:
        """Of the slots due after each grant that left requests waiting, the share used:
        1.0 when the next grant came exactly one slot later every time."""
        inside = [(t, w) for t, w in self.grants if opened <= t < closed]
        gaps = [b - a for (a, waiting), (b, _) in itertools.pairwise(inside) if waiting]
        return len(gaps) * interval / sum(gaps) if gaps else float("nan")


def run_case(cognito: Cognito, *, together: bool, fair: bool, window: float) -> Case:
    clients = CognitoClients(SecretResolver(env=CREDENTIALS), RequestBudgets(AWS_RPS, fair=fair))
    big, small = cognito.big, (cognito.small if together else None)
    big_source = big.source(cognito.endpoint, auth=AUTH)
    big_pool = clients.pool(big_source)
    small_pool = clients.pool(small.source(cognito.endpoint, auth=AUTH)) if small else None
    polled_small = Polled() if small else None
    tracked = Tracked(big_pool.bucket)  # one bucket: both pools are of one account and region
    sent: list[float] = []  # registered after the runner's pacing hook, so: as sent
    clients.client_for(big_source).meta.events.register(
        "before-send.cognito-identity-provider", lambda **_: sent.append(time.monotonic())
    )

    async def both() -> tuple[float, float]:
        stop = asyncio.Event()
        loops = [poll_loop(big_pool, BIG_INTERVAL, 16, stop, Polled())]
        if small_pool is not None and polled_small is not None:
            loops.append(poll_loop(small_pool, SMALL_INTERVAL, 1, stop, polled_small))
        tasks = [asyncio.create_task(loop) for loop in loops]
        await asyncio.sleep(WARM_UP)
        opened = time.monotonic()
        await asyncio.sleep(window)
        closed = time.monotonic()
        for task in tasks:  # abandon the scans in flight, as a stopping runner does
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return opened, closed

    cognito.reset()
    try:
        opened, closed = asyncio.run(both())
    finally:
        clients.close()
    inside = [answered for at, answered in cognito.requests() if opened <= at < closed]
    interval = (1 + MARGIN) / AWS_RPS
    by_pool = big_pool.bucket.stats_by_key()
    return Case(
        used=inside.count("forwarded") / ((closed - opened) * AWS_RPS),
        used_while_waiting=tracked.used_while_waiting(opened, closed, interval),
        throttled=inside.count("TooManyRequestsException"),
        most_sent=max_in_window([t for t in sent if opened <= t < closed]),
        small=polled_small,
        small_slots_waited=by_pool[small.id].max_wait_seconds / interval if small else 0.0,
    )


HEADER = (
    "   case             used  while waiting  throttled  most/1s sent"
    "   small pool: period vs interval, keeps up, scan, most slots waited"
)


def describe(name: str, case: Case) -> str:
    line = (
        f"   {name:<16} {case.used:4.2f}  {case.used_while_waiting:13.3f}  {case.throttled:9d}"
        f"  {case.most_sent:12d}"
    )
    small = case.small
    if small is None:
        return line
    periods = small.periods or [float("nan")]
    keeps = "yes" if small.counters.keeping_up else "no"
    scan = statistics.median(small.durations or [float("nan")])
    return (
        f"{line}   {statistics.median(periods):5.2f} s (max {max(periods):5.2f}) vs "
        f"{SMALL_INTERVAL:g} s, {keeps:<3}, {scan:4.2f} s, {case.small_slots_waited:4.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small pools, short windows")
    args = parser.parse_args(argv)
    big_users, small_users, window, rounds = (
        (1500, 120, 4.0, 1) if args.quick else (24000, 300, 30.0, 3)
    )

    cognito = Cognito((big_users, small_users))
    alone: list[Case] = []
    together: dict[str, list[Case]] = {"first-come": [], "fair": []}
    try:
        for _ in range(rounds):  # alternate, so that drift hits every case alike
            alone.append(run_case(cognito, together=False, fair=True, window=window))
            for name, fair in (("first-come", False), ("fair", True)):
                together[name].append(run_case(cognito, together=True, fair=fair, window=window))
    finally:
        cognito.stop()

    print(
        f"request budget: --aws-rps {AWS_RPS:g} against a {QUOTA:g}/s quota (+{LATENCY * 1000:.0f}"
        f" ms per request), {window:g} s windows, median of {rounds} round(s)"
    )
    print(f"   big pool {big_users} users, 16 segments, pollInterval {BIG_INTERVAL:g} s")
    print(f"   small pool {small_users} users, pollInterval {SMALL_INTERVAL:g} s")
    print(HEADER)
    median_alone = median_case(alone)
    medians = {name: median_case(cases) for name, cases in together.items()}
    # Throttles are rare events: the column shows every round's, not the median round's.
    median_alone = dataclasses.replace(median_alone, throttled=sum(c.throttled for c in alone))
    medians = {
        name: dataclasses.replace(case, throttled=sum(c.throttled for c in together[name]))
        for name, case in medians.items()
    }
    print(describe("1. big alone", median_alone))
    print(describe("2. first-come", medians["first-come"]))
    print(describe("   fair", medians["fair"]))
    fair, baseline = medians["fair"], medians["first-come"]
    assert fair.small is not None and baseline.small is not None
    ratio = statistics.median(baseline.small.durations or [float("nan")]) / statistics.median(
        fair.small.durations or [float("nan")]
    )
    print(f"small pool's scan, first-come / fair: {ratio:.2f}x")
    checks = {
        "budget used >= 0.95 (alone and fair)": min(median_alone.used, fair.used) >= 0.95,
        "no throttles (every case, every round)": all(
            c.throttled == 0 for c in [median_alone, *medians.values()]
        ),
        f"never more than {AWS_RPS:g} requests sent in one second": all(
            c.most_sent <= AWS_RPS for c in [*alone, *together["fair"], *together["first-come"]]
        ),
        "small pool keeps up with its interval (fair)": bool(fair.small.counters.keeping_up),
    }
    for what, ok in checks.items():
        print(f"{what}: {'ok' if ok else 'MISSED'}")
    return 0 if all(checks.values()) or args.quick else 1


def median_case(cases: list[Case]) -> Case:
    """The case whose budget use is the median (its other figures come with it)."""
    ordered = sorted(cases, key=lambda c: c.used)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    sys.exit(main())
