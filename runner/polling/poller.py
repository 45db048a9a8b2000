"""One bridge at work: scan the pool, commit what changed to the outbox, deliver it.

A `BridgePoller` owns two loops for its bridge, so that a slow or dead sink never stops the
pool from being watched (changes keep queueing in the outbox, which is durable):

    poll loop:      scan -> diff against the snapshot -> build events -> commit (one transaction)
    delivery loop:  outbox -> sink, in order, retried per the bridge's policy

Everything a crash can interrupt is ordered so that nothing is lost: events and the new
snapshot are committed together before any is sent, and an event leaves the outbox only
after the sink took it (at-least-once; a resend carries the same id).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from runner._kits.backoff import equal_jitter
from runner._kits.wording import plural
from runner.delivery.deliverer import Deliverer
from runner.errors import BridgeRunnerError, PermanentError, TemporaryError
from runner.model import Bridge
from runner.polling.diff import SnapshotEntry, diff_users
from runner.polling.events import build_events
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.client import CognitoClients, CognitoPool
from runner.sources.cognito.scan import ScanResult, segments_cover
from runner.state.outbox import Outbox
from runner.status.counters import SinkCounters, SourceCounters

log = logging.getLogger(__name__)

# Above this many users a scan is split into 16 parallel segments by `sub` prefix, so that
# a large pool can use its share of the request budget instead of one request at a time.
SEGMENT_THRESHOLD_USERS = 1200
SEGMENTS = 16
# After a failed poll, wait at most this long before trying again (the poll interval
# still applies when it is longer).
MAX_ERROR_BACKOFF = 300.0

Checkpoint = Callable[[str], None]


def _no_checkpoint(_: str) -> None:
    return None


@dataclass
class SourceHealth:
    """SourceReady as the status file shows it."""

    ready: bool | None = None
    reason: str = "NotPolledYet"
    message: str = "the pool has not been polled yet"


@dataclass(frozen=True, slots=True)
class PollOutcome:
    complete: bool
    changes: int
    events: int
    baseline: bool  # this poll recorded the initial baseline without sending


class BridgePoller:
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
        checkpoint: Checkpoint = _no_checkpoint,
    ) -> None:
        self.bridge = bridge
        self.outbox = outbox
        self.pool: CognitoPool = clients.pool(bridge.source)
        self.source_counters = SourceCounters()
        self.sink_counters = SinkCounters()
        self.source_health = SourceHealth()
        self.deliverer = Deliverer(
            bridge,
            outbox,
            http=http,
            state_dir=state_dir,
            secrets=secrets,
            counters=self.sink_counters,
        )
        self._checkpoint = checkpoint
        self._events_committed = asyncio.Event()
        self._described = False
        # False once a segmented scan met a user no segment covers (see `_uncovered`).
        self._segments_cover_the_pool = True

    # -- one step each, so that `run --once`, tests and the loops share them ---------------

    async def poll_once(self) -> PollOutcome:
        """One full scan, diffed and committed. Raises nothing but cancellation: failures are
        recorded in the counters and health, and an incomplete scan commits no deletions."""
        counters = self.source_counters
        counters.last_poll_time = datetime.now(UTC)
        try:
            if not self._described:
                await self.pool.describe()
                self._described = True
            return await self._scan_and_commit()
        except BridgeRunnerError as exc:
            self._record_source_error(exc)
            return PollOutcome(complete=False, changes=0, events=0, baseline=False)

    async def _scan_and_commit(self) -> PollOutcome:
        bridge, counters = self.bridge, self.source_counters
        arn = bridge.source.pool.arn
        large = counters.users_tracked >= SEGMENT_THRESHOLD_USERS
        segments = SEGMENTS if large and self._segments_cover_the_pool else 1
        scan = await self.pool.scan(segments=segments)
        counters.pages_read += scan.pages
        counters.throttles += scan.throttles
        self._checkpoint("after_scan")

        has_baseline = await asyncio.to_thread(self.outbox.has_baseline, bridge.id, arn)
        if not scan.complete and not has_baseline:
            # A baseline must be a whole pool: without one, a partial scan cannot tell which
            # users are new, so it commits nothing and the next poll starts over.
            raise scan.error or TemporaryError("the scan ended early", reason="ScanIncomplete")

        snapshot = await asyncio.to_thread(self.outbox.load_snapshot, bridge.id, arn)
        if scan.complete and segments > 1 and self._uncovered(scan, snapshot, segments):
            # Read the pool again in one piece, which lists everyone, before diffing.
            scan = await self.pool.scan(segments=1)
            counters.pages_read += scan.pages
            counters.throttles += scan.throttles
        # A thread, not the event loop: a large pool's diff takes a good part of a second,
        # and other bridges' deliveries must not wait for it.
        changes = await asyncio.to_thread(diff_users, snapshot, scan.users, complete=scan.complete)
        baseline = not has_baseline and bridge.source.initial_sync == "baseline"
        events = (
            []
            if baseline
            else build_events(
                bridge, changes, observed_at=datetime.now(UTC), scan_id=uuid.uuid4().hex
            )
        )
        commit = asyncio.ensure_future(
            asyncio.to_thread(
                self.outbox.commit_scan, bridge.id, arn, changes, events, complete=scan.complete
            )
        )
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            # Stopping mid-commit: let the transaction finish before this poller is gone, so
            # that a successor never diffs against the snapshot this commit is replacing.
            await commit
            raise
        self._checkpoint("after_commit")

        if events:
            self.sink_counters.emitted += len(events)
            self._events_committed.set()
        if scan.complete:
            counters.users_tracked = len(scan.users)
            counters.scans += 1
            counters.last_scan_duration = scan.duration
            counters.last_successful_poll_time = datetime.now(UTC)
            counters.last_error = None
            tracked = plural(len(scan.users), "user")
            self.source_health = SourceHealth(True, "Polling", f"{tracked} tracked")
        else:
            self._record_source_error(
                scan.error or TemporaryError("the scan ended early", reason="ScanIncomplete")
            )
        if changes or events:
            log.info(
                "bridge %s: %s, %s committed%s",
                bridge.id,
                plural(len(changes), "change"),
                plural(len(events), "event"),
                " (initial baseline, nothing sent)" if baseline else "",
            )
        return PollOutcome(scan.complete, len(changes), len(events), baseline)

    def _uncovered(
        self, scan: ScanResult, snapshot: Mapping[str, SnapshotEntry], segments: int
    ) -> bool:
        """Whether a segmented scan missed a known user that no segment could list.

        A segment lists the users whose `sub` starts with its prefix; a user whose `sub`
        starts otherwise is in no segment and would be reported deleted. The snapshot knows
        each user's `sub`: when one it cannot vouch for is missing, this poller stops
        segmenting the pool (the caller rescans it in one piece).
        """
        seen = {user["Username"] for user in scan.users}
        outside = sum(
            1
            for username, entry in snapshot.items()
            if username not in seen and not segments_cover(entry.sub, segments)
        )
        if outside:
            self._segments_cover_the_pool = False
            log.warning(
                "bridge %s: %s of pool %s outside the %s (a sub without a lowercase hex "
                "prefix); scanning the pool in one piece instead",
                self.bridge.id,
                plural(outside, "known user"),
                self.pool.pool_id,
                plural(segments, "scan segment"),
            )
        return outside > 0

    def _record_source_error(self, exc: BridgeRunnerError) -> None:
        reason = getattr(exc, "reason", "") or type(exc).__name__
        self.source_counters.last_error = f"{reason}: {exc}"
        self.source_health = SourceHealth(False, reason, str(exc))
        if isinstance(exc, PermanentError):
            # Describe again next time: the pool or the credentials may have been fixed.
            self._described = False
        log.warning("bridge %s: poll failed: %s: %s", self.bridge.id, reason, exc)

    async def deliver_once(self, stop: asyncio.Event | None = None) -> None:
        """Deliver everything pending now (retrying per policy) and refresh the sink counters."""
        await self.deliverer.deliver_pending(stop)
        await self.refresh_counts()

    async def refresh_counts(self) -> None:
        stats = await asyncio.to_thread(self.outbox.stats, self.bridge.id)
        self.sink_counters.pending = stats.pending
        self.sink_counters.parked = stats.parked

    @property
    def sink_health(self) -> tuple[bool | None, str, str]:
        """SinkReady. Before the first send the deliverer cannot know; with nothing pending
        the sink is simply idle, which is no reason to call the bridge not Ready."""
        ready = self.deliverer.ready
        if ready[0] is None and self.sink_counters.pending == 0 and self.source_health.ready:
            return (True, "Idle", "nothing to deliver yet")
        return ready

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

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        interval = self.bridge.source.poll_interval
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            outcome = await self.poll_once()
            failures = 0 if outcome.complete else failures + 1
            wait = next_poll_wait(interval, failures) - (time.monotonic() - started)
            await _wait_or_stop(stop, max(wait, 0.0))

    async def _delivery_loop(self, stop: asyncio.Event) -> None:
        self._events_committed.set()  # deliver what an earlier run left pending
        while not stop.is_set():
            await _wait_or_stop(stop, None, self._events_committed)
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
    consecutive failed polls a backoff that doubles per failure up to MAX_ERROR_BACKOFF, so
    that a broken pool is not hammered. The backoff is jittered (`equal_jitter`, never below
    the interval), so that the bridges of one pool or account that failed together, in one
    runner or several, do not all ask again at the same moment."""
    if failures == 0:
        return interval
    cap = max(interval, MAX_ERROR_BACKOFF)
    step = min(interval * 2.0 ** min(failures, 16), cap)
    return equal_jitter(step, floor=interval, cap=cap, rng=rng)


async def _wait_or_stop(
    stop: asyncio.Event, seconds: float | None, other: asyncio.Event | None = None
) -> None:
    """Wait until `stop` (or `other`) is set, or `seconds` pass (None: no limit)."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if other is not None:
        waiters.append(asyncio.ensure_future(other.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
