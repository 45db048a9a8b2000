"""The AWS sinks end to end against moto's server over HTTP: SQS (standard and FIFO), SNS
(to an SQS subscription), EventBridge (a rule to an SQS target) and Kinesis; throttling,
refusals, per-entry failures, each user's order, and no secret of `auth` anywhere."""

from __future__ import annotations

import base64
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runner.model import Target
from tests.delivery.aws_peers import KEY_ENV, AwsAdmin, aws_admin, aws_target
from tests.delivery.builders import BRIDGE_ID, POOL, Harness, scan_events
from tests.peers.aws_proxy import AwsProxy, aws_proxy
from tests.peers.moto_server import MotoServer

__all__ = ["aws_admin", "aws_proxy"]

DEAD_LETTER = Target("file:dead-letter/signups.jsonl", "dead-letter/signups.jsonl")
SUB = "{:08d}-0000-4000-8000-000000000000"


def dead_letters(harness: Harness) -> list[dict[str, Any]]:
    path = harness.state_dir / "dead-letter" / "signups.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def username(event: dict[str, Any]) -> str:
    return str(event["data"]["Username"])


def assert_once_in_order(received: list[dict[str, Any]], sent: list[str]) -> None:
    """Every sent id arrived exactly once, and each user's events in the order sent."""
    assert sorted(e["id"] for e in received) == sorted(sent)
    position = {event_id: n for n, event_id in enumerate(sent)}
    by_user: dict[str, list[int]] = defaultdict(list)
    for event in received:
        by_user[username(event)].append(position[event["id"]])
    assert all(seen == sorted(seen) for seen in by_user.values())


def append_scans(harness: Harness, users: int, scans: int) -> list[str]:
    """`scans` rounds of events of the same `users` users (created, then updated)."""
    ids: list[str] = []
    for scan in range(scans):
        events = scan_events(harness.bridge, users, scan)
        harness.outbox.append_events(BRIDGE_ID, events)
        ids += [ev.event_id for ev in events]
    return ids


def test_sqs_gets_each_event_once_as_a_structured_cloudevent(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, moto_server: MotoServer
) -> None:
    url, arn = aws_admin.queue()
    harness = make_harness(aws_target(arn, moto_server.endpoint), env=KEY_ENV, max_in_flight=4)
    sent = harness.append(23)
    harness.run()
    received = aws_admin.bodies(url)
    assert_once_in_order(received, sent)
    assert {e["source"] for e in received} == {POOL.arn}
    assert {e["specversion"] for e in received} == {"1.0"}
    assert harness.counters.delivered == 23
    assert harness.ready.reason == "Delivered"


def test_sqs_fifo_groups_by_sub_and_dedupes_on_the_event_id(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, moto_server: MotoServer
) -> None:
    url, arn = aws_admin.queue(fifo=True)
    harness = make_harness(aws_target(arn, moto_server.endpoint), env=KEY_ENV)
    sent = append_scans(harness, users=4, scans=3)  # three events per user
    harness.run()
    messages = aws_admin.messages(url)
    received = [json.loads(m["Body"]) for m in messages]
    assert [e["id"] for e in received] == sent  # FIFO: the order sent, which is per user too
    for message, event in zip(messages, received, strict=True):
        sub = next(a["Value"] for a in event["data"]["Attributes"] if a["Name"] == "sub")
        assert message["Attributes"]["MessageGroupId"] == sub
        assert message["Attributes"]["MessageDeduplicationId"] == event["id"]


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "enveloped"])
def test_sns_publishes_the_cloudevent_as_the_message(
    raw: bool,
    make_harness: Callable[..., Harness],
    aws_admin: AwsAdmin,
    moto_server: MotoServer,
) -> None:
    topic, url = aws_admin.topic_to_queue(raw=raw)
    harness = make_harness(aws_target(topic, moto_server.endpoint), env=KEY_ENV)
    sent = harness.append(12)
    harness.run()
    bodies = aws_admin.bodies(url)
    # Without raw delivery SNS wraps the message in its own JSON envelope.
    received = bodies if raw else [json.loads(b["Message"]) for b in bodies]
    assert_once_in_order(received, sent)
    assert {e["source"] for e in received} == {POOL.arn}


def test_eventbridge_entries_carry_source_type_time_and_the_cloudevent(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, moto_server: MotoServer
) -> None:
    bus, url = aws_admin.bus_to_queue()
    harness = make_harness(aws_target(bus, moto_server.endpoint), env=KEY_ENV)
    sent = harness.append(11)
    harness.run()
    envelopes = aws_admin.bodies(url)
    received = [envelope["detail"] for envelope in envelopes]
    assert_once_in_order(received, sent)
    for envelope, event in zip(envelopes, received, strict=True):
        assert envelope["source"] == event["source"] == POOL.arn
        assert envelope["detail-type"] == event["type"]
        assert envelope["time"][:19] == event["time"][:19]


def test_kinesis_records_are_keyed_by_sub(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, moto_server: MotoServer
) -> None:
    stream = aws_admin.stream()
    harness = make_harness(aws_target(stream, moto_server.endpoint), env=KEY_ENV)
    sent = append_scans(harness, users=5, scans=2)
    harness.run()
    records = list(aws_admin.records(stream))
    received = [data for _, data in records]
    assert_once_in_order(received, sent)
    for key, event in records:
        assert key == SUB.format(int(username(event).split("-")[1]))


def test_throttling_is_retried_with_the_bridge_backoff(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, aws_proxy: AwsProxy
) -> None:
    url, arn = aws_admin.queue()
    harness = make_harness(aws_target(arn, aws_proxy.endpoint), env=KEY_ENV)
    sent = harness.append(5)
    aws_proxy.throttle_next(3, operation="SendMessageBatch")
    aws_proxy.error_next(3, "ThrottlingException", "Rate exceeded", operation="SendMessageBatch")
    harness.run()
    assert_once_in_order(aws_admin.bodies(url), sent)
    assert len(harness.sleeps.delays) == 6
    assert harness.counters.retried == 6 * 5
    assert harness.counters.delivered == 5


def test_a_missing_queue_is_a_refusal_dead_lettered_with_the_service_code(
    make_harness: Callable[..., Harness], moto_server: MotoServer
) -> None:
    arn = "arn:aws:sqs:us-west-2:123456789012:no-such-queue"
    harness = make_harness(
        aws_target(arn, moto_server.endpoint), env=KEY_ENV, dead_letter=DEAD_LETTER
    )
    harness.append(2)
    harness.run()
    letters = dead_letters(harness)
    assert len(letters) == 2
    data = json.loads(base64.b64decode(letters[0]["knativeerrordata"]))
    assert data["Code"] in ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")
    assert letters[0]["knativeerrordest"] == arn
    assert letters[0]["knativeerrorcode"] == "400"
    assert harness.ready.status == "False"
    assert harness.ready.reason in ("QueueDoesNotExist", "NonExistentQueue")
    assert harness.counters.delivered == 0


def test_an_event_too_large_for_the_service_is_refused_alone(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, moto_server: MotoServer
) -> None:
    bus, url = aws_admin.bus_to_queue()
    harness = make_harness(
        aws_target(bus, moto_server.endpoint), env=KEY_ENV, dead_letter=DEAD_LETTER
    )
    events = scan_events(harness.bridge, 3, 0)
    events[1].data["Attributes"].append({"Name": "custom:blob", "Value": "x" * 300_000})
    harness.outbox.append_events(BRIDGE_ID, events)
    harness.run()
    received = [envelope["detail"]["id"] for envelope in aws_admin.bodies(url)]
    assert received == [events[0].event_id, events[2].event_id]
    letters = dead_letters(harness)
    assert [letter["id"] for letter in letters] == [events[1].event_id]
    data = json.loads(base64.b64decode(letters[0]["knativeerrordata"]))
    assert data["Code"] == "EventTooLarge"
    assert harness.ready.reason == "EventTooLarge"


def test_only_the_entries_that_failed_are_retried(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, aws_proxy: AwsProxy
) -> None:
    url, arn = aws_admin.queue()
    harness = make_harness(aws_target(arn, aws_proxy.endpoint), env=KEY_ENV)
    sent = harness.append(10)
    aws_proxy.fail_entries(2, lambda body: '"user-0003"' in body or '"user-0007"' in body)
    harness.run()
    assert_once_in_order(aws_admin.bodies(url), sent)
    assert len(aws_proxy.failed_entries) == 2
    assert harness.counters.retried == 2  # the two entries, not the batch of ten
    assert harness.counters.delivered == 10


def test_a_refused_entry_is_dead_lettered_and_the_batch_delivered(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, aws_proxy: AwsProxy
) -> None:
    url, arn = aws_admin.queue()
    harness = make_harness(
        aws_target(arn, aws_proxy.endpoint), env=KEY_ENV, dead_letter=DEAD_LETTER
    )
    sent = harness.append(6)
    aws_proxy.fail_entries(
        1, lambda body: '"user-0002"' in body, "InvalidMessageContents", sender_fault=True
    )
    harness.run()
    received = aws_admin.bodies(url)
    assert sorted(e["id"] for e in received) == sorted(sent[:2] + sent[3:])
    letters = dead_letters(harness)
    assert [letter["id"] for letter in letters] == [sent[2]]
    assert json.loads(base64.b64decode(letters[0]["knativeerrordata"]))["Code"] == (
        "InvalidMessageContents"
    )
    assert "knativeerrorcode" not in letters[0]  # an entry's failure, not the request's
    assert harness.counters.retried == 0


def test_a_failed_entry_holds_back_its_users_later_events(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, aws_proxy: AwsProxy
) -> None:
    stream = aws_admin.stream()
    harness = make_harness(aws_target(stream, aws_proxy.endpoint), env=KEY_ENV)
    sent = append_scans(harness, users=3, scans=3)  # one unit: three requests, one per scan
    first_of_user_1 = sent[1]
    aws_proxy.fail_entries(
        1, lambda body: first_of_user_1 in body, "ProvisionedThroughputExceededException"
    )
    harness.run()
    received = [data for _, data in aws_admin.records(stream)]
    assert_once_in_order(received, sent)  # user-0001's later events waited for its first
    assert harness.counters.delivered == 9


def test_no_secret_of_the_auth_reaches_logs_status_or_dead_letters(
    make_harness: Callable[..., Harness],
    aws_proxy: AwsProxy,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    arn = "arn:aws:sqs:us-west-2:123456789012:no-such-queue"
    harness = make_harness(
        aws_target(arn, aws_proxy.endpoint), env=KEY_ENV, dead_letter=DEAD_LETTER, retry=1
    )
    harness.append(1)
    aws_proxy.fail_next(2, operation="GetQueueUrl")  # a 500, retried, then the refusal
    with caplog.at_level(logging.DEBUG):
        harness.run()
    assert aws_proxy.requests  # it did sign requests with the keys
    texts = [
        caplog.text,
        harness.counters.last_error or "",
        harness.ready.message,
        (harness.state_dir / "dead-letter" / "signups.jsonl").read_text(),
    ]
    for text in texts:
        for value in KEY_ENV.values():
            assert value not in text
    assert dead_letters(harness)


def test_an_assumed_role_signs_the_sink_requests_and_is_never_logged(
    make_harness: Callable[..., Harness],
    aws_admin: AwsAdmin,
    aws_proxy: AwsProxy,
    moto_server: MotoServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.endpoint)  # STS answered by moto
    url, arn = aws_admin.queue()
    target = aws_target(arn, aws_proxy.endpoint)
    assert target.aws is not None
    auth = replace(target.aws.auth, assume_role_arn="arn:aws:iam::123456789012:role/writer")
    target = replace(target, aws=replace(target.aws, auth=auth))
    harness = make_harness(target, env=KEY_ENV)
    sent = harness.append(3)
    with caplog.at_level(logging.DEBUG):
        harness.run()
    assert sorted(e["id"] for e in aws_admin.bodies(url)) == sorted(sent)
    seen = aws_proxy.requests[-1]
    temporary_key = seen.authorization.split("Credential=", 1)[1].split("/", 1)[0]
    assert temporary_key != KEY_ENV["BRIDGE_VAR_AK"]  # signed with the role's credentials
    assert seen.security_token
    for secret in (*KEY_ENV.values(), temporary_key, seen.security_token):
        assert secret not in caplog.text


def test_a_request_failing_after_another_of_its_unit_was_taken_retries_only_its_entries(
    make_harness: Callable[..., Harness], aws_admin: AwsAdmin, aws_proxy: AwsProxy
) -> None:
    url, arn = aws_admin.queue()
    harness = make_harness(aws_target(arn, aws_proxy.endpoint), env=KEY_ENV)
    sent = append_scans(harness, users=3, scans=2)  # one unit, two requests: one per scan

    def second_request(body: dict[str, Any]) -> bool:
        return any(sent[3] in entry["MessageBody"] for entry in body.get("Entries", []))

    aws_proxy.error_next(
        1, "ThrottlingException", operation="SendMessageBatch", where=second_request
    )
    harness.run()
    assert_once_in_order(aws_admin.bodies(url), sent)
    assert harness.counters.retried == 3  # the second request's entries, not the first's
    assert len(harness.sleeps.delays) == 1
