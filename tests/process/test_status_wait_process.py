"""`status --wait --for-revision` against a real runner subprocess, moto and a loopback sink,
over a real git repository (issue 8, items 2 and 3): commits after the awaited one, an invalid
bridge at it, and a runner that was SIGKILLed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.peers.git import git
from tests.peers.moto_server import MotoServer, PoolInfo
from tests.peers.runner_process import (
    RunnerProcess,
    bridge_yaml,
    condition,
    read_status,
    wait_until,
)
from tests.peers.sink_server import SinkServer

Start = Callable[..., RunnerProcess]


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def status(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The subprocess timeout is far beyond every --timeout given: a wait that does not fail
    # fast shows up as a timeout here, however slow the machine.
    return subprocess.run(
        [sys.executable, "-m", "runner", "status", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def ready_at(bridge_file: Path, revision: str) -> bool:
    doc = read_status(bridge_file)
    return (
        doc is not None
        and doc["observedRevision"] == revision
        and doc["observedDigest"] == doc["appliedDigest"]
        and condition(doc, "Ready").get("status") == "True"
    )


class Setup:
    def __init__(
        self,
        tmp_path: Path,
        start: Start,
        moto: MotoServer,
        pool: PoolInfo,
        sink: SinkServer,
    ) -> None:
        self.tmp_path, self.start = tmp_path, start
        self.repo = tmp_path / "repo"
        self.repo.mkdir()
        git(self.repo, "init", "-q", "-b", "main")
        self.bridges = self.repo / "bridges"
        self.ok = self.bridges / "ok.yaml"
        self.text = bridge_yaml(pool, moto.endpoint, sink.url, initial_sync="baseline")
        self.a = commit(
            self.repo,
            {".gitignore": "*.status.json\n.bridge-runner/\n", "bridges/ok.yaml": self.text},
            "A: a bridge",
        )

    def run(self) -> RunnerProcess:
        # A 1 s resync: a commit that touches no bridge file is seen by the resync only.
        state = str(self.tmp_path / "state")
        return self.start("run", str(self.bridges), "--state-dir", state, "--resync-interval", "1s")


def _setup(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> Setup:
    return Setup(tmp_path, runner_process, moto_server, cognito_pool(), sink_server)


def test_a_docs_only_commit_after_the_awaited_one(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    s = _setup(tmp_path, runner_process, moto_server, cognito_pool, sink_server)
    proc = s.run()
    b = commit(s.repo, {"docs/README.md": "how to\n"}, "B: docs only")
    wait_until(lambda: ready_at(s.ok, b), timeout=60, what=f"Ready at B\n{proc.log}")

    # Inside the runner's checkout (at B): A's files come from git, and they run.
    done = status(s.bridges, "--wait", "--for-revision", s.a, "--timeout", "60s")
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout and "True" in done.stdout

    # The CI flow (docs/ci.md): a checkout of A, the runner's status files and its record
    # copied next to its bridges.
    ci = tmp_path / "ci"
    git(s.repo, "worktree", "add", "-q", "--detach", str(ci), s.a)
    shutil.copy(s.ok.with_name("ok.status.json"), ci / "bridges")
    shutil.copytree(s.bridges / ".bridge-runner", ci / "bridges" / ".bridge-runner")
    done = status(ci / "bridges", "--wait", "--for-revision", s.a[:7].upper(), "--timeout", "60s")
    assert done.returncode == 0, done.stderr
    assert proc.terminate() == 0


def test_a_bridge_changed_after_the_awaited_commit_is_superseded(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    s = _setup(tmp_path, runner_process, moto_server, cognito_pool, sink_server)
    proc = s.run()
    wait_until(lambda: ready_at(s.ok, s.a), timeout=60, what=f"Ready at A\n{proc.log}")
    newer = s.text.replace("pollInterval: 1s", "pollInterval: 2s")
    b = commit(s.repo, {"bridges/ok.yaml": newer}, "B: the bridge changes")
    wait_until(lambda: ready_at(s.ok, b), timeout=60, what=f"Ready at B\n{proc.log}")

    done = status(s.bridges, "--wait", "--for-revision", s.a, "--timeout", "60s")
    assert done.returncode == 0, done.stderr
    assert f"ok: superseded by {b[:12]}" in done.stderr
    assert proc.terminate() == 0


def test_an_invalid_bridge_at_the_awaited_revision_fails_at_once(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    s = _setup(tmp_path, runner_process, moto_server, cognito_pool, sink_server)
    proc = s.run()
    wait_until(lambda: ready_at(s.ok, s.a), timeout=60, what=f"Ready at A\n{proc.log}")
    broken = s.text.replace("pollInterval: 1s", "pollInterval: often")
    b = commit(s.repo, {"bridges/ok.yaml": broken}, "B: an invalid bridge")

    done = status(s.bridges, "--wait", "--for-revision", b, "--timeout", "10m")
    assert done.returncode == 1, done.stderr
    assert "timed out" not in done.stderr  # it did not wait for the 10 minutes
    assert "ok: the file is invalid" in done.stderr
    line = 1 + broken.splitlines().index("      pollInterval: often")
    assert f"{s.ok}:{line}:21: " in done.stderr
    assert "[spec.source.awsCognitoUserPool.pollInterval]" in done.stderr
    assert proc.terminate() == 0


def test_a_status_left_by_a_sigkilled_runner_is_never_ready(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    s = _setup(tmp_path, runner_process, moto_server, cognito_pool, sink_server)
    proc = s.run()
    wait_until(lambda: ready_at(s.ok, s.a), timeout=60, what=f"Ready at A\n{proc.log}")
    done = status(s.bridges, "--wait", "--for-revision", s.a, "--timeout", "60s")
    assert done.returncode == 0, done.stderr
    killed_pid = proc.proc.pid
    proc.kill()
    assert condition(read_status(s.ok), "Ready")["status"] == "True"  # the file still says so

    done = status(s.bridges, "--wait", "--for-revision", s.a, "--timeout", "3s")
    assert done.returncode == 1
    assert "timed out after 3s" in done.stderr
    assert "ok: its status is stale: " in done.stderr and "is not running any more" in done.stderr
    shown = json.loads(status(s.bridges, "--format", "json").stdout)["bridges"]
    assert [(r["bridge"], r["ready"], r["reason"]) for r in shown] == [("ok", "Unknown", "Stale")]

    # A new runner: its first write replaces every status with its own run's.
    proc = s.run()
    done = status(s.bridges, "--wait", "--for-revision", s.a, "--timeout", "60s")
    assert done.returncode == 0, done.stderr
    assert read_status(s.ok)["runner"]["pid"] != killed_pid  # type: ignore[index]
    assert proc.terminate() == 0
    # Stopped on purpose: its statuses no longer count either.
    done = status(s.bridges, "--wait", "--timeout", "1s")
    assert done.returncode == 1 and "stopped at" in done.stderr
