"""At-least-once delivery of one bridge's outbox to its sink, each user's events in order.

`Deliverer.deliver_pending()` drains the bridge's pending events oldest first with up to
`spec.sink.maxInFlight` sends (units: one event, or a batch) in flight at once
(`runner.delivery.window`): a unit starts only when no earlier unfinished unit holds one
of its users (`OutboxEvent.user_key`), so one user's events reach the sink strictly in
order -- a user's next event is sent only once the sink accepted the one before (or it was
given up), retries included, and a user is never in two unfinished batches -- while
different users' events overlap. A `file:` sink writes one send at a time. Each send
follows Knative's rules (DESIGN §4.2), told by the class of what the sink raises
(`runner.delivery.policy`):

- 2xx: delivered. Delivered marks are group-committed in a worker thread while the next
  sends are in flight (`runner.delivery.marks`), by seq, in whatever order sends end.
- `SinkUnavailable` (network error, timeout, 404, 408, 409, 429, 5xx): retried with the
  bridge's backoff (`exponential`: delay * 2**n, `linear`: delay * (n + 1), capped at
  `max_backoff`), jittered (`equal_jitter`: a random wait in a window half a step wide,
  so that bridges and replicas that failed together do not come back together), never
  sooner than `Retry-After` (itself capped at `max_backoff`). Without `retry` this goes on
  until the sink takes the event; with `retry: N` the event is given up after N retries.
  Failed attempts are counted in the outbox, so a restart does not reset them. While the
  sink fails (nothing accepted since a retryable failure) no new unit starts, and the
  units that failed retry one at a time (the probe, `_probe`), the backoff step growing
  with the sink's streak of failures: a down sink is not hit by `maxInFlight` retries.
- `SinkRejected` (other statuses): refused, not retried. A refused *batch* is split and
  its events are sent one by one, so that only the event(s) the sink really refuses are
  given up.
- a `PartialFailure` (a batch API answering per entry, `runner.delivery.policy`): the
  entries taken are marked delivered, those refused given up, and the rest retried as
  one smaller unit, its users still held by the window, so each user's order holds.
- given up or refused: written to the dead-letter sink with Knative's error extensions,
  then marked dead-lettered. If the dead-letter sink itself fails (after `retry` retries,
  or 3 when `retry` is unset; at once when it refuses) the event is parked instead of
  blocking the bridge behind a broken last resort. Without a dead-letter sink it is
  parked. Parked events stay in the outbox, are counted, and can be released with
  `Outbox.unpark`. Nothing is dropped.
- `SinkMisconfigured` (the sink cannot be used at all: a secret header that cannot be
  resolved, a `file:` sink resolving outside the state directory) is not the events'
  fault: nothing was attempted, so no retry budget is spent and nothing is dead-lettered;
  delivery backs off (one unit probing, as above) and tries again, and SinkReady says why.

Stop and cancel: after `stop` no new unit starts and backoff waits end; sends in flight
finish (bounded by the sink's timeout); what the sink did not accept stays pending.
Cancelling cancels the sends in flight; nothing is marked delivered that was not accepted.

What a crash may send again, with the same ids (at-least-once; sinks dedupe on source and
id): the units in flight (at most `maxInFlight` requests: `maxInFlight` events, or
`maxInFlight` * `maxBatchSize` in batch mode), and the accepted events whose marks were
not committed yet -- fewer than `MARK_MAX` (500) plus those accepted during the one commit
under way, none accepted more than `MARK_INTERVAL` (1 s) plus that commit before the crash
-- and a dead letter written but not yet marked, which is written again. Per-user order
holds across the restart: a resent event comes before that user's next.

Counters (`SinkCounters`): `delivered`, `dead_lettered` and `parked` count events;
`retried` counts event re-sends (a batch of 100 retried once adds 100); `pending` and
`parked` are refreshed from the outbox when a drain starts and ends, before each retry wait,
and on `refresh_gauges()` (only the deliverer writes them); `last_error` is a
status line or exception class and message, never a header value or a response body.

Why these numbers (`bench/httpclients.py`, 2 cores shared with other work, loopback sink in
its own process, medians of 3): one httpx connection pool slows as its requests in flight
grow -- sink answering at once: ~1,160 POST/s at 1 in flight, ~650 at 16, ~260 at 64 --
while one pool per request in flight holds 1,200-1,500/s; so the runner's one client
spreads requests over 16 pools (`runner.delivery.lanes`: ~1,190/s at 16, ~1,510 at 64).
With the sink answering after 20 ms, throughput grows with the requests in flight up to
~16 (lanes: 45/s at 1, ~280 at 8, ~580 at 16, no better at 32 on 2 cores; one pool falls
to ~150/s at 32). Hence `maxInFlight` 16 by default: past it this machine's CPU, not the
sink, is the limit, and 16 lanes give a bridge about a pool per request. aiohttp was
measured too (4-10x httpx with the sink answering at once, ~1.2x at 20 ms) but is not a
dependency of the runner.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from runner._kits.aio import sleep_or_wake
from runner._kits.wording import plural
from runner.delivery.dead_letters import DeadLetterRetry, GivingUp
from runner.delivery.marks import DeliveredMarks
from runner.delivery.policy import (
    PartialFailure,
    retry_delay,
)
from runner.delivery.sinks import EventSender, open_sender
from runner.delivery.texts import safe_uri
from runner.delivery.window import Unencodable, Unit, Window, cut_into_units
from runner.errors import SinkMisconfigured, SinkRejected, SinkUnavailable
from runner.model import Bridge, OutboxEvent
from runner.secrets.resolver import SecretResolver
from runner.state.ports import OutboxPort
from runner.status.counters import SinkCounters
from runner.status.readiness import Condition

log = logging.getLogger(__name__)

# Events read from the outbox per query (rounded to whole batches).
PAGE_EVENTS = 1000


class Sleep(Protocol):
    """How the deliverer waits between retries: `sleep_or_wake`'s contract (sleep `seconds`
    or until one of `events` is set; True if one was). Injected so that a test's clock can
    stand in for real time."""

    async def __call__(self, seconds: float | None, /, *events: asyncio.Event) -> bool: ...


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
        self._sink: EventSender[Any] = open_sender(
            bridge.sink.target, http=http, secrets=secrets, state_dir=state_dir, sink=bridge.sink
        )
        self._dead_letter: EventSender[Any] | None = None
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
        self._marks = DeliveredMarks(outbox, bridge.id)
        self._giving_up = GivingUp(
            bridge.id,
            outbox,
            counters,
            self._marks,
            self._sink.uri,
            self._dead_letter,
            retry=lambda stop: DeadLetterRetry(bridge.id, self._delivery, rng, self._wait, stop),
        )
        # A file sink is one local file, fsync'd per write: nothing to gain from overlap.
        in_flight = 1 if bridge.sink.target.is_file else bridge.sink.max_in_flight
        self._window = Window(
            in_flight,
            self._page_size,
            read=self._load_page,
            send=self._deliver,
            park=self._giving_up.park,
            marks=self._marks,
        )
        self._probe = asyncio.Lock()  # held by the one unit re-trying a failing sink
        self._streak = 0  # failed sends since the sink last took one (first ones as one)
        self._lock = asyncio.Lock()
        self._ready = Condition(
            "SinkReady", "Unknown", "NoDeliveryYet", "no event has been sent yet"
        )

    @property
    def ready(self) -> Condition:
        """The SinkReady condition, its reason CamelCase."""
        return self._ready

    async def deliver_pending(self, stop: asyncio.Event | None = None) -> None:
        """Send every pending event, each user's in order, retrying as the policy says.

        Returns when nothing is pending, or soon after `stop` is set: no new request starts,
        the requests in flight finish (bounded by the sink's timeout), backoff waits are cut
        short, and whatever was not accepted stays pending. Cancelling the task is safe too:
        nothing is marked delivered that the sink did not accept.
        """
        async with self._lock:  # two drains of one bridge would break its order
            started = self._clock()
            delivered_before = self._counters.delivered
            try:
                await self.refresh_gauges()
                await self._window.run(stop)
            finally:
                await self._marks.flush()
                await self.refresh_gauges()
            log.debug(
                "bridge %s: %s delivered in %.3fs",
                self._bridge_id,
                plural(self._counters.delivered - delivered_before, "event"),
                self._clock() - started,
            )

    def _load_page(self, after: int, limit: int) -> list[Unit | Unencodable]:
        """Up to `limit` of the oldest pending events after seq `after`, cut into sends of
        at most `capacity` and encoded.

        In a worker thread: reading and encoding is CPU work the loop need not do; the
        window reads the next page there while this one is sent.
        """
        page = self._outbox.pending(self._bridge_id, limit, after=after)
        return cut_into_units(page, self._sink.capacity, self._sink.encode)

    async def _deliver(self, unit: Unit, stop: asyncio.Event | None) -> bool:
        """Send `unit` until it is delivered, dead-lettered or parked; False if stopped first."""
        failures = max(ev.attempts for ev in unit.events)
        retry_limit = self._delivery.retry
        if retry_limit is not None and failures > retry_limit:
            # Given up in an earlier run that stopped before the dead letter was written.
            exhausted = SinkUnavailable("retries exhausted in an earlier run")
            return await self._giving_up.give_up(unit.events, exhausted, stop)
        return await self._send_until_done(unit, failures, stop)

    async def _send_until_done(self, unit: Unit, failures: int, stop: asyncio.Event | None) -> bool:
        """`_deliver`'s loop: `failures` is what the unit's events were loaded with."""
        loaded_failures = failures
        unusable = 0  # waits because the sink could not be used at all (not attempts)
        failed: SinkUnavailable | SinkMisconfigured | None = None  # the last try's failure
        while True:
            try:
                try:
                    if not await self._try(unit, failed, (failures, unusable), stop):
                        return False
                except _Partial as partial:
                    left = await self._took_some(unit, partial.failure, stop)
                    if isinstance(left, bool):
                        return left  # nothing left to retry (True), or stopped (False)
                    unit = left[0]
                    raise left[1] from None  # the rest is retried as an unavailable send
            except SinkRejected as refused:
                # The failures just recorded for a batch count against each event's budget
                # when it is split: `ev.attempts` is what the page was loaded with.
                return await self._refused(unit, refused, failures - loaded_failures, stop)
            except SinkMisconfigured as unusable_sink:
                # Nothing was sent: not the events' fault, so no retry budget is spent.
                unusable += 1
                failed = self._failed(unusable_sink)
            except SinkUnavailable as unavailable:
                failed = self._failed(unavailable)
                failures += 1
                if await self._attempt_failed(unit, unavailable, failures):
                    return await self._giving_up.give_up(unit.events, unavailable, stop)
            else:
                self._on_delivered(unit)
                return True

    async def _try(
        self,
        unit: Unit,
        failed: SinkUnavailable | SinkMisconfigured | None,
        counts: tuple[int, int],
        stop: asyncio.Event | None,
    ) -> bool:
        """Send `unit` now, or after `failed` once its backoff is over; False if stopped."""
        if failed is None:
            await self._send_once(unit)
            return True
        return await self._resend(unit, failed, counts, stop)

    async def _send_once(self, unit: Unit) -> None:
        """One send of `unit`; raises what the sink raised, or `_Partial` when it took some."""
        result = await self._sink.deliver(unit.message)
        if result is not None:
            raise _Partial(result)

    async def _attempt_failed(self, unit: Unit, failure: SinkUnavailable, failures: int) -> bool:
        """Record a failed try of `unit`; True when it exhausts the retries (give up)."""
        await asyncio.to_thread(
            self._outbox.record_attempt, self._bridge_id, unit.seqs, str(failure)
        )
        if self._out_of_retries(failure, failures):
            return True
        self._counters.retried += len(unit.events)
        return False

    async def _took_some(
        self, unit: Unit, partial: PartialFailure, stop: asyncio.Event | None
    ) -> tuple[Unit, SinkUnavailable] | bool:
        """Mark the taken delivered and give up the refused, in order; the rest to retry as
        one unit with its first failure, True if none is left, False if stopped. (The sink
        held back a user's events after one that failed: none overtakes its user's.)"""
        failed = partial.failed
        taken = tuple(ev for i, ev in enumerate(unit.events) if i not in failed)
        if taken:
            self._on_delivered(Unit(taken, None))
        retry: list[OutboxEvent] = []
        first: SinkUnavailable | None = None
        for i, ev in enumerate(unit.events):
            failure = failed.get(i)
            if isinstance(failure, SinkRejected):
                self._counters.last_error = str(failure)
                message = f"sink refused an event: {failure}"
                self._ready = Condition.of("SinkReady", False, failure.reason, message)
                if not await self._giving_up.give_up((ev,), failure, stop):
                    return False
            elif failure is not None:
                retry.append(ev)
                first = first or failure
        if first is None:
            return True
        return Unit(tuple(retry), self._sink.encode(retry)), first

    async def _refused(
        self, unit: Unit, refused: SinkRejected, recorded: int, stop: asyncio.Event | None
    ) -> bool:
        """The sink refused `unit`: a batch is split, an event given up."""
        self._counters.last_error = str(refused)
        if len(unit.events) > 1:
            return await self._split(unit, refused, recorded, stop)
        message = f"sink refused an event: {refused}"
        self._ready = Condition.of("SinkReady", False, refused.reason, message)
        return await self._giving_up.give_up(unit.events, refused, stop)

    def _failed(
        self, failure: SinkUnavailable | SinkMisconfigured
    ) -> SinkUnavailable | SinkMisconfigured:
        """A send failed retryably: the window starts nothing new until the sink takes
        something. Sends that failed together count as one failure of the sink."""
        self._counters.last_error = str(failure)
        self._window.sink_failed()
        self._streak = max(self._streak, 1)
        return failure

    def _out_of_retries(self, failure: SinkUnavailable, failures: int) -> bool:
        """Whether `failures` failed tries exhaust `retry: N` (then SinkReady says so)."""
        limit = self._delivery.retry
        if limit is None or failures <= limit:
            return False
        message = f"{failure}; gave up after {plural(limit, 'retry', 'retries')}"
        self._ready = Condition.of("SinkReady", False, failure.reason, message)
        return True

    async def _resend(
        self,
        unit: Unit,
        failed: SinkUnavailable | SinkMisconfigured,
        counts: tuple[int, int],
        stop: asyncio.Event | None,
    ) -> bool:
        """Wait out the backoff after `failed` and send `unit` again; False if stopped
        first. Raises what the send raises. `counts`: the unit's failed tries so far and its
        waits on an unusable sink (the step of a `SinkUnavailable`, of a misconfiguration).

        While the sink fails (no send accepted since), only one unit at a time waits and
        sends -- the probe, holding `_probe` -- and the others queue behind it, so that a
        down sink is not retried by every request that was in flight. Once it takes
        something again, each waits its own backoff beside the others.
        """
        tries = counts[0] if isinstance(failed, SinkUnavailable) else counts[1]
        if not self._window.sink_up.is_set():
            async with self._probe:
                if _is_set(stop):
                    return False
                if not self._window.sink_up.is_set():
                    return await self._wait_and_send(unit, failed, tries, stop, probe=True)
        return await self._wait_and_send(unit, failed, tries, stop, probe=False)

    async def _wait_and_send(
        self,
        unit: Unit,
        failed: SinkUnavailable | SinkMisconfigured,
        tries: int,
        stop: asyncio.Event | None,
        *,
        probe: bool,
    ) -> bool:
        """The backoff step is the unit's own tries or, for a probe, the sink's streak of
        failures if longer: a sink down for long is probed slowly whichever unit probes."""
        retry_after = failed.delay if isinstance(failed, SinkUnavailable) else None
        step = max(tries, self._streak if probe else 0) - 1
        delay = retry_delay(self._delivery, step, retry_after, self._rng)
        message = f"{failed}; retrying in {delay:g}s"
        self._ready = Condition.of("SinkReady", False, failed.reason, message)
        log.warning(
            "bridge %s: sink %s: %s; retrying in %gs",
            self._bridge_id,
            safe_uri(self._sink.uri),
            failed,
            delay,
        )
        if not await self._wait(delay, stop):
            return False
        try:
            await self._send_once(unit)
        except (SinkUnavailable, SinkMisconfigured):
            if probe:
                self._streak += 1
            raise
        return True

    async def _split(
        self, batch: Unit, refused: SinkRejected, recorded: int, stop: asyncio.Event | None
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
            single = Unit((alone,), self._sink.encode([alone]))
            if not await self._deliver(single, stop):
                return False
        return True

    def _on_delivered(self, unit: Unit) -> None:
        self._marks.add(unit.seqs)
        self._streak = 0
        self._window.sink_took()
        count = len(unit.events)
        self._counters.delivered += count
        self._counters.pending = max(0, self._counters.pending - count)
        self._counters.last_delivery_time = datetime.now(UTC)
        if self._ready.status != "True":
            # A sink may say how it takes them (a NATS sink: JetStream, or core at most once).
            said = getattr(self._sink, "ready_text", None) or "the sink accepts events"
            self._ready = Condition("SinkReady", "True", "Delivered", said)

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


class _Partial(Exception):
    """A send that the sink took only in part (raised by `_send_once`, caught in `_deliver`)."""

    def __init__(self, failure: PartialFailure) -> None:
        super().__init__("partial failure")
        self.failure = failure


def _is_set(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()
