"""At-least-once, in-order delivery of one bridge's outbox to its sink.

`Deliverer.deliver_pending()` drains the bridge's pending events oldest first, one send
at a time (a later event never overtakes an earlier one, retries included), and applies
Knative's rules (DESIGN §4.2), told by the class of what the sink raises
(`runner.delivery.policy`):

- 2xx: delivered. Delivered marks are group-committed in a worker thread while the next
  sends are in flight (see `_DeliveredMarks`); a crash before the commit resends those
  events (at most `MARK_MAX`) with the same ids, which at-least-once allows.
- `SinkUnavailable` (network error, timeout, 404, 408, 409, 429, 5xx): retried with the
  bridge's backoff (`exponential`: delay * 2**n, `linear`: delay * (n + 1), capped at
  `max_backoff`), jittered (`equal_jitter`: a random wait in a window half a step wide,
  so that bridges and replicas that failed together do not come back together), never
  sooner than `Retry-After` (itself capped at `max_backoff`). Without `retry` this goes on
  until the sink takes the event; with `retry: N` the event is given up after N retries.
  Failed attempts are counted in the outbox, so a restart does not reset them.
- `SinkRejected` (other statuses): refused, not retried. A refused *batch* is split and
  its events are sent one by one, so that only the event(s) the sink really refuses are
  given up.
- given up or refused: written to the dead-letter sink with Knative's error extensions,
  then marked dead-lettered. If the dead-letter sink itself fails (after `retry` retries,
  or 3 when `retry` is unset; at once when it refuses) the event is parked instead of
  blocking the bridge behind a broken last resort. Without a dead-letter sink it is
  parked. Parked events stay in the outbox, are counted, and can be released with
  `Outbox.unpark`. Nothing is dropped.
- `SinkMisconfigured` (the sink cannot be used at all: a secret header that cannot be
  resolved, a `file:` sink resolving outside the state directory) is not the events'
  fault: nothing was attempted, so no retry budget is spent and nothing is dead-lettered;
  delivery backs off and tries again, and SinkReady says why.

Counters (`SinkCounters`): `delivered`, `dead_lettered` and `parked` count events;
`retried` counts event re-sends (a batch of 100 retried once adds 100); `pending` and
`parked` are refreshed from the outbox when a drain starts and ends, before each retry wait,
and on `refresh_gauges()` (only the deliverer writes them); `last_error` is a
status line or exception class and message, never a header value or a response body.

Concurrency: one `httpx.AsyncClient` is shared by every bridge; each bridge has one
Deliverer whose sends never overlap, so order holds by construction and the client's
concurrency is the number of bridges with work. Measured here (2 cores, loopback sink),
one client posted ~1,000 requests/s at concurrency 1, ~950 at 4 and ~480 at 16: more
concurrency on one client buys nothing (DESIGN §8), so no bridge pipelines its sends and
throughput per bridge comes from batching (`format: batch`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx
from cloudevents.core.bindings.http import HTTPMessage

from runner._kits.aio import sleep_or_wake
from runner._kits.wording import plural
from runner.delivery.policy import (
    ACCEPTED,
    DEAD_LETTER_RETRIES,
    SendOutcome,
    outcome_of,
    retry_delay,
)
from runner.delivery.sinks import EventSender, open_sender
from runner.delivery.texts import exception_text, knative_error_extensions, safe_uri
from runner.errors import SinkMisconfigured, SinkRejected, SinkUnavailable
from runner.model import Bridge, OutboxEvent
from runner.secrets.resolver import SecretResolver
from runner.state.ports import OutboxPort
from runner.status.counters import SinkCounters
from runner.status.readiness import Condition

log = logging.getLogger(__name__)

# Events read from the outbox per query (rounded to whole batches).
PAGE_EVENTS = 1000
# Delivered marks are committed at least this often (seconds) or per this many events
# (see _DeliveredMarks).
MARK_INTERVAL = 1.0
MARK_MAX = 500


class Sleep(Protocol):
    """How the deliverer waits between retries: `sleep_or_wake`'s contract (sleep `seconds`
    or until one of `events` is set; True if one was). Injected so that a test's clock can
    stand in for real time."""

    async def __call__(self, seconds: float | None, /, *events: asyncio.Event) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Unit:
    """Events sent in one request (one, or a batch), and that request, encoded once."""

    events: tuple[OutboxEvent, ...]
    message: HTTPMessage

    @property
    def seqs(self) -> list[int]:
        return [ev.seq for ev in self.events]


@dataclass(frozen=True, slots=True)
class _Unencodable:
    """An outbox event that is not a valid CloudEvent: no sink can take it; it is parked."""

    event: OutboxEvent
    error: str


class _DeliveredMarks:
    """Group commit of `mark_delivered`, off the send path.

    Accepted seqs are committed in a worker thread while the next requests are on the
    wire: once `MARK_MAX` have gathered or `MARK_INTERVAL` has passed since the oldest
    uncommitted one was accepted, and whenever delivery pauses (`flush`: before a backoff,
    a give-up, the next outbox query, returning). A SQLite commit costs milliseconds
    whatever its size (measured: ~60 us/event in commits of 50, ~34 in commits of 100,
    ~10 in commits of 500), so one per request would cap throughput. The price: a crash
    resends at most `MARK_MAX` accepted events (or `MARK_INTERVAL` worth), with their
    ids, which at-least-once delivery allows and sinks dedupe on (source, id).
    """

    def __init__(
        self, outbox: OutboxPort, bridge_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._outbox = outbox
        self._bridge_id = bridge_id
        self._clock = clock
        self._queued: list[int] = []
        self._oldest = 0.0  # when the oldest queued seq was accepted
        self._task: asyncio.Task[None] | None = None

    def add(self, seqs: Sequence[int]) -> None:
        if not self._queued:
            self._oldest = self._clock()
        self._queued.extend(seqs)
        if self._task is not None and self._task.done():
            task, self._task = self._task, None
            task.result()  # surface a failed commit now rather than at the next flush
        due = len(self._queued) >= MARK_MAX or self._clock() - self._oldest >= MARK_INTERVAL
        if self._task is None and due:
            self._start()

    def _start(self) -> None:
        self._task = asyncio.create_task(self._commit(), name=f"delivery-marks:{self._bridge_id}")

    async def _commit(self) -> None:
        while self._queued:
            seqs, self._queued = self._queued, []
            await asyncio.to_thread(self._outbox.mark_delivered, self._bridge_id, seqs)

    async def flush(self) -> None:
        """Wait until every accepted seq is committed; raises what a commit raised."""
        if self._task is None and self._queued:
            self._start()
        task, self._task = self._task, None
        if task is not None:
            await task


class Deliverer:
    """Delivers one bridge's outbox to its sink (and dead-letter sink). See the module doc."""

    def __init__(
        self,
        bridge: Bridge,
        outbox: OutboxPort,
        *,
        http: httpx.AsyncClient,
        state_dir: Path,
        secrets: SecretResolver,
        counters: SinkCounters,
        sleep: Sleep = sleep_or_wake,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._bridge_id = bridge.id
        self._delivery = bridge.delivery
        self._outbox = outbox
        self._counters = counters
        self._sleep = sleep
        self._clock = clock
        self._rng = rng  # the retries' jitter source (None: the process's own)
        self._sink: EventSender = open_sender(
            bridge.sink.target, http=http, secrets=secrets, state_dir=state_dir, sink=bridge.sink
        )
        self._dead_letter: EventSender | None = None
        if bridge.delivery.dead_letter is not None:
            self._dead_letter = open_sender(
                bridge.delivery.dead_letter,
                http=http,
                secrets=secrets,
                state_dir=state_dir,
                timeout=bridge.sink.timeout,
            )
        capacity = self._sink.capacity
        self._page_size = capacity * max(1, PAGE_EVENTS // capacity)
        self._marks = _DeliveredMarks(outbox, bridge.id, clock)
        self._lock = asyncio.Lock()
        self._ready = Condition(
            "SinkReady", "Unknown", "NoDeliveryYet", "no event has been sent yet"
        )

    @property
    def ready(self) -> Condition:
        """The SinkReady condition, its reason CamelCase."""
        return self._ready

    async def deliver_pending(self, stop: asyncio.Event | None = None) -> None:
        """Send every pending event, in order, retrying as the policy says.

        Returns when nothing is pending, or soon after `stop` is set: a request in flight
        finishes (bounded by the sink's timeout), a backoff wait is cut short, and whatever
        was not accepted stays pending. Cancelling the task is safe too: nothing is marked
        delivered that the sink did not accept.
        """
        async with self._lock:  # two drains of one bridge would break its order
            started = self._clock()
            delivered_before = self._counters.delivered
            try:
                await self.refresh_gauges()
                await self._drain(stop)
            finally:
                await self._marks.flush()
                await self.refresh_gauges()
            log.debug(
                "bridge %s: %s delivered in %.3fs",
                self._bridge_id,
                plural(self._counters.delivered - delivered_before, "event"),
                self._clock() - started,
            )

    async def _drain(self, stop: asyncio.Event | None) -> None:
        while not _is_set(stop):
            page = await asyncio.to_thread(self._load_page)
            if not page:
                return
            for item in page:
                if _is_set(stop):
                    return
                if isinstance(item, _Unencodable):
                    await self._park([item.event], item.error)
                elif not await self._deliver(item, stop):
                    return
            # The next query must not see events whose delivery is still being committed.
            await self._marks.flush()

    def _load_page(self) -> list[_Unit | _Unencodable]:
        """The oldest pending events, cut into sends of at most `capacity` and encoded.

        In a worker thread: reading and encoding is CPU work the loop need not do. (Reading
        the next page there while this one is sent was measured no faster: both need the
        GIL, and the read is mostly Python work.)
        """
        page = self._outbox.pending(self._bridge_id, self._page_size)
        capacity = self._sink.capacity
        items: list[_Unit | _Unencodable] = []
        for start in range(0, len(page), capacity):
            group = page[start : start + capacity]
            try:
                items.append(_Unit(tuple(group), self._sink.encode(group)))
            except ValueError:
                items.extend(self._split_unencodable(group))
        return items

    def _split_unencodable(self, group: Sequence[OutboxEvent]) -> list[_Unit | _Unencodable]:
        """`group`, which holds an event that is not a valid CloudEvent, as that event
        (and any other such) apart, and the valid events around it in sends, in order."""
        items: list[_Unit | _Unencodable] = []
        valid: list[OutboxEvent] = []
        for ev in group:
            try:
                self._sink.encode([ev])
            except ValueError as exc:
                if valid:
                    items.append(_Unit(tuple(valid), self._sink.encode(valid)))
                    valid = []
                items.append(_Unencodable(ev, f"not a valid CloudEvent: {exception_text(exc)}"))
            else:
                valid.append(ev)
        if valid:
            items.append(_Unit(tuple(valid), self._sink.encode(valid)))
        return items

    async def _deliver(self, unit: _Unit, stop: asyncio.Event | None) -> bool:
        """Send `unit` until it is delivered, dead-lettered or parked; False if stopped first."""
        loaded_failures = failures = max(ev.attempts for ev in unit.events)
        retry_limit = self._delivery.retry
        if retry_limit is not None and failures > retry_limit:
            # Given up in an earlier run that stopped before the dead letter was written.
            exhausted = SinkUnavailable("retries exhausted in an earlier run")
            return await self._give_up(unit, exhausted, stop)
        unusable = 0  # waits because the sink could not be used at all (not attempts)
        while True:
            waiting_on: SinkUnavailable | SinkMisconfigured
            try:
                await self._sink.deliver(unit.message)
            except SinkRejected as refused:
                self._counters.last_error = str(refused)
                if len(unit.events) > 1:
                    # The failures just recorded for the batch count against each event's
                    # budget: `ev.attempts` is what the page was loaded with, before them.
                    recorded = failures - loaded_failures
                    return await self._split(unit, refused, recorded, stop)
                message = f"sink refused an event: {refused}"
                self._ready = Condition.of("SinkReady", False, refused.reason, message)
                return await self._give_up(unit, refused, stop)
            except SinkMisconfigured as unusable_sink:
                # Nothing was sent: not the events' fault, so no retry budget is spent.
                self._counters.last_error = str(unusable_sink)
                delay = retry_delay(self._delivery, unusable, None, self._rng)
                unusable += 1
                waiting_on = unusable_sink
            except SinkUnavailable as unavailable:
                self._counters.last_error = error = str(unavailable)
                failures += 1
                await asyncio.to_thread(
                    self._outbox.record_attempt, self._bridge_id, unit.seqs, error
                )
                if retry_limit is not None and failures > retry_limit:
                    self._ready = Condition.of(
                        "SinkReady",
                        False,
                        unavailable.reason,
                        f"{error}; gave up after {plural(retry_limit, 'retry', 'retries')}",
                    )
                    return await self._give_up(unit, unavailable, stop)
                self._counters.retried += len(unit.events)
                delay = retry_delay(self._delivery, failures - 1, unavailable.delay, self._rng)
                waiting_on = unavailable
            else:
                self._on_delivered(unit)
                return True
            message = f"{waiting_on}; retrying in {delay:g}s"
            self._ready = Condition.of("SinkReady", False, waiting_on.reason, message)
            log.warning(
                "bridge %s: sink %s: %s; retrying in %gs",
                self._bridge_id,
                safe_uri(self._sink.uri),
                waiting_on,
                delay,
            )
            if not await self._wait(delay, stop):
                return False

    async def _split(
        self, batch: _Unit, refused: SinkRejected, recorded: int, stop: asyncio.Event | None
    ) -> bool:
        """Send the events of a refused `batch` one by one, so that only the event(s) the
        sink really refuses are given up; `recorded` failures of the batch count against
        each event's budget. False if stopped first."""
        log.warning(
            "bridge %s: sink refused a batch of %d (%s); sending its events one by one",
            self._bridge_id,
            len(batch.events),
            refused,
        )
        for ev in batch.events:
            # Each encoded alone before: `_load_page` made this batch only of events that
            # encode.
            alone = replace(ev, attempts=ev.attempts + recorded)
            single = _Unit((alone,), self._sink.encode([alone]))
            if not await self._deliver(single, stop):
                return False
        return True

    def _on_delivered(self, unit: _Unit) -> None:
        self._marks.add(unit.seqs)
        count = len(unit.events)
        self._counters.delivered += count
        self._counters.pending = max(0, self._counters.pending - count)
        self._counters.last_delivery_time = datetime.now(UTC)
        if self._ready.status != "True":
            self._ready = Condition("SinkReady", "True", "Delivered", "the sink accepts events")

    async def _give_up(
        self,
        unit: _Unit,
        failure: SinkUnavailable | SinkRejected,
        stop: asyncio.Event | None,
    ) -> bool:
        """Dead-letter (or park) each event of `unit`, in order; False if stopped first."""
        await self._marks.flush()  # keep the outbox's story in order: delivered before given up
        error = str(failure)
        for ev in unit.events:
            if self._dead_letter is None:
                await self._park([ev], error)
                continue
            result = await self._send_dead_letter(self._dead_letter, ev, failure, stop)
            if result is None:
                return False
            if result.accepted:
                await asyncio.to_thread(
                    self._outbox.mark_dead_lettered, self._bridge_id, [ev.seq], error
                )
                self._counters.dead_lettered += 1
                self._counters.pending = max(0, self._counters.pending - 1)
                log.warning(
                    "bridge %s: event %s dead-lettered: %s", self._bridge_id, ev.event_id, error
                )
            else:
                self._counters.last_error = f"dead-letter sink: {result.error}"
                await self._park([ev], f"{error}; dead-letter sink failed too: {result.error}")
        return True

    async def _send_dead_letter(
        self,
        dead_letter: EventSender,
        ev: OutboxEvent,
        failure: SinkUnavailable | SinkRejected,
        stop: asyncio.Event | None,
    ) -> SendOutcome | None:
        """Send `ev` with Knative's error extensions to the dead-letter sink, retrying a
        bounded number of times; what it did, or None when stopped before it was accepted."""
        extensions = knative_error_extensions(self._sink.uri, outcome_of(failure))
        letter = replace(ev, attributes={**ev.attributes, **extensions})
        retries = self._delivery.retry if self._delivery.retry is not None else DEAD_LETTER_RETRIES
        attempt = 0
        while True:
            try:
                await dead_letter.deliver(dead_letter.encode([letter]))
            except SinkRejected as refused:
                return outcome_of(refused)  # retrying will not change the sink's mind
            except (SinkUnavailable, SinkMisconfigured) as exc:
                if attempt >= retries:
                    return outcome_of(exc)
                retry_after = exc.delay if isinstance(exc, SinkUnavailable) else None
                delay = retry_delay(self._delivery, attempt, retry_after, self._rng)
                attempt += 1
                log.warning(
                    "bridge %s: dead-letter sink %s: %s; retrying in %gs",
                    self._bridge_id,
                    safe_uri(dead_letter.uri),
                    exc,
                    delay,
                )
            else:
                return ACCEPTED
            if not await self._wait(delay, stop):
                return None

    async def _park(self, events: Sequence[OutboxEvent], error: str) -> None:
        await self._marks.flush()
        seqs = [ev.seq for ev in events]
        await asyncio.to_thread(self._outbox.park, self._bridge_id, seqs, error)
        self._counters.parked += len(seqs)
        self._counters.pending = max(0, self._counters.pending - len(seqs))
        self._counters.last_error = error
        log.warning(
            "bridge %s: %s parked in the outbox: %s",
            self._bridge_id,
            plural(len(seqs), "event"),
            error,
        )

    async def refresh_gauges(self) -> None:
        """Read `pending` and `parked` from the outbox: this deliverer is their one writer
        (the worker asks it to refresh them for the last status before a stop)."""
        self._counters.pending = await asyncio.to_thread(
            self._outbox.count_pending, self._bridge_id
        )
        self._counters.parked = await asyncio.to_thread(self._outbox.count_parked, self._bridge_id)

    async def _wait(self, delay: float, stop: asyncio.Event | None) -> bool:
        """Sleep `delay` seconds (committing accepted marks first); False if `stop` came first."""
        await self._marks.flush()
        # The poller keeps committing while delivery waits to retry: refresh what the status
        # and the pending gauge show, or they stay at the count the drain started with.
        await self.refresh_gauges()
        stopped = await self._sleep(delay, *([stop] if stop is not None else []))
        return not stopped


def _is_set(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()
