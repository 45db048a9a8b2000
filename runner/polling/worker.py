"""One bridge at work: its poll loop and its delivery loop, started, supervised and stopped
together.

    poll loop:      one poll (`runner.polling.poll`) every poll interval, backing off after
                    failures; or, given `scans`, a part in every scan of the pool shared by
                    the bridges that read it alike (`runner.polling.shared_scan`)
    delivery loop:  outbox -> sink, in order, retried per the bridge's policy
                    (`runner.delivery.deliverer`), woken by each commit

Two loops, so that a slow or dead sink never stops the pool from being watched (changes keep
queueing in the outbox, which is durable). An event leaves the outbox only after the sink
took it (at-least-once; a resend carries the same id).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from runner._kits.aio import sleep_or_wake
from runner._kits.backoff import backoff_step, equal_jitter
from runner.delivery.deliverer import Deliverer
from runner.model import Bridge
from runner.polling.poll import Poller, PollOutcome
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.client import CognitoClients
from runner.state.outbox import Outbox
from runner.status.counters import SinkCounters, SourceCounters
from runner.status.readiness import Condition, sink_ready_or_idle

if TYPE_CHECKING:  # shared_scan imports this module (next_poll_wait)
    from runner.polling.shared_scan import PoolScans

# After a failed poll, wait at most this long before trying again (the poll interval
# still applies when it is longer).
MAX_ERROR_BACKOFF = 300.0


class BridgeWorker:
    """Runs one bridge: its poll loop and its delivery loop."""

    def __init__(
        self,
        bridge: Bridge,
        *,
        outbox: Outbox,
        clients: CognitoClients,
        http: httpx.AsyncClient,
        state_dir: Path,
        secrets: SecretResolver,
        scans: PoolScans | None = None,
    ) -> None:
        self.bridge = bridge
        self._scans = scans  # None: this bridge scans its pool alone
        self.poller = Poller(
            bridge,
            outbox=outbox,
            pool=clients.pool(bridge.source),
            on_events=self._on_events_committed,
        )
        self.sink_counters = SinkCounters()
        self.deliverer = Deliverer(
            bridge,
            outbox,
            http=http,
            state_dir=state_dir,
            secrets=secrets,
            counters=self.sink_counters,
        )
        self._events_committed = asyncio.Event()

    @property
    def source_counters(self) -> SourceCounters:
        return self.poller.counters

    @property
    def source_health(self) -> Condition:
        """SourceReady, as the last poll left it."""
        return self.poller.health

    # -- one step each, so that `run --once`, tests and the loops share them ---------------

    async def poll_once(self) -> PollOutcome:
        """One poll (`Poller.poll_once`, or a part in the next shared scan); each chunk it
        commits wakes the delivery loop."""
        if self._scans is not None:
            return await self._scans.poll_once(self.poller)
        return await self.poller.poll_once()

    def _on_events_committed(self, events: int) -> None:
        self.sink_counters.emitted += events
        self._events_committed.set()

    async def deliver_once(self, stop: asyncio.Event | None = None) -> None:
        """Deliver everything pending now (retrying per policy); the deliverer refreshes the
        pending and parked gauges as it ends."""
        await self.deliverer.deliver_pending(stop)

    async def refresh_counts(self) -> None:
        """Bring the pending and parked gauges up to date (their writer is the deliverer)."""
        await self.deliverer.refresh_gauges()

    @property
    def sink_health(self) -> Condition:
        """SinkReady: the deliverer's, or Idle before the first send (`sink_ready_or_idle`)."""
        return sink_ready_or_idle(
            self.deliverer.ready, pending=self.sink_counters.pending, source=self.source_health
        )

    # -- the loops ----------------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, *, once: bool = False, delivery_deadline: float = 10.0
    ) -> None:
        """Poll and deliver until `stop` is set. Pending events from an earlier run go first.

        `once`: one poll, then deliver what is pending until done, `stop`, or
        `delivery_deadline` seconds (what is not delivered stays pending), and return.

        If either loop fails, the other is stopped and the error is raised, so that the
        owner (the reconciler's guard) logs it and restarts the bridge: a bridge never goes
        on polling while its delivery is dead, or the other way round."""
        if once:
            await self._run_once(stop, delivery_deadline)
            return
        delivery = asyncio.create_task(self._delivery_loop(stop), name=f"deliver:{self.bridge.id}")
        polling = asyncio.create_task(self._poll_loop(stop), name=f"poll:{self.bridge.id}")
        stopped = asyncio.create_task(stop.wait())
        graceful = False
        try:
            done, _ = await asyncio.wait(
                {polling, delivery, stopped}, return_when=asyncio.FIRST_COMPLETED
            )
            for loop_task in (polling, delivery):
                if loop_task in done and not stop.is_set():
                    loop_task.result()  # raise what ended it
                    raise RuntimeError(f"{loop_task.get_name()} ended before it was stopped")
            graceful = True
        finally:
            stopped.cancel()
            # Nothing a poll does counts until its commit, which completes even when the
            # loop is cancelled: a poll waiting on the request budget or a slow pool is
            # simply abandoned, so that stopping never waits for a scan.
            polling.cancel()
            await asyncio.gather(polling, stopped, return_exceptions=True)
            if graceful:
                # Delivery stops gracefully: the request in flight finishes or stays pending.
                # Not `stop_within`: this wait has no deadline of its own (the owner's is
                # the deadline); on Python 3.11 its `wait_for` swallows the owner's
                # cancellation when delivery ends at that very moment, and it returns
                # quietly where this re-raises a cancellation of the delivery task itself.
                try:
                    await asyncio.shield(delivery)
                except asyncio.CancelledError:
                    delivery.cancel()  # our owner gave up waiting: never outlive the bridge
                    await asyncio.gather(delivery, return_exceptions=True)
                    raise
            else:
                # Failing or cancelled: cancelling delivery is safe (nothing is marked
                # delivered that the sink did not accept).
                delivery.cancel()
                await asyncio.gather(delivery, return_exceptions=True)

    async def _run_once(self, stop: asyncio.Event, delivery_deadline: float) -> None:
        await self.poll_once()
        deadline = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(delivery_deadline, deadline.set)
        relay = asyncio.create_task(_relay(stop, deadline))
        try:
            await self.deliver_once(deadline)
        finally:
            timer.cancel()
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        if self._scans is not None:
            await self._scans.follow(self.poller)  # until cancelled, when `stop` is set
            return
        interval = self.bridge.source.poll_interval
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            outcome = await self.poll_once()
            failures = 0 if outcome.complete else failures + 1
            wait = next_poll_wait(interval, failures) - (time.monotonic() - started)
            await sleep_or_wake(max(wait, 0.0), stop)

    async def _delivery_loop(self, stop: asyncio.Event) -> None:
        self._events_committed.set()  # deliver what an earlier run left pending
        while not stop.is_set():
            await sleep_or_wake(None, stop, self._events_committed)
            if stop.is_set():
                break
            self._events_committed.clear()
            await self.deliver_once(stop)


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    """Set `target` once `source` is set."""
    await source.wait()
    target.set()


def next_poll_wait(interval: float, failures: int, rng: random.Random | None = None) -> float:
    """Seconds from one poll's start to the next: the poll interval, or after `failures`
    consecutive failed polls a backoff that doubles per failure (interval * 2**failures) up
    to MAX_ERROR_BACKOFF, so that a broken pool is not hammered. The backoff is jittered
    (`equal_jitter`, never below the interval), so that the bridges of one pool or account
    that failed together, in one runner or several, do not all ask again at the same moment."""
    if failures == 0:
        return interval
    cap = max(interval, MAX_ERROR_BACKOFF)
    step = backoff_step(interval, failures, cap=cap)
    return equal_jitter(step, floor=interval, cap=cap, rng=rng)
