"""SIGKILL of `bridge-runner run` mid-delivery to an AWS sink (an SQS FIFO queue on moto).

The outbox already holds several events per user; the runner sends them through a proxy
that slows every request down, is killed once some batches went through, restarted, and
left to finish. Then the queue holds every event once (its deduplication id is the event
id: a resend under the same id is dropped, one under a new id would show), in each user's
order (its group is the user's sub), and the outbox has delivered each event once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from runner.model import Target
from runner.state.outbox import Outbox
from tests.delivery.aws_peers import AwsAdmin, aws_admin
from tests.delivery.builders import make_bridge, scan_events
from tests.peers.aws_proxy import AwsProxy, aws_proxy
from tests.peers.moto_server import MotoServer, PoolInfo
from tests.peers.runner_process import RunDirs, RunnerProcess, bridge_yaml, wait_until

__all__ = ["aws_admin", "aws_proxy"]

Start = Callable[..., RunnerProcess]
USERS, ROUNDS = 4, 6


def test_sigkill_mid_delivery_to_sqs_fifo_sends_each_event_once_in_order(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    aws_admin: AwsAdmin,
    aws_proxy: AwsProxy,
) -> None:
    dirs = RunDirs.under(tmp_path)
    builder = make_bridge(Target("http://127.0.0.1/"))  # only builds the events
    expected: list[str] = []
    with Outbox.open(dirs.state) as outbox:
        for scan in range(ROUNDS):
            events = scan_events(builder, USERS, scan)
            outbox.append_events("crash", events)
            expected += [ev.event_id for ev in events]
    url, arn = aws_admin.queue(fifo=True)
    aws_proxy.latency = 0.2
    bridge = bridge_yaml(
        cognito_pool(), moto_server.endpoint, arn, initial_sync="baseline", max_in_flight=4
    ).replace(f"    uri: {arn}\n", f"    uri: {arn}\n    endpoint: {aws_proxy.endpoint}\n")
    dirs.write("crash.yaml", bridge)
    args = dirs.run_args()

    proc = runner_process(*args)
    wait_until(lambda: aws_proxy.count("SendMessageBatch") >= 2, timeout=60, what="batches")
    proc.kill()
    assert 0 < queued(aws_admin, url) < len(expected)  # killed mid-delivery

    aws_proxy.latency = 0.0
    proc = runner_process(*args)
    wait_until(
        lambda: queued(aws_admin, url) >= len(expected), timeout=60, what="every event queued"
    )
    assert proc.terminate() == 0
    # Read only now: moto, unlike SQS, forgets a deduplication id once its message is deleted.
    received = [json.loads(m["Body"])["id"] for m in aws_admin.messages(url)]
    assert sorted(received) == sorted(expected)  # once each: resends kept their ids
    with Outbox.open(dirs.state) as outbox:
        stats = outbox.stats("crash")
    assert (stats.pending, stats.parked, stats.delivered) == (0, 0, len(expected))
    users = [expected[n::USERS] for n in range(USERS)]  # each user's ids, in the order sent
    for ids in users:
        assert [i for i in received if i in set(ids)] == ids


def queued(admin: AwsAdmin, url: str) -> int:
    """Messages in the queue, none received (so none deleted)."""
    answer = admin.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(answer["Attributes"]["ApproximateNumberOfMessages"])
