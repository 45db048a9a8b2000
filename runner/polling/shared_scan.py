"""One scan per pool, fanned out to every bridge that watches it (issue 14).

    PoolScans                 one per runner: the pools being scanned, by `ScanKey`
    └── PoolScan              one per key: its scan loop and its subscribers (`Poller`s)
        └── _Feed             one per subscriber and scan: its pages, its stream, its commits

Bridges share a scan only when they read the pool the same way: the same pool ARN, endpoint
and auth (`ScanKey`; the auth as written, secret references and role, never resolved values).
Two bridges whose credentials differ never share: one may be allowed to read the pool and
the other not. Each subscriber keeps everything of its own: its snapshot, outbox, place,
`initialSync`, filters and sink; only the ListUsers pages are shared, so N bridges on one
pool cost the requests of one.

The loop scans the pool as often as its most demanding subscriber asks (the smallest
`pollInterval`, start to start, backing off after failed scans as a lone poller does), every
request through the pool's lane of the request budget. DescribeUserPool (the first scan's
size) and the choice of segments are made once per pool scan. A subscriber joins a scan only
at its start (a stream must see a whole scan before it may sweep the unseen into deletions),
and only the scans its own `pollInterval` asks for (`_joining`): requests cost nothing more
per subscriber, but its diff and commits do, so that work follows its own interval. A
newcomer does not wait for the others' interval: a scan starts `JOIN_WINDOW` after it joins
(bridges started together by one reconcile join the same scan).

Each page goes to every subscriber's queue at once; the subscriber's own task diffs and
commits it (in worker threads) while the scan reads on. A slow *sink* never holds the scan
back: its events wait in its bridge's outbox. Slow *commits* do, within bounds: when a
subscriber has `MAX_PAGES_BEHIND` pages waiting, the scan waits for it to take one (which
bounds memory). Dropping it instead would be worse: a bridge whose commits are a little
slower than the pages arrive (a large pool, many bridges on one pool, all diffing on two
cores) would drop out of every scan and never complete one. A subscriber that takes no page
for `STALL_TIMEOUT` while the scan waits drops out of this scan (its scan is incomplete, it
deletes no one, and it joins the next one); one whose commit fails has an incomplete scan,
and the others are not touched. A subscriber still
finishing one scan when the next starts joins the one after. Leaving (`follow` cancelled)
waits for the subscriber's commit in flight, never for the scan; the last one to leave stops
the pool's scans.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from runner._kits.aio import sleep_or_wake
from runner._kits.wording import plural
from runner.errors import BridgeRunnerError, PermanentError, TemporaryError
from runner.model import AwsAuth, CognitoSource
from runner.polling.poll import FAILED_POLL, Poller, PollOutcome
from runner.polling.worker import next_poll_wait
from runner.sources.cognito.client import CognitoClients, CognitoPool
from runner.sources.cognito.scan import ScanResult
from runner.status.counters import scan_period_tolerance

log = logging.getLogger(__name__)

# Seconds between a newcomer joining and the scan it waits for: bridges started by one
# reconcile (or one `run --once`) join the same scan instead of one scan each.
JOIN_WINDOW = 0.25
# Pages a subscriber may have waiting before the scan waits for it (60 users a page).
MAX_PAGES_BEHIND = 100
# Seconds a subscriber may take no page while the scan waits for it, before it drops out of
# the scan: far longer than any healthy commit of a chunk (600 users), short enough that a
# stuck state file does not hold the pool's other bridges for long.
STALL_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ScanKey:
    """What bridges must have in common to share a scan. `auth` holds secret references,
    never values, and is kept out of the repr all the same."""

    arn: str
    endpoint: str | None
    auth: AwsAuth = field(repr=False)

    @classmethod
    def of(cls, source: CognitoSource) -> ScanKey:
        return cls(source.pool.arn, source.endpoint, source.auth)


class PoolScans:
    """The shared scans of one runner: `follow` (the poll loop of a bridge) or `poll_once`."""

    def __init__(self, clients: CognitoClients, *, join_window: float = JOIN_WINDOW) -> None:
        self._clients = clients
        self._join_window = join_window
        self.scans: dict[ScanKey, PoolScan] = {}

    async def follow(self, poller: Poller) -> None:
        """Take part in every scan of the poller's pool until cancelled; then leave (after
        the poller's commit in flight)."""
        scan, member = self._join(poller)
        try:
            await asyncio.Future()  # until cancelled
        finally:
            await self._leave(scan, member)

    async def poll_once(self, poller: Poller) -> PollOutcome:
        """Take part in the next scan of the poller's pool, and leave."""
        scan, member = self._join(poller)
        try:
            return await asyncio.shield(member.first_outcome)
        finally:
            await self._leave(scan, member)

    def _join(self, poller: Poller) -> tuple[PoolScan, _Member]:
        key = ScanKey.of(poller.bridge.source)
        scan = self.scans.get(key)
        if scan is None:
            scan = PoolScan(self._clients.pool(poller.bridge.source), self._join_window)
            self.scans[key] = scan
        return scan, scan.join(poller)

    async def _leave(self, scan: PoolScan, member: _Member) -> None:
        key = ScanKey.of(member.poller.bridge.source)
        if await scan.leave(member) and self.scans.get(key) is scan:
            del self.scans[key]


@dataclass(eq=False, slots=True)
class _Member:
    poller: Poller
    joined_at: float
    new: bool = True  # has not joined a scan yet
    last_start: float = 0.0  # monotonic start of the last scan it joined
    feed: _Feed | None = None  # its part of the scan it is in, while that lasts
    first_outcome: asyncio.Future[PollOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def interval(self) -> float:
        return self.poller.bridge.source.poll_interval

    @property
    def idle(self) -> bool:
        return self.feed is None or self.feed.task.done()

    def done(self, outcome: PollOutcome) -> None:
        if not self.first_outcome.done():
            self.first_outcome.set_result(outcome)


class PoolScan:
    """The scans of one pool for its subscribers; see the module docstring."""

    def __init__(self, pool: CognitoPool, join_window: float) -> None:
        self.pool = pool
        self.scans = 0  # scans started, for tests and metrics
        self._join_window = join_window
        self._members: list[_Member] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._described = False
        self._estimated_users = 0
        self._failures = 0  # consecutive incomplete scans
        self._backoff: float | None = None  # the jittered wait after them
        self._last_start: float | None = None
        self._feeds: list[_Feed] = []  # the parts of the scan in progress (or the last)

    @property
    def subscribers(self) -> int:
        return len(self._members)

    def join(self, poller: Poller) -> _Member:
        member = _Member(poller, time.monotonic())
        self._members.append(member)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"scan:{self.pool.pool_id}")
        return member

    async def leave(self, member: _Member) -> bool:
        """Unsubscribe `member`, after its commit in flight; True when it was the last."""
        self._members.remove(member)
        if member.feed is not None and not member.feed.task.done():
            member.feed.task.cancel()
            await asyncio.gather(member.feed.task, return_exceptions=True)
        member.first_outcome.cancel()
        if not self._members and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # A bridge may have joined while this one waited (a restart of it, say): then the
        # scans go on, the loop started again by that join if need be.
        return not self._members

    async def _run(self) -> None:
        while True:
            await self._until_due()
            joining = self._joining()
            try:
                await self._scan(joining)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug: the subscribers of this scan see it incomplete, the loop goes on.
                log.exception("shared scan of pool %s failed", self.pool.pool_id)
                self._scan_ended(complete=False)
                error = TemporaryError("the shared scan failed", reason="ScanFailed")
                for member in joining:
                    if member.feed is not None and member.feed in self._feeds:
                        member.feed.abort(error)
                    else:
                        member.poller.record_error(error)
                        member.done(FAILED_POLL)

    async def _until_due(self) -> None:
        while True:
            self._wake.clear()
            due = self._due()
            now = time.monotonic()
            if due is not None and due <= now:
                return
            await sleep_or_wake(None if due is None else due - now, self._wake)

    def _due(self) -> float | None:
        """When the next scan starts (monotonic): when the first idle subscriber is due;
        None while none is idle (each busy one wakes the loop as it ends)."""
        idle = [m for m in self._members if m.idle]
        return min((self._member_due(m) for m in idle), default=None)

    def _member_due(self, member: _Member) -> float:
        if member.new:
            return member.joined_at + self._join_window
        if self._backoff is not None and self._last_start is not None:
            return self._last_start + self._backoff  # after failed scans: all try again
        return member.last_start + member.interval

    def _joining(self) -> list[_Member]:
        """Who takes part in the scan starting now: the newcomers, the subscribers that are
        due, and those that would be late by the next scan (one shortest interval from now).
        The others wait for theirs: a scan costs each subscriber a diff and commits of every
        page, so each one's work follows its own `pollInterval`, not the fastest one's."""
        now = time.monotonic()
        idle = [m for m in self._members if m.idle]
        if self._backoff is not None:
            return idle
        next_scan = now + min(m.interval for m in self._members)
        return [
            m
            for m in idle
            if (due := self._member_due(m)) <= now
            or due + scan_period_tolerance(m.interval) < next_scan
        ]

    async def _scan(self, joining: list[_Member]) -> None:
        self._last_start = time.monotonic()
        self.scans += 1
        self._feeds = []
        for member in joining:
            member.new = False
            member.last_start = self._last_start
            member.poller.scan_starting()
        try:
            if not self._described:
                self._estimated_users = await self.pool.describe() or 0
                self._described = True
        except BridgeRunnerError as exc:
            self._described = not isinstance(exc, PermanentError)
            self._scan_ended(complete=False)
            for member in joining:
                member.poller.record_error(exc)
                member.done(FAILED_POLL)
            return
        segments = self._segments()
        self._feeds = feeds = [_Feed(member, segments, self._wake) for member in joining]

        async def fan_out(users: list[dict[str, Any]]) -> None:
            for feed in feeds:
                feed.offer(users)
            for feed in feeds:  # the segment reads on once no subscriber is too far behind
                await feed.caught_up()

        scan = await self.pool.scan(segments=segments, on_page=fan_out)
        for feed in feeds:
            feed.end(scan)
        if isinstance(scan.error, PermanentError):
            self._described = False  # the pool or the credentials may have been fixed
        self._scan_ended(complete=scan.complete)

    def _segments(self) -> int:
        """Once per pool scan: in segments as soon as one subscriber counts a large pool,
        unless one found users no segment could list (the pool is then read in one piece)."""
        pollers = [m.poller for m in self._members]
        if not all(p.segments_cover_the_pool for p in pollers):
            return 1
        return max(p.segments(self._estimated_users) for p in pollers)

    def _scan_ended(self, *, complete: bool) -> None:
        self._failures = 0 if complete else self._failures + 1
        if self._failures:
            interval = min((m.poller.bridge.source.poll_interval for m in self._members), default=1)
            self._backoff = next_poll_wait(interval, self._failures)
        else:
            self._backoff = None


class _Feed:
    """One subscriber's part of one scan: its queue of pages, and the task that streams them
    into its `ScanStream` and records how the scan went for it."""

    def __init__(self, member: _Member, segments: int, done: asyncio.Event) -> None:
        self.member = member
        self._segments = segments
        self._pages: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()
        self._failure: BridgeRunnerError | None = None
        self._scan: ScanResult | None = None
        self._took = asyncio.Event()  # set as it takes a page (or ends)
        member.feed = self
        poller = member.poller
        self.task = asyncio.create_task(self._run(), name=f"scan-feed:{poller.bridge.id}")
        # An idle subscriber may be what the next scan waits for.
        self.task.add_done_callback(lambda _: done.set())
        self.task.add_done_callback(lambda _: self._took.set())

    def offer(self, users: list[dict[str, Any]]) -> None:
        """A page of the scan; never waits (`caught_up` is the wait)."""
        if self._failure is not None or self.task.done():  # out of this scan, or left
            return
        self._pages.put_nowait(users)

    async def caught_up(self) -> None:
        """Until fewer than `MAX_PAGES_BEHIND` pages wait here; a subscriber that takes none
        for `STALL_TIMEOUT` meanwhile drops out of the scan."""
        while self._failure is None and not self.task.done():
            if self._pages.qsize() < MAX_PAGES_BEHIND:
                return
            self._took.clear()
            try:
                await asyncio.wait_for(self._took.wait(), STALL_TIMEOUT)
            except TimeoutError:
                if self._failure is None and self._pages.qsize() >= MAX_PAGES_BEHIND:
                    self._drop_out()

    def end(self, scan: ScanResult) -> None:
        self._scan = scan
        self._pages.put_nowait(None)

    def abort(self, error: BridgeRunnerError) -> None:
        """The scan itself broke (a bug): this part ends incomplete."""
        self._failure = self._failure or error
        if self._scan is None:
            self.end(_broken_scan(error))

    def _drop_out(self) -> None:
        self._failure = TemporaryError(
            f"this bridge's commits took no page of the pool's shared scan for "
            f"{STALL_TIMEOUT:g}s with {plural(MAX_PAGES_BEHIND, 'page')} waiting; it reads "
            "the pool again with the next scan",
            reason="FellBehind",
        )
        while not self._pages.empty():  # free the pages it will not use
            self._pages.get_nowait()
        log.warning("bridge %s: %s", self.member.poller.bridge.id, self._failure)

    async def _run(self) -> None:
        poller = self.member.poller
        try:
            opened = await poller.open_scan()
        except BridgeRunnerError as exc:
            self._failure = exc
            poller.record_error(exc)
            self.member.done(FAILED_POLL)
            return
        while (page := await self._pages.get()) is not None:
            self._took.set()
            if self._failure is None:
                try:
                    await opened.stream.add_page(page)
                except BridgeRunnerError as exc:
                    self._failure = exc  # its own commit: the others go on
        scan = self._scan
        assert scan is not None
        try:
            outcome = await poller.close_scan(opened, scan, self._segments, failure=self._failure)
        except BridgeRunnerError as exc:
            poller.record_error(exc)
            outcome = FAILED_POLL
        self.member.done(outcome)


def _broken_scan(error: BridgeRunnerError) -> ScanResult:
    return ScanResult(
        users=[], complete=False, pages=0, throttles=0, restarts=0, duration=0.0, error=error
    )
