"""The processes of the end-to-end benches (`backfill.py`, `memory.py`): the emulator
(`_emulator.py`), the sink (`_sink.py`) and `bridge-runner run`, each in a process of its own,
and the waiting and measuring around them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-west-2",
    "PYTHONUNBUFFERED": "1",
}


class Emulator:
    """`_emulator.py` in its own process; `.endpoint` (proxy or moto), `.pools`."""

    def __init__(self, pools: dict[str, int], *extra: str) -> None:
        args = [f"--pool={name}={count}" for name, count in pools.items()]
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "_emulator.py"), *args, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        self.info: dict[str, Any] = json.loads(self._line())
        self.endpoint: str = self.info["endpoint"]
        self.pools: dict[str, dict[str, Any]] = self.info["pools"]

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the emulator exited ({self.proc.wait()})")
        return line

    def stats(self, reset: bool = False) -> dict[str, int]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("reset\n" if reset else "stats\n")
        self.proc.stdin.flush()
        doc: dict[str, int] = json.loads(self._line())
        return doc

    def stop(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class Sink:
    """`_sink.py` in its own process; `.url` for the bridges, `stats()`, `reset()`."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "_sink.py")], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/events"
        self.http = httpx.Client(timeout=60)

    def stats(self, digest: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = self.http.get(
            f"{self.base}/_stats{'?digest' if digest else ''}"
        ).json()
        return doc

    def reset(self) -> None:
        self.http.post(f"{self.base}/_reset").raise_for_status()

    def wait_for_users(self, users: int, proc: subprocess.Popen[Any], timeout: float) -> bool:
        """Until the sink has seen `users` distinct users (True), `proc` exits or the time is
        out (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats()["users"] >= users:
                return True
            if proc.poll() is not None:
                return self.stats()["users"] >= users
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.http.close()
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def bridge_text(arn: str, endpoint: str, sink_url: str, format: str) -> str:
    """One bridge backfilling the pool (`initialSync: emit`); one scan within a bench (1h)."""
    return (
        "apiVersion: bridge-runner/v1alpha1\nkind: Bridge\nspec:\n"
        "  source:\n    awsCognitoUserPool:\n"
        f"      arn: {arn}\n      endpoint: {endpoint}\n"
        "      pollInterval: 1h\n      initialSync: emit\n"
        f"  sink:\n    uri: {sink_url}\n    format: {format}\n"
    )


class Runner:
    """`bridge-runner run DIR --state-dir STATE --aws-rps N`, its log in `log_path`."""

    def __init__(self, directory: Path, state: Path, rps: float, log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[str] = log_path.open("a")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "runner", "run", str(directory)),
                *("--state-dir", str(state), "--aws-rps", str(rps), "--shutdown-timeout", "2s"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=ENV,
            cwd=ROOT,
        )

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def rss_kb(pid: int, field: str = "VmHWM") -> int:
    """A memory figure of /proc/<pid>/status in kB (VmHWM: the peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"no {field} for pid {pid}")


@dataclass
class RssGuard:
    """Samples a process's resident set and kills it above `limit_mb`, so that a runner
    that would need gigabytes does not take a shared machine down with it."""

    pid: int
    limit_mb: float
    tripped: bool = False

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            try:
                if rss_kb(self.pid, "VmRSS") > self.limit_mb * 1024:
                    self.tripped = True
                    os.kill(self.pid, signal.SIGKILL)
                    return
            except (OSError, ValueError):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
