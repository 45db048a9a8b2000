"""The shared request budget for Cognito: one token bucket per (account, region), shared
fairly by the pools that draw from it.

Cognito's ListUsers quota (about 30 requests/s) is per account and region and shared by
every pool and every other caller, so every poller whose pool lives in the same
(account, region) draws from one `TokenBucket` (`--aws-rps`, default `runner.defaults.AWS_RPS`).

The bucket is a GCRA ("virtual scheduling") limiter: an acquisition reserves the next free
slot under a lock and then waits for it. Usable both from the event loop (`await acquire()`)
and from a worker thread (`acquire_blocking()`, for boto3's own retries, which are requests
against the same quota), and cheap.

**A fair share per pool.** Callers name their pool (`acquire(key)`, the pool id). Each pool
has a lane, and only the head of a lane holds a slot: the next caller of that pool reserves
its slot only when the head's slot arrives. A pool scanned in 16 concurrent segments thus
has one reservation in the bucket at a time, not 16, and a small pool's request waits behind
at most one slot of every other busy pool: while several pools want requests they take
turns, each getting an equal share of the rate, and a pool alone still gets all of it
(the next head reserves the slot right after the one just granted). Callers without a key,
and every caller of a bucket built with `fair=False`, reserve at once, first come first
served (the bucket before lanes, kept as the benchmarks' baseline).

A slot says when a caller may go, not when its request actually leaves: a busy event loop
wakes sleepers late, and a thread pool starts calls late, and requests woken late leave
together. `pace_blocking()`, called right before the request is sent, holds it until the
*actual* send times conform to the same (rate, burst) as well, so lateness delays later
requests instead of bunching them.

With the default `burst=1`, grants are at least `1/rate` apart, so no one-second window
ever holds more than `rate` requests. A larger burst lets `burst - 1` extra requests
through at once after an idle spell, at the cost of that guarantee. Slots are spaced
`MARGIN` (2 %) wider than `1/rate`: Cognito counts requests when they arrive, and requests
sent exactly `1/rate` apart put the `rate + 1`-th on the edge of a one-second window, on
the wrong side of it whenever the network delays the first more than the last (measured:
a few throttled answers a minute at `--aws-rps 30` against a 30/s quota). 2 % is 20 ms of
such jitter per second, for 2 % of the rate.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from runner import defaults

Clock = Callable[[], float]
AsyncSleep = Callable[[float], Awaitable[None]]
BlockingSleep = Callable[[float], None]

_EPSILON = 1e-9  # float slack when comparing times
MARGIN = 0.02  # slots this much wider than 1/rate (see the module docstring)


@dataclass(frozen=True, slots=True)
class BucketStats:
    """How much a bucket was used, and how long its callers waited (for metrics)."""

    acquired: int
    waited_seconds: float
    max_wait_seconds: float


@dataclass(slots=True)
class _Usage:
    acquired: int = 0
    waited: float = 0.0
    max_wait: float = 0.0

    def add(self, wait: float) -> None:
        self.acquired += 1
        self.waited += wait
        self.max_wait = max(self.max_wait, wait)

    def stats(self) -> BucketStats:
        return BucketStats(self.acquired, self.waited, self.max_wait)


@dataclass(eq=False, slots=True)
class _Ticket:
    """One caller's place in its pool's lane; `slot` is set when it heads the lane."""

    key: str
    entered: float
    wake: Callable[[], object]  # tells the caller it has a slot; callable from any thread
    slot: float | None = None


class TokenBucket:
    """`rate` requests per second with up to `burst` at once, shared fairly by pools."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        fair: bool = True,
        margin: float = MARGIN,
        clock: Clock = time.monotonic,
        sleep: AsyncSleep = asyncio.sleep,
        blocking_sleep: BlockingSleep = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests/s, not {rate!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1, not {burst!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1), not {margin!r}")
        self.rate = rate
        self.burst = burst
        self.fair = fair
        self._interval = (1.0 + margin) / rate
        self._tolerance = (burst - 1.0) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._blocking_sleep = blocking_sleep
        self._lock = threading.Lock()
        self._next_slot: float | None = None  # GCRA "theoretical arrival time" of slots
        self._next_send: float | None = None  # the same, over actual send times
        self._usage = _Usage()
        self._usage_by_key: dict[str, _Usage] = {}
        self._lanes: dict[str, deque[_Ticket]] = {}

    # -- slots ----------------------------------------------------------------------------

    def _take_slot(self, now: float) -> float:
        """Reserve the next slot (lock held); return when it is granted."""
        slot = now if self._next_slot is None else max(now, self._next_slot)
        if self._next_send is not None:
            # Never ahead of what the actual sends can follow: a request granted before the
            # send schedule has room for it would only wait in `pace_blocking`, holding a
            # worker thread, and the thread pool's queue is first come first served: a
            # backlog there is shared by no lane.
            slot = max(slot, self._next_send - self._tolerance)
        grant_at = max(now, slot - self._tolerance)
        self._next_slot = slot + self._interval
        return grant_at

    def _count(self, key: str | None, wait: float) -> None:
        self._usage.add(wait)
        if key is not None:
            self._usage_by_key.setdefault(key, _Usage()).add(wait)

    def reserve(self, key: str | None = None) -> float:
        """Reserve the next slot at once, first come first served; return how many seconds
        the caller must wait for it (`key` only says whose it is, for `stats_by_key`).

        A reservation is never given back: a caller cancelled while waiting leaves its slot
        unused, which only ever lowers the rate.
        """
        with self._lock:
            now = self._clock()
            wait = self._take_slot(now) - now
            self._count(key, wait)
            return wait

    # -- lanes ----------------------------------------------------------------------------

    def _enter(self, ticket: _Ticket) -> None:
        """Queue `ticket` in its pool's lane; it gets a slot at once if the lane was empty."""
        with self._lock:
            lane = self._lanes.setdefault(ticket.key, deque())
            lane.append(ticket)
            if len(lane) == 1:
                self._assign(ticket)

    def _assign(self, ticket: _Ticket, handed_on_by: float | None = None) -> None:
        """Give `ticket` the next free slot (lock held). When a head hands its lane on, as
        its slot `handed_on_by` arrives, the next slot is taken as of that moment (at most
        one slot back), even if the head was woken late: a busy loop's lateness must not
        cost the pool the slots that fell due while its callers waited, as it did not when
        every caller reserved at once. Slots of an idle spell, with nobody waiting, are
        never banked. Actual sends stay paced apart (`pace_blocking`)."""
        now = self._clock()
        if handed_on_by is not None:
            now = min(now, handed_on_by + self._interval)
        ticket.slot = self._take_slot(now)
        self._count(ticket.key, max(0.0, ticket.slot - ticket.entered))

    def _leave(self, ticket: _Ticket) -> None:
        """`ticket` is done: granted, or given up. A head hands its lane to the next ticket,
        which reserves the next free slot (the head's own reservation is never given back)."""
        while True:
            with self._lock:
                lane = self._lanes[ticket.key]
                if ticket.slot is None:  # still queued behind the head: just leave the queue
                    lane.remove(ticket)
                    following = None
                else:
                    lane.popleft()
                    following = lane[0] if lane else None
                    if following is not None:
                        self._assign(following, handed_on_by=ticket.slot)
                if not lane:
                    del self._lanes[ticket.key]
            if following is None:
                return
            try:
                following.wake()
                return
            except RuntimeError:  # its event loop is closed: nobody waits for that slot
                ticket = following

    def _ticket(self, key: str, wake: Callable[[], object]) -> _Ticket:
        return _Ticket(key, self._clock(), wake)

    # -- acquiring ------------------------------------------------------------------------

    async def acquire(self, key: str | None = None) -> float:
        """Wait (on the event loop) for one request's token as pool `key`; return the
        seconds waited (from the reservation of the slot)."""
        if key is None or not self.fair:
            wait = self.reserve(key)
            if wait > 0:
                await self._sleep(wait)
            return wait
        loop = asyncio.get_running_loop()
        assigned: asyncio.Future[None] = loop.create_future()
        ticket = self._ticket(key, lambda: loop.call_soon_threadsafe(_resolve, assigned))
        self._enter(ticket)
        try:
            if ticket.slot is None:
                await assigned
            assert ticket.slot is not None
            wait = ticket.slot - self._clock()
            if wait > 0:
                await self._sleep(wait)
            return max(0.0, ticket.slot - ticket.entered)
        finally:
            self._leave(ticket)

    def acquire_blocking(self, key: str | None = None) -> float:
        """Wait in the calling thread for one token as pool `key` (for code that runs off the
        event loop, such as boto3's retries in worker threads)."""
        if key is None or not self.fair:
            wait = self.reserve(key)
            if wait > 0:
                self._blocking_sleep(wait)
            return wait
        assigned = threading.Event()
        ticket = self._ticket(key, assigned.set)
        self._enter(ticket)
        try:
            if ticket.slot is None:
                assigned.wait()
            assert ticket.slot is not None
            wait = ticket.slot - self._clock()
            if wait > 0:
                self._blocking_sleep(wait)
            return max(0.0, ticket.slot - ticket.entered)
        finally:
            self._leave(ticket)

    def pace_blocking(self) -> float:
        """Wait in this thread until a request sent now conforms to (rate, burst) in actual
        send times; record the send. Call it right before the request leaves."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                earliest = now if self._next_send is None else self._next_send - self._tolerance
                if now >= earliest - _EPSILON:
                    self._next_send = max(now, self._next_send or now) + self._interval
                    self._usage.waited += waited
                    self._usage.max_wait = max(self._usage.max_wait, waited)
                    return waited
                delay = earliest - now
            self._blocking_sleep(delay)
            waited += delay

    def stats(self) -> BucketStats:
        with self._lock:
            return self._usage.stats()

    def stats_by_key(self) -> dict[str, BucketStats]:
        """Grants and waiting per pool (slots only: pacing waits are the bucket's)."""
        with self._lock:
            return {key: usage.stats() for key, usage in self._usage_by_key.items()}

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst}, fair={self.fair})"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RequestBudgets:
    """One `TokenBucket` per (account, region), created on first use and shared after."""

    def __init__(
        self,
        rate: float = defaults.AWS_RPS,
        *,
        burst: float = 1.0,
        fair: bool = True,
        margin: float = MARGIN,
        clock: Clock = time.monotonic,
        sleep: AsyncSleep = asyncio.sleep,
        blocking_sleep: BlockingSleep = time.sleep,
    ) -> None:
        # Build one bucket now so that a bad rate or burst fails at startup, not on first use.
        TokenBucket(rate, burst=burst, margin=margin)
        self.rate = rate
        self.burst = burst
        self.fair = fair
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._blocking_sleep = blocking_sleep
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def for_account(self, account: str, region: str) -> TokenBucket:
        key = (account, region)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(
                    self.rate,
                    burst=self.burst,
                    fair=self.fair,
                    margin=self.margin,
                    clock=self._clock,
                    sleep=self._sleep,
                    blocking_sleep=self._blocking_sleep,
                )
                self._buckets[key] = bucket
            return bucket

    def stats(self) -> dict[tuple[str, str], BucketStats]:
        """Usage and waiting time of every bucket, keyed by (account, region)."""
        with self._lock:
            buckets = dict(self._buckets)
        return {key: bucket.stats() for key, bucket in buckets.items()}
