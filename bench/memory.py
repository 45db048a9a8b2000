"""Memory bench: peak RSS of `bridge-runner run` backfilling a pool, and in steady state.

    .venv/bin/python bench/memory.py           # 2,000 and 100,000 users (~3 min)
    .venv/bin/python bench/memory.py --full    # and 1,000,000 users (18 min pre-streaming)
    .venv/bin/python bench/memory.py --quick   # 300 and 3,000 users (smoke)

One bridge (`initialSync: emit`, `format: batch`, `pollInterval: 1h`) per pool size, the runner
as a process at `--aws-rps 1000` (this bench measures memory, not pacing: the budget is lifted
so that a large pool does not take an hour). For each size:

- backfill: a fresh state directory; the runner scans the pool, commits and delivers every
  user to the sink (`bench/_sink.py`, its own process); once the sink has every username, the
  runner's peak resident set (`VmHWM` of /proc/<pid>/status) is read and the runner stopped;
- steady state: a new runner on the same state directory, so its only scan is a full scan
  that finds nothing changed; its `VmHWM` once its status file counts that scan. A new process,
  so that the backfill's peak does not hide the steady state's.

Baseline, same run: the runner's peak with an empty pool (start-up, one empty scan). The
times printed run from the process's start until the sink had every user (backfill) or the
status file counted the scan (steady: status files are written every few seconds, so that
time is an upper bound).

The pools live in `bench/_emulator.py`'s process: moto's server, each pool created through the
API and filled through moto's backend (a million users in ~30 s; AdminCreateUser over HTTP
would take hours), with `--fast-list`: moto's `list_users` walks the whole pool on every page
(O(pool) per page: a 1M-user scan would take hours); the emulator swaps in an O(page) lookup
returning the same pages and tokens (see that module). Seeding 1M users takes the emulator
~30 s and ~1.8 GB.

A guard samples the runner's RSS and kills it above `--rss-limit` (default 6,000 MB; before
streaming scans a 1M-user backfill peaks at ~4 GB): the figure is then reported as above the
limit, not measured. `--full` on the pre-streaming tree (4b082fb, 2 shared cores) took 18 min:
the 1M-user backfill 11.6 min (its first scan, 16,667 pages in one sequential segment, most of
it), the steady-state run 4.4 min, seeding 32 s.

Targets (issue 11): backfill peak at 100k users <= 1.5x that at 2k; 1M users under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _e2e import Emulator, RssGuard, Runner, Sink, bridge_text, rss_kb
from _emulator import usernames
from _sink import users_digest

RPS = 1000.0
TARGET_RATIO = 1.5
TARGET_1M_MB = 300.0
TIMEOUT = 3 * 3600.0


@dataclass(frozen=True)
class Peak:
    mb: float | None  # None: killed by the guard above the limit
    seconds: float


def scanned_once(status_file: Path, pid: int) -> bool:
    """Whether this run's status file (its own pid) counts a completed scan."""
    try:
        doc: dict[str, Any] = json.loads(status_file.read_text())
    except (OSError, ValueError):
        return False
    return doc.get("runner", {}).get("pid") == pid and doc["source"]["scans"] >= 1


def wait_for(predicate: Any, runner: Runner, guard: RssGuard, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if guard.tripped:
            return
        if runner.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the runner exited or took too long\n{runner.log_tail()}")
        time.sleep(0.1)


class Bench:
    def __init__(self, emulator: Emulator, sink: Sink, work: Path, limit_mb: float) -> None:
        self.emulator, self.sink, self.work, self.limit_mb = emulator, sink, work, limit_mb

    def _bridges(self, name: str) -> Path:
        pool = self.emulator.pools[name]
        bridges = self.work / name / "bridges"
        bridges.mkdir(parents=True, exist_ok=True)
        text = bridge_text(pool["arn"], self.emulator.endpoint, self.sink.url, "batch")
        (bridges / "backfill.yaml").write_text(text)
        return bridges

    def _run(self, name: str, until: Any, log: str) -> Peak:
        bridges = self._bridges(name)
        runner = Runner(bridges, self.work / name / "state", RPS, self.work / name / log)
        guard = RssGuard(runner.proc.pid, self.limit_mb)
        try:
            wait_for(lambda: until(runner), runner, guard, TIMEOUT)
            seconds = time.monotonic() - runner.started
            peak = None if guard.tripped else rss_kb(runner.proc.pid) / 1024
        finally:
            guard.stop()
            runner.stop()
        return Peak(peak, seconds)

    def backfill(self, name: str) -> Peak:
        users = self.emulator.pools[name]["users"]
        self.sink.reset()
        peak = self._run(name, lambda _: self.sink.stats()["users"] >= users, "backfill.log")
        if peak.mb is not None:
            stats = self.sink.stats(digest=True)
            if stats["digest"] != users_digest(usernames(users)):
                raise SystemExit(f"backfill of {name}: the sink has other users than the pool")
        return peak

    def steady(self, name: str) -> Peak:
        status = self.work / name / "bridges" / "backfill.status.json"
        return self._run(name, lambda r: scanned_once(status, r.proc.pid), "steady.log")


def mb_text(peak: Peak, limit_mb: float) -> str:
    return f"> {limit_mb:,.0f} (killed)" if peak.mb is None else f"{peak.mb:,.1f}"


def show(peak: Peak, limit_mb: float) -> str:
    return f"{mb_text(peak, limit_mb):>18}{peak.seconds:>8.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 and 3,000 users (smoke)")
    parser.add_argument("--full", action="store_true", help="add 1,000,000 users")
    parser.add_argument("--rss-limit", type=float, default=6000.0, help="MB (default 6000)")
    args = parser.parse_args(argv)
    small, large = (300, 3_000) if args.quick else (2_000, 100_000)
    sizes = [small, large] + ([1_000_000] if args.full else [])

    started = time.monotonic()
    emulator = Emulator({"empty": 0, **{f"p{n}": n for n in sizes}}, "--fast-list")
    print(f"emulator seeded in {time.monotonic() - started:.1f} s", file=sys.stderr)
    sink = Sink()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    bench = Bench(emulator, sink, work, args.rss_limit)
    results: dict[int, tuple[Peak, Peak]] = {}
    try:
        baseline = bench.steady("empty")
        for n in sizes:
            backfill = bench.backfill(f"p{n}")
            steady = bench.steady(f"p{n}") if backfill.mb is not None else Peak(None, 0.0)
            results[n] = (backfill, steady)
            print(f"{n:,} users: backfill {show(backfill, args.rss_limit)}", file=sys.stderr)
    finally:
        sink.stop()
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    return report(baseline, results, small, large, args.rss_limit, args.quick)


def report(
    baseline: Peak,
    results: dict[int, tuple[Peak, Peak]],
    small: int,
    large: int,
    limit_mb: float,
    quick: bool,
) -> int:
    print(f"memory bench: peak RSS (VmHWM) of `bridge-runner run`, one bridge, format batch, "
          f"--aws-rps {RPS:.0f}")  # fmt: skip
    print(f"{'users':<12}{'backfill MB':>18}{'time s':>8}{'steady MB':>18}{'time s':>8}")
    print(f"{'0 (baseline)':<12}{show(baseline, limit_mb)}")
    for n, (backfill, steady) in results.items():
        print(f"{n:<12,}{show(backfill, limit_mb)}{show(steady, limit_mb)}")
    ok = True
    (b_small, s_small), (b_large, s_large) = results[small], results[large]
    if b_small.mb and b_large.mb and s_small.mb and s_large.mb:
        ratio, steady_ratio = b_large.mb / b_small.mb, s_large.mb / s_small.mb
        per_user = (b_large.mb - b_small.mb) * 1024 / (large - small)
        ok = ratio <= TARGET_RATIO
        print(
            f"backfill {large:,} / {small:,}: {ratio:.2f}x (target <= {TARGET_RATIO}: "
            f"{'ok' if ok else 'MISSED'}); steady state {steady_ratio:.2f}x; "
            f"{per_user:.2f} KB per user beyond {small:,}"
        )
    else:
        ok = False
        print(f"backfill {large:,} / {small:,}: not measured (a run was killed above the limit)")
    print(f"baseline (empty pool): {baseline.mb or float('nan'):.1f} MB; backfill {large:,} is "
          f"{(b_large.mb or float('nan')) / (baseline.mb or float('nan')):.2f}x it")  # fmt: skip
    if 1_000_000 in results:
        big = results[1_000_000][0]
        ok_big = big.mb is not None and big.mb < TARGET_1M_MB
        ok = ok and ok_big
        print(
            f"1,000,000 users: backfill {mb_text(big, limit_mb)} MB "
            f"(target < {TARGET_1M_MB:.0f}: {'ok' if ok_big else 'MISSED'})"
        )
    return 0 if ok or quick else 1


if __name__ == "__main__":
    sys.exit(main())
