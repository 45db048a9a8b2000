"""Many-bridges bench: `bridge-runner run` over 1,000 and 5,000 bridges, on one pool and on N.

    .venv/bin/python bench/manybridges.py                  # 1,000 and 5,000, both layouts
    .venv/bin/python bench/manybridges.py --bridges 5000 --layout one
    .venv/bin/python bench/manybridges.py --quick          # 30 bridges, 3 s idle (smoke run)

For each case (N bridges watching one pool, or each its own pool), against the emulator
(`bench/_emulator.py`: moto, with the fault proxy in front counting requests and nothing
injected), with `pollInterval: 1h` so that after the first round the runner has nothing to
do, it prints:

  - ListUsers requests of the first poll round (counted at the proxy), and per bridge: until
    scans of one pool are shared (issue 14, item 1) "one pool" costs N requests, as "N pools";
  - time from process start to every status file written, and to every bridge Ready;
  - idle CPU: the runner's process CPU time (utime + stime) over `--idle` seconds once every
    bridge is Ready, in % of one core, against a bare idle asyncio process (a loop waking once
    a second) measured over the same window;
  - edit latency: rewrite one bridge file, wait for its status to show the new digest as
    applied; median and max over `--edits` edits;
  - RSS of the runner (VmRSS, when idle; VmHWM, the peak), and per bridge: the RSS above a
    bare Python importing the same libraries, divided by N.

Targets (issue 14): idle < 2 % of a core at 1,000 bridges, < 3 % at 5,000; every status file
within 10 s; edit -> applied < 0.5 s median.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _e2e import ENV, ROOT, Emulator, rss_kb

RPS = 1000  # --aws-rps: high enough that the budget does not pace the first round
TICKS = os.sysconf("SC_CLK_TCK")
BARE_IDLE = (
    "import asyncio\n"
    "async def main():\n    while True:\n        await asyncio.sleep(1)\n"
    "asyncio.run(main())\n"
)
BARE_IMPORTS = (
    "import boto3, botocore, httpx, yaml, jsonschema, watchfiles, cloudevents, sqlite3, "
    "prometheus_client, time; print('ok', flush=True); time.sleep(60)"
)


def bridge_text(arn: str, endpoint: str, index: int, interval: str = "1h") -> str:
    return (
        "apiVersion: bridge-runner/v1alpha1\nkind: Bridge\n"
        "spec:\n  source:\n    awsCognitoUserPool:\n"
        f"      arn: {arn}\n      endpoint: {endpoint}\n      pollInterval: {interval}\n"
        f"  sink:\n    uri: file:out/b{index:05d}.jsonl\n"
    )


def status_path(path: Path) -> Path:
    return path.with_name(path.stem + ".status.json")


def read_status(path: Path) -> dict[str, object] | None:
    try:
        doc: dict[str, object] = json.loads(status_path(path).read_text())
    except (OSError, ValueError):
        return None
    return doc


def is_ready(path: Path) -> bool:
    doc = read_status(path)
    conditions = doc.get("conditions") if doc else None
    if not isinstance(conditions, list):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wait_all(paths: list[Path], done: Callable[[Path], bool], timeout: float) -> float | None:
    """Seconds until `done` holds for every path (checking only those not done yet)."""
    started = time.monotonic()
    left = list(paths)
    while left:
        left = [p for p in left if not done(p)]
        if not left:
            break
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.1)
    return time.monotonic() - started


@dataclass
class Figures:
    requests: int = 0
    to_statuses: float | None = None
    to_ready: float | None = None
    idle_cpu: float = 0.0  # % of one core
    bare_cpu: float = 0.0
    edits: tuple[float, ...] = ()
    rss_mb: float = 0.0
    hwm_mb: float = 0.0


def start_runner(directory: Path, state: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "runner", "run", str(directory)),
            *("--state-dir", str(state), "--aws-rps", str(RPS), "--shutdown-timeout", "2s"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=ENV,
        cwd=ROOT,
    )


def measure_idle(pid: int, seconds: float) -> tuple[float, float]:
    """(runner, bare asyncio process) CPU over the same `seconds`, in % of one core."""
    bare = subprocess.Popen([sys.executable, "-c", BARE_IDLE])
    try:
        time.sleep(1.0)  # past the bare process's start-up
        runner0, bare0, t0 = cpu_seconds(pid), cpu_seconds(bare.pid), time.monotonic()
        time.sleep(seconds)
        runner1, bare1, t1 = cpu_seconds(pid), cpu_seconds(bare.pid), time.monotonic()
    finally:
        bare.terminate()
        bare.wait()
    return 100 * (runner1 - runner0) / (t1 - t0), 100 * (bare1 - bare0) / (t1 - t0)


def measure_edits(files: list[Path], arn: str, endpoint: str, edits: int) -> tuple[float, ...]:
    latencies = []
    for n in range(edits):
        path = files[(n * 37) % len(files)]
        index = int(path.stem[1:])
        started = time.monotonic()
        path.write_text(bridge_text(arn, endpoint, index, interval=f"{3600 + n + 1}s"))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        deadline = started + 30
        while time.monotonic() < deadline:
            doc = read_status(path)
            if doc and doc.get("observedDigest") == digest and doc.get("appliedDigest") == digest:
                latencies.append(time.monotonic() - started)
                break
            time.sleep(0.005)
        else:
            latencies.append(float("inf"))
        time.sleep(0.3)
    return tuple(latencies)


def run_case(count: int, layout: str, idle: float, edits: int) -> Figures:
    pools = {"shared": 3} if layout == "one" else {f"p{i:05d}": 3 for i in range(count)}
    print(f"{count} bridges, {layout} pool(s): creating the pools", file=sys.stderr)
    emulator = Emulator(pools, "--quota", "1000000")  # the proxy, to count; nothing throttled
    figures = Figures()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-manybridges-") as tmp:
            work = Path(tmp)
            directory = work / "bridges"
            arns = [p["arn"] for p in emulator.pools.values()]
            files = []
            for i in range(count):
                path = directory / f"team{i % 50:02d}" / f"b{i:05d}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(bridge_text(arns[i % len(arns)], emulator.endpoint, i))
                files.append(path)
            emulator.stats(reset=True)
            started = time.monotonic()
            runner = start_runner(directory, work / "state", work / "runner.log")
            try:
                figures.to_statuses = wait_all(files, lambda p: status_path(p).exists(), 300)
                if figures.to_statuses is not None:
                    figures.to_statuses = time.monotonic() - started
                ready = wait_all(files, is_ready, 600)
                figures.to_ready = None if ready is None else time.monotonic() - started
                figures.requests = emulator.stats()["requests"]
                print(f"  all Ready after {figures.to_ready}; idle {idle:g}s", file=sys.stderr)
                time.sleep(2.0)  # let the last writes settle
                figures.idle_cpu, figures.bare_cpu = measure_idle(runner.pid, idle)
                figures.rss_mb = rss_kb(runner.pid, "VmRSS") / 1024
                figures.edits = measure_edits(files, arns[0], emulator.endpoint, edits)
                figures.hwm_mb = rss_kb(runner.pid) / 1024
            finally:
                runner.terminate()
                try:
                    runner.wait(60)
                except subprocess.TimeoutExpired:
                    runner.kill()
                    runner.wait()
                if figures.to_ready is None:
                    print((work / "runner.log").read_text()[-3000:], file=sys.stderr)
    finally:
        emulator.stop()
    return figures


def bare_rss_mb() -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_IMPORTS], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    try:
        return rss_kb(proc.pid, "VmRSS") / 1024
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def report(count: int, layout: str, f: Figures, base_rss: float) -> bool:
    target_cpu = 2.0 if count <= 1000 else 3.0
    median = statistics.median(f.edits) if f.edits else float("nan")
    per_bridge_kb = (f.rss_mb - base_rss) * 1024 / count
    checks = {
        f"idle < {target_cpu:g} %": f.idle_cpu < target_cpu,
        "statuses < 10 s": f.to_statuses is not None and f.to_statuses < 10,
        "edit median < 0.5 s": median < 0.5,
    }
    print(f"\n{count} bridges on {'one pool' if layout == 'one' else f'{count} pools'}:")
    print(
        f"  ListUsers requests, first round   {f.requests:>10,}   "
        f"({f.requests / count:.2f} per bridge; one pool shared would be 1)"
    )
    print(f"  start -> all status files (s)     {seconds(f.to_statuses):>10}")
    print(f"  start -> all Ready (s)            {seconds(f.to_ready):>10}")
    print(
        f"  idle CPU (% of a core)            {f.idle_cpu:>10.2f}   bare asyncio "
        f"{f.bare_cpu:.2f}, ratio {f.idle_cpu / max(f.bare_cpu, 0.01):.1f}x"
    )
    print(
        f"  edit -> applied, median (s)       {median:>10.3f}   max {max(f.edits, default=0):.3f}"
        f" over {len(f.edits)}"
    )
    print(
        f"  RSS idle / peak (MB)              {f.rss_mb:>10.1f}   peak {f.hwm_mb:.1f}; bare "
        f"imports {base_rss:.1f}; {per_bridge_kb:.1f} KB per bridge"
    )
    print("  " + "; ".join(f"{name}: {'ok' if ok else 'MISS'}" for name, ok in checks.items()))
    return all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 bridges, 3 s idle, 3 edits")
    parser.add_argument("--bridges", type=int, action="append", help="repeatable")
    parser.add_argument("--layout", choices=("one", "many", "both"), default="both")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured")
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        counts, idle, edits = [30], 2.0, 3
    else:
        counts, idle, edits = args.bridges or [1000, 5000], args.idle, args.edits
    layouts = ["one", "many"] if args.layout == "both" else [args.layout]
    base_rss = bare_rss_mb()
    print(
        f"manybridges bench: pollInterval 1h, --aws-rps {RPS}, {os.cpu_count()} cores, "
        f"idle measured over {idle:g} s"
    )
    met = True
    for count in counts:
        for layout in layouts:
            met &= report(count, layout, run_case(count, layout, idle, edits), base_rss)
    print(f"\nall targets met: {'yes' if met else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
