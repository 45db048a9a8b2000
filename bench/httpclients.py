"""Benchmark: POST throughput and latency of HTTP clients as concurrency grows (issue 11).

    .venv/bin/python bench/httpclients.py            # 3 runs per case, medians
    .venv/bin/python bench/httpclients.py --quick    # short cases, 1 run: a smoke run

Why: DESIGN §8 says one httpx `AsyncClient` gets slower as concurrency on it grows; the
deliverer's in-flight window (`spec.sink.maxInFlight`) and how the runner builds its client
are chosen from these figures (see `runner.delivery.deliverer`).

For each sink -- one answering at once, one answering after 20 ms (a sink "20 ms away") --
and each concurrency (1, 4, 8, 16, 32, 64 requests in flight), `c` workers POST the same
small binary-mode CloudEvent for a fixed time, through:

- `shared`: one `httpx.AsyncClient` for every worker (what the runner does today);
- `pool4`: a small pool, one `httpx.AsyncClient` per 4 workers;
- `per-worker`: one `httpx.AsyncClient` per worker;
- `lanes`: one `httpx.AsyncClient` over `runner.delivery.lanes.LaneTransport`, one
  connection pool per worker behind it (what the runner does: `runner.app`);
- `aiohttp`: one `aiohttp.ClientSession` (if aiohttp is installed; it is not a dependency
  of the runner: `pip install aiohttp` into the venv to measure it).

It prints requests/s and the median and 99th-percentile latency of each, and the baseline
of the same run: `shared` at concurrency 1 (one request at a time, today's delivery), so
that every figure is also a ratio to it.

The sinks run in their own process (so they do not compete with the clients for the GIL):
an HTTP/1.1 keep-alive responder on `asyncio.start_server`, answering 202 (after the delay).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from _loopback import start_sink, stop_sink

from runner.delivery.lanes import LaneTransport

CONCURRENCIES = [1, 4, 8, 16, 32, 64]
QUICK_CONCURRENCIES = [1, 8]
DELAYS_MS = [0, 20]
SECONDS = 2.0
QUICK_SECONDS = 0.3

HEADERS = {
    "content-type": "application/json",
    "ce-specversion": "1.0",
    "ce-id": "0f2c3d4e-5f60-4718-8293-a4b5c6d7e8f9",
    "ce-source": "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B",
    "ce-type": "com.amazon.cognito.user.created",
    "ce-subject": "user-000042",
    "ce-time": "2026-12-01T15:22:00Z",
}
BODY = (
    b'{"Username":"user-000042","Attributes":[{"Name":"sub","Value":"00000042-1111-4222-8333-'
    b'444444444444"},{"Name":"email","Value":"user-42@example.com"},{"Name":"email_verified",'
    b'"Value":"true"}],"UserCreateDate":"2024-05-01T00:00:00Z","UserLastModifiedDate":'
    b'"2024-05-02T00:00:42Z","Enabled":true,"UserStatus":"CONFIRMED"}'
)

Post = Callable[[int], Awaitable[None]]  # worker number -> one POST


@dataclass(frozen=True)
class Figure:
    rps: float
    p50_ms: float
    p99_ms: float


async def run_workers(post: Post, concurrency: int, seconds: float) -> Figure:
    """`concurrency` workers each POSTing in a loop for `seconds`; after a short warm-up
    (connections opened) so that connects are not what is measured."""
    for worker in range(concurrency):
        await post(worker)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(number: int) -> None:
        while (now := time.perf_counter()) < deadline:
            await post(number)
            latencies.append(time.perf_counter() - now)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Figure(len(latencies) / elapsed, statistics.median(ordered) * 1e3, p99 * 1e3)


async def httpx_clients(url: str, concurrency: int, seconds: float, per_client: int) -> Figure:
    """Workers sharing `httpx.AsyncClient`s, `per_client` workers on each."""
    count = max(1, -(-concurrency // per_client))
    limits = httpx.Limits(max_connections=max(100, concurrency))
    clients = [httpx.AsyncClient(limits=limits) for _ in range(count)]

    async def post(worker: int) -> None:
        response = await clients[worker // per_client].post(url, headers=HEADERS, content=BODY)
        if response.status_code != 202:
            raise SystemExit(f"the sink answered {response.status_code}")

    try:
        return await run_workers(post, concurrency, seconds)
    finally:
        for client in clients:
            await client.aclose()


async def httpx_lanes(url: str, concurrency: int, seconds: float) -> Figure:
    """Workers sharing one `httpx.AsyncClient` whose transport has a pool per worker."""
    limits = httpx.Limits(max_connections=max(100, concurrency))
    transport = LaneTransport(concurrency, limits=limits)
    async with httpx.AsyncClient(transport=transport) as client:

        async def post(worker: int) -> None:
            response = await client.post(url, headers=HEADERS, content=BODY)
            if response.status_code != 202:
                raise SystemExit(f"the sink answered {response.status_code}")

        return await run_workers(post, concurrency, seconds)


async def aiohttp_session(url: str, concurrency: int, seconds: float) -> Figure:
    import aiohttp  # optional: measured only when installed

    connector = aiohttp.TCPConnector(limit=max(100, concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(worker: int) -> None:
            async with session.post(url, headers=HEADERS, data=BODY) as response:
                await response.read()
                if response.status != 202:
                    raise SystemExit(f"the sink answered {response.status}")

        return await run_workers(post, concurrency, seconds)


def has_aiohttp() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def clients(url: str, seconds: float) -> dict[str, Callable[[int], Awaitable[Figure]]]:
    chosen: dict[str, Callable[[int], Awaitable[Figure]]] = {
        "shared": lambda c: httpx_clients(url, c, seconds, per_client=1 << 30),
        "pool4": lambda c: httpx_clients(url, c, seconds, per_client=4),
        "per-worker": lambda c: httpx_clients(url, c, seconds, per_client=1),
        "lanes": lambda c: httpx_lanes(url, c, seconds),
    }
    if has_aiohttp():
        chosen["aiohttp"] = lambda c: aiohttp_session(url, c, seconds)
    return chosen


def median_figure(figures: list[Figure]) -> Figure:
    return Figure(
        statistics.median(f.rps for f in figures),
        statistics.median(f.p50_ms for f in figures),
        statistics.median(f.p99_ms for f in figures),
    )


def measure_sink(delay_ms: int, concurrencies: list[int], seconds: float, runs: int) -> None:
    sink, url = start_sink(delay_ms / 1000)
    try:
        chosen = clients(url, seconds)
        print(f"\nsink answering after {delay_ms} ms")
        print(f"{'client':<12}{'in flight':>10}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}")
        baseline: float | None = None
        for concurrency in concurrencies:
            for name, measure in chosen.items():
                # Runs interleaved with nothing else: one case at a time, each run fresh.
                figure = median_figure([asyncio.run(measure(concurrency)) for _ in range(runs)])
                if baseline is None:
                    baseline = figure.rps  # `shared` at the first concurrency (1)
                print(
                    f"{name:<12}{concurrency:>10}{figure.rps:>10,.0f}"
                    f"{figure.rps / baseline:>7.2f}x{figure.p50_ms:>9.1f}{figure.p99_ms:>9.1f}",
                    flush=True,
                )
    finally:
        stop_sink(sink)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="HTTP client throughput vs concurrency.")
    parser.add_argument("--quick", action="store_true", help="short cases, one run (smoke)")
    parser.add_argument("--runs", type=int, help="runs per case (default 3, --quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per run (default 2)")
    parser.add_argument("--in-flight", type=int, action="append", help="only these (repeat)")
    parser.add_argument("--delay-ms", type=int, action="append", help="only these sinks")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else SECONDS)
    concurrencies = args.in_flight or (QUICK_CONCURRENCIES if args.quick else CONCURRENCIES)
    print(
        f"median of {runs} run(s) of {seconds:g}s per case; ratio: req/s over `shared` at "
        f"1 in flight with the same sink; aiohttp {'measured' if has_aiohttp() else 'absent'}"
    )
    for delay_ms in args.delay_ms or DELAYS_MS:
        measure_sink(delay_ms, concurrencies, seconds, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
