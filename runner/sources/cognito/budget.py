"""The shared request budget for Cognito: one token bucket per (account, region).

Cognito's ListUsers quota (about 30 requests/s) is per account and region and shared by
every pool and every other caller, so every poller whose pool lives in the same
(account, region) draws from one `TokenBucket` (`--aws-rps`, default `runner.defaults.AWS_RPS`).

The bucket is a GCRA ("virtual scheduling") limiter: each acquisition reserves the next
free slot under a lock and then waits for it. That makes it FIFO-fair, usable both from
the event loop (`await acquire()`) and from a worker thread (`acquire_blocking()`, for
boto3's own retries, which are requests against the same quota), and cheap.

A slot says when a caller may go, not when its request actually leaves: a busy event loop
wakes sleepers late, and a thread pool starts calls late, and requests woken late leave
together. `pace_blocking()`, called right before the request is sent, holds it until the
*actual* send times conform to the same (rate, burst) as well, so lateness delays later
requests instead of bunching them.

With the default `burst=1`, grants are at least `1/rate` apart, so no one-second window
ever holds more than `rate` requests. A larger burst lets `burst - 1` extra requests
through at once after an idle spell, at the cost of that guarantee.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from runner import defaults

Clock = Callable[[], float]
AsyncSleep = Callable[[float], Awaitable[None]]
BlockingSleep = Callable[[float], None]

_EPSILON = 1e-9  # float slack when comparing times


@dataclass(frozen=True, slots=True)
class BucketStats:
    """How much a bucket was used, and how long its callers waited (for metrics)."""

    acquired: int
    waited_seconds: float
    max_wait_seconds: float


class TokenBucket:
    """`rate` requests per second with up to `burst` at once; callers wait their turn."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: AsyncSleep = asyncio.sleep,
        blocking_sleep: BlockingSleep = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests/s, not {rate!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1, not {burst!r}")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1.0) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._blocking_sleep = blocking_sleep
        self._lock = threading.Lock()
        self._next_slot: float | None = None  # GCRA "theoretical arrival time" of slots
        self._next_send: float | None = None  # the same, over actual send times
        self._acquired = 0
        self._waited = 0.0
        self._max_wait = 0.0

    def reserve(self) -> float:
        """Reserve the next slot; return how many seconds the caller must wait for it.

        A reservation is never given back: a caller cancelled while waiting leaves its slot
        unused, which only ever lowers the rate.
        """
        with self._lock:
            now = self._clock()
            slot = now if self._next_slot is None else max(now, self._next_slot)
            grant_at = max(now, slot - self._tolerance)
            self._next_slot = slot + self._interval
            wait = grant_at - now
            self._acquired += 1
            self._waited += wait
            self._max_wait = max(self._max_wait, wait)
            return wait

    async def acquire(self) -> float:
        """Wait (on the event loop) for one request's token; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)
        return wait

    def acquire_blocking(self) -> float:
        """Wait in the calling thread for one token (for code that runs off the event loop)."""
        wait = self.reserve()
        if wait > 0:
            self._blocking_sleep(wait)
        return wait

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
                    self._waited += waited
                    self._max_wait = max(self._max_wait, waited)
                    return waited
                delay = earliest - now
            self._blocking_sleep(delay)
            waited += delay

    def stats(self) -> BucketStats:
        with self._lock:
            return BucketStats(self._acquired, self._waited, self._max_wait)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst})"


class RequestBudgets:
    """One `TokenBucket` per (account, region), created on first use and shared after."""

    def __init__(
        self,
        rate: float = defaults.AWS_RPS,
        *,
        burst: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: AsyncSleep = asyncio.sleep,
        blocking_sleep: BlockingSleep = time.sleep,
    ) -> None:
        # Build one bucket now so that a bad rate or burst fails at startup, not on first use.
        TokenBucket(rate, burst=burst)
        self.rate = rate
        self.burst = burst
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
