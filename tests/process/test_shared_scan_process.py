"""`bridge-runner run` with several bridges on one pool: they share its scans (issue 14).
ListUsers calls are counted at the proxy in front of moto."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.peers.cognito_proxy import CognitoProxy
from tests.peers.moto_server import CognitoAdmin, PoolInfo
from tests.peers.runner_process import (
    RunDirs,
    RunnerProcess,
    bridge_yaml,
    condition,
    read_status,
    wait_until,
)
from tests.peers.sink_server import SinkServer

Start = Callable[..., RunnerProcess]


def usernames(sink: SinkServer) -> Counter[str]:
    return Counter(e.get_data()["Username"] for e in sink.events(accepted_only=True))  # type: ignore[index]


def ready(bridge_file: Path) -> bool:
    return condition(read_status(bridge_file), "Ready").get("status") == "True"


def test_once_with_four_bridges_on_one_pool_costs_the_list_users_calls_of_one(
    tmp_path: Path,
    runner_process: Start,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 130)  # three pages
    dirs = RunDirs.under(tmp_path)
    # Baselines, no events: this is about the scans.
    text = bridge_yaml(pool, cognito_proxy.endpoint, sink_server.url, initial_sync="baseline")
    files = [dirs.write(f"b{i}.yaml", text) for i in range(4)]
    proc = runner_process(*dirs.run_args("--once"))
    assert proc.proc.wait(60) == 0, proc.log
    # One bridge reads 130 users in three ListUsers pages (as test_shared_scan counts):
    # four bridges, the same three, not twelve.
    assert cognito_proxy.count("ListUsers") == 3
    assert cognito_proxy.count("DescribeUserPool") == 1
    assert not sink_server.received
    assert all(ready(file) for file in files)


def test_removing_a_bridge_file_leaves_the_others_places_intact(
    tmp_path: Path,
    runner_process: Start,
    cognito_proxy: CognitoProxy,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server_factory: Callable[[], SinkServer],
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 2)
    sinks = [sink_server_factory() for _ in range(3)]
    dirs = RunDirs.under(tmp_path)
    files = [
        dirs.write(f"b{i}.yaml", bridge_yaml(pool, cognito_proxy.endpoint, sink.url))
        for i, sink in enumerate(sinks)
    ]
    proc = runner_process(*dirs.run_args())
    for sink in sinks:
        sink.wait_for_events(2, timeout=30)
    files[2].unlink()
    wait_until(lambda: not read_status(files[2]), what="b2's status file removed")
    cognito_admin.create_user(pool.id, "after")
    for sink in sinks[:2]:
        sink.wait_for_events(3, timeout=30)
    wait_until(lambda: all(ready(f) for f in files[:2]), what="b0 and b1 Ready")
    assert proc.terminate() == 0, proc.log
    for sink in sinks[:2]:
        assert usernames(sink) == Counter({"user000000": 1, "user000001": 1, "after": 1})
    assert usernames(sinks[2]) == Counter({"user000000": 1, "user000001": 1})
