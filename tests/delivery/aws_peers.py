"""Set-up for the AWS sink tests against moto's server: queues, topics, buses and streams
created over HTTP, targets naming them, and what each received read back."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config

from runner.loader.arn import parse_sink_arn
from runner.model import AwsAuth, AwsCredentials, AwsTarget, SecretRef, Target
from tests.peers.moto_server import DUMMY_CREDENTIALS, REGION, MotoServer

# The auth the sinks under test sign with: static keys from (test) environment variables.
KEY_ENV = {"BRIDGE_VAR_AK": "AKIATESTSINKKEY00001", "BRIDGE_VAR_SK": "sink-secret-Zq9vX2pL7w"}
AUTH = AwsAuth(
    credentials=AwsCredentials(
        SecretRef("env", name="BRIDGE_VAR_AK"), SecretRef("env", name="BRIDGE_VAR_SK")
    )
)


def aws_target(arn: str, endpoint: str) -> Target:
    return Target(arn, aws=AwsTarget(parse_sink_arn(arn), endpoint=endpoint, auth=AUTH))


@dataclass
class AwsAdmin:
    """boto3 clients on moto for set-up and reading back (dummy credentials, no retries)."""

    endpoint: str
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3.client(
                service,  # type: ignore[call-overload]
                region_name=REGION,
                endpoint_url=self.endpoint,
                config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
                **DUMMY_CREDENTIALS,
            )
        return self.clients[service]

    def queue(self, fifo: bool = False) -> tuple[str, str]:
        """A new queue: its URL and ARN."""
        name = f"q-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
        attributes = {"FifoQueue": "true"} if fifo else {}
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def messages(self, url: str) -> list[dict[str, Any]]:
        """Every message in the queue, in the order SQS hands them out, deleted."""
        sqs = self.client("sqs")
        got: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            if not batch:
                return got
            got.extend(batch)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
                ],
            )

    def bodies(self, url: str) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.messages(url)]

    def topic_to_queue(self, raw: bool) -> tuple[str, str]:
        """A new topic with a new queue subscribed: the topic's ARN and the queue's URL."""
        url, queue_arn = self.queue()
        topic = self.client("sns").create_topic(Name=f"t-{uuid.uuid4().hex[:12]}")["TopicArn"]
        self.client("sns").subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true" if raw else "false"},
        )
        return topic, url

    def bus_to_queue(self) -> tuple[str, str]:
        """A new event bus whose one rule sends everything to a new queue: bus ARN, queue URL."""
        url, queue_arn = self.queue()
        events = self.client("events")
        name = f"bus-{uuid.uuid4().hex[:12]}"
        bus = events.create_event_bus(Name=name)["EventBusArn"]
        pattern = json.dumps({"source": [{"prefix": "arn:"}]})
        events.put_rule(Name="all", EventBusName=name, EventPattern=pattern)
        events.put_targets(
            Rule="all", EventBusName=name, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )
        return bus, url

    def stream(self) -> str:
        """A new one-shard stream: its ARN."""
        kinesis = self.client("kinesis")
        name = f"s-{uuid.uuid4().hex[:12]}"
        kinesis.create_stream(StreamName=name, ShardCount=1)
        return str(kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"])

    def records(self, stream_arn: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(partition key, data) of every record of the stream's one shard, in order."""
        kinesis = self.client("kinesis")
        shard = kinesis.list_shards(StreamARN=stream_arn)["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamARN=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, StreamARN=stream_arn)
            for record in answer["Records"]:
                data = record["Data"]
                if isinstance(data, str):
                    data = base64.b64decode(data)
                yield record["PartitionKey"], json.loads(data)
            if not answer["Records"]:
                return
            iterator = answer.get("NextShardIterator")


@pytest.fixture(scope="module")
def aws_admin(moto_server: MotoServer) -> AwsAdmin:
    return AwsAdmin(moto_server.endpoint)
