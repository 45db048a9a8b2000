"""At-least-once, in-order delivery (runner/delivery/deliverer.py) against the real SQLite outbox
and real loopback sinks: every format, every sink fault of DESIGN §4.2, dead letters, parking, crash
and cancellation safety, and secrets kept out of logs, counters and errors.

Backoff waits go through an injected `sleep` that records the delay and returns at once,
so the tests assert the delays asked for instead of waiting them out; the jitter drawn for
them comes from an injected, seeded random source, so each delay is checked against the
bounds of its backoff step, never against the clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from runner._kits.aio import sleep_or_wake
from runner.delivery.deliverer import Deliverer
from runner.delivery.policy import DEAD_LETTER_RETRIES, retry_delay
from runner.model import NewEvent, SecretRef, SinkFormat, Target
from runner.state.outbox import Outbox
from runner.status.readiness import Condition
from tests.delivery.builders import (
    BRIDGE_ID,
    SEED,
    Harness,
    Sleeps,
    ids_of,
    make_bridge,
    within_backoff,
)
from tests.peers.faults import CrashBeforeMarking
from tests.peers.sink_server import Reply, SinkServer

# -- every format, end to end ---------------------------------------------------------------


@pytest.mark.parametrize(("format", "requests"), [("binary", 10), ("structured", 10), ("batch", 3)])
def test_every_http_format_delivers_everything_in_order(
    sink_server: SinkServer, make_harness: Callable[..., Harness], format: SinkFormat, requests: int
) -> None:
    harness = make_harness(Target(sink_server.url), format=format, max_batch_size=4)
    ids = harness.append(10)

    harness.run()

    assert ids_of(sink_server.events()) == ids
    assert len(sink_server.received) == requests
    assert {r.mode for r in sink_server.received} == {format}
    assert sink_server.problems == []
    stats = harness.outbox.stats(BRIDGE_ID)
    assert (stats.pending, stats.delivered, stats.parked) == (0, 10, 0)
    assert (harness.counters.delivered, harness.counters.pending) == (10, 0)
    assert harness.counters.last_delivery_time is not None
    assert (harness.ready.status, harness.ready.reason) == ("True", "Delivered")
    assert harness.sleeps.delays == []


def test_file_sink_delivers_json_lines(
    tmp_path: Path, make_harness: Callable[..., Harness]
) -> None:
    harness = make_harness(Target("file:out/events.jsonl", "out/events.jsonl"), max_batch_size=3)
    ids = harness.append(7)

    harness.run()

    lines = (tmp_path / "state" / "out" / "events.jsonl").read_bytes().splitlines()
    assert [JSONFormat().read(CloudEvent, line).get_id() for line in lines] == ids
    assert harness.outbox.stats(BRIDGE_ID).delivered == 7


def test_nothing_pending_returns_at_once(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    harness = make_harness(Target(sink_server.url))
    harness.run()
    assert sink_server.received == []
    assert harness.ready == Condition(
        "SinkReady", "Unknown", "NoDeliveryYet", "no event has been sent yet"
    )


# -- retryable faults -------------------------------------------------------------------------


def test_5xx_is_retried_with_exponential_backoff(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(Reply(500), Reply(503), Reply(502))
    harness = make_harness(Target(sink_server.url), backoff_delay=0.5)
    ids = harness.append(2)

    harness.run()

    assert ids_of(sink_server.events()) == [ids[0]] * 4 + [ids[1]]
    assert ids_of(sink_server.events(accepted_only=True)) == ids
    assert within_backoff(harness.sleeps.delays, [0.5, 1.0, 2.0])
    # The deliverer draws its jitter from the random source it was given.
    rng = random.Random(SEED)
    policy = harness.bridge.delivery
    assert harness.sleeps.delays == [retry_delay(policy, n, None, rng) for n in range(3)]
    assert harness.counters.retried == 3
    assert harness.counters.last_error == "HTTP 502 Bad Gateway"
    assert harness.outbox.stats(BRIDGE_ID).delivered == 2


def test_bridges_failing_together_retry_at_different_times(
    sink_server: SinkServer, outbox: Outbox, tmp_path: Path
) -> None:
    # Two bridges on one sink that goes down: each backs off, but not in lockstep.
    harnesses = []
    for bridge_id in ("team-a/signups", "team-b/signups"):
        bridge = replace(make_bridge(Target(sink_server.url)), id=bridge_id)
        harness = Harness(bridge, outbox, tmp_path / "state", {})
        harness.rng = None  # the deliverer's own random source, as in production
        harness.append(1)
        harnesses.append(harness)

    for harness in harnesses:
        sink_server.script(*[Reply(503)] * 4)
        harness.run()

    first, second = (h.sleeps.delays for h in harnesses)
    assert within_backoff(first, [0.5, 1.0, 2.0, 4.0])
    assert within_backoff(second, [0.5, 1.0, 2.0, 4.0])
    # Not in lockstep. (Any one pair of millisecond draws may coincide, about 1 in 250 for the
    # first; four in a row only as rarely as never.)
    assert first != second
    assert len(sink_server.events(accepted_only=True)) == 2


def test_linear_backoff_is_capped_at_max_backoff(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(*[Reply(503)] * 4)
    harness = make_harness(
        Target(sink_server.url), backoff_policy="linear", backoff_delay=1.0, max_backoff=2.5
    )
    harness.append(1)

    harness.run()

    assert within_backoff(harness.sleeps.delays, [1.0, 2.0, 2.5, 2.5])
    assert len(sink_server.events(accepted_only=True)) == 1


def test_429_retry_after_seconds_and_date_are_honoured(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    sink_server.script(
        Reply(429, headers={"Retry-After": "7"}),
        Reply(429, headers={"Retry-After": later}),
        Reply(429, headers={"Retry-After": "86400"}),  # capped at max_backoff
    )
    harness = make_harness(Target(sink_server.url), backoff_delay=0.5, max_backoff=60.0)
    harness.append(1)

    harness.run()

    first, second, third = harness.sleeps.delays
    # Each no sooner than asked, jittered within half the backoff step after it: 0.25 s for
    # the first retry (step 0.5 s), 0.5 s for the second (step 1 s). The date has whole
    # seconds, so it asks for up to 40 s from when the test wrote it.
    assert 7.0 <= first <= 7.25
    assert 35.0 <= second <= 40.5
    assert third == 60.0  # capped at max_backoff: nothing left to jitter
    assert len(sink_server.events(accepted_only=True)) == 1


def test_connection_refused_is_retried_until_the_sink_comes_up(
    sink_server_factory: Callable[[], SinkServer], make_harness: Callable[..., Harness]
) -> None:
    closed = sink_server_factory()
    url = closed.url
    closed.close()  # the port is now refused
    harness = make_harness(Target(url), backoff_delay=0.5)
    harness.append(1)

    async def body(deliverer: Deliverer) -> None:
        stop = asyncio.Event()
        harness.sleeps._on_sleep = lambda n: stop.set() if n == 3 else None
        await deliverer.deliver_pending(stop)

    harness.run(body)

    assert within_backoff(harness.sleeps.delays, [0.5, 1.0, 2.0])
    assert (harness.ready.status, harness.ready.reason) == ("False", "SinkUnreachable")
    assert harness.counters.last_error is not None
    assert harness.counters.last_error.startswith("ConnectError")
    [pending] = harness.outbox.pending(BRIDGE_ID, 10)
    assert pending.attempts == 3  # failed attempts are remembered across runs
    assert harness.counters.pending == 1


def test_a_slow_sink_beyond_the_timeout_is_retried(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(Reply(202, delay=3.0))
    harness = make_harness(Target(sink_server.url), timeout=0.2)
    [event_id] = harness.append(1)

    harness.run()

    assert ids_of(sink_server.events()) == [event_id, event_id]  # at least once
    assert within_backoff(harness.sleeps.delays, [0.5])
    assert harness.outbox.stats(BRIDGE_ID).delivered == 1


def test_order_holds_under_retries(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    ok = Reply()
    sink_server.script(ok, Reply(503), ok, Reply(drop=True), Reply(429), ok, Reply(500), ok, ok)
    harness = make_harness(Target(sink_server.url))
    ids = harness.append(6)

    harness.run()

    assert ids_of(sink_server.events(accepted_only=True)) == ids
    seen = ids_of(sink_server.events())
    assert seen == sorted(seen, key=ids.index)  # never a later event before an earlier one


# -- given up or refused -------------------------------------------------------------------


def test_400_goes_to_the_dead_letter_sink_with_the_error(
    sink_server_factory: Callable[[], SinkServer], make_harness: Callable[..., Harness]
) -> None:
    sink, dead = sink_server_factory(), sink_server_factory()
    sink.script(Reply(), Reply(400, body=b'{"error": "no such tenant"}'))
    harness = make_harness(Target(sink.url), dead_letter=Target(dead.url))
    ids = harness.append(3)

    harness.run()

    assert ids_of(sink.events(accepted_only=True)) == [ids[0], ids[2]]
    assert len(sink.received) == 3  # refused: not retried
    [letter] = dead.events()
    assert letter.get_id() == ids[1]
    assert letter.get_extension("knativeerrorcode") == "400"
    assert letter.get_extension("knativeerrordest") == sink.url
    data = base64.b64decode(letter.get_extension("knativeerrordata"))
    assert json.loads(data) == {"error": "no such tenant"}
    assert dead.received[0].mode == "binary" and dead.problems == []
    stats = harness.outbox.stats(BRIDGE_ID)
    assert (stats.pending, stats.parked, stats.delivered, stats.dead_lettered) == (0, 0, 2, 1)
    assert harness.counters.dead_lettered == 1
    assert harness.sleeps.delays == []


def test_400_without_a_dead_letter_sink_parks_the_event(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(Reply(400))
    harness = make_harness(Target(sink_server.url))
    ids = harness.append(3)

    harness.run()

    assert ids_of(sink_server.events(accepted_only=True)) == ids[1:]
    assert harness.outbox.count_parked(BRIDGE_ID) == 1
    assert harness.counters.parked == 1
    assert harness.counters.last_error == "HTTP 400 Bad Request"

    # Kept, not dropped: released after the sink is fixed, it is delivered with its id.
    assert harness.outbox.unpark(BRIDGE_ID) == 1
    harness.run()
    assert ids_of(sink_server.events(accepted_only=True)) == [*ids[1:], ids[0]]
    assert harness.counters.parked == 0


def test_retry_n_gives_up_after_n_retries_into_the_dead_letter_file(
    tmp_path: Path, sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(*[Reply(503)] * 10)
    dead_letter = Target("file:dead-letter/signups.jsonl", "dead-letter/signups.jsonl")
    harness = make_harness(Target(sink_server.url), retry=2, dead_letter=dead_letter)
    [event_id] = harness.append(1)

    harness.run()

    assert len(sink_server.received) == 3  # the first attempt + 2 retries
    assert within_backoff(harness.sleeps.delays, [0.5, 1.0])
    lines = (tmp_path / "state" / "dead-letter" / "signups.jsonl").read_bytes().splitlines()
    [letter] = [JSONFormat().read(CloudEvent, line) for line in lines]
    assert letter.get_id() == event_id
    assert letter.get_extension("knativeerrorcode") == "503"
    assert harness.outbox.stats(BRIDGE_ID).dead_lettered == 1
    assert harness.ready.status == "False"


def test_the_retry_budget_survives_a_restart(
    sink_server_factory: Callable[[], SinkServer], make_harness: Callable[..., Harness]
) -> None:
    sink, dead = sink_server_factory(), sink_server_factory()
    sink.script(*[Reply(503)] * 10)
    harness = make_harness(Target(sink.url), retry=2, dead_letter=Target(dead.url))
    [event_id] = harness.append(1)

    async def stop_after_first_retry(deliverer: Deliverer) -> None:
        stop = asyncio.Event()
        harness.sleeps._on_sleep = lambda n: stop.set()
        await deliverer.deliver_pending(stop)

    harness.run(stop_after_first_retry)
    assert len(sink.received) == 1 and dead.received == []
    harness.sleeps = Sleeps()
    harness.run()  # a new process would see the same attempts in the outbox

    assert len(sink.received) == 3
    assert ids_of(dead.events()) == [event_id]


def test_a_refused_batch_is_split_to_find_the_bad_event(
    sink_server_factory: Callable[[], SinkServer], make_harness: Callable[..., Harness]
) -> None:
    sink, dead = sink_server_factory(), sink_server_factory()
    # The batch of 4 is refused; sent one by one, only the third is refused again.
    sink.script(Reply(400), Reply(), Reply(), Reply(422), Reply())
    harness = make_harness(
        Target(sink.url), format="batch", max_batch_size=4, dead_letter=Target(dead.url)
    )
    ids = harness.append(6)

    harness.run()

    assert [len(r.events) for r in sink.received] == [4, 1, 1, 1, 1, 2]
    assert ids_of(sink.events(accepted_only=True)) == [ids[0], ids[1], ids[3], ids[4], ids[5]]
    assert ids_of(dead.events()) == [ids[2]]
    assert dead.events()[0].get_extension("knativeerrorcode") == "422"


def test_a_split_batch_keeps_the_retry_budget_it_already_spent(
    sink_server_factory: Callable[[], SinkServer], make_harness: Callable[..., Harness]
) -> None:
    sink, dead = sink_server_factory(), sink_server_factory()
    # The batch fails twice (its whole `retry: 2`), then is refused and split: the first
    # single's next failure is one retry too many, whatever its stored attempts said.
    sink.script(Reply(503), Reply(503), Reply(400), Reply(503))
    harness = make_harness(
        Target(sink.url), format="batch", max_batch_size=2, retry=2, dead_letter=Target(dead.url)
    )
    ids = harness.append(2)

    harness.run()

    assert [len(r.events) for r in sink.received] == [2, 2, 2, 1, 1]
    assert ids_of(dead.events()) == [ids[0]]
    assert ids_of(sink.events(accepted_only=True)) == [ids[1]]
    assert within_backoff(harness.sleeps.delays, [0.5, 1.0])  # the batch's two retries only
    assert harness.outbox.stats(BRIDGE_ID).dead_lettered == 1


def test_a_failing_dead_letter_sink_parks_the_event(
    sink_server_factory: Callable[[], SinkServer], make_harness: Callable[..., Harness]
) -> None:
    sink, dead = sink_server_factory(), sink_server_factory()
    sink.script(Reply(400))
    dead.script(*[Reply(500)] * 10)
    harness = make_harness(Target(sink.url), dead_letter=Target(dead.url))
    ids = harness.append(2)

    harness.run()

    assert len(dead.received) == 1 + DEAD_LETTER_RETRIES
    assert harness.outbox.count_parked(BRIDGE_ID) == 1
    assert ids_of(sink.events(accepted_only=True)) == [ids[1]]  # the bridge moved on
    assert harness.counters.last_error is not None
    assert "dead-letter" in harness.counters.last_error


def test_an_event_that_is_not_a_cloudevent_is_parked(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    harness = make_harness(Target(sink_server.url))
    ids = harness.append(1)
    attributes = {"specversion": "1.0", "id": "bad", "source": "x", "type": "t", "Bad-Ext": "1"}
    harness.outbox.append_events(BRIDGE_ID, [NewEvent("bad", attributes, {})])
    ids += harness.append(1, start=1)

    harness.run()

    assert ids_of(sink_server.events()) == ids  # before and after it, in order
    assert harness.outbox.count_parked(BRIDGE_ID) == 1
    assert harness.counters.last_error is not None
    assert "not a valid CloudEvent" in harness.counters.last_error


def test_an_event_that_is_not_a_cloudevent_is_taken_out_of_its_batch(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    harness = make_harness(Target(sink_server.url), format="batch", max_batch_size=4)
    ids = harness.append(3)
    bad = {"specversion": "1.0", "id": "bad", "source": "x", "type": "t", "data": "reserved"}
    harness.outbox.append_events(BRIDGE_ID, [NewEvent("bad", bad, {})])
    ids += harness.append(6, start=3)

    harness.run()

    assert ids_of(sink_server.events()) == ids  # all the others, in order
    # The first batch of four is cut around the bad event; the rest go in whole batches.
    assert [len(r.events) for r in sink_server.received] == [3, 4, 2]
    assert sink_server.problems == []
    assert harness.outbox.count_parked(BRIDGE_ID) == 1
    assert harness.outbox.stats(BRIDGE_ID).delivered == 9


def test_events_committed_during_a_drain_follow_in_order(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(Reply(202, delay=0.2))
    harness = make_harness(Target(sink_server.url), format="batch", max_batch_size=2)
    ids = harness.append(3)

    async def append_while_the_first_batch_is_in_flight(deliverer: Deliverer) -> None:
        task = asyncio.create_task(deliverer.deliver_pending())
        await asyncio.to_thread(sink_server.wait_for_requests, 1)
        ids.extend(harness.append(3, start=3))
        await task
        await deliverer.deliver_pending()  # as the poller does after each commit

    harness.run(append_while_the_first_batch_is_in_flight)

    assert ids_of(sink_server.events()) == ids
    assert harness.outbox.stats(BRIDGE_ID).delivered == 6


def test_an_unusable_sink_spends_no_retry_budget(
    sink_server_factory: Callable[[], SinkServer], make_harness: Callable[..., Harness]
) -> None:
    sink, dead = sink_server_factory(), sink_server_factory()
    harness = make_harness(
        Target(sink.url),
        headers={"Authorization": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN")},
        retry=1,
        dead_letter=Target(dead.url),
    )
    harness.append(1)

    async def body(deliverer: Deliverer) -> None:
        stop = asyncio.Event()
        harness.sleeps._on_sleep = lambda n: stop.set() if n == 4 else None
        await deliverer.deliver_pending(stop)

    harness.run(body)

    assert sink.received == [] and dead.received == []
    assert within_backoff(harness.sleeps.delays, [0.5, 1.0, 2.0, 4.0])
    [pending] = harness.outbox.pending(BRIDGE_ID, 10)
    assert pending.attempts == 0
    ready = harness.ready
    assert (ready.status, ready.reason) == ("False", "SecretUnavailable")
    assert "BRIDGE_VAR_SINK_TOKEN" in ready.message


# -- crash and cancellation safety ------------------------------------------------------------


def test_a_crash_after_the_sink_accepted_resends_with_the_same_id(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    harness = make_harness(Target(sink_server.url))
    ids = harness.append(3)
    crashing = CrashBeforeMarking(
        harness.outbox, RuntimeError("injected crash after the sink accepted")
    )

    with pytest.raises(RuntimeError, match="injected crash"):
        harness.run(outbox=crashing)
    assert harness.outbox.count_pending(BRIDGE_ID) == 3  # nothing marked delivered
    first_run = ids_of(sink_server.events(accepted_only=True))
    assert first_run == ids[: len(first_run)] and first_run

    harness.run()

    accepted = ids_of(sink_server.events(accepted_only=True))
    assert accepted.count(ids[0]) == 2  # the duplicate carries the same id
    assert set(accepted) == set(ids)
    assert harness.outbox.count_pending(BRIDGE_ID) == 0


def test_cancelling_mid_delivery_loses_nothing(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(Reply(), Reply(), Reply(202, delay=5.0))
    harness = make_harness(Target(sink_server.url))
    ids = harness.append(5)

    async def cancel_while_third_is_in_flight(deliverer: Deliverer) -> None:
        task = asyncio.create_task(deliverer.deliver_pending())
        await asyncio.to_thread(sink_server.wait_for_requests, 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    harness.run(cancel_while_third_is_in_flight)
    pending_ids = [ev.event_id for ev in harness.outbox.pending(BRIDGE_ID, 10)]
    assert pending_ids == ids[2:]  # the two accepted ones were committed as delivered

    harness.run()

    assert set(ids_of(sink_server.events(accepted_only=True))) == set(ids)
    assert harness.outbox.stats(BRIDGE_ID).delivered == 5


def test_stop_cuts_a_backoff_short_and_keeps_the_event(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(*[Reply(503)] * 3)
    harness = make_harness(Target(sink_server.url))
    harness.append(2)

    async def body(deliverer: Deliverer) -> None:
        stop = asyncio.Event()

        async def sleep_until_stopped(delay: float, *events: asyncio.Event) -> bool:
            stop.set()
            return await sleep_or_wake(3600, *events)  # only `stop` can end this wait

        deliverer._sleep = sleep_until_stopped
        await deliverer.deliver_pending(stop)

    harness.run(body)

    assert len(sink_server.received) == 1
    assert harness.outbox.count_pending(BRIDGE_ID) == 2


# -- secrets ------------------------------------------------------------------------------------


def test_no_secret_in_logs_counters_status_or_errors(
    sink_server_factory: Callable[[], SinkServer],
    make_harness: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "Bearer sk-live-5f4e3d2c1b0a"
    sink, dead = sink_server_factory(), sink_server_factory()
    sink.script(
        Reply(503, body=secret.encode()),
        Reply(400, body=f"you sent {secret}".encode()),
        Reply(drop=True),
    )
    harness = make_harness(
        Target(sink.url),
        env={"BRIDGE_VAR_SINK_TOKEN": secret},
        headers={"Authorization": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN")},
        dead_letter=Target(dead.url),
    )
    harness.append(3)
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included

    harness.run()

    assert all(r.headers["authorization"] == secret for r in sink.received)
    assert all("authorization" not in r.headers for r in dead.received)  # not for dead letters
    [letter] = dead.events()
    assert secret.encode() not in base64.b64decode(letter.get_extension("knativeerrordata"))
    texts = [record.getMessage() for record in caplog.records]
    texts += [repr(harness.counters), json.dumps(harness.counters.to_status()), repr(harness.ready)]
    assert any("503" in text for text in texts)
    assert not [text for text in texts if secret in text or "sk-live" in text]


def test_delivery_counters_fill_the_status_block(
    sink_server: SinkServer, make_harness: Callable[..., Harness]
) -> None:
    sink_server.script(Reply(503), Reply(400))
    harness = make_harness(Target(sink_server.url))
    harness.append(3)

    harness.run()

    status = harness.counters.to_status()
    assert status["delivered"] == 2
    assert status["retried"] == 1
    assert status["parked"] == 1
    assert status["pending"] == 0
    assert status["lastError"] == "HTTP 400 Bad Request"
    assert status["lastDeliveryTime"] is not None
