"""The AWS sinks' pure parts: entries cut into requests (count, bytes, one entry per user),
the ordering key, and how a service's error codes are classified."""

from __future__ import annotations

from botocore.exceptions import ClientError, EndpointConnectionError

from runner.delivery.aws_entries import LIMITS, AwsEntry, Limits, build_batch, cut_requests
from runner.delivery.aws_errors import entry_failure, reason_of, request_failure
from runner.errors import SinkMisconfigured, SinkRejected, SinkUnavailable
from tests.delivery.test_sinks import outbox_event


def entry(index: int, user: str, size: int = 100) -> AwsEntry:
    return AwsEntry(index, user, {}, size)


def shape(requests: tuple[tuple[AwsEntry, ...], ...]) -> list[list[int]]:
    return [[e.index for e in request] for request in requests]


def test_requests_are_cut_by_count_by_bytes_and_at_a_repeated_user() -> None:
    limits = Limits(entries=3, request_bytes=250, entry_bytes=250)
    by_count = [entry(i, f"u{i}") for i in range(7)]
    assert shape(cut_requests(by_count, 3, Limits(3, 10_000, 10_000))) == [
        [0, 1, 2],
        [3, 4, 5],
        [6],
    ]
    assert shape(cut_requests(by_count[:4], 3, limits)) == [[0, 1], [2, 3]]  # 100 B each
    same_user = [entry(0, "a"), entry(1, "b"), entry(2, "a"), entry(3, "c")]
    assert shape(cut_requests(same_user, 3, Limits(3, 10_000, 10_000))) == [[0, 1], [2, 3]]


def test_the_ordering_key_is_the_sub_and_fifo_entries_carry_group_and_dedup_ids() -> None:
    events = [outbox_event(1, "alice"), outbox_event(2, "bob", partitionkey="bob-sub")]
    batch = build_batch("sqs", True, events, 10)
    first, second = batch.entries
    assert first.user == events[0].data["Attributes"][0]["Value"]
    assert second.user == "bob-sub"
    assert first.fields["MessageGroupId"] == first.user
    assert first.fields["MessageDeduplicationId"] == events[0].event_id
    assert "MessageGroupId" not in build_batch("sqs", False, events, 10).entries[0].fields
    assert build_batch("kinesis", False, events, 10).entries[1].fields["PartitionKey"] == "bob-sub"


def test_an_entry_over_the_service_limit_is_refused_and_sent_in_no_request() -> None:
    big = outbox_event(2, "big")
    big.data["Attributes"].append({"Name": "custom:x", "Value": "x" * LIMITS["sns"].entry_bytes})
    batch = build_batch("sns", False, [outbox_event(1), big, outbox_event(3)], 10)
    refusal = batch.entries[1].refusal
    assert isinstance(refusal, SinkRejected)
    assert refusal.reason == "EventTooLarge"
    assert "SNS's limit of 262,144 bytes" in str(refusal)
    assert shape(batch.requests) == [[0, 2]]


def test_max_batch_size_caps_a_request_below_the_service_maximum() -> None:
    events = [outbox_event(n) for n in range(12)]
    assert [len(r) for r in build_batch("sqs", False, events, 100).requests] == [10, 2]
    assert [len(r) for r in build_batch("kinesis", False, events, 5).requests] == [5, 5, 2]


def client_error(code: str, status: int, message: str = "m") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "SendMessageBatch",
    )


def test_request_failures_are_classified_as_for_http() -> None:
    assert isinstance(request_failure(client_error("ThrottlingException", 400)), SinkUnavailable)
    assert isinstance(request_failure(client_error("KMSThrottlingException", 400)), SinkUnavailable)
    assert isinstance(request_failure(client_error("Whatever", 503)), SinkUnavailable)
    assert isinstance(
        request_failure(EndpointConnectionError(endpoint_url="http://x")), SinkUnavailable
    )
    denied = request_failure(client_error("AccessDenied", 403))
    assert isinstance(denied, SinkRejected)
    assert (denied.reason, denied.status_code) == ("AccessDenied", 403)
    missing = request_failure(client_error("AWS.SimpleQueueService.NonExistentQueue", 400))
    assert isinstance(missing, SinkRejected)
    assert missing.reason == "NonExistentQueue"
    expired = request_failure(client_error("ExpiredTokenException", 400))
    assert isinstance(expired, SinkMisconfigured)


def test_entry_failures_retry_throttling_and_service_faults_only() -> None:
    assert isinstance(entry_failure("ProvisionedThroughputExceededException", ""), SinkUnavailable)
    assert isinstance(entry_failure("InternalFailure", ""), SinkUnavailable)
    assert isinstance(entry_failure("Odd", "", sender_fault=False), SinkUnavailable)
    assert isinstance(entry_failure("InvalidParameterValue", "", sender_fault=True), SinkRejected)
    assert isinstance(entry_failure("KMSAccessDeniedException", ""), SinkRejected)
    assert reason_of("") == "SinkError"
    assert reason_of("AWS.SimpleQueueService.BatchRequestTooLong") == "BatchRequestTooLong"


def test_an_aws_message_is_scrubbed_before_it_is_quoted() -> None:
    failure = request_failure(
        client_error("AccessDenied", 403, "denied; X-Amz-Security-Token: FwoGZXIvYXdzEXAMPLE")
    )
    assert "FwoGZXIvYXdzEXAMPLE" not in str(failure)
    assert b"FwoGZXIvYXdzEXAMPLE" not in failure.body_excerpt  # type: ignore[union-attr]
