"""Benchmark: binary delivery to a sink 20 ms away, overlapping, against the sequential script.

    .venv/bin/python bench/latency.py            # median of 3 runs
    .venv/bin/python bench/latency.py --quick    # a few events, 1 run: a smoke run

What is timed is `Deliverer.deliver_pending()` of one bridge (`format: binary`,
`maxInFlight` as given, default the bridge default; the runner's HTTP client) from an
outbox pre-filled with realistic user events -- several per user, committed as successive
scans commit them (every user's `created`, then every user's first `updated`, ...) --
until every event is committed as delivered. Beside it, in the same run and against the
same sink: the plain sequential script, one `httpx.AsyncClient` posting the same requests,
prebuilt, one at a time.

The sink runs in its own process and answers each request 20 ms after reading it. It logs
the `ce-id` of every request in the order it arrived; afterwards the bench checks, per user,
that the user's events arrived in seq order (each exactly once), and prints it.

Target (issue 11): ours >= 4x the sequential script, per-user order intact.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _loopback import fresh_deliverer, make_bridge, post_each, start_sink, stop_sink, user_change
from cloudevents.core.bindings.http import HTTPMessage

from runner import defaults
from runner.delivery.encodings import encode_request
from runner.model import Bridge, NewEvent
from runner.polling.events import build_events
from runner.state.outbox import Outbox
from runner.state.store import STATE_FILE

TARGET_RATIO = 4.0
USERS, ROUNDS = 150, 4  # 600 events: each user created, then updated three times
QUICK_USERS, QUICK_ROUNDS = 10, 3
LATENCY = 0.020


def scan_events(bridge: Bridge, users: int, rounds: int) -> list[NewEvent]:
    """`rounds` scans' events: every user created, then changed in each later scan."""
    events: list[NewEvent] = []
    for scan in range(rounds):
        changes = [
            user_change(
                "created" if scan == 0 else "updated",
                n,
                email=f"user-{n}.{scan}@example.com",
                modified=datetime(2024, 5, 2, tzinfo=UTC) + timedelta(hours=scan),
            )
            for n in range(users)
        ]
        events += build_events(
            bridge, changes, observed_at=datetime.now(UTC), scan_id=f"bench-{scan}"
        )
    return events


def order_check(arrived: list[str], user_of: dict[str, str], seq_of: dict[str, int]) -> str:
    """'intact' when every event arrived exactly once and each user's in seq order."""
    if sorted(arrived) != sorted(seq_of):
        return f"BROKEN: {len(arrived)} arrivals for {len(seq_of)} events"
    last: dict[str, int] = {}
    for event_id in arrived:
        user, seq = user_of[event_id], seq_of[event_id]
        if seq < last.get(user, -1):
            return f"BROKEN: {user}'s events out of order"
        last[user] = seq
    return "intact"


async def sink_log(url: str) -> list[str]:
    async with httpx.AsyncClient() as http:
        response = await http.get(url.rsplit("/", 1)[0] + "/log")
        log: list[str] = json.loads(response.content)
        return log


async def ours(bridge: Bridge, template: Path, count: int) -> float:
    async with fresh_deliverer(bridge, template, count) as deliverer:
        started = time.perf_counter()
        await deliverer.deliver_pending()
        elapsed = time.perf_counter() - started
    return count / elapsed


async def sequential(url: str, messages: list[HTTPMessage]) -> float:
    async with httpx.AsyncClient() as http:
        started = time.perf_counter()
        await post_each(http, url, messages, "sequential script")
        elapsed = time.perf_counter() - started
    return len(messages) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delivery to a 20 ms sink vs sequential.")
    parser.add_argument("--quick", action="store_true", help="a few events, one run (smoke)")
    parser.add_argument("--runs", type=int, help="runs (default 3, --quick 1)")
    parser.add_argument("--max-in-flight", type=int, default=defaults.MAX_IN_FLIGHT)
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    users, rounds = (QUICK_USERS, QUICK_ROUNDS) if args.quick else (USERS, ROUNDS)

    sink, url = start_sink(LATENCY, log=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        bridge = make_bridge("latency", url, "binary", args.max_in_flight)
        with Outbox.open(workdir) as outbox:
            outbox.append_events(bridge.id, scan_events(bridge, users, rounds))
            stored = outbox.pending(bridge.id, users * rounds)
        user_of = {ev.event_id: ev.user_key for ev in stored}
        seq_of = {ev.event_id: ev.seq for ev in stored}
        messages = [encode_request("binary", [ev]) for ev in stored]
        ours_runs, seq_runs, orders = [], [], []
        for _ in range(runs):  # interleaved, so that machine load affects both alike
            ours_runs.append(asyncio.run(ours(bridge, workdir / STATE_FILE, len(stored))))
            orders.append(order_check(asyncio.run(sink_log(url)), user_of, seq_of))
            seq_runs.append(asyncio.run(sequential(url, messages)))
            asyncio.run(sink_log(url))  # clear the sink's log
        mine, theirs = statistics.median(ours_runs), statistics.median(seq_runs)
        order = (
            "intact"
            if all(o == "intact" for o in orders)
            else next(o for o in orders if o != "intact")
        )
        ratio = mine / theirs
        ok = ratio >= TARGET_RATIO and order == "intact"
        print(
            f"median of {runs} run(s); {len(stored)} events of {users} users, binary; sink "
            f"answering after {LATENCY * 1000:g} ms in its own process; maxInFlight "
            f"{args.max_in_flight}"
        )
        print(f"{'ours ev/s':>10}{'sequential ev/s':>17}{'ratio':>8}  per-user order  target")
        print(
            f"{mine:>10,.0f}{theirs:>17,.0f}{ratio:>7.2f}x  {order:<14}  "
            f">= {TARGET_RATIO:g}x, order intact {'ok' if ok else 'MISSED'}"
        )
    finally:
        stop_sink(sink)
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if not ok and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
