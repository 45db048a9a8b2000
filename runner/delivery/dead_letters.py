"""Sending one given-up event to the dead-letter sink, with Knative's error extensions.

    await send_dead_letter(dead_letter, ev, extensions, retry) -> SendOutcome | None

The dead-letter sink is the last resort, but a broken one must not hold the bridge back: it
is retried a bounded number of times (the bridge's `retry`, or `DEAD_LETTER_RETRIES` when
unset), at once given up when it refuses; the deliverer parks the event then.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from runner.delivery.policy import (
    ACCEPTED,
    DEAD_LETTER_RETRIES,
    SendOutcome,
    outcome_of,
    retry_delay,
)
from runner.delivery.texts import safe_uri
from runner.errors import SinkMisconfigured, SinkRejected, SinkUnavailable
from runner.model import Delivery, OutboxEvent

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
