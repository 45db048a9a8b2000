"""What an AWS sink sends: one entry per event, cut into requests the service accepts.

    build_batch(service, fifo, events) -> AwsBatch     ValueError: not a valid CloudEvent
    LIMITS[service]                                    entries and bytes per request, per entry

Encodings (CloudEvents has no binding for SQS, SNS or Kinesis; EventBridge has its own
envelope): every entry carries the structured CloudEvent, JSON, as its body --

- SQS `SendMessageBatch`: `MessageBody`; a `.fifo` queue also gets `MessageGroupId` = the
  user's `sub` and `MessageDeduplicationId` = the event id;
- SNS `PublishBatch`: `Message`; a `.fifo` topic as SQS FIFO;
- EventBridge `PutEvents`: `Source` = the event's source (the pool ARN), `DetailType` = its
  type, `Time` = its time, `Detail` = the structured CloudEvent;
- Kinesis `PutRecords`: `Data`, with `PartitionKey` = the user's `sub`.

The user's `sub` is the event's `partitionkey` extension when it has one, else the `sub`
in its data, else its username (`OutboxEvent.user_key`).

Requests: at most the service's entries per request and bytes per request (below), and no
user twice in one request -- a request's entries succeed or fail one by one, and a user's
later entry must not be taken after an earlier one failed (the sender holds back the rest
of that user's entries: `runner.delivery.aws_sink`). An event over the service's limit for
one entry is refused before anything is sent (`EventTooLarge`).

Sizes: SQS and SNS count the message body; EventBridge counts Time (14 bytes) + Source +
DetailType + Detail as AWS documents; Kinesis counts the data and the partition key. SQS
took 1 MiB messages from 2025 (moto 5.2 too), but 256 KiB is what every region, older
emulator and SNS subscription still takes: it is the limit used here for SQS as for SNS
and EventBridge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from runner.delivery.encodings import parse_event_time, to_structured_json
from runner.errors import SinkRejected
from runner.model import AwsSinkService, OutboxEvent

KIB = 1024


class Limits(NamedTuple):
    """What one request of a service may hold: entries, bytes in all, bytes in one entry."""

    entries: int
    request_bytes: int
    entry_bytes: int


LIMITS: Mapping[AwsSinkService, Limits] = {
    "sqs": Limits(10, 256 * KIB, 256 * KIB),
    "sns": Limits(10, 256 * KIB, 256 * KIB),
    "events": Limits(10, 256 * KIB, 256 * KIB),
    "kinesis": Limits(500, 5 * KIB * KIB, KIB * KIB),
}
SERVICE_NAMES: Mapping[AwsSinkService, str] = {
    "sqs": "SQS",
    "sns": "SNS",
    "events": "EventBridge",
    "kinesis": "Kinesis",
}
# EventBridge counts the Time field as 14 bytes, whatever its form.
_EVENTBRIDGE_TIME_BYTES = 14


@dataclass(frozen=True, slots=True)
class AwsEntry:
    """One event as the service's entry: `index` in the unit, `user` its ordering key (the
    `sub`), `fields` the entry's API fields (without the request-local `Id`), `size` what
    the service counts; `refusal` when it can never be sent (too large)."""

    index: int
    user: str
    fields: Mapping[str, Any]
    size: int
    refusal: SinkRejected | None = None


@dataclass(frozen=True, slots=True)
class AwsBatch:
    """A unit's entries, in order, and the requests they are cut into (`refusal`s in none)."""

    entries: tuple[AwsEntry, ...]
    requests: tuple[tuple[AwsEntry, ...], ...]


def build_batch(
    service: AwsSinkService, fifo: bool, events: Sequence[OutboxEvent], max_entries: int
) -> AwsBatch:
    """`events` as entries of `service`, cut into requests of at most `max_entries` (and the
    service's own limits); raises ValueError if one is not a valid CloudEvent."""
    limits = LIMITS[service]
    entries = tuple(
        _checked(service, _entry(service, fifo, i, ev), limits) for i, ev in enumerate(events)
    )
    return AwsBatch(entries, cut_requests(entries, min(max_entries, limits.entries), limits))


def cut_requests(
    entries: Sequence[AwsEntry], max_entries: int, limits: Limits
) -> tuple[tuple[AwsEntry, ...], ...]:
    """`entries` in order, cut where a request would be full (count or bytes) or would hold
    a user twice; refused entries are left out."""
    requests: list[tuple[AwsEntry, ...]] = []
    current: list[AwsEntry] = []
    users: set[str] = set()
    size = 0
    for entry in entries:
        if entry.refusal is not None:
            continue
        full = len(current) >= max_entries or size + entry.size > limits.request_bytes
        if current and (full or entry.user in users):
            requests.append(tuple(current))
            current, users, size = [], set(), 0
        current.append(entry)
        users.add(entry.user)
        size += entry.size
    if current:
        requests.append(tuple(current))
    return tuple(requests)


def ordering_key(ev: OutboxEvent) -> str:
    """The user's `sub` (see the module doc)."""
    key = ev.attributes.get("partitionkey")
    if isinstance(key, str) and key:
        return key
    sub = ev.data.get("sub")
    if isinstance(sub, str) and sub:
        return sub
    for attribute in ev.data.get("Attributes") or ():
        if isinstance(attribute, Mapping) and attribute.get("Name") == "sub":
            value = attribute.get("Value")
            if isinstance(value, str) and value:
                return value
    return ev.user_key or ev.event_id


def _entry(service: AwsSinkService, fifo: bool, index: int, ev: OutboxEvent) -> AwsEntry:
    body = to_structured_json(ev)
    user = ordering_key(ev)
    if service == "kinesis":
        return AwsEntry(
            index, user, {"Data": body, "PartitionKey": user}, len(body) + len(user.encode())
        )
    text = body.decode("utf-8")
    if service == "events":
        source, detail_type = str(ev.attributes["source"]), str(ev.attributes["type"])
        fields: dict[str, Any] = {"Source": source, "DetailType": detail_type, "Detail": text}
        time = ev.attributes.get("time")
        if isinstance(time, str):
            fields["Time"] = parse_event_time(time)
        size = _EVENTBRIDGE_TIME_BYTES + len(source.encode()) + len(detail_type.encode())
        return AwsEntry(index, user, fields, size + len(body))
    fields = {"MessageBody" if service == "sqs" else "Message": text}
    if fifo:
        fields["MessageGroupId"] = user
        fields["MessageDeduplicationId"] = ev.event_id
    return AwsEntry(index, user, fields, len(body))


def _checked(service: AwsSinkService, entry: AwsEntry, limits: Limits) -> AwsEntry:
    if entry.size <= limits.entry_bytes:
        return entry
    message = (
        f"the event is {entry.size:,} bytes, over {SERVICE_NAMES[service]}'s limit of "
        f"{limits.entry_bytes:,} bytes for one entry"
    )
    excerpt = json.dumps({"Code": "EventTooLarge", "Message": message}).encode()
    refusal = SinkRejected(message, reason="EventTooLarge", body_excerpt=excerpt)
    return AwsEntry(entry.index, entry.user, entry.fields, entry.size, refusal)
