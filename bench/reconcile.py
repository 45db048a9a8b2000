"""Reconcile bench: `bridge-runner run` over a directory of 1,000 bridges.

    .venv/bin/python bench/reconcile.py            # 1,000 bridges, 20 edits
    .venv/bin/python bench/reconcile.py --quick    # 100 bridges, 5 edits (smoke run)

Measures, against one moto server (bridges share one pool; long poll interval):
  1. start-up: from process start until every bridge has a status file (target < 20 s),
     beside the baseline `bridge-runner check DIR` over the same files (the floor: reading
     and validating every file once, as a process);
  2. edit latency: median time from rewriting one bridge file to its status showing the new
     digest as applied, over N edits (target < 0.5 s), each edit restarting exactly that one
     bridge once, beside the baseline of a bare watchfiles `awatch` noticing the same kind of
     edit (the floor any file-watching runner pays);
  3. peak RSS of the runner process (target < 300 MB), beside a bare Python process that
     imports the same libraries.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent


def bridge_text(arn: str, endpoint: str, index: int, interval: str = "1h") -> str:
    return (
        "apiVersion: bridge-runner/v1alpha1\nkind: Bridge\n"
        f"metadata:\n  labels: {{team: t{index % 20}}}\n"
        "spec:\n  source:\n    awsCognitoUserPool:\n"
        f"      arn: {arn}\n      endpoint: {endpoint}\n      pollInterval: {interval}\n"
        f"  sink:\n    uri: file:out/b{index:04d}.jsonl\n"
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def status_of(path: Path) -> dict[str, object] | None:
    try:
        doc: dict[str, object] = json.loads(path.with_name(path.stem + ".status.json").read_text())
    except (OSError, ValueError):
        return None
    return doc


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Runner:
    def __init__(self, directory: Path, state: Path) -> None:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "run",
                str(directory),
                "--state-dir",
                str(state),
                "--aws-rps",
                "50",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        return sum(1 for line in list(self.lines) if regex.search(line))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.thread.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


async def watchfiles_latency(directory: Path, edits: int) -> list[float]:
    """The floor: how long a bare watchfiles awatch (50 ms debounce) takes to report a rewrite."""
    from watchfiles import awatch

    target = directory / "probe.yaml"
    target.write_text("x: 0\n")
    latencies: list[float] = []
    stop = asyncio.Event()

    async def edit_after(delay: float, n: int) -> float:
        await asyncio.sleep(delay)
        target.write_text(f"x: {n}\n")
        return time.monotonic()

    pending = asyncio.create_task(edit_after(0.3, 1))
    async for _changes in awatch(directory, stop_event=stop, debounce=50, step=10):
        latencies.append(time.monotonic() - await pending)
        if len(latencies) >= edits:
            break
        pending = asyncio.create_task(edit_after(0.1, len(latencies) + 1))
    stop.set()
    return latencies


def baseline_rss_mb() -> float:
    code = (
        "import boto3, botocore, httpx, yaml, jsonschema, watchfiles, cloudevents, sqlite3, "
        "prometheus_client; from pathlib import Path; "
        "print([l for l in Path('/proc/self/status').read_text().splitlines() "
        "if l.startswith('VmHWM')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count, edits = (100, 5) if args.quick else (1000, 20)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "cognito-idp",
        region_name="us-west-2",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    arn = client.create_user_pool(PoolName="bench")["UserPool"]["Arn"]

    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        work = Path(tmp)
        directory = work / "bridges"
        files = []
        for i in range(count):
            path = directory / f"team{i % 20:02d}" / f"b{i:04d}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(bridge_text(arn, endpoint, i))
            files.append(path)

        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "runner", "check", "--quiet", str(directory)],
            check=True,
            capture_output=True,
        )
        check_seconds = time.monotonic() - started

        print(
            f"`check` of {count} files: {check_seconds:.2f}s; starting the runner", file=sys.stderr
        )
        started = time.monotonic()
        runner = Runner(directory, work / "state")
        all_written = wait_for(
            lambda: all(f.with_name(f.stem + ".status.json").exists() for f in files), 120
        )
        startup = time.monotonic() - started
        print(f"all status files written after {startup:.2f}s; editing", file=sys.stderr)

        latencies: list[float] = []
        exact_restarts = True
        for n in range(edits):
            path = files[(n * 37) % count]
            before = runner.count(rf"restart {re.escape(path.parent.name)}/{path.stem}: ")
            started = time.monotonic()
            path.write_text(bridge_text(arn, endpoint, n, interval=f"{3600 + n + 1}s"))
            digest = sha(path)
            ok = wait_for(
                lambda p=path, d=digest: (
                    (s := status_of(p)) is not None
                    and s.get("observedDigest") == d
                    and s.get("appliedDigest") == d
                ),
                30,
            )
            latencies.append(time.monotonic() - started if ok else float("inf"))
            time.sleep(0.3)  # let a second (wrong) restart show up if there were one
            after = runner.count(rf"restart {re.escape(path.parent.name)}/{path.stem}: ")
            exact_restarts &= after - before == 1
        rss = peak_rss_mb(runner.proc.pid)
        runner.stop()

        probe_dir = work / "probe"
        probe_dir.mkdir()
        floor = asyncio.run(watchfiles_latency(probe_dir, edits))
    server.stop()
    base_rss = baseline_rss_mb()

    median_latency = statistics.median(latencies)
    floor_latency = statistics.median(floor)
    print(f"reconcile bench: {count} bridges, {edits} edits, one moto pool, poll interval 1h")
    print(f"{'measure':<28}{'runner':>10}{'baseline':>10}{'ratio':>8}  target")
    startup_ok = all_written and startup < 20
    print(
        f"{'start-up to all statuses (s)':<28}{startup:>10.2f}{check_seconds:>10.2f}"
        f"{startup / check_seconds:>8.2f}  < 20 s {'ok' if startup_ok else 'MISS'}"
        "   (baseline: `check` of the same files, as a process)"
    )
    latency_ok = median_latency < 0.5
    print(
        f"{'edit -> applied, median (s)':<28}{median_latency:>10.3f}{floor_latency:>10.3f}"
        f"{median_latency / floor_latency:>8.2f}  < 0.5 s {'ok' if latency_ok else 'MISS'}"
        f"   (max {max(latencies):.3f}; baseline: bare watchfiles awatch noticing an edit)"
    )
    print(
        f"{'peak RSS (MB)':<28}{rss:>10.1f}{base_rss:>10.1f}{rss / base_rss:>8.2f}  < 300 MB "
        f"{'ok' if rss < 300 else 'MISS'}   (baseline: python importing the same libraries)"
    )
    print(f"exactly one restart per edit: {'yes' if exact_restarts else 'NO'}")
    ok = all_written and startup < 20 and median_latency < 0.5 and rss < 300 and exact_restarts
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
