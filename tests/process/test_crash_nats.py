"""SIGKILL of `bridge-runner run` mid-delivery to a NATS JetStream sink (issue 12).

The outbox already holds several events per user (the pool itself is empty, `initialSync:
baseline`); the runner publishes them to a subject a stream holds, is killed once the stream
has a part of them, restarted, and left to finish. The stream then holds every event exactly
once, each under its outbox id (the resend of an event whose acknowledgement the killed
runner never marked is dropped by JetStream's de-duplication on `Nats-Msg-Id`), and each
user's events in outbox order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import nats

from runner.model import Target
from runner.state.outbox import Outbox
from tests.delivery.builders import make_bridge, scan_events
from tests.peers.moto_server import MotoServer, PoolInfo
from tests.peers.nats_server import NATS_PASSWORD, NATS_USER, NatsAdmin, NatsServer
from tests.peers.runner_process import RunDirs, RunnerProcess, bridge_yaml, wait_until

Start = Callable[..., RunnerProcess]
USERS, ROUNDS, IN_FLIGHT = 8, 250, 4
STREAM, SUBJECT = "CRASH_NATS", "cognito.crash"


def _stored(server: NatsServer) -> int:
    async def count() -> int:
        nc = await nats.connect(server.url, user=NATS_USER, password=NATS_PASSWORD)
        try:
            return int((await nc.jetstream().stream_info(STREAM)).state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def test_sigkill_mid_delivery_to_jetstream_stores_each_event_once_in_order(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    nats_server: NatsServer,
    nats_admin: NatsAdmin,
) -> None:
    nats_admin.stream(STREAM, [SUBJECT])
    dirs = RunDirs.under(tmp_path)
    builder = make_bridge(Target("http://127.0.0.1/"))  # only builds the events
    expected: list[tuple[str, str]] = []
    with Outbox.open(dirs.state) as outbox:
        for scan in range(ROUNDS):
            events = scan_events(builder, USERS, scan)
            outbox.append_events("crash", events)  # the id of bridges/crash.yaml
            expected += [(ev.event_id, ev.user_key) for ev in events]

    auth = (
        "    auth:\n"
        f"      user: {NATS_USER}\n"
        "      password: {valueFromEnv: BRIDGE_VAR_NATS_PASSWORD}\n"
    )
    bridge = bridge_yaml(
        cognito_pool(),
        moto_server.endpoint,
        f"{nats_server.url}/{SUBJECT}",
        initial_sync="baseline",
        max_in_flight=IN_FLIGHT,
    ).replace("  delivery:\n", auth + "  delivery:\n")
    dirs.write("crash.yaml", bridge)
    env = {"BRIDGE_VAR_NATS_PASSWORD": NATS_PASSWORD}
    proc = runner_process(*dirs.run_args(), extra_env=env)
    wait_until(lambda: _stored(nats_server) >= len(expected) // 4, timeout=60, what="a part")
    proc.kill()
    assert _stored(nats_server) < len(expected)  # killed mid-delivery

    proc = runner_process(*dirs.run_args(), extra_env=env)
    wait_until(lambda: _stored(nats_server) >= len(expected), timeout=60, what="every event stored")
    assert proc.terminate() == 0
    assert NATS_PASSWORD not in proc.log

    ids = [m.headers["Nats-Msg-Id"] for m in nats_admin.messages(STREAM)]
    assert sorted(ids) == sorted(event_id for event_id, _ in expected)  # each once, no new id
    position = {event_id: n for n, event_id in enumerate(ids)}
    for user in {user for _, user in expected}:
        mine = [position[event_id] for event_id, key in expected if key == user]
        assert mine == sorted(mine), f"{user}'s events are out of order"
    with Outbox.open(dirs.state) as outbox:
        stats = outbox.stats("crash")
    assert (stats.pending, stats.parked, stats.delivered) == (0, 0, len(expected))
