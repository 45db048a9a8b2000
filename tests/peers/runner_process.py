"""`bridge-runner run` as a real subprocess, for tests about the process (signals, crashes,
restarts, the directory watch). Its stderr (the log) is collected by a reader thread."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peers.moto_server import PoolInfo


def bridge_yaml(
    pool: PoolInfo,
    endpoint: str,
    sink_url: str,
    *,
    initial_sync: str = "emit",
    poll_interval: str = "1s",
    max_in_flight: int | None = None,
    extra_spec: str = "",
    labels: str = "",
) -> str:
    """A bridge file for a moto pool and a loopback sink."""
    metadata = f"metadata:\n  labels: {labels}\n" if labels else ""
    in_flight = f"    maxInFlight: {max_in_flight}\n" if max_in_flight is not None else ""
    return (
        "apiVersion: bridge-runner/v1alpha1\n"
        "kind: Bridge\n"
        f"{metadata}"
        "spec:\n"
        "  source:\n"
        "    awsCognitoUserPool:\n"
        f"      arn: {pool.arn}\n"
        f"      endpoint: {endpoint}\n"
        f"      pollInterval: {poll_interval}\n"
        f"      initialSync: {initial_sync}\n"
        "  sink:\n"
        f"    uri: {sink_url}\n"
        f"{in_flight}"
        "  delivery:\n"
        "    backoffDelay: 50ms\n"
        "    maxBackoff: 200ms\n"
        f"{extra_spec}"
    )


@dataclass(frozen=True)
class RunDirs:
    """A bridges directory and a state directory for `bridge-runner run`."""

    bridges: Path
    state: Path

    @classmethod
    def under(cls, tmp_path: Path) -> RunDirs:
        """`tmp_path/bridges` (made) and `tmp_path/state` (made by the outbox or the runner)."""
        dirs = cls(tmp_path / "bridges", tmp_path / "state")
        dirs.bridges.mkdir()
        return dirs

    def write(self, name: str, text: str) -> Path:
        """The bridge file `name` in the bridges directory."""
        path = self.bridges / name
        path.write_text(text)
        return path

    def run_args(self, *more: str) -> tuple[str, ...]:
        """`run BRIDGES --state-dir STATE` and `more`."""
        return ("run", str(self.bridges), "--state-dir", str(self.state), *more)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


def read_status(bridge_file: Path) -> dict[str, Any] | None:
    path = bridge_file.with_name(bridge_file.stem + ".status.json")
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc


def condition(doc: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    if doc is None:
        return {}
    return next((c for c in doc["conditions"] if c["type"] == kind), {})


class RunnerProcess:
    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._lock:
            return sum(1 for line in self.lines if regex.search(line))

    def wait_for_log(self, pattern: str, timeout: float = 20.0, count: int = 1) -> None:
        wait_until(lambda: self.count(pattern) >= count, timeout, f"log {pattern!r}\n{self.log}")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._close_pipe()
        return code

    def _close_pipe(self) -> None:
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._close_pipe()


@pytest.fixture
def runner_process(tmp_path: Path) -> Iterator[Callable[..., RunnerProcess]]:
    """`runner_process(*args) -> RunnerProcess`, killed at the end of the test if still running."""
    started: list[RunnerProcess] = []
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "PYTHONUNBUFFERED": "1",
    }

    def start(*args: str, extra_env: dict[str, str] | None = None) -> RunnerProcess:
        proc = RunnerProcess(args, {**env, **(extra_env or {})})
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
