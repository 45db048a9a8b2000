"""One runner per state directory (issue 9): the lock, in process and between real runners."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import StateError
from runner.state.lock import LOCK_FILE_NAME, StateLock
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import (
    RunnerProcess,
    bridge_yaml,
    condition,
    read_status,
    wait_until,
)
from tests.peers.sink_server import SinkServer

Start = Callable[..., RunnerProcess]


def _ready(bridge_file: Path) -> bool:
    return condition(read_status(bridge_file), "Ready").get("status") == "True"


def _usernames(sink: SinkServer) -> Counter[str]:
    return Counter(e.get_data()["Username"] for e in sink.events(accepted_only=True))  # type: ignore[index]


def test_a_second_lock_is_refused_and_names_the_holder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateLock.acquire(state):
        holder = json.loads((state / LOCK_FILE_NAME).read_text())
        assert holder["pid"] == os.getpid()
        # flock is per open file: a second acquire conflicts even within one process.
        with pytest.raises(StateError) as refused:
            StateLock.acquire(state)
    message = str(refused.value)
    assert str(state) in message
    assert f"pid {os.getpid()}, host {socket.gethostname()}" in message
    assert "--state-dir" in message
    # Released on exit: the directory can be locked again.
    StateLock.acquire(state).release()


def test_a_garbled_holder_record_is_reported_as_unknown(tmp_path: Path) -> None:
    with StateLock.acquire(tmp_path) as lock:
        lock.path.write_bytes(b"\x00not json\n\x1b[2J")
        with pytest.raises(StateError, match=r"holder unknown"):
            StateLock.acquire(tmp_path)


def test_a_symlink_planted_as_the_lock_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / LOCK_FILE_NAME).symlink_to(victim)
    with pytest.raises(StateError, match="cannot lock the state directory"):
        StateLock.acquire(state)
    assert victim.read_text() == "keep me\n"


def test_the_lock_file_is_among_the_names_no_file_sink_may_write(tmp_path: Path) -> None:
    from runner.loader.config import load_bridge

    bridge = tmp_path / "b.yaml"
    bridge.write_text(
        "apiVersion: bridge-runner/v1alpha1\nkind: Bridge\nspec:\n  source:\n"
        "    awsCognitoUserPool:\n"
        "      arn: arn:aws:cognito-idp:us-west-2:123456789012:userpool/us-west-2_abcdefghi\n"
        f"  sink:\n    uri: file:{LOCK_FILE_NAME}\n"
    )
    result = load_bridge(bridge, root=tmp_path, env={})
    assert any("state database" in p.message for p in result.problems), result.problems


def test_a_second_runner_on_one_state_dir_exits_at_once_and_the_first_keeps_delivering(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    state = tmp_path / "state"
    pool = cognito_pool()
    first_dir, second_dir = tmp_path / "one", tmp_path / "two"
    for directory in (first_dir, second_dir):
        directory.mkdir()
        (directory / "b.yaml").write_text(
            bridge_yaml(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
        )
    first = runner_process("run", str(first_dir), "--state-dir", str(state))
    wait_until(lambda: _ready(first_dir / "b.yaml"), what="first runner Ready")

    second = runner_process("run", str(second_dir), "--state-dir", str(state))
    assert second.proc.wait(30) == 1, second.log
    assert f"{state} is in use by another runner (pid {first.proc.pid}," in second.log
    assert f"host {socket.gethostname()}" in second.log
    assert not (second_dir / "b.status.json").exists()  # it never started a bridge

    # Commands that only read state keep working while the runner holds it.
    check = subprocess.run(
        [sys.executable, "-m", "runner", "check", str(first_dir), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    status = subprocess.run(
        [sys.executable, "-m", "runner", "status", str(first_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr

    cognito_admin.create_user(pool.id, "erin")
    wait_until(lambda: _usernames(sink_server)["erin"] >= 1, what="erin's event")
    assert first.proc.poll() is None
    assert first.terminate() == 0
    assert _usernames(sink_server) == Counter({"erin": 1})  # once: only one runner delivered


def test_a_sigkilled_runner_leaves_no_stale_lock(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    state, bridges = tmp_path / "state", tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    bridge = bridges / "b.yaml"
    bridge.write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    killed = runner_process("run", str(bridges), "--state-dir", str(state))
    wait_until(lambda: _ready(bridge), what="Ready")
    killed.kill()  # SIGKILL: no chance to clean anything up

    restarted = runner_process("run", str(bridges), "--state-dir", str(state))
    cognito_admin.create_user(pool.id, "frank")
    wait_until(lambda: _usernames(sink_server)["frank"] >= 1, what="frank's event after restart")
    assert restarted.proc.poll() is None, restarted.log
    assert "in use by another runner" not in restarted.log
    holder = json.loads((state / LOCK_FILE_NAME).read_text())
    assert holder["pid"] == restarted.proc.pid
    assert restarted.terminate() == 0
