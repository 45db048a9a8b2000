"""The metrics endpoints: start-up and /metrics scrape time, today's code against a baseline.

    .venv/bin/python bench/endpoints.py [--baseline REV] [--bridges N] [--rounds R]

The baseline is `runner/observability/endpoints.py` as of git revision REV (default 683c87b, the
hand-written HTTP plumbing before the restructure of the endpoints and readiness), loaded from git
into this process beside today's module, so both are measured in the same run, on the same machine,
against the same collector: a Reconciler-like object with N bridges (counters and rendered status
documents). Rounds alternate between the two, so that a noisy neighbour hurts both alike.

Measured, medians over the rounds:

- import: importing the endpoints module in a fresh interpreter, its shared dependencies
  (prometheus_client, runner.observability.metrics) imported before the clock starts;
- start: `MetricsServer(...)`, `await start()` and a first /healthz answered;
- scrape: one GET /metrics, gzipped (what Prometheus asks for) and plain, and one /readyz.

It also checks that both answer the same (status line, headers, body; Date, Connection and
the process_* series aside) to a set of requests (every path, HEAD, OpenMetrics, gzip, JSON,
a query string, an unknown path and method), and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gzip
import importlib.util
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.observability import endpoints as current  # noqa: E402
from runner.status.counters import SinkCounters, SourceCounters  # noqa: E402
from runner.status.document import render_status  # noqa: E402
from runner.status.readiness import (  # noqa: E402
    BridgeReadiness,
    Condition,
    readiness_from_document,
)

MODULE = "runner/observability/endpoints.py"
# The last revision whose endpoints.py served /metrics with hand-written HTTP plumbing.
BASELINE = "683c87b"


# -- the collector's input --------------------------------------------------------------------


@dataclass
class Poller:
    source_counters: SourceCounters
    sink_counters: SinkCounters


@dataclass
class Running:
    poller: Poller


@dataclass
class Reconciler:
    running: dict[str, Running] = field(default_factory=dict)
    documents: dict[str, dict[str, object]] = field(default_factory=dict)
    reconciles: int = 1
    decided: dict[str, BridgeReadiness] = field(default_factory=dict)

    def readiness(self) -> dict[str, BridgeReadiness]:
        return self.decided

    def not_ready(self) -> dict[str, str]:  # what the baseline's collector asked for
        return {bid: r.why_not for bid, r in self.decided.items() if not r.ready}


def reconciler(bridges: int) -> Reconciler:
    now = datetime.now(UTC)
    out = Reconciler()
    for n in range(bridges):
        bid = f"team-{n % 7}/bridge-{n}"
        source = SourceCounters(
            last_successful_poll_time=now, users_tracked=n, scans=n, pages_read=n
        )
        sink = SinkCounters(delivered=n, pending=n % 3, emitted=n)
        out.running[bid] = Running(Poller(source, copy.copy(sink)))
        up = n % 5 != 0  # every fifth bridge is not Ready, so /readyz lists some
        out.documents[bid] = render_status(
            bridge_id=bid,
            file=f"{bid}.yaml",
            observed_digest="d" * 64,
            applied_digest="d" * 64,
            observed_revision=None,
            source_ready=Condition.of("SourceReady", True, "Polling", "ok")
            if up
            else Condition.of("SourceReady", False, "Throttled", "slow down"),
            sink_ready=Condition.of("SinkReady", True, "Delivering", "ok"),
            now=now,
        )
        out.decided[bid] = readiness_from_document(out.documents[bid])
    return out


# -- the two modules --------------------------------------------------------------------------


def baseline_source(revision: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:{MODULE}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def import_seconds(path: Path) -> float:
    """Import the module at `path` in a fresh interpreter, its shared dependencies first."""
    code = (
        "import importlib.util, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import prometheus_client, runner.observability.metrics, runner.secrets.redaction\n"
        "import runner.sources.cognito.budget, runner._kits.wording, runner.errors\n"
        "t = time.perf_counter()\n"
        f"spec = importlib.util.spec_from_file_location('probe', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['probe'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout)


# -- measuring --------------------------------------------------------------------------------


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


async def start_seconds(module: ModuleType, view: Reconciler) -> float:
    started = time.perf_counter()
    server = module.MetricsServer(module.ListenAddress("127.0.0.1", 0), view)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.bound.port}/healthz"
        reply = await asyncio.to_thread(httpx.get, url)
        assert reply.status_code == 200
        return time.perf_counter() - started
    finally:
        await server.stop()


async def scrape_seconds(
    module: ModuleType, view: Reconciler, scrapes: int
) -> dict[str, list[float]]:
    server = module.MetricsServer(module.ListenAddress("127.0.0.1", 0), view)
    await server.start()
    base = f"http://127.0.0.1:{server.bound.port}"
    gzip_only = {"Accept-Encoding": "gzip"}
    plain = {"Accept-Encoding": "identity"}

    def run() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"metrics gzip": [], "metrics plain": [], "readyz": []}
        with httpx.Client(base_url=base) as http:
            for _ in range(scrapes):
                out["metrics gzip"].append(timed(lambda: http.get("/metrics", headers=gzip_only)))
                out["metrics plain"].append(timed(lambda: http.get("/metrics", headers=plain)))
                out["readyz"].append(timed(lambda: http.get("/readyz")))
        return out

    try:
        return await asyncio.to_thread(run)
    finally:
        await server.stop()


REQUESTS = [
    f"{method} {path} HTTP/1.1\r\nHost: bench\r\n{extra}Connection: close\r\n\r\n"
    for method in ("GET", "HEAD")
    for path in ("/metrics", "/healthz", "/readyz", "/nope", "/metrics?x=1")
    for extra in (
        "",
        "Accept-Encoding: gzip\r\n",
        "Accept: application/openmetrics-text; version=1.0.0\r\nAccept-Encoding: gzip\r\n",
        "Accept: application/json\r\n",
    )
] + ["POST /metrics HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"]


def raw(port: int, request: str) -> bytes:
    """The answer, comparable across runs: headers sorted, Date dropped; for /metrics the body
    unzipped without the process_* series (they move between scrapes), and its length."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode("ascii"))
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, sep, body = received.partition(b"\r\n\r\n")
    status, *headers = head.split(b"\r\n")
    # Date moves; `Connection: close` (sent by http.server with a 501 only) is the server's to
    # send under WSGI, and HTTP/1.0 closes after every answer either way.
    skip = [b"date:", b"connection:"]
    if b" /metrics" in request.encode() and status.startswith(b"HTTP/1.0 200"):
        skip.append(b"content-length:")
        if body.startswith(b"\x1f\x8b"):
            body = b"gzip:" + gzip.decompress(body)
        body = b"\n".join(x for x in body.split(b"\n") if b"process_" not in x)
    kept = [h for h in headers if not h.lower().startswith(tuple(skip))]
    return b"\r\n".join([status, *sorted(kept, key=bytes.lower)]) + sep + body


async def answers(module: ModuleType, view: Reconciler) -> list[bytes]:
    server = module.MetricsServer(module.ListenAddress("127.0.0.1", 0), view)
    await server.start()
    try:
        port = server.bound.port
        return [await asyncio.to_thread(raw, port, request) for request in REQUESTS]
    finally:
        await server.stop()


# -- the report -------------------------------------------------------------------------------


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--baseline",
        default=BASELINE,
        help=f"git revision (default: {BASELINE}, the hand-written HTTP plumbing)",
    )
    parser.add_argument("--bridges", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scrapes", type=int, default=40, help="per round")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        baseline_path = Path(folder) / "baseline_endpoints.py"
        baseline_path.write_text(baseline_source(args.baseline))
        baseline = load_module(baseline_path, "bench_baseline_endpoints")
        view = reconciler(args.bridges)
        modules = {"baseline": baseline, "current": current}
        paths = {"baseline": baseline_path, "current": Path(current.__file__ or "")}
        figures: dict[str, dict[str, list[float]]] = {name: {} for name in modules}
        same = asyncio.run(answers(baseline, view)) == asyncio.run(answers(current, view))
        for _ in range(args.rounds):
            for name, module in modules.items():
                got = figures[name]
                got.setdefault("import", []).append(import_seconds(paths[name]))
                got.setdefault("start", []).append(asyncio.run(start_seconds(module, view)))
                for key, values in asyncio.run(scrape_seconds(module, view, args.scrapes)).items():
                    got.setdefault(key, []).extend(values)

    print(
        f"metrics endpoints, {args.bridges} bridges, {args.rounds} rounds, "
        f"{args.rounds * args.scrapes} scrapes each; baseline = {args.baseline}"
    )
    print(f"{'median (ms)':<16}{'baseline':>10}{'current':>10}{'ratio':>8}")
    for key in figures["baseline"]:
        old, new = median_ms(figures["baseline"][key]), median_ms(figures["current"][key])
        print(f"{key:<16}{old:>10.3f}{new:>10.3f}{new / old:>8.2f}")
    verdict = "yes" if same else "NO"
    print(f"same answers (Date, Connection, process_* aside), {len(REQUESTS)} requests: {verdict}")


if __name__ == "__main__":
    main()
