"""Benchmark: delivery from the SQLite outbox to a loopback sink, per format (issue 3 targets).

    .venv/bin/python bench/deliver.py            # median of 5 runs per case
    .venv/bin/python bench/deliver.py --quick    # small counts, 1 run: a smoke run

What is timed is `Deliverer.deliver_pending()` of one bridge (`maxInFlight` the bridge
default unless `--max-in-flight`; the runner's HTTP client, `runner.delivery.lanes`) from an
outbox pre-filled with
realistic user events (built by `runner.polling.events.build_events`) until every event is committed
as delivered: outbox reads, CloudEvents encoding, the POSTs, and the delivered marks.

Beside it, in the same run and against the same sink, the baseline: a raw httpx loop
posting the same requests, prebuilt (the very bytes delivery sends, encoded beforehand from
the events as the outbox returns them), one at a time on one `AsyncClient` -- the floor for
ordered delivery over one client. The ratio printed is ours / raw in events/s.

The sink runs in its own process (so it does not compete with the client for the GIL): a
minimal HTTP/1.1 keep-alive responder on `asyncio.start_server` that reads each request
and answers 202. Measured on a 2-core machine it answers a sequential httpx client
faster than `http.server.ThreadingHTTPServer` (~1,050 vs ~800 requests/s), so the client,
not the sink, is what these figures measure.

Targets (issue 3): binary >= 0.8x the raw loop; batch >= 20,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _loopback import fresh_deliverer, make_bridge, post_each, start_sink, stop_sink, user_change
from cloudevents.core.bindings.http import HTTPMessage

from runner import defaults
from runner.delivery.encodings import encode_request
from runner.model import Bridge, NewEvent, SinkFormat
from runner.polling.events import build_events
from runner.state.outbox import Outbox
from runner.state.store import STATE_FILE

BINARY_TARGET_RATIO = 0.8
BATCH_TARGET_EPS = 20_000
BATCH_SIZE = 100
FULL_COUNTS: list[tuple[SinkFormat, int]] = [
    ("binary", 2_000),
    ("structured", 2_000),
    ("batch", 30_000),
]
QUICK_COUNTS: list[tuple[SinkFormat, int]] = [
    ("binary", 200),
    ("structured", 200),
    ("batch", 2_000),
]


def user_events(bridge: Bridge, count: int) -> list[NewEvent]:
    changes = [
        user_change(
            "created",
            n,
            email=f"user-{n}@example.com",
            modified=datetime(2024, 5, 2, 0, 0, n % 60, tzinfo=UTC),
            verified=True,
        )
        for n in range(count)
    ]
    return build_events(bridge, changes, observed_at=datetime.now(UTC), scan_id="bench")


Measured = tuple[float, float]  # events/s (wall), CPU microseconds per event (all threads)


@dataclass(frozen=True)
class Case:
    """One format's fixtures, built before anything is timed: a filled outbox file to copy
    for each run, and the raw loop's prebuilt requests. The events themselves are not
    kept, so that their objects do not weigh on the garbage collector while timing."""

    bridge: Bridge
    count: int
    template: Path  # a state.sqlite holding `count` pending events
    messages: list[HTTPMessage]


def build_case(url: str, format: SinkFormat, count: int, workdir: Path, max_in_flight: int) -> Case:
    bridge = make_bridge("deliver", url, format, max_in_flight, max_batch_size=BATCH_SIZE)
    events = user_events(bridge, count)
    template_dir = workdir / format
    with Outbox.open(template_dir) as outbox:
        outbox.append_events(bridge.id, events)
        stored = outbox.pending(bridge.id, count)  # what delivery will read and send
    per_request = bridge.sink.max_batch_size if format == "batch" else 1
    messages = [
        encode_request(format, stored[i : i + per_request]) for i in range(0, count, per_request)
    ]
    return Case(bridge, count, template_dir / STATE_FILE, messages)


async def deliver_once(case: Case) -> Measured:
    """One drain of a fresh copy of the filled outbox, until all is committed delivered."""
    async with fresh_deliverer(case.bridge, case.template, case.count) as deliverer:
        gc.collect()  # start every timed run with the same (empty) garbage
        started, cpu = time.perf_counter(), time.process_time()
        await deliverer.deliver_pending()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return case.count / elapsed, cpu / case.count * 1e6


async def raw_loop(case: Case) -> Measured:
    """Posting the same requests, prebuilt, one at a time on one client."""
    uri = case.bridge.sink.target.uri
    async with httpx.AsyncClient() as http:
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        await post_each(http, uri, case.messages, "raw loop")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return case.count / elapsed, cpu / case.count * 1e6


def medians(runs: int, *measures: Callable[[], Awaitable[Measured]]) -> list[tuple[float, float]]:
    """Median (events/s, CPU us/event) of each measure, runs interleaved (A B A B ...) so
    that a change in machine load affects all of them alike."""
    results: list[list[Measured]] = [[] for _ in measures]
    for _ in range(runs):
        for measure, bucket in zip(measures, results, strict=True):
            bucket.append(asyncio.run(measure()))  # type: ignore[arg-type]
    return [
        (statistics.median(r[0] for r in bucket), statistics.median(r[1] for r in bucket))
        for bucket in results
    ]


def verdict(format: SinkFormat, ours: float, ratio: float) -> tuple[str, bool]:
    if format == "binary":
        return f">= {BINARY_TARGET_RATIO}x raw", ratio >= BINARY_TARGET_RATIO
    if format == "batch":
        return f">= {BATCH_TARGET_EPS:,} ev/s (batches of {BATCH_SIZE})", ours >= BATCH_TARGET_EPS
    return "(no target)", True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delivery throughput per format vs raw httpx.")
    parser.add_argument("--quick", action="store_true", help="small counts, one run (smoke)")
    parser.add_argument(
        "--format",
        action="append",
        choices=["binary", "structured", "batch"],
        help="only these formats (repeatable; default: all)",
    )
    parser.add_argument("--runs", type=int, help="runs per case (default: 5, --quick: 1)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=defaults.MAX_IN_FLIGHT,
        help=f"the bridge's spec.sink.maxInFlight (default: {defaults.MAX_IN_FLIGHT})",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 5)
    counts = [
        (format, count)
        for format, count in (QUICK_COUNTS if args.quick else FULL_COUNTS)
        if not args.format or format in args.format
    ]

    sink, url = start_sink()
    workdir = Path(tempfile.mkdtemp(prefix="bench-deliver-"))
    try:
        print(
            f"median of {runs} run(s); sink: asyncio responder in its own process; "
            f"maxInFlight {args.max_in_flight}"
        )
        print(
            f"{'format':<11}{'events':>8}{'ours ev/s':>12}{'raw ev/s':>12}{'ratio':>8}"
            f"{'ours cpu':>10}{'raw cpu':>9}  target (cpu: us/event)"
        )
        missed = False
        for format, count in counts:
            case = build_case(url, format, count, workdir, args.max_in_flight)
            (ours, ours_cpu), (raw, raw_cpu) = medians(
                runs, lambda c=case: deliver_once(c), lambda c=case: raw_loop(c)
            )
            target, ok = verdict(format, ours, ours / raw)
            missed |= not ok
            print(
                f"{format:<11}{count:>8}{ours:>12,.0f}{raw:>12,.0f}{ours / raw:>7.2f}x"
                f"{ours_cpu:>10,.0f}{raw_cpu:>9,.0f}  {target} {'ok' if ok else 'MISSED'}"
            )
    finally:
        stop_sink(sink)
        shutil.rmtree(workdir, ignore_errors=True)
    # A smoke run only checks that everything runs; the full run fails on a missed target.
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
