"""SIGKILL of `bridge-runner run` mid-delivery with overlapping requests (issue 11).

The runner starts on a state directory whose outbox already holds several events per user,
committed as successive scans commit them (the pool itself is empty, `initialSync:
baseline`, so the poller adds nothing), and delivers them to a slow loopback sink with
several requests in flight. It is killed once the sink has taken a part of them, restarted,
and left to finish. Then: every event arrived (nothing lost), every request carried only
events of the outbox (a resend keeps its id), and each user's events first arrived in seq
order, each only after the sink had accepted the one before.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from runner.model import Target
from runner.state.outbox import Outbox
from tests.delivery.builders import make_bridge, scan_events
from tests.delivery.overlap_sink import OverlapSink, user_order_problems
from tests.peers.moto_server import MotoServer, PoolInfo
from tests.peers.runner_process import RunDirs, RunnerProcess, bridge_yaml, wait_until

Start = Callable[..., RunnerProcess]
# Fewer users than requests in flight: the gate, not luck, keeps each user in order.
USERS, ROUNDS, IN_FLIGHT = 4, 15, 6


def slow_answers(seed: int) -> Callable[[tuple[str, ...], int], tuple[int, float]]:
    rng, lock = random.Random(seed), threading.Lock()

    def decide(ids: tuple[str, ...], attempt: int) -> tuple[int, float]:
        with lock:
            return 202, rng.uniform(0.03, 0.12)

    return decide


def test_sigkill_mid_delivery_with_overlapping_requests_loses_nothing(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
) -> None:
    dirs = RunDirs.under(tmp_path)
    builder = make_bridge(Target("http://127.0.0.1/"))  # only builds the events
    expected: list[tuple[str, str]] = []
    with Outbox.open(dirs.state) as outbox:
        for scan in range(ROUNDS):
            events = scan_events(builder, USERS, scan)
            outbox.append_events("crash", events)  # the id of bridges/crash.yaml
            expected += [(ev.event_id, ev.user_key) for ev in events]
    every_id = {event_id for event_id, _ in expected}

    with OverlapSink(slow_answers(20261201)) as sink:
        bridge = bridge_yaml(
            cognito_pool(),
            moto_server.endpoint,
            sink.url,
            initial_sync="baseline",
            max_in_flight=IN_FLIGHT,
        )
        dirs.write("crash.yaml", bridge)
        args = dirs.run_args()
        proc = runner_process(*args)
        sink.wait_for_accepted(len(expected) // 3)
        assert sink.max_in_flight > 1  # killed while requests overlapped
        proc.kill()
        before_restart = len(sink.requests)
        assert len({i for r in sink.requests if r.accepted for i in r.ids}) < len(expected)

        proc = runner_process(*args)
        wait_until(
            lambda: {i for r in sink.requests if r.accepted for i in r.ids} >= every_id,
            timeout=60,
            what="every event accepted",
        )
        assert proc.terminate() == 0
        requests = sink.requests

    seen = Counter(i for r in requests for i in r.ids)
    assert set(seen) == every_id  # nothing lost, and nothing but the outbox's events (ids kept)
    assert len(requests) > before_restart  # the restart did deliver the rest
    assert user_order_problems(requests, expected) == []
    with Outbox.open(dirs.state) as outbox:
        stats = outbox.stats("crash")
    # Each event left the outbox once, however often it was sent.
    assert (stats.pending, stats.parked, stats.delivered) == (0, 0, len(expected))
