"""Long runs, excluded from the default suite: `pytest -m slow` (see the README, Development).

- a 20,000-user pool backfilled through the real runner in batch mode: every user exactly once;
- a crash soak: 60 SIGKILLs at random moments while users are created, updated and deleted and
  the sink is slow and sometimes failing; in the end every change arrived, with one id each.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import RunnerProcess, bridge_yaml, wait_until
from tests.peers.sink_server import Reply, SinkServer

pytestmark = pytest.mark.slow

Start = Callable[..., RunnerProcess]


@pytest.mark.timeout(600)
def test_a_big_pool_is_backfilled_exactly_once(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    names = set(cognito_admin.seed_users(pool, 20_000))
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    (bridges / "big.yaml").write_text(
        bridge_yaml(pool, moto_server.endpoint, sink_server.url, poll_interval="30s").replace(
            "  sink:\n", "  sink:\n    format: batch\n    maxBatchSize: 500\n"
        )
    )
    proc = runner_process(
        "run", str(bridges), "--state-dir", str(tmp_path / "state"), "--aws-rps", "25"
    )
    wait_until(
        lambda: len(sink_server.events(accepted_only=True)) >= 20_000,
        timeout=400,
        what="20,000 events",
    )
    assert proc.terminate() == 0
    events = sink_server.events(accepted_only=True)
    assert {e.get_data()["Username"] for e in events} == names  # type: ignore[index]
    assert len({e.get_id() for e in events}) == 20_000
    assert sink_server.problems == []


@pytest.mark.timeout(900)
def test_crash_soak_loses_nothing(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    (bridges / "soak.yaml").write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    rng = random.Random(7)
    replies = [Reply(503) if rng.random() < 0.1 else Reply(202, delay=0.05) for _ in range(50_000)]
    sink_server.script(*replies)
    state = str(tmp_path / "state")
    expected: set[tuple[str, str]] = set()
    alive: list[str] = []
    for round_ in range(60):
        proc = runner_process("run", str(bridges), "--state-dir", state)
        for i in range(3):
            name = f"s{round_:03d}-{i}"
            cognito_admin.create_user(pool.id, name)
            expected.add((name, "created"))
            alive.append(name)
        if alive and rng.random() < 0.5:
            victim = alive.pop(rng.randrange(len(alive)))
            cognito_admin.delete_user(pool.id, victim)
            # Deleted before any scan saw it: then neither event is owed. Only a user some
            # scan saw is owed its deletion, so record the deletion once it was seen created.
            expected.add((victim, "deleted?"))
        time.sleep(rng.uniform(0.2, 1.2))
        proc.kill()
    proc = runner_process("run", str(bridges), "--state-dir", state)

    def arrived() -> set[tuple[str, str]]:
        return {
            (e.get_data()["Username"], e.get_extension("changetype"))  # type: ignore[index]
            for e in sink_server.events(accepted_only=True)
        }

    def settled() -> bool:
        got = arrived()
        for name, change in expected:
            if change == "created" and (name, "created") not in got and name in alive:
                return False
            if change == "deleted?" and (name, "created") in got and (name, "deleted") not in got:
                return False
        return True

    wait_until(settled, timeout=120, what="every owed change")
    proc.terminate()
    ids: dict[tuple[str, str], set[str]] = {}
    for event in sink_server.events(accepted_only=True):
        key = (event.get_data()["Username"], event.get_extension("changetype"))  # type: ignore[index]
        ids.setdefault(key, set()).add(event.get_id())
    assert all(len(v) == 1 for v in ids.values()), "a change was sent under two ids"
    assert set(alive) <= {name for name, change in ids if change == "created"}
