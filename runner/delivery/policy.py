"""Delivery's retry policy: which sink failures are retried, refused or the sink's own fault,
and how long to wait before the next try.

    classify_status(code) -> None | SinkUnavailable | SinkRejected   (the class, Knative's rule)
    status_reason(code) -> str                   the SinkReady reason a status gives
    backoff_delay(delivery, n) -> seconds        the backoff step before retry n (capped)
    retry_delay(delivery, n, retry_after, rng)   that step jittered, never before Retry-After
    outcome_of(failure) -> SendOutcome           a failure as a secret-free record
    await report(sending) -> SendOutcome         one send, its failure as a record, not raised
    PartialFailure(failed={index: failure})      what `deliver` returns when a sink took only
                                                 some entries of a batch (AWS batch APIs)

A sink's `deliver` raises one of three classes of `runner.errors`, and the class is the
decision (DESIGN §4.2):

- `SinkUnavailable` (network error, timeout, 404, 408, 409, 429, 5xx, a `file:` write that
  failed): retried with the bridge's backoff, each attempt counted against `retry: N`;
- `SinkRejected` (any other status): not retried; the event is dead-lettered, or parked;
- `SinkMisconfigured` (the sink cannot be used at all: nothing was sent): the event is not
  blamed; delivery backs off without spending its retry budget until an operator fixes it.

A sink whose batch API answers per entry (SQS SendMessageBatch, SNS PublishBatch, EventBridge
PutEvents, Kinesis PutRecords) returns a `PartialFailure` from `deliver` instead: the entries
it lists (by index in the unit) were not taken, each with its class (`SinkUnavailable`:
retried; `SinkRejected`: given up), and every other entry was. Such a sink never lets a
user's later entry be taken after an earlier one of the same user failed: it holds it back
(listed, retryable) so that the deliverer can keep each user's order.

`SendOutcome` is what one send did, written down: the kind word, status, secret-free error
text and excerpt. It feeds Knative's error extensions of a dead letter, and `send()`, which
tools and tests use to look at one send without catching.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Literal

from runner._kits.backoff import backoff_step, equal_jitter
from runner.errors import SinkMisconfigured, SinkRejected, SinkUnavailable
from runner.model import Delivery

# Knative's retryable statuses (DESIGN §4.2) besides 5xx; every other non-2xx status is a
# refusal.
RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})
# Retries of the dead-letter sink when the bridge sets no `retry`: it is the last resort,
# but a broken one must not hold the whole bridge back; the event is parked instead.
DEAD_LETTER_RETRIES = 3

SinkFailure = SinkUnavailable | SinkRejected | SinkMisconfigured
# What a sink's `deliver` raises, for `except` (which takes a tuple, not a union).
SINK_FAILURES = (SinkUnavailable, SinkRejected, SinkMisconfigured)

OutcomeKind = Literal["accepted", "retryable", "refused", "misconfigured"]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one send did. `error` is secret-free text for counters, logs and status.

    `reason` is a CamelCase word for the SinkReady condition; `retry_after` is the delay the
    sink asked for (seconds, already parsed); `body_excerpt` is the start of an error
    response (for `knativeerrordata`), with every known secret value masked. A record for
    reports: delivery decides by the class of the failure (`outcome_of`), not by `kind`.
    """

    kind: OutcomeKind
    status_code: int | None = None
    error: str = ""
    reason: str = ""
    retry_after: float | None = None
    body_excerpt: bytes = b""

    @property
    def accepted(self) -> bool:
        return self.kind == "accepted"


ACCEPTED = SendOutcome("accepted", reason="Delivered")


@dataclass(frozen=True, slots=True)
class PartialFailure:
    """The entries of one send that the sink did not take, by index in the unit's events,
    each with why (see the module doc); entries not listed were taken."""

    failed: Mapping[int, SinkUnavailable | SinkRejected]

    def first(self) -> SinkUnavailable | SinkRejected:
        """The failure of the earliest entry not taken."""
        return self.failed[min(self.failed)]


# What a sink's `deliver` returns: None when it took everything.
Delivered = PartialFailure | None


def outcome_of(failure: SinkFailure) -> SendOutcome:
    """`failure` written down as a `SendOutcome` (its message is already secret-free)."""
    if isinstance(failure, SinkUnavailable):
        return SendOutcome(
            "retryable",
            status_code=failure.status_code,
            error=str(failure),
            reason=failure.reason,
            retry_after=failure.delay,
            body_excerpt=failure.body_excerpt,
        )
    if isinstance(failure, SinkRejected):
        return SendOutcome(
            "refused",
            status_code=failure.status_code,
            error=str(failure),
            reason=failure.reason,
            body_excerpt=failure.body_excerpt,
        )
    return SendOutcome("misconfigured", error=str(failure), reason=failure.reason)


async def report(sending: Awaitable[Delivered]) -> SendOutcome:
    """Await one `deliver` and say what it did: `ACCEPTED`, or its failure as a record (of a
    partial failure, the earliest entry's)."""
    try:
        result = await sending
    except SINK_FAILURES as failure:
        return outcome_of(failure)
    return ACCEPTED if result is None else outcome_of(result.first())


def classify_status(
    status_code: int,
) -> type[SinkUnavailable] | type[SinkRejected] | None:
    """Knative's rule: 2xx accepted (None); 404, 408, 409, 429, 5xx retried
    (`SinkUnavailable`); anything else refused (`SinkRejected`)."""
    if 200 <= status_code < 300:
        return None
    if status_code in RETRYABLE_STATUSES or status_code >= 500:
        return SinkUnavailable
    return SinkRejected


def status_reason(status_code: int) -> str:
    """The SinkReady reason of a status that was not accepted."""
    if status_code == 429:
        return "SinkThrottled"
    if classify_status(status_code) is SinkUnavailable:
        return "SinkError"
    return "EventRefused"


def backoff_delay(delivery: Delivery, retry_number: int) -> float:
    """The backoff step before retry number `retry_number` (0 for the first retry), capped
    at `max_backoff`: the most that retry waits (see `retry_delay`)."""
    return backoff_step(
        delivery.backoff_delay,
        retry_number,
        cap=delivery.max_backoff,
        policy=delivery.backoff_policy,
    )


def retry_delay(
    delivery: Delivery,
    retry_number: int,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number `retry_number`: the backoff step, jittered
    (`equal_jitter`), never sooner than the sink asked (`Retry-After`) and never beyond
    `max_backoff`, so that a sink cannot stall the bridge beyond what its owner allowed."""
    cap = delivery.max_backoff
    floor = 0.0 if retry_after is None else retry_after
    return equal_jitter(backoff_delay(delivery, retry_number), floor=floor, cap=cap, rng=rng)
