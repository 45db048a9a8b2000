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
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cloudevents.core.bindings.http import HTTPMessage

from runner import defaults
from runner.delivery.deliverer import Deliverer
from runner.delivery.encodings import encode_request
from runner.delivery.lanes import http_client
from runner.model import Bridge, CognitoSource, NewEvent, PoolArn, Sink, Target
from runner.polling.diff import Change, to_record
from runner.polling.events import build_events
from runner.secrets.resolver import SecretResolver
from runner.state.outbox import Outbox
from runner.state.store import STATE_FILE
from runner.status.counters import SinkCounters

TARGET_RATIO = 4.0
USERS, ROUNDS = 150, 4  # 600 events: each user created, then updated three times
QUICK_USERS, QUICK_ROUNDS = 10, 3
LATENCY = 0.020

SINK_PROGRAM = r"""
import asyncio, json, sys

DELAY = float(sys.argv[1])
arrived = []

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length, ce_id, path = 0, None, head.split(b" ", 2)[1]
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"ce-id":
                    ce_id = value.strip().decode()
            if length:
                await reader.readexactly(length)
            if path == b"/log":
                body = json.dumps(arrived).encode()
                arrived.clear()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
                continue
            arrived.append(ce_id)
            await asyncio.sleep(DELAY)
            writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def serve():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(serve())
"""

POOL = PoolArn(
    arn="arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B",
    partition="aws",
    region="us-west-2",
    account="043455440429",
    pool_id="us-west-2_fak3p001B",
)


def make_bridge(url: str, max_in_flight: int) -> Bridge:
    return Bridge(
        id="bench/latency",
        file=Path("bench/latency.yaml"),
        name="latency",
        source=CognitoSource(pool=POOL, initial_sync="emit"),
        sink=Sink(Target(url), format="binary", max_in_flight=max_in_flight),
    )


def scan_events(bridge: Bridge, users: int, rounds: int) -> list[NewEvent]:
    """`rounds` scans' events: every user created, then changed in each later scan."""
    events: list[NewEvent] = []
    for scan in range(rounds):
        changes = []
        for n in range(users):
            username = f"user-{n:06d}"
            raw = {
                "Username": username,
                "Attributes": [
                    {"Name": "sub", "Value": f"{n:08d}-1111-4222-8333-444444444444"},
                    {"Name": "email", "Value": f"user-{n}.{scan}@example.com"},
                ],
                "UserCreateDate": datetime(2024, 5, 1, tzinfo=UTC),
                "UserLastModifiedDate": datetime(2024, 5, 2, tzinfo=UTC) + timedelta(hours=scan),
                "Enabled": True,
                "UserStatus": "CONFIRMED",
            }
            kind = "created" if scan == 0 else "updated"
            changes.append(Change(kind, username, to_record(raw), None))
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
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp)
        shutil.copyfile(template, state_dir / STATE_FILE)
        with Outbox.open(state_dir) as outbox:
            async with http_client() as http:  # the runner's client
                deliverer = Deliverer(
                    bridge,
                    outbox,
                    http=http,
                    state_dir=state_dir,
                    secrets=SecretResolver(env={}),
                    counters=SinkCounters(),
                )
                started = time.perf_counter()
                await deliverer.deliver_pending()
                elapsed = time.perf_counter() - started
            stats = outbox.stats(bridge.id)
    if stats.delivered != count or stats.pending:
        raise SystemExit(f"delivery incomplete: {stats}")
    return count / elapsed


async def sequential(url: str, messages: list[HTTPMessage]) -> float:
    async with httpx.AsyncClient() as http:
        started = time.perf_counter()
        for message in messages:
            response = await http.post(url, headers=message.headers, content=message.body)
            if response.status_code != 202:
                raise SystemExit(f"sequential script: the sink answered {response.status_code}")
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

    sink = subprocess.Popen(
        [sys.executable, "-c", SINK_PROGRAM, str(LATENCY)], stdout=subprocess.PIPE, text=True
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{int(sink.stdout.readline())}/events"
        bridge = make_bridge(url, args.max_in_flight)
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
        sink.kill()
        sink.wait()
        if sink.stdout is not None:
            sink.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if not ok and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
