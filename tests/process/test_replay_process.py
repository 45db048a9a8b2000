"""`bridge-runner replay` and `resync` beside a running runner (a real subprocess holding
the state lock): the events they release or ask for reach the sink within seconds, the
parked ones under their original ids. (Between runs: tests/polling/test_events_peers.py.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import RunDirs, RunnerProcess, bridge_yaml, read_status, wait_until
from tests.peers.sink_server import Reply, SinkServer


def parked(bridge_file: Path) -> int:
    doc = read_status(bridge_file)
    return int(doc["sink"]["parked"] or 0) if doc else 0


def cli(*args: str) -> str:
    """A `bridge-runner` command as its own process, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "runner", *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_replay_and_resync_reach_a_running_runner(
    tmp_path: Path,
    runner_process: Callable[..., RunnerProcess],
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    for name in ("amy", "bob"):
        cognito_admin.create_user(pool.id, name, {"email": f"{name}@example.com"})
    dirs = RunDirs.under(tmp_path)
    bridge = dirs.write("signups.yaml", bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    sink_server.script(Reply(400), Reply(400))  # refused, no dead-letter sink: parked
    proc = runner_process(*dirs.run_args())
    wait_until(lambda: parked(bridge) == 2, what="two parked events in the status")
    refused = sink_server.ids()
    assert len(refused) == 2 and sink_server.ids(accepted_only=True) == []

    where = (str(dirs.bridges), "signups", "--state-dir", str(dirs.state))
    assert "2 parked events" in cli("replay", *where)
    # Waiting, not timing: the runner picks them up at its next poll (every second here).
    assert sorted(e.get_id() for e in sink_server.wait_for_events(2, timeout=30)) == sorted(refused)
    wait_until(lambda: parked(bridge) == 0, what="the status to count no parked event")

    assert "2 users" in cli("resync", *where)
    again = sink_server.wait_for_events(4, timeout=30)[2:]
    assert sorted((e.get_data()["Username"], e.get_extension("changetype")) for e in again) == [  # type: ignore[index]
        ("amy", "updated"),
        ("bob", "updated"),
    ]
    assert sink_server.problems == []
    assert proc.terminate() == 0  # before the sink and the pool go: a quick, clean end
