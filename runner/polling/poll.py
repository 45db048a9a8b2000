"""One poll of one bridge: scan the pool, diff against the snapshot, build the events, and
commit events and snapshot together; the source's counters and health say how it went.

    scan -> diff against the snapshot -> build events -> commit (one transaction)

Nothing is sent here and nothing counts before the commit: events and the new snapshot are
committed together before any is sent (`runner.state.outbox.Outbox.commit_scan`), so a poll
interrupted at any point is simply done again by the next one. `runner.polling.worker` runs
the polls in a loop beside the bridge's delivery.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from runner._kits.wording import plural
from runner.errors import BridgeRunnerError, PermanentError, TemporaryError
from runner.model import Bridge, NewEvent, SnapshotEntry
from runner.polling.diff import Change, diff_users
from runner.polling.events import build_events
from runner.sources.cognito.client import CognitoPool
from runner.sources.cognito.scan import ScanResult, segments_cover
from runner.state.outbox import Outbox
from runner.status.counters import SourceCounters
from runner.status.readiness import Condition

log = logging.getLogger(__name__)

# Above this many users a scan is split into 16 parallel segments by `sub` prefix, so that
# a large pool can use its share of the request budget instead of one request at a time.
SEGMENT_THRESHOLD_USERS = 1200
SEGMENTS = 16


@dataclass(frozen=True, slots=True)
class PollOutcome:
    complete: bool
    changes: int
    events: int  # committed to the outbox by this poll
    baseline: bool  # this poll recorded the initial baseline without sending


class Poller:
    """Polls one bridge's pool, one poll per `poll_once`, and keeps what polls share: the
    source counters and health, whether the pool was described, whether segments cover it."""

    def __init__(self, bridge: Bridge, *, outbox: Outbox, pool: CognitoPool) -> None:
        self.bridge = bridge
        self.outbox = outbox
        self.pool = pool
        self.counters = SourceCounters()
        self.health = Condition(
            "SourceReady", "Unknown", "NotPolledYet", "the pool has not been polled yet"
        )
        self._described = False
        # False once a segmented scan met a user no segment covers (see `_uncovered`).
        self._segments_cover_the_pool = True

    async def poll_once(self) -> PollOutcome:
        """One full scan, diffed and committed. Raises nothing but cancellation (and what
        is no `BridgeRunnerError`, a bug): failures are recorded in the counters and health,
        and an incomplete scan commits no deletions."""
        self.counters.last_poll_time = datetime.now(UTC)
        try:
            if not self._described:
                await self.pool.describe()
                self._described = True
            return await self._scan_and_commit()
        except BridgeRunnerError as exc:
            self._record_error(exc)
            return PollOutcome(complete=False, changes=0, events=0, baseline=False)

    async def _scan_and_commit(self) -> PollOutcome:
        bridge = self.bridge
        arn = bridge.source.pool.arn
        large = self.counters.users_tracked >= SEGMENT_THRESHOLD_USERS
        segments = SEGMENTS if large and self._segments_cover_the_pool else 1
        scan = await self._scan(segments)

        has_baseline = await asyncio.to_thread(self.outbox.has_baseline, bridge.id, arn)
        if not scan.complete and not has_baseline:
            # A baseline must be a whole pool: without one, a partial scan cannot tell which
            # users are new, so it commits nothing and the next poll starts over.
            raise scan.error or TemporaryError("the scan ended early", reason="ScanIncomplete")

        snapshot = await asyncio.to_thread(self.outbox.load_snapshot, bridge.id, arn)
        if scan.complete and segments > 1 and self._uncovered(scan, snapshot, segments):
            # Read the pool again in one piece, which lists everyone, before diffing.
            scan = await self._scan(1)
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
        await self._commit(changes, events, complete=scan.complete)
        self._record_scan(scan)
        if changes or events:
            log.info(
                "bridge %s: %s, %s committed%s",
                bridge.id,
                plural(len(changes), "change"),
                plural(len(events), "event"),
                " (initial baseline, nothing sent)" if baseline else "",
            )
        return PollOutcome(scan.complete, len(changes), len(events), baseline)

    async def _scan(self, segments: int) -> ScanResult:
        scan = await self.pool.scan(segments=segments)
        self.counters.pages_read += scan.pages
        self.counters.throttles += scan.throttles
        return scan

    async def _commit(
        self, changes: list[Change], events: list[NewEvent], *, complete: bool
    ) -> None:
        bridge = self.bridge
        commit = asyncio.ensure_future(
            asyncio.to_thread(
                self.outbox.commit_scan,
                bridge.id,
                bridge.source.pool.arn,
                changes,
                events,
                complete=complete,
            )
        )
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            # Stopping mid-commit: let the transaction finish before this poller is gone, so
            # that a successor never diffs against the snapshot this commit is replacing.
            await commit
            raise

    def _record_scan(self, scan: ScanResult) -> None:
        if not scan.complete:
            self._record_error(
                scan.error or TemporaryError("the scan ended early", reason="ScanIncomplete")
            )
            return
        counters = self.counters
        counters.users_tracked = len(scan.users)
        counters.scans += 1
        counters.last_scan_duration = scan.duration
        counters.last_successful_poll_time = datetime.now(UTC)
        counters.last_error = None
        tracked = plural(len(scan.users), "user")
        self.health = Condition("SourceReady", "True", "Polling", f"{tracked} tracked")

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

    def _record_error(self, exc: BridgeRunnerError) -> None:
        reason = getattr(exc, "reason", "") or type(exc).__name__
        self.counters.last_error = f"{reason}: {exc}"
        self.health = Condition.of("SourceReady", False, reason, str(exc))
        if isinstance(exc, PermanentError):
            # Describe again next time: the pool or the credentials may have been fixed.
            self._described = False
        log.warning("bridge %s: poll failed: %s: %s", self.bridge.id, reason, exc)
