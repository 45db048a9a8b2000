"""What happens to events given up or refused: dead-lettered, or parked.

    GivingUp(bridge_id, outbox, counters, marks, sink_uri, dead_letter, retry=)
    await giving_up.give_up(events, failure, stop)   each dead-lettered (or parked), in order
    await giving_up.park(events, error)              kept in the outbox, counted, not sent
    await send_dead_letter(dead_letter, ev, extensions, retry) -> SendOutcome | None

The dead-letter sink is the last resort, but a broken one must not hold the bridge back: it
is retried a bounded number of times (the bridge's `retry`, or `DEAD_LETTER_RETRIES` when
unset), at once given up when it refuses; the deliverer parks the event then.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from runner._kits.wording import plural
from runner.delivery.marks import DeliveredMarks
from runner.delivery.policy import (
    ACCEPTED,
    DEAD_LETTER_RETRIES,
    SendOutcome,
    outcome_of,
    retry_delay,
)
from runner.delivery.texts import knative_error_extensions, safe_uri
from runner.errors import SinkMisconfigured, SinkRejected, SinkUnavailable
from runner.model import Delivery, OutboxEvent
from runner.state.ports import OutboxPort
from runner.status.counters import SinkCounters

if TYPE_CHECKING:
    from runner.delivery.sinks import EventSender

# The deliverer's logger: these lines are part of its story of a bridge.
log = logging.getLogger("runner.delivery.deliverer")


@dataclass(frozen=True, slots=True)
class DeadLetterRetry:
    """How the dead-letter sink is retried: the bridge's backoff, its jitter source, the
    deliverer's wait (True: waited; False: `stop` came first)."""

    bridge_id: str
    delivery: Delivery
    rng: random.Random | None
    wait: Callable[[float, asyncio.Event | None], Awaitable[bool]]
    stop: asyncio.Event | None


async def send_dead_letter(
    dead_letter: EventSender[Any],
    ev: OutboxEvent,
    extensions: Mapping[str, str],
    retry: DeadLetterRetry,
) -> SendOutcome | None:
    """Send `ev` with `extensions` to the dead-letter sink, retrying a bounded number of
    times; what it did, or None when stopped before it was accepted."""
    letter = replace(ev, attributes={**ev.attributes, **extensions})
    delivery = retry.delivery
    retries = delivery.retry if delivery.retry is not None else DEAD_LETTER_RETRIES
    attempt = 0
    while True:
        try:
            result = await dead_letter.deliver(dead_letter.encode([letter]))
            if result is not None:  # its one entry was not taken
                raise result.first()
        except SinkRejected as refused:
            return outcome_of(refused)  # retrying will not change the sink's mind
        except (SinkUnavailable, SinkMisconfigured) as exc:
            if attempt >= retries:
                return outcome_of(exc)
            retry_after = exc.delay if isinstance(exc, SinkUnavailable) else None
            delay = retry_delay(delivery, attempt, retry_after, retry.rng)
            attempt += 1
            log.warning(
                "bridge %s: dead-letter sink %s: %s; retrying in %gs",
                retry.bridge_id,
                safe_uri(dead_letter.uri),
                exc,
                delay,
            )
        else:
            return ACCEPTED
        if not await retry.wait(delay, retry.stop):
            return None


class GivingUp:
    """Dead-letters or parks one bridge's given-up events, recording it in the outbox and the
    counters (the deliverer's; it calls in from its sends)."""

    def __init__(
        self,
        bridge_id: str,
        outbox: OutboxPort,
        counters: SinkCounters,
        marks: DeliveredMarks,
        sink_uri: str,
        dead_letter: EventSender[Any] | None,
        *,
        retry: Callable[[asyncio.Event | None], DeadLetterRetry],
    ) -> None:
        self._bridge_id = bridge_id
        self._outbox = outbox
        self._counters = counters
        self._marks = marks
        self._sink_uri = sink_uri
        self._dead_letter = dead_letter
        self._retry = retry

    async def give_up(
        self,
        events: Sequence[OutboxEvent],
        failure: SinkUnavailable | SinkRejected,
        stop: asyncio.Event | None,
    ) -> bool:
        """Dead-letter (or park) each of `events`, in order; False if stopped first."""
        await self._marks.flush()  # keep the outbox's story in order: delivered before given up
        error = str(failure)
        if self._dead_letter is None:
            await self.park(events, error)  # one transaction for the unit, not one an event
            return True
        extensions = knative_error_extensions(self._sink_uri, outcome_of(failure))
        for ev in events:
            result = await send_dead_letter(self._dead_letter, ev, extensions, self._retry(stop))
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
                await self.park([ev], f"{error}; dead-letter sink failed too: {result.error}")
        return True

    async def park(self, events: Sequence[OutboxEvent], error: str) -> None:
        """Keep `events` in the outbox, parked: counted, never sent until unparked."""
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
