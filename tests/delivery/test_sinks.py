"""Sinks: every wire format end to end to a real loopback sink, file sinks, custom headers,
and how each sink fault becomes a `SendOutcome` (runner/delivery: encodings, http_sink,
file_sink, texts, and sinks, which picks one)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from runner.delivery.encodings import (
    BATCH_CONTENT_TYPE,
    encode_request,
    sendable_as_stored,
    to_cloudevent,
    to_structured_json,
)
from runner.delivery.file_sink import FileSender
from runner.delivery.http_sink import parse_retry_after
from runner.delivery.policy import SendOutcome
from runner.delivery.sinks import open_sender
from runner.delivery.texts import knative_error_extensions, safe_uri, status_text
from runner.model import HeaderValue, OutboxEvent, SecretRef, Sink, Target
from runner.secrets.resolver import SecretResolver
from runner.state.storedjson import StoredJson
from tests.peers.ports import refused_port
from tests.peers.sink_server import Reply, SinkServer, parse_request

ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"


def outbox_event(seq: int, username: str = "", **extensions: str) -> OutboxEvent:
    """An outbox event shaped as the poller stores them (DESIGN §3)."""
    username = username or f"user-{seq}"
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"id-{seq:04d}",
        "source": ARN,
        "type": "com.amazon.cognito-idp.sync_trigger",
        "subject": "us-west-2_fak3p001B",
        "time": "2024-05-01T12:00:00.250Z",
        "datacontenttype": "application/json",
        "changetype": "created",
        **extensions,
    }
    data = {
        "Username": username,
        "Attributes": [
            {"Name": "sub", "Value": f"0000-{seq}"},
            {"Name": "email", "Value": "a@b.c"},
        ],
        "UserCreateDate": "2024-05-01T12:00:00Z",
        "UserLastModifiedDate": "2024-05-01T12:00:00.250Z",
        "Enabled": True,
        "UserStatus": "CONFIRMED",
        "MFAOptions": [],
    }
    return OutboxEvent(seq, "team/signups", attributes["id"], attributes, data)


def send(
    target: Target,
    events: Sequence[OutboxEvent],
    *,
    sink: Sink | None = None,
    secrets: SecretResolver | None = None,
    state_dir: Path = Path("/nonexistent"),
) -> SendOutcome:
    async def main() -> SendOutcome:
        async with httpx.AsyncClient() as http:
            sender = open_sender(
                target,
                http=http,
                secrets=secrets or SecretResolver(env={}),
                state_dir=state_dir,
                sink=sink,
            )
            return await sender.send(events)

    return asyncio.run(main())


def http_sink(server: SinkServer, **options: Any) -> tuple[Target, Sink]:
    target = Target(server.url)
    return target, Sink(target, **options)


# -- building events ------------------------------------------------------------------------


def test_to_cloudevent_copies_and_converts_time() -> None:
    ev = outbox_event(1)
    first = to_cloudevent(ev)
    second = to_cloudevent(ev, {"knativeerrorcode": "400"})
    assert first.get_time() == datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert ev.attributes["time"] == "2024-05-01T12:00:00.250Z"  # the stored event is untouched
    assert "knativeerrorcode" not in ev.attributes
    assert first.get_attributes() is not second.get_attributes()
    assert second.get_extension("knativeerrorcode") == "400"
    assert first.get_extension("knativeerrorcode") is None
    assert first.get_data() == ev.data and first.get_data() is not ev.data


def test_to_cloudevent_reads_a_zone_less_time_as_utc() -> None:
    ev = outbox_event(1)
    naive = OutboxEvent(
        1, ev.bridge_id, ev.event_id, {**ev.attributes, "time": "2024-05-01T12:00:00"}, ev.data
    )
    assert to_cloudevent(naive).get_time() == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_to_cloudevent_rejects_an_invalid_event() -> None:
    ev = outbox_event(1, **{"Bad-Name": "x"})
    with pytest.raises(ValueError):
        to_cloudevent(ev)


def stored(ev: OutboxEvent, **changes: Any) -> OutboxEvent:
    """`ev` as the outbox returns it: attributes and data as their stored JSON text."""
    attributes = {**ev.attributes, **changes}
    return OutboxEvent(
        ev.seq,
        ev.bridge_id,
        ev.event_id,
        StoredJson(json.dumps(attributes, ensure_ascii=False, separators=(",", ":"))),
        StoredJson(json.dumps(ev.data, ensure_ascii=False, separators=(",", ":"))),
    )


def sdk_document(ev: OutboxEvent) -> Any:
    return json.loads(to_structured_event(to_cloudevent(ev)).body)


def test_a_stored_event_is_sent_as_its_stored_text() -> None:
    ev = stored(outbox_event(1, team="é ✓"))
    assert isinstance(ev.attributes, StoredJson) and isinstance(ev.data, StoredJson)

    body = to_structured_json(ev)

    assert body == (ev.attributes.text[:-1] + ',"data":' + ev.data.text + "}").encode()
    document = json.loads(body)
    assert document == {**ev.attributes, "data": ev.data}
    # What the SDK would have written, apart from its longer rendering of the time.
    assert {**sdk_document(ev), "time": ev.attributes["time"]} == document
    parsed = JSONFormat().read(CloudEvent, body)
    assert parsed.get_id() == "id-0001" and parsed.get_extension("team") == "é ✓"
    assert parse_request({"content-type": "application/cloudevents+json"}, body).problems == []


@pytest.mark.parametrize(
    "changes",
    [
        {"time": "2024-05-01T12:00:00"},  # no offset: the SDK reads it as UTC
        {"time": "2024-05-01t12:00:00z"},  # RFC 3339, but not the SDK's form
        {"datacontenttype": "text/plain"},  # the SDK sends the data as a string then
    ],
)
def test_an_unusual_stored_event_is_written_by_the_sdk(changes: dict[str, str]) -> None:
    ev = stored(outbox_event(1), **changes)
    assert not sendable_as_stored(ev.attributes)
    try:
        expected = sdk_document(ev)
    except ValueError:  # what the SDK rejects is rejected
        with pytest.raises(ValueError):
            to_structured_json(ev)
        return
    assert json.loads(to_structured_json(ev)) == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"specversion": "0.3"},
        {"id": ""},
        {"source": 7},
        {"subject": ""},
        {"dataschema": ""},
        {"time": "2024-02-30T12:00:00Z"},
        {"time": "yesterday"},
        {"Bad-Name": "x"},
        {"data": "x"},
        {"data_base64": "eA=="},
    ],
)
def test_a_stored_event_that_is_not_a_cloudevent_is_refused(changes: dict[str, Any]) -> None:
    ev = stored(outbox_event(1), **changes)
    assert not sendable_as_stored(ev.attributes)
    with pytest.raises(ValueError):
        to_cloudevent(ev)  # the SDK agrees
    with pytest.raises(ValueError):
        to_structured_json(ev)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"time": "2024-05-01T12:00:00+05:30"},
        {"time": "2024-05-01T12:00:00.123456789-02:00"},
        {"datacontenttype": "application/cloudevents+json; charset=utf-8"},
        {"dataschema": "https://example.com/schema"},
        {"count": 3, "flag": True},
    ],
)
def test_what_is_sent_as_stored_the_sdk_accepts(changes: dict[str, Any]) -> None:
    ev = stored(outbox_event(1), **changes)
    assert sendable_as_stored(ev.attributes)
    to_cloudevent(ev)  # raises if the SDK disagrees
    document = json.loads(to_structured_json(ev))
    assert (
        parse_request(
            {"content-type": "application/cloudevents+json"}, json.dumps(document).encode()
        ).problems
        == []
    )


def test_a_stored_event_that_does_not_parse_is_refused() -> None:
    ev = stored(outbox_event(1))
    broken = OutboxEvent(1, ev.bridge_id, ev.event_id, StoredJson('{"id": '), ev.data)
    with pytest.raises(ValueError):
        to_structured_json(broken)
    with pytest.raises(ValueError):
        encode_request("binary", [broken])


# -- HTTP content modes, end to end ------------------------------------------------------------


def test_binary_mode_sends_percent_encoded_ce_headers(sink_server: SinkServer) -> None:
    # Space, double quote, percent and non-ASCII must be percent-encoded in ce-* headers
    # (CloudEvents HTTP binding 3.1.3.2); the receiver's SDK must decode them back.
    tricky = 'a b"c%d é ✓'
    ev = outbox_event(1, team=tricky)
    target, sink = http_sink(sink_server, format="binary")

    outcome = send(target, [ev], sink=sink)

    assert outcome.accepted
    [request] = sink_server.received
    assert request.mode == "binary"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["ce-id"] == "id-0001"
    assert request.headers["ce-time"] == "2024-05-01T12:00:00.250000Z"
    raw = request.headers["ce-team"]
    assert raw == "a%20b%22c%25d%20%C3%A9%20%E2%9C%93"
    assert raw.isascii() and " " not in raw
    [received] = request.events
    assert received.get_extension("team") == tricky
    assert received.get_extension("changetype") == "created"
    assert received.get_data() == ev.data
    assert json.loads(request.body) == ev.data
    assert sink_server.problems == []


def test_structured_mode_sends_one_valid_json_event(sink_server: SinkServer) -> None:
    ev = outbox_event(7)
    target, sink = http_sink(sink_server, format="structured")

    assert send(target, [ev], sink=sink).accepted

    [request] = sink_server.received
    assert request.mode == "structured"
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert not any(name.startswith("ce-") for name in request.headers)
    document = json.loads(request.body)
    assert document["id"] == "id-0007" and document["source"] == ARN
    assert document["time"] == "2024-05-01T12:00:00.250000Z"
    assert document["data"] == ev.data
    assert sink_server.problems == []


def test_batch_mode_sends_a_json_array_in_order(sink_server: SinkServer) -> None:
    events = [outbox_event(seq) for seq in range(1, 6)]
    target, sink = http_sink(sink_server, format="batch", max_batch_size=5)

    assert send(target, events, sink=sink).accepted

    [request] = sink_server.received
    assert request.mode == "batch"
    assert request.headers["content-type"] == BATCH_CONTENT_TYPE
    documents = json.loads(request.body)
    assert [doc["id"] for doc in documents] == [ev.event_id for ev in events]
    assert [e.get_id() for e in request.events] == [ev.event_id for ev in events]
    assert sink_server.problems == []


def test_binary_and_structured_carry_one_event_per_request() -> None:
    two = [outbox_event(1), outbox_event(2)]
    for format in ("binary", "structured"):
        with pytest.raises(ValueError):
            encode_request(format, two)  # type: ignore[arg-type]


# -- custom headers and secrets --------------------------------------------------------------


def test_custom_headers_plain_and_secret_arrive(sink_server: SinkServer) -> None:
    secrets = SecretResolver(env={"BRIDGE_VAR_SINK_TOKEN": "Bearer s3cr3t-token-value"})
    headers: Mapping[str, HeaderValue] = {
        "Authorization": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN"),
        "X-Team": "identity",
        "ce-id": "spoofed",  # a custom header never overrides a CloudEvents attribute
    }
    target, sink = http_sink(sink_server, headers=headers)

    assert send(target, [outbox_event(1)], sink=sink, secrets=secrets).accepted

    [request] = sink_server.received
    assert request.headers["authorization"] == "Bearer s3cr3t-token-value"
    assert request.headers["x-team"] == "identity"
    assert request.headers["ce-id"] == "id-0001"


def test_unresolvable_secret_header_is_a_misconfiguration(sink_server: SinkServer) -> None:
    target, sink = http_sink(
        sink_server, headers={"Authorization": SecretRef("env", "BRIDGE_VAR_MISSING")}
    )

    outcome = send(target, [outbox_event(1)], sink=sink)

    assert outcome.kind == "misconfigured"
    assert outcome.reason == "SecretUnavailable"
    assert "MISSING" in outcome.error
    assert sink_server.received == []  # nothing was attempted


def test_invalid_header_value_is_reported_without_the_value(sink_server: SinkServer) -> None:
    secret = "line1\r\nX-Injected: yes"
    secrets = SecretResolver(env={"BRIDGE_VAR_SINK_TOKEN": secret})
    target, sink = http_sink(
        sink_server, headers={"Authorization": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN")}
    )

    outcome = send(target, [outbox_event(1)], sink=sink, secrets=secrets)

    assert outcome.kind == "misconfigured" and outcome.reason == "InvalidSinkHeader"
    assert "line1" not in outcome.error and "Injected" not in outcome.error
    assert sink_server.received == []


def test_an_echoed_secret_is_masked_in_the_error_excerpt(sink_server: SinkServer) -> None:
    secrets = SecretResolver(env={"BRIDGE_VAR_SINK_TOKEN": "echo-me-not-123"})
    sink_server.script(Reply(400, body=b"bad request; you sent Authorization: echo-me-not-123"))
    target, sink = http_sink(
        sink_server, headers={"Authorization": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN")}
    )

    outcome = send(target, [outbox_event(1)], sink=sink, secrets=secrets)

    assert outcome.kind == "refused" and outcome.status_code == 400
    assert outcome.error == "HTTP 400 Bad Request"
    assert b"echo-me-not-123" not in outcome.body_excerpt
    assert b"Authorization: ***" in outcome.body_excerpt


def test_a_header_value_http_cannot_carry_is_refused_before_sending(
    sink_server: SinkServer,
) -> None:
    # h11 refuses leading or trailing whitespace, and its error quotes the value.
    secrets = SecretResolver(env={"BRIDGE_VAR_SINK_TOKEN": "Bearer tok-with-a-trailing-space "})
    target, sink = http_sink(
        sink_server, headers={"Authorization": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN")}
    )

    outcome = send(target, [outbox_event(1)], sink=sink, secrets=secrets)

    assert outcome.kind == "misconfigured" and outcome.reason == "InvalidSinkHeader"
    assert "tok-with" not in outcome.error
    assert sink_server.received == []


def test_an_error_excerpt_that_is_not_utf8_is_still_masked(sink_server: SinkServer) -> None:
    secrets = SecretResolver(env={"BRIDGE_VAR_SINK_TOKEN": "echo-me-not-456"})
    sink_server.script(Reply(400, body=b"\xff\xfe latin-1 echo: echo-me-not-456 \xe9"))
    target, sink = http_sink(
        sink_server, headers={"Authorization": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN")}
    )

    outcome = send(target, [outbox_event(1)], sink=sink, secrets=secrets)

    assert outcome.kind == "refused"
    assert outcome.body_excerpt == b"\xff\xfe latin-1 echo: *** \xe9"


# -- faults as outcomes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        (500, "retryable", "SinkError"),
        (503, "retryable", "SinkError"),
        (404, "retryable", "SinkError"),
        (408, "retryable", "SinkError"),
        (409, "retryable", "SinkError"),
        (429, "retryable", "SinkThrottled"),
        (400, "refused", "EventRefused"),
        (401, "refused", "EventRefused"),
        (413, "refused", "EventRefused"),
    ],
)
def test_status_codes_follow_knative_rules(
    sink_server: SinkServer, status: int, kind: str, reason: str
) -> None:
    sink_server.script(Reply(status, body=b"details"))
    target, sink = http_sink(sink_server)

    outcome = send(target, [outbox_event(1)], sink=sink)

    assert (outcome.kind, outcome.status_code, outcome.reason) == (kind, status, reason)
    assert outcome.error.startswith(f"HTTP {status} ")
    assert outcome.body_excerpt == b"details"


def test_retry_after_is_parsed_from_the_response(sink_server: SinkServer) -> None:
    sink_server.script(Reply(429, headers={"Retry-After": "7"}))
    target, sink = http_sink(sink_server)

    outcome = send(target, [outbox_event(1)], sink=sink)

    assert outcome.kind == "retryable" and outcome.retry_after == 7.0


def test_connection_refused_is_retryable() -> None:
    with refused_port() as port:
        target = Target(f"http://127.0.0.1:{port}/")
        outcome = send(target, [outbox_event(1)], sink=Sink(target))

    assert outcome.kind == "retryable" and outcome.reason == "SinkUnreachable"
    assert outcome.status_code is None
    assert outcome.error.startswith("ConnectError")


def test_a_dropped_connection_is_retryable(sink_server: SinkServer) -> None:
    sink_server.script(Reply(drop=True))
    target, sink = http_sink(sink_server)

    outcome = send(target, [outbox_event(1)], sink=sink)

    assert outcome.kind == "retryable" and outcome.reason == "SinkError"
    assert outcome.error.startswith("RemoteProtocolError")


def test_a_reply_slower_than_the_timeout_is_retryable(sink_server: SinkServer) -> None:
    sink_server.script(Reply(202, delay=5.0))
    target, sink = http_sink(sink_server, timeout=0.2)

    outcome = send(target, [outbox_event(1)], sink=sink)

    assert outcome.kind == "retryable" and outcome.reason == "SinkTimeout"
    assert len(sink_server.received) == 1  # the request did arrive


def test_an_error_body_with_a_broken_content_encoding_is_still_a_refusal(
    sink_server: SinkServer,
) -> None:
    sink_server.script(Reply(400, headers={"Content-Encoding": "gzip"}, body=b"not gzip at all"))
    target, sink = http_sink(sink_server)

    outcome = send(target, [outbox_event(1)], sink=sink)

    assert (outcome.kind, outcome.status_code, outcome.reason) == ("refused", 400, "EventRefused")
    # Encoded bytes can be neither read nor masked: they are not passed on.
    assert outcome.body_excerpt == b""
    # Asked for plainly, so that a sink's error text normally arrives readable.
    assert sink_server.received[0].headers["accept-encoding"] == "identity"


def send_through(transport: httpx.AsyncBaseTransport, headers: Mapping[str, str]) -> SendOutcome:
    """One send to a sink served by `transport` (for faults no loopback server can cause)."""
    target = Target("http://sink.test/events")

    async def main() -> SendOutcome:
        async with httpx.AsyncClient(transport=transport) as http:
            sender = open_sender(
                target,
                http=http,
                secrets=SecretResolver(env={}),
                state_dir=Path("."),
                sink=Sink(target, headers=dict(headers)),
            )
            return await sender.send([outbox_event(1)])

    return asyncio.run(main())


def test_a_request_the_http_library_cannot_write_is_a_misconfiguration() -> None:
    plain_secret = "plain-header-value-789"  # a plain (non-SecretRef) value is never registered

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'{plain_secret}'")

    outcome = send_through(httpx.MockTransport(refuse), {"X-Api-Key": plain_secret})

    assert outcome.kind == "misconfigured" and outcome.reason == "InvalidSinkRequest"
    assert outcome.error.startswith("LocalProtocolError")
    assert plain_secret not in repr(outcome)


def test_any_other_failure_of_a_send_is_an_outcome_not_an_exception() -> None:
    plain_secret = "plain-header-value-012"

    def explode(request: httpx.Request) -> httpx.Response:
        raise httpx.DecodingError(f"cannot decode, headers were {plain_secret}")

    outcome = send_through(httpx.MockTransport(explode), {"X-Api-Key": plain_secret})

    assert outcome.kind == "retryable" and outcome.reason == "SinkError"
    assert outcome.error.startswith("DecodingError: cannot decode")
    assert plain_secret not in repr(outcome)


def test_the_next_request_after_an_error_reuses_the_client(sink_server: SinkServer) -> None:
    sink_server.script(Reply(500, body=b"x" * 5000))
    target, sink = http_sink(sink_server)

    async def main() -> list[SendOutcome]:
        async with httpx.AsyncClient() as http:
            sender = open_sender(
                target, http=http, secrets=SecretResolver(env={}), state_dir=Path("."), sink=sink
            )
            ev = outbox_event(1)
            return [await sender.send([ev]), await sender.send([ev])]

    first, second = asyncio.run(main())
    assert first.kind == "retryable" and len(first.body_excerpt) == 1024
    assert second.accepted


# -- pure helpers ----------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 3 ", now=now) == 3.0
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90.0
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after("soon") is None


def test_status_text_and_safe_uri() -> None:
    assert status_text(503, "Service Unavailable") == "HTTP 503 Service Unavailable"
    assert status_text(429) == "HTTP 429 Too Many Requests"
    assert status_text(599) == "HTTP 599"
    assert safe_uri("https://user:pw@sink.example:8443/x?y=1") == "https://sink.example:8443/x"
    assert safe_uri("https://sink.example/x") == "https://sink.example/x"


def test_knative_error_extensions() -> None:
    refused = SendOutcome(
        "refused", status_code=400, error="HTTP 400 Bad Request", body_excerpt=b"no"
    )
    assert knative_error_extensions("https://u:p@sink/x", refused) == {
        "knativeerrordest": "https://sink/x",
        "knativeerrorcode": "400",
        "knativeerrordata": base64.b64encode(b"no").decode(),
    }
    unreachable = SendOutcome("retryable", error="ConnectError: refused")
    extensions = knative_error_extensions("http://sink/", unreachable)
    assert "knativeerrorcode" not in extensions
    assert base64.b64decode(extensions["knativeerrordata"]) == b"ConnectError: refused"


# -- file: sinks -----------------------------------------------------------------------------


def read_lines(path: Path) -> list[CloudEvent]:
    return [JSONFormat().read(CloudEvent, line) for line in path.read_bytes().splitlines() if line]


def test_file_sink_appends_structured_json_lines(tmp_path: Path) -> None:
    target = Target("file:out/deep/events.jsonl", "out/deep/events.jsonl")
    first = [outbox_event(seq) for seq in (1, 2)]
    assert send(target, first, state_dir=tmp_path).accepted
    assert send(target, [outbox_event(3)], state_dir=tmp_path).accepted

    path = tmp_path / "out" / "deep" / "events.jsonl"
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3
    assert [e.get_id() for e in read_lines(path)] == ["id-0001", "id-0002", "id-0003"]
    for line in lines:
        assert parse_request({"content-type": "application/cloudevents+json"}, line).problems == []


def test_file_sink_repairs_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"specversion": "1.0", "id": "torn')  # a crash mid-write
    target = Target("file:events.jsonl", "events.jsonl")

    assert send(target, [outbox_event(1)], state_dir=tmp_path).accepted

    lines = path.read_bytes().splitlines()
    assert lines[0].endswith(b'"torn')
    assert JSONFormat().read(CloudEvent, lines[1]).get_id() == "id-0001"


def test_file_sink_refuses_a_symlink_out_of_the_state_dir(tmp_path: Path) -> None:
    state, outside = tmp_path / "state", tmp_path / "outside"
    state.mkdir()
    outside.mkdir()
    (state / "dl").symlink_to(outside, target_is_directory=True)
    target = Target("file:dl/events.jsonl", "dl/events.jsonl")

    outcome = send(target, [outbox_event(1)], state_dir=state)

    assert outcome.kind == "misconfigured" and outcome.reason == "FileSinkOutsideStateDir"
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["state.sqlite", "state.sqlite-wal", "state.sqlite-shm", "state.sqlite-journal"]
)
def test_file_sink_refuses_the_runners_own_database(tmp_path: Path, name: str) -> None:
    database = tmp_path / name
    database.write_bytes(b"SQLite format 3\x00")

    outcome = send(Target(f"file:{name}", name), [outbox_event(1)], state_dir=tmp_path)

    assert outcome.kind == "misconfigured" and outcome.reason == "FileSinkIsStateDatabase"
    assert database.read_bytes() == b"SQLite format 3\x00"


def test_file_sink_refuses_a_symlink_to_the_runners_database(tmp_path: Path) -> None:
    database = tmp_path / "state.sqlite-wal"
    database.write_bytes(b"wal")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "events.jsonl").symlink_to(database)  # made after the loader looked
    target = Target("file:out/events.jsonl", "out/events.jsonl")

    outcome = send(target, [outbox_event(1)], state_dir=tmp_path)

    assert outcome.kind == "misconfigured" and outcome.reason == "FileSinkIsStateDatabase"
    assert database.read_bytes() == b"wal"


def test_a_file_named_like_the_database_elsewhere_is_fine(tmp_path: Path) -> None:
    target = Target("file:out/state.sqlite", "out/state.sqlite")

    assert send(target, [outbox_event(1)], state_dir=tmp_path).accepted
    assert [e.get_id() for e in read_lines(tmp_path / "out" / "state.sqlite")] == ["id-0001"]


def test_file_sink_write_failure_is_retryable(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where a directory should be")
    target = Target("file:blocked/events.jsonl", "blocked/events.jsonl")

    outcome = send(target, [outbox_event(1)], state_dir=tmp_path)

    assert outcome.kind == "retryable" and outcome.reason == "SinkWriteFailed"


def test_file_sender_needs_a_file_target(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileSender(Target("http://x/"), state_dir=tmp_path)


# -- no secret in logs -----------------------------------------------------------------------


def test_secret_header_never_reaches_logs_or_outcomes(
    sink_server: SinkServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tok-9f8e7d6c5b4a"
    secrets = SecretResolver(env={"BRIDGE_VAR_SINK_TOKEN": secret})
    sink_server.script(Reply(503), Reply(400, body=f"echo {secret}".encode()), Reply(drop=True))
    target, sink = http_sink(
        sink_server, headers={"X-Api-Key": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN")}
    )
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included

    outcomes = [
        send(target, [outbox_event(seq)], sink=sink, secrets=secrets) for seq in range(1, 5)
    ]

    assert [o.kind for o in outcomes] == ["retryable", "refused", "retryable", "accepted"]
    assert sink_server.received[-1].headers["x-api-key"] == secret  # it was sent
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    for record in caplog.records:
        assert secret not in record.getMessage()
    for outcome in outcomes:
        assert secret not in repr(outcome)
        assert secret.encode() not in outcome.body_excerpt


def test_cloudevents_headers_win_over_custom_headers_of_the_same_name() -> None:
    from runner.delivery.http_sink import _merged_headers

    event = {"ce-id": "1", "Content-Type": "application/json"}
    merged = _merged_headers(event, {"CE-ID": "mine", "x-team": "a", "Accept-Encoding": "gzip"})
    assert merged == {
        "ce-id": "1",
        "Content-Type": "application/json",
        "x-team": "a",
        "Accept-Encoding": "gzip",  # the bridge's own choice is kept, not doubled
    }
    assert _merged_headers(event, {})["accept-encoding"] == "identity"
