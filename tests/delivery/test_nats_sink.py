"""The NATS sink against a real nats-server (tests/peers/nats_server.py): JetStream with
acknowledgements and de-duplication, core NATS, refusals with JetStream's error code, and
credentials that never show in what delivery reports."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from runner.delivery import nats_sink
from runner.delivery.deliverer import Deliverer
from runner.delivery.nats_sink import NatsSender
from runner.model import NatsAuth, OutboxEvent, SecretRef, Target
from runner.secrets.resolver import SecretResolver
from tests.delivery.builders import POOL, Harness, make_bridge, scan_events, user_events
from tests.peers.nats_server import (
    NATS_LIMITED_USER,
    NATS_PASSWORD,
    NATS_TOKEN,
    NATS_USER,
    NatsAdmin,
    NatsServer,
)

AUTH = NatsAuth(user=NATS_USER, password=SecretRef("env", name="BRIDGE_VAR_NATS_PASSWORD"))
ENV = {"BRIDGE_VAR_NATS_PASSWORD": NATS_PASSWORD}


def _nats_harness(
    make_harness: Callable[..., Harness],
    uri: str,
    auth: NatsAuth | None = AUTH,
    env: dict[str, str] | None = None,
    **options: Any,
) -> Harness:
    harness = make_harness(Target(uri), env=ENV if env is None else env, **options)
    harness.bridge = dataclasses.replace(
        harness.bridge, sink=dataclasses.replace(harness.bridge.sink, nats_auth=auth)
    )
    return harness


async def _drain_and_close(deliverer: Deliverer) -> None:
    try:
        await deliverer.deliver_pending()
    finally:
        await nats_sink.close_all()


def test_jetstream_gets_every_event_once_in_order_as_a_cloudevent(
    make_harness: Callable[..., Harness], nats_server: NatsServer, nats_admin: NatsAdmin
) -> None:
    nats_admin.stream("COGNITO_A", ["cognito.a.>"])
    harness = _nats_harness(make_harness, f"{nats_server.url}/cognito.a.users", max_in_flight=4)
    first, second = (_append_scan(harness, scan) for scan in (0, 1))  # users 0-5, twice
    harness.run(_drain_and_close)

    messages = nats_admin.messages("COGNITO_A")
    ids = [m.headers["Nats-Msg-Id"] for m in messages]
    assert sorted(ids) == sorted(first + second)  # each once
    for n in range(6):  # per user: first event before the second
        assert ids.index(first[n]) < ids.index(second[n])
    message = messages[0]
    assert message.headers["ce-source"] == POOL.arn
    assert message.headers["ce-id"] == message.headers["Nats-Msg-Id"]
    assert message.headers["ce-specversion"] == "1.0"
    assert message.headers["content-type"] == "application/json"
    assert b"user-00" in message.data and isinstance(json.loads(message.data), dict)
    assert harness.counters.delivered == 12
    assert harness.ready.status == "True"
    assert harness.ready.message == "the sink accepts events (JetStream stream COGNITO_A)"


def test_sink_ready_says_core_nats_is_at_most_once(
    make_harness: Callable[..., Harness], nats_server: NatsServer
) -> None:
    harness = _nats_harness(make_harness, f"{nats_server.url}/cognito.nostream")
    harness.append(1)
    harness.run(_drain_and_close)
    assert harness.counters.delivered == 1
    assert (harness.ready.status, harness.ready.reason) == ("True", "Delivered")
    assert "core NATS: at most once" in harness.ready.message


def test_a_resend_of_the_same_event_is_dropped_by_jetstream(
    nats_server: NatsServer, nats_admin: NatsAdmin
) -> None:
    # What a runner SIGKILLed after the publish but before its delivered mark does: it sends
    # the event again, under the same id; the stream keeps one copy.
    nats_admin.stream("COGNITO_DUP", ["cognito.dup"])
    sender = NatsSender(
        Target(f"{nats_server.url}/cognito.dup"), secrets=SecretResolver(env=ENV), auth=AUTH
    )
    event = _outbox_event()

    async def main() -> None:
        try:
            for _ in range(3):
                assert (await sender.send([event])).accepted
            assert sender.mode == "jetstream"
        finally:
            await sender.aclose()

    asyncio.run(main())
    assert len(nats_admin.messages("COGNITO_DUP")) == 1


def test_core_nats_when_no_stream_holds_the_subject(
    nats_server: NatsServer,
) -> None:
    sender = NatsSender(
        Target(f"{nats_server.url}/cognito.core"), secrets=SecretResolver(env=ENV), auth=AUTH
    )
    event = _outbox_event()

    async def main() -> list[Any]:
        listener = await nats.connect(nats_server.url, user=NATS_USER, password=NATS_PASSWORD)
        sub = await listener.subscribe("cognito.core")
        try:
            outcome = await sender.send([event])
            assert outcome.accepted, outcome
            assert sender.mode == "core"
            return [await sub.next_msg(timeout=10)]
        finally:
            await sender.aclose()
            await listener.close()

    (message,) = asyncio.run(main())
    assert message.headers["ce-id"] == event.event_id
    assert message.headers["ce-source"] == POOL.arn


def test_token_auth_and_a_wrong_token_that_never_shows(nats_token_server: NatsServer) -> None:
    event = _outbox_event()
    good = NatsSender(
        Target(f"{nats_token_server.url}/cognito.t"),
        secrets=SecretResolver(env={"BRIDGE_VAR_NATS_TOKEN": NATS_TOKEN}),
        auth=NatsAuth(token=SecretRef("env", name="BRIDGE_VAR_NATS_TOKEN")),
    )
    wrong_token = "wr0ng-t0ken-that-must-not-show"
    bad = NatsSender(
        Target(f"{nats_token_server.url}/cognito.t"),
        secrets=SecretResolver(env={"BRIDGE_VAR_NATS_TOKEN": wrong_token}),
        auth=NatsAuth(token=SecretRef("env", name="BRIDGE_VAR_NATS_TOKEN")),
    )

    async def main() -> tuple[Any, Any]:
        try:
            return await good.send([event]), await bad.send([event])
        finally:
            await nats_sink.close_all()

    accepted, refused = asyncio.run(main())
    assert accepted.accepted
    assert refused.kind == "misconfigured"
    assert refused.reason == "SinkAuthFailed"
    assert wrong_token not in refused.error and NATS_TOKEN not in refused.error


def test_a_refusal_is_dead_lettered_with_the_jetstream_error_code(
    make_harness: Callable[..., Harness],
    nats_server: NatsServer,
    nats_admin: NatsAdmin,
    tmp_path: Path,
) -> None:
    # The stream takes messages of at most 64 bytes: every event is refused (code 10054).
    nats_admin.stream("COGNITO_SMALL", ["cognito.small"], max_msg_size=64)
    harness = _nats_harness(
        make_harness,
        f"{nats_server.url}/cognito.small",
        dead_letter=Target("file:dead.jsonl", file_path="dead.jsonl"),
    )
    harness.append(2)
    harness.run(_drain_and_close)

    letters = [
        json.loads(line) for line in (tmp_path / "state" / "dead.jsonl").read_text().splitlines()
    ]
    assert len(letters) == 2
    assert letters[0]["knativeerrorcode"] == "10054"
    assert letters[0]["knativeerrordest"] == f"{nats_server.url}/cognito.small"
    assert b"size" in base64.b64decode(letters[0]["knativeerrordata"])
    assert nats_admin.messages("COGNITO_SMALL") == []
    assert NATS_PASSWORD not in json.dumps(letters)


def test_a_wrong_password_is_misconfigured_and_never_quoted(
    nats_server: NatsServer,
) -> None:
    wrong = "wr0ng-pa55w0rd-that-must-not-show"
    sender = NatsSender(
        Target(f"{nats_server.url}/cognito.x"),
        secrets=SecretResolver(env={"BRIDGE_VAR_P": wrong}),
        auth=NatsAuth(user=NATS_LIMITED_USER, password=SecretRef("env", name="BRIDGE_VAR_P")),
    )

    async def main() -> Any:
        try:
            return await sender.send([_outbox_event()])
        finally:
            await sender.aclose()

    outcome = asyncio.run(main())
    assert outcome.kind == "misconfigured"
    assert outcome.reason == "SinkAuthFailed"
    assert wrong not in outcome.error


def test_an_unreachable_server_is_retryable() -> None:
    sender = NatsSender(
        Target("nats://127.0.0.1:9/cognito.x"), secrets=SecretResolver(env={}), timeout=2
    )

    async def main() -> Any:
        try:
            return await sender.send([_outbox_event()])
        finally:
            await sender.aclose()

    outcome = asyncio.run(main())
    assert outcome.kind == "retryable"
    assert outcome.reason == "SinkUnreachable"


def _append_scan(harness: Harness, scan: int) -> list[str]:
    events = scan_events(harness.bridge, 6, scan)
    harness.outbox.append_events(harness.bridge.id, events)
    return [ev.event_id for ev in events]


def _outbox_event() -> Any:
    (new,) = user_events(make_bridge(Target("nats://x/y")), 1)
    return OutboxEvent(
        seq=1,
        bridge_id="b",
        event_id=new.event_id,
        attributes=new.attributes,
        data=new.data,
        user_key=new.user_key,
    )


@pytest.fixture(autouse=True)
def _no_connection_left() -> Any:
    yield
    assert not list(nats_sink._OPEN)


@pytest.mark.parametrize("jetstream", [True, False], ids=["jetstream", "core"])
def test_a_subject_the_user_may_not_publish_to_is_refused(
    nats_server: NatsServer, nats_admin: NatsAdmin, jetstream: bool
) -> None:
    subject = f"denied.{'js' if jetstream else 'core'}"
    if jetstream:
        nats_admin.stream("DENIED_JS", [subject])
    sender = NatsSender(
        Target(f"{nats_server.url}/{subject}"),
        secrets=SecretResolver(env=ENV),
        auth=NatsAuth(user=NATS_LIMITED_USER, password=AUTH.password),
        timeout=30,  # not waited for: the violation comes at once
    )

    async def main() -> Any:
        try:
            return await sender.send([_outbox_event()])
        finally:
            await sender.aclose()

    outcome = asyncio.run(main())
    assert (outcome.kind, outcome.reason) == ("refused", "PermissionDenied")
    assert subject in outcome.error


def test_no_nats_secret_reaches_a_log_record(
    nats_server: NatsServer, nats_token_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # nats-py's own logs included
    wrong = "wr0ng-t0ken-n0t-to-be-logged"
    senders = [
        NatsSender(
            Target(f"{nats_server.url}/cognito.log"), secrets=SecretResolver(env=ENV), auth=AUTH
        ),
        NatsSender(
            Target(f"{nats_token_server.url}/cognito.log"),
            secrets=SecretResolver(env={"BRIDGE_VAR_T": wrong}),
            auth=NatsAuth(token=SecretRef("env", name="BRIDGE_VAR_T")),
        ),
    ]

    async def main() -> list[Any]:
        try:
            return [await sender.send([_outbox_event()]) for sender in senders]
        finally:
            await nats_sink.close_all()

    accepted, refused = asyncio.run(main())
    assert accepted.accepted and refused.kind == "misconfigured"
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "core NATS" in logged  # the mode is logged
    assert NATS_PASSWORD not in logged and wrong not in logged
