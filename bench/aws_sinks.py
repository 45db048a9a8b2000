"""Benchmark: delivery from the SQLite outbox to the AWS sinks (SQS, Kinesis) on moto's server.

    .venv/bin/python bench/aws_sinks.py            # 1,000 events per case, median of 3 runs
    .venv/bin/python bench/aws_sinks.py --quick    # 200 events, 1 run: a smoke run

What is timed is `Deliverer.deliver_pending()` of one bridge whose sink is an SQS queue or a
Kinesis stream (`maxBatchSize` the service's most: 10 and 500; `maxInFlight` 16 for SQS, 1
for Kinesis, see `aws_bridge`) from an
outbox pre-filled with realistic user events until every event is committed as delivered:
outbox reads, entries and their requests, the boto3 calls in the sinks' thread pool, and the
delivered marks.

Beside it, in the same run and against the same server, the baseline: a plain boto3 loop
sending the same bodies (encoded beforehand) in full batches, one call at a time on one
client -- what a hand-written script would do; building its client is timed, as the runner
builds its own on the first send. The ratio printed is ours / plain in events/s.

moto's server runs in its own process (so it does not compete with the client for the GIL);
it is much slower than AWS per call (its SQS slows down as a queue fills: ~60-200 messages/s
here), so the figures say what the runner costs beside boto3, not what AWS takes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from _loopback import fresh_deliverer, make_bridge, user_change
from botocore.config import Config

from runner.delivery.aws_entries import ordering_key
from runner.delivery.encodings import to_structured_json
from runner.loader.arn import parse_sink_arn
from runner.model import AwsTarget, Bridge, NewEvent, OutboxEvent, Target
from runner.polling.events import build_events
from runner.state.outbox import Outbox
from runner.state.store import STATE_FILE

REGION = "us-west-2"
DUMMY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
BATCH = {"sqs": 10, "kinesis": 500}
SERVER = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.WARNING)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


def start_moto() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    return proc, f"http://127.0.0.1:{port}"


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        region_name=REGION,
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        **DUMMY,
    )


def new_destination(service: str, endpoint: str) -> tuple[str, str]:
    """A fresh queue or stream: its ARN and (SQS) URL."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    if service == "sqs":
        sqs = client("sqs", endpoint)
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return arn["Attributes"]["QueueArn"], url
    kinesis = client("kinesis", endpoint)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    return kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"], ""


def count_at(service: str, endpoint: str, arn: str, url: str) -> int:
    if service == "sqs":
        answer = client("sqs", endpoint).get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(answer["Attributes"]["ApproximateNumberOfMessages"])
    kinesis = client("kinesis", endpoint)
    shard = kinesis.list_shards(StreamARN=arn)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamARN=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    total = 0
    while True:
        answer = kinesis.get_records(ShardIterator=iterator, StreamARN=arn, Limit=10_000)
        if not answer["Records"]:
            return total
        total += len(answer["Records"])
        iterator = answer["NextShardIterator"]


def user_events(bridge: Bridge, count: int) -> list[NewEvent]:
    changes = [
        user_change(
            "created",
            n,
            email=f"user-{n}@example.com",
            modified=datetime(2024, 5, 2, 0, 0, n % 60, tzinfo=UTC),
        )
        for n in range(count)
    ]
    return build_events(bridge, changes, observed_at=datetime.now(UTC), scan_id="bench")


def aws_bridge(service: str, arn: str, endpoint: str) -> Bridge:
    bridge = make_bridge("aws", "http://127.0.0.1/", "structured", 16)
    target = Target(arn, aws=AwsTarget(parse_sink_arn(arn), endpoint=endpoint))
    # moto answers slower as a queue fills: a long timeout, so that no call is sent twice.
    # moto's Kinesis numbers a shard's records racily (max + 1): concurrent PutRecords to one
    # shard overwrite each other's records there (not on AWS), so one request at a time.
    in_flight = 1 if service == "kinesis" else 16
    sink = replace(
        bridge.sink,
        target=target,
        max_batch_size=BATCH[service],
        timeout=120.0,
        max_in_flight=in_flight,
    )
    return replace(bridge, sink=sink)


def ours(service: str, endpoint: str, template: Path, count: int) -> float:
    arn, url = new_destination(service, endpoint)
    bridge = aws_bridge(service, arn, endpoint)

    async def run() -> float:
        async with fresh_deliverer(bridge, template, count) as deliverer:
            started = time.perf_counter()
            await deliverer.deliver_pending()
            return time.perf_counter() - started

    seconds = asyncio.run(run())
    if count_at(service, endpoint, arn, url) != count:
        got = count_at(service, endpoint, arn, url)
        raise SystemExit(f"{service}: the service holds {got} events, not {count}")
    return seconds


def plain(service: str, endpoint: str, bodies: list[tuple[bytes, str]]) -> float:
    arn, url = new_destination(service, endpoint)
    size = BATCH[service]
    started = time.perf_counter()
    api = client(service, endpoint)  # timed: the runner builds its client on the first send
    for start in range(0, len(bodies), size):
        chunk = bodies[start : start + size]
        if service == "sqs":
            entries = [{"Id": str(i), "MessageBody": b.decode()} for i, (b, _) in enumerate(chunk)]
            answer = api.send_message_batch(QueueUrl=url, Entries=entries)
            assert not answer.get("Failed")
        else:
            records = [{"Data": b, "PartitionKey": key} for b, key in chunk]
            assert not api.put_records(StreamARN=arn, Records=records)["FailedRecordCount"]
    seconds = time.perf_counter() - started
    if count_at(service, endpoint, arn, url) != len(bodies):
        raise SystemExit(f"{service}: the plain loop left events out")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="200 events, 1 run")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--sinks", default="sqs,kinesis", help="which: sqs, kinesis or both")
    args = parser.parse_args()
    count = args.events or (200 if args.quick else 1_000)
    runs = args.runs or (1 if args.quick else 3)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # the sinks' default chain
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    moto, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            template = Path(tmp) / "template"
            bridge = aws_bridge("sqs", "arn:aws:sqs:us-west-2:123456789012:x", endpoint)
            events = user_events(bridge, count)
            with Outbox.open(template) as outbox:
                outbox.append_events(bridge.id, events)
                stored: list[OutboxEvent] = outbox.pending(bridge.id, count)
            bodies = [(to_structured_json(ev), ordering_key(ev)) for ev in stored]
            print(f"aws sinks: {count} events, median of {runs} run(s) each (moto in a process)")
            print(f"{'sink':<8} {'ours ev/s':>10} {'plain ev/s':>11} {'ours/plain':>11}")
            for service in args.sinks.split(","):
                mine = [ours(service, endpoint, template / STATE_FILE, count) for _ in range(runs)]
                base = [plain(service, endpoint, bodies) for _ in range(runs)]
                ours_eps = count / statistics.median(mine)
                plain_eps = count / statistics.median(base)
                print(
                    f"{service:<8} {ours_eps:>10.0f} {plain_eps:>11.0f} "
                    f"{ours_eps / plain_eps:>10.2f}x"
                )
    finally:
        assert moto.stdin is not None
        moto.stdin.close()
        moto.wait(10)
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
