"""Nothing is dropped by housekeeping (issue 9): a moved or renamed bridge file carries its
state and undelivered events over; `--state-retention` writes undelivered events to a file
before it forgets a removed bridge. The runner as a subprocess, moto, a loopback sink."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from runner.reconcile.plan import pair_moves
from runner.state.outbox import Outbox
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import RunnerProcess, bridge_yaml, read_status, wait_until
from tests.peers.sink_server import Reply, SinkServer

Start = Callable[..., RunnerProcess]
SYNC = "com.amazon.cognito-idp.sync_trigger"


def _accepted_usernames(sink: SinkServer) -> Counter[str]:
    return Counter(e.get_data()["Username"] for e in sink.events(accepted_only=True))  # type: ignore[index]


def _sink_fails(sink: SinkServer) -> None:
    sink.script(*[Reply(503) for _ in range(100_000)])


def _sink_recovers(sink: SinkServer) -> None:
    with sink._lock:  # drop the scripted failures: the sink is back
        sink._script.clear()


def _baselined(bridge_file: Path) -> bool:
    """The first scan is committed: users created from now on are changes, not baseline."""
    status = read_status(bridge_file)
    return status is not None and status["source"]["scans"] >= 1


def _pending(bridge_file: Path) -> int | None:
    status = read_status(bridge_file)
    return None if status is None else status["sink"]["pending"]


def test_pairs_are_unique_matches_only() -> None:
    assert pair_moves({"a": "k1"}, {"b": "k1"}) == {"b": "a"}
    assert pair_moves({"a": "k1"}, {"b": "k2"}) == {}
    # Two copies of one spec: which one is "the" bridge cannot be told.
    assert pair_moves({"a": "k1"}, {"b": "k1", "c": "k1"}) == {}
    assert pair_moves({"a": "k1", "x": "k1"}, {"b": "k1"}) == {}
    assert pair_moves({"a": "k1", "x": "k2"}, {"b": "k2", "c": "k1"}) == {"c": "a", "b": "x"}


def test_a_renamed_bridge_delivers_what_its_old_name_had_pending(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges, state = tmp_path / "bridges", tmp_path / "state"
    bridges.mkdir()
    pool = cognito_pool()
    old = bridges / "signups.yaml"
    # baseline: a new id without the old one's state would record the pool and send nothing,
    # so the changes below would be lost.
    old.write_text(
        bridge_yaml(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
    )
    proc = runner_process("run", str(bridges), "--state-dir", str(state))
    wait_until(lambda: _baselined(old), what="the baseline scan")
    _sink_fails(sink_server)
    for name in ("ann", "ben", "cat"):
        cognito_admin.create_user(pool.id, name)
    wait_until(lambda: _pending(old) == 3, what="three events pending")

    new = bridges / "team" / "sign-ups.yaml"
    new.parent.mkdir()
    old.rename(new)  # a `git mv` arriving with a sync
    proc.wait_for_log(r"move signups -> team/sign-ups: same spec; .* 3 undelivered events")
    _sink_recovers(sink_server)
    wait_until(lambda: _accepted_usernames(sink_server) == Counter(ann=1, ben=1, cat=1))
    wait_until(lambda: _pending(new) == 0, what="nothing pending under the new id")
    assert proc.terminate() == 0
    with Outbox.open(state) as outbox:
        assert "signups" not in outbox.bridge_ids()  # nothing stranded under the old id
        assert outbox.stats("team/sign-ups").delivered == 3
    assert not old.with_name("signups.status.json").exists()


def test_retention_writes_undelivered_events_to_a_file_before_forgetting(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges, state = tmp_path / "bridges", tmp_path / "state"
    (bridges / "team").mkdir(parents=True)
    pool = cognito_pool()
    gone = bridges / "team" / "gone.yaml"
    gone.write_text(
        bridge_yaml(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
    )
    proc = runner_process(
        "run",
        str(bridges),
        "--state-dir",
        str(state),
        "--state-retention",
        "2s",
        "--resync-interval",
        "1s",
    )
    wait_until(lambda: _baselined(gone), what="the baseline scan")
    _sink_fails(sink_server)
    cognito_admin.create_user(pool.id, "dan")
    cognito_admin.create_user(pool.id, "eve")
    wait_until(lambda: _pending(gone) == 2, what="two events pending")

    gone.unlink()
    proc.wait_for_log(r"bridge team/gone was removed with 2 events not delivered; written to ")
    proc.wait_for_log(r"forgetting the state of bridge team/gone")
    assert proc.terminate() == 0

    files = list((state / "undelivered").glob("team%2Fgone.*.jsonl"))
    assert len(files) == 1, list((state / "undelivered").iterdir())
    assert str(files[0]) in proc.log
    events = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [(e["type"], e["data"]["Username"]) for e in events] == [(SYNC, "dan"), (SYNC, "eve")]
    assert all(e["specversion"] == "1.0" and e["id"] and e["source"] == pool.arn for e in events)
    with Outbox.open(state) as outbox:
        assert "team/gone" not in outbox.bridge_ids()


def test_pending_counts_follow_the_outbox_while_delivery_retries(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    bridge = bridges / "b.yaml"
    bridge.write_text(
        bridge_yaml(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
    )
    proc = runner_process("run", str(bridges), "--state-dir", str(tmp_path / "state"))
    wait_until(lambda: _baselined(bridge), what="the baseline scan")
    _sink_fails(sink_server)
    cognito_admin.create_user(pool.id, "fay")
    wait_until(lambda: _pending(bridge) == 1, what="one pending, delivery retrying")
    # Delivery is now retrying fay's event; the next polls commit more behind it.
    for name in ("gus", "hal"):
        cognito_admin.create_user(pool.id, name)
    wait_until(lambda: _pending(bridge) == 3, what="the status to count all three")
    _sink_recovers(sink_server)
    wait_until(lambda: _pending(bridge) == 0, what="all delivered")
    assert _accepted_usernames(sink_server) == Counter(fay=1, gus=1, hal=1)
    assert proc.terminate() == 0
