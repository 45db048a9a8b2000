"""SIGKILL in the middle of a streamed scan (issue 11): the runner as a subprocess against
moto's server and a loopback sink. Each run is killed while its first scan is still reading
the pool, after its first chunks were committed and partly sent; the next run goes on.
Nothing is lost, a resent event keeps its id, and no user is taken for deleted."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import (
    RunDirs,
    RunnerProcess,
    bridge_yaml,
    read_status,
    wait_until,
)
from tests.peers.sink_server import SinkServer

DELETED = "com.amazon.cognito-idp.user_deleted"
# The poll's summary, logged once a scan is committed whole (`runner.polling.poll`).
SCAN_COMMITTED = r"changes?, \d+ events? committed"


def test_sigkill_mid_scan_loses_nothing_resends_same_ids_and_deletes_no_one(
    tmp_path: Path,
    runner_process: Callable[..., RunnerProcess],
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 2400)  # 40 pages: segmented from the first scan
    dirs = RunDirs.under(tmp_path)
    big = dirs.write("big.yaml", bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    # 8 requests/s: a whole scan takes 5 s or more, so that each kill lands inside one.
    args = dirs.run_args("--aws-rps", "8")
    rng = random.Random(20261201)
    killed_mid_scan = 0
    for round_ in range(4):
        proc = runner_process(*args)
        seen = len(sink_server.events())
        wait_until(
            lambda seen=seen: len(sink_server.events()) > seen,  # type: ignore[misc]
            timeout=60,
            what=f"round {round_}: events reaching the sink",
        )
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.count(SCAN_COMMITTED) == 0:
            killed_mid_scan += 1
        proc.kill()
    assert killed_mid_scan >= 2, "the kills should land inside the first scan"

    proc = runner_process(*args)
    wait_until(
        lambda: (
            {e.get_data()["Username"] for e in sink_server.events(accepted_only=True)}  # type: ignore[index]
            >= set(names)
        ),
        timeout=120,
        what="every user at the sink",
    )
    # A complete scan, whose sweep ran, is what the status file counts in `source.scans`.
    wait_until(
        lambda: ((read_status(big) or {}).get("source") or {}).get("scans"),
        timeout=60,
        what="a complete scan",
    )
    proc.terminate()

    events = sink_server.events(accepted_only=True)
    assert [e for e in events if e.get_type() == DELETED] == []  # no false deletion
    ids_by_user: dict[str, set[str]] = {}
    for event in events:
        ids_by_user.setdefault(event.get_data()["Username"], set()).add(event.get_id())  # type: ignore[index]
    assert set(ids_by_user) == set(names)  # nothing lost
    assert all(len(ids) == 1 for ids in ids_by_user.values())  # a resend keeps its id
