"""One poll of one bridge: a streamed scan of the pool, committed chunk by chunk; the
source's counters and health say how it went.

    describe (first poll) -> scan, page by page -> chunks: diff, events, commit
                                                   (`runner.polling.stream`)
                          -> complete: sweep the unseen into deletions, mark the baseline

Each chunk's events and the snapshot rows of its users commit together before any of them
is sent, and delivery is woken after each commit (`on_events`), so events leave while the
scan reads on. A poll interrupted at any point leaves only true commits behind and no
deletion; the next poll reads the pool again. `runner.polling.worker` runs the polls in a
loop beside the bridge's delivery; when bridges share a pool's scans
(`runner.polling.shared_scan`), the scan takes the steps of a poll for each of them
(`scan_starting`, `open_scan`, the pages, `close_scan`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from runner._kits.wording import plural
from runner.errors import BridgeRunnerError, PermanentError, TemporaryError
from runner.model import Bridge
from runner.polling.stream import ScanStream, StreamTotals
from runner.sources.cognito.client import CognitoPool
from runner.sources.cognito.scan import ScanResult
from runner.state.outbox import Outbox
from runner.status.counters import SourceCounters
from runner.status.readiness import Condition

log = logging.getLogger(__name__)

# From this many users (counted by the last complete scan, or DescribeUserPool's
# EstimatedNumberOfUsers before the first) a scan is split into 16 parallel segments by `sub`
# prefix, so that a large pool can use its share of the request budget instead of one
# request at a time.
SEGMENT_THRESHOLD_USERS = 1200
SEGMENTS = 16


@dataclass(frozen=True, slots=True)
class PollOutcome:
    complete: bool
    changes: int
    events: int  # committed to the outbox by this poll
    baseline: bool  # this poll recorded the initial baseline without sending


FAILED_POLL = PollOutcome(complete=False, changes=0, events=0, baseline=False)


@dataclass(frozen=True, slots=True)
class OpenScan:
    """One bridge's stream over a scan in progress."""

    stream: ScanStream
    baseline: bool  # this scan records the initial baseline without sending


def _no_one_to_tell(events: int) -> None:
    """The default `on_events`: nobody delivers (tools and tests that poll only)."""


class Poller:
    """Polls one bridge's pool, one poll per `poll_once`, and keeps what polls share: the
    source counters and health, the pool's estimated size, whether segments cover it.

    `on_events(n)` is called after each commit of n > 0 events, while the scan goes on."""

    def __init__(
        self,
        bridge: Bridge,
        *,
        outbox: Outbox,
        pool: CognitoPool,
        on_events: Callable[[int], None] = _no_one_to_tell,
    ) -> None:
        self.bridge = bridge
        self.outbox = outbox
        self.pool = pool
        self.counters = SourceCounters()
        self.health = Condition(
            "SourceReady", "Unknown", "NotPolledYet", "the pool has not been polled yet"
        )
        self._on_events = on_events
        self._described = False
        self._estimated_users = 0  # DescribeUserPool's EstimatedNumberOfUsers
        # False once a segmented scan left a known user no segment covers (see `_sweep`).
        self.segments_cover_the_pool = True

    async def poll_once(self) -> PollOutcome:
        """One full scan, streamed and committed. Raises nothing but cancellation (and what
        is no `BridgeRunnerError`, a bug): failures are recorded in the counters and health,
        and an incomplete scan commits no deletions."""
        self.scan_starting()
        try:
            if not self._described:
                self._estimated_users = await self.pool.describe() or 0
                self._described = True
            segments = self.segments()
            opened = await self.open_scan()
            scan = await self.pool.scan(segments=segments, on_page=opened.stream.add_page)
            return await self.close_scan(opened, scan, segments)
        except BridgeRunnerError as exc:
            self.record_error(exc)
            return FAILED_POLL

    def segments(self, estimated_users: int | None = None) -> int:
        """How many segments the next scan reads the pool in (`estimated_users`: a
        DescribeUserPool answer got by someone else, as a shared scan does)."""
        estimate = self._estimated_users if estimated_users is None else estimated_users
        size = max(self.counters.users_tracked, estimate)
        large = size >= SEGMENT_THRESHOLD_USERS
        return SEGMENTS if large and self.segments_cover_the_pool else 1

    # -- the steps of one poll, also taken by a scan shared with other bridges --------------
    # (`runner.polling.shared_scan`): scan_starting, open_scan, the pages, close_scan.

    def scan_starting(self) -> None:
        self.counters.last_poll_time = datetime.now(UTC)
        self.counters.scan_started(time.monotonic())

    async def open_scan(self) -> OpenScan:
        """A new stream for this bridge, baselining or sending per its `initialSync`."""
        bridge = self.bridge
        has_baseline = await asyncio.to_thread(
            self.outbox.has_baseline, bridge.id, bridge.source.pool.arn
        )
        baseline = not has_baseline and bridge.source.initial_sync == "baseline"
        stream = ScanStream(bridge, self.outbox, send=not baseline, on_events=self._on_events)
        await stream.begin()
        return OpenScan(stream, baseline)

    async def close_scan(
        self,
        opened: OpenScan,
        scan: ScanResult,
        segments: int,
        *,
        failure: BridgeRunnerError | None = None,
    ) -> PollOutcome:
        """Finish the stream after `scan` and record how it went. `failure`: why this
        bridge's part of a complete scan is incomplete all the same (a commit of its own
        failed, or it fell behind a shared scan). Raises what the last commit raised."""
        bridge = self.bridge
        complete = scan.complete and failure is None
        self.counters.pages_read += scan.pages
        self.counters.throttles += scan.throttles
        totals = await opened.stream.finish(complete=complete, segments=segments)
        if totals.uncovered:
            self._stop_segmenting(totals.uncovered, segments)
        error = None if complete else failure or scan.error
        await self._record_scan(scan, totals, error)
        if totals.changes or totals.events:
            log.info(
                "bridge %s: %s, %s committed%s",
                bridge.id,
                plural(totals.changes, "change"),
                plural(totals.events, "event"),
                " (initial baseline, nothing sent)" if opened.baseline else "",
            )
        return PollOutcome(complete, totals.changes, totals.events, opened.baseline)

    async def _record_scan(
        self, scan: ScanResult, totals: StreamTotals, error: BridgeRunnerError | None
    ) -> None:
        if error is not None or not scan.complete:
            self.record_error(
                error or TemporaryError("the scan ended early", reason="ScanIncomplete")
            )
            return
        counters = self.counters
        counters.users_tracked = await asyncio.to_thread(
            self.outbox.count_users, self.bridge.id, self.bridge.source.pool.arn
        )
        counters.scans += 1
        counters.last_scan_duration = scan.duration
        counters.last_successful_poll_time = datetime.now(UTC)
        counters.last_error = None
        interval = self.bridge.source.poll_interval
        counters.scan_completed(time.monotonic(), interval)
        tracked = plural(counters.users_tracked, "user")
        behind = counters.falling_behind()  # still Ready: the events are right, only late
        message = f"{tracked} tracked" + (f"; {behind}" if behind else "")
        self.health = Condition("SourceReady", "True", "Polling", message)

    def _stop_segmenting(self, uncovered: int, segments: int) -> None:
        """A segment lists the users whose `sub` starts with its prefix; a known user whose
        `sub` starts otherwise is in no segment, and a segmented scan cannot tell whether it
        is gone. The sweep left such users alone; from now on this poller reads the pool in
        one piece, which lists everyone."""
        self.segments_cover_the_pool = False
        log.warning(
            "bridge %s: %s of pool %s outside the %s (a sub without a lowercase hex "
            "prefix); scanning the pool in one piece from the next poll",
            self.bridge.id,
            plural(uncovered, "known user"),
            self.pool.pool_id,
            plural(segments, "scan segment"),
        )

    def record_error(self, exc: BridgeRunnerError) -> None:
        """A poll failed: SourceReady False with the reason, the error in the counters."""
        reason = getattr(exc, "reason", "") or type(exc).__name__
        self.counters.last_error = f"{reason}: {exc}"
        self.health = Condition.of("SourceReady", False, reason, str(exc))
        if isinstance(exc, PermanentError):
            # Describe again next time: the pool or the credentials may have been fixed.
            self._described = False
        log.warning("bridge %s: poll failed: %s: %s", self.bridge.id, reason, exc)
