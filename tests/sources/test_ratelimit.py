"""The token bucket and the per-(account, region) request budgets, on a fake clock."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runner.sources.cognito.budget import RequestBudgets, TokenBucket


class FakeClock:
    """Time that only moves when someone sleeps: to the wake-up time of the sleeper."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake_at = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake_at)

    def blocking_sleep(self, seconds: float) -> None:
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_bucket(rate: float, burst: float = 1.0) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    # No margin: the arithmetic below is that of `rate` exactly (the margin has its own test).
    bucket = TokenBucket(
        rate,
        burst=burst,
        margin=0.0,
        clock=clock,
        sleep=clock.sleep,
        blocking_sleep=clock.blocking_sleep,
    )
    return bucket, clock


def max_in_one_second(times: list[float]) -> int:
    """The most grants in any half-open one-second window [t, t + 1)."""
    ordered = sorted(times)
    return max(sum(1 for u in ordered if t <= u < t + 1.0 - 1e-9) for t in ordered)


def test_grants_are_spaced_by_one_over_rate() -> None:
    bucket, clock = make_bucket(rate=10)

    async def run() -> list[float]:
        granted = []
        for _ in range(5):
            await bucket.acquire()
            granted.append(clock())
        return granted

    assert asyncio.run(run()) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_concurrent_callers_are_served_in_order_and_never_beyond_the_rate() -> None:
    bucket, clock = make_bucket(rate=5)
    granted: dict[int, float] = {}

    async def caller(i: int) -> None:
        await bucket.acquire()
        granted[i] = clock()

    async def run() -> None:
        await asyncio.gather(*(caller(i) for i in range(23)))

    asyncio.run(run())
    order = sorted(granted, key=granted.__getitem__)
    assert order == list(range(23))  # FIFO: reservation order is grant order
    assert max_in_one_second(list(granted.values())) == 5
    assert clock() == pytest.approx(22 / 5)


def test_burst_lets_that_many_through_at_once_then_paces() -> None:
    bucket, _ = make_bucket(rate=10, burst=3)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_idle_time_refills_at_most_the_burst() -> None:
    bucket, clock = make_bucket(rate=10, burst=2)
    for _ in range(4):
        bucket.reserve()
    clock.advance(60.0)  # a long idle spell must not bank 600 tokens
    waits = [bucket.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2])


def test_blocking_and_async_callers_share_the_same_slots() -> None:
    bucket, clock = make_bucket(rate=4)

    async def run() -> list[float]:
        first = await bucket.acquire()
        second = bucket.acquire_blocking()  # as boto3's retry hook does, in a worker thread
        third = await bucket.acquire()
        return [first, second, third]

    waits = asyncio.run(run())
    assert waits == pytest.approx([0.0, 0.25, 0.25])
    assert clock() == pytest.approx(0.5)


def test_stats_count_acquisitions_and_waiting() -> None:
    bucket, _ = make_bucket(rate=2)
    for _ in range(3):
        bucket.reserve()
    stats = bucket.stats()
    assert stats.acquired == 3
    assert stats.waited_seconds == pytest.approx(0.5 + 1.0)
    assert stats.max_wait_seconds == pytest.approx(1.0)


def test_reservations_from_many_threads_never_share_a_slot() -> None:
    bucket, _ = make_bucket(rate=100)
    waits: list[float] = []
    lock = threading.Lock()

    def reserve_many() -> None:
        for _ in range(50):
            wait = bucket.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=reserve_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The clock never moves, so 200 distinct slots must be 0, 0.01, ..., 1.99.
    assert sorted(waits) == pytest.approx([i / 100 for i in range(200)])


def test_slots_are_spaced_a_margin_wider_than_one_over_rate_by_default() -> None:
    clock = FakeClock()
    bucket = RequestBudgets(10, clock=clock, sleep=clock.sleep).for_account("1", "r")
    waits = [bucket.reserve() for _ in range(31)]
    # 2 % wider: 31 requests paced at 10/s span 3.06 s, so that a request's arrival may be
    # 20 ms later than its send, per second, before a window at Cognito holds 11.
    assert waits[1] == pytest.approx(0.102)
    assert waits[30] == pytest.approx(3.06)
    assert max_in_one_second(waits) == 10
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError):
            TokenBucket(10, margin=bad)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (10, 0.5)])
def test_invalid_rate_or_burst_is_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst=burst)
    with pytest.raises(ValueError):
        RequestBudgets(rate, burst=burst)


def test_budgets_share_one_bucket_per_account_and_region() -> None:
    clock = FakeClock()
    budgets = RequestBudgets(10, margin=0.0, clock=clock, sleep=clock.sleep)
    a = budgets.for_account("111111111111", "us-west-2")
    assert budgets.for_account("111111111111", "us-west-2") is a
    assert budgets.for_account("111111111111", "eu-west-1") is not a
    assert budgets.for_account("222222222222", "us-west-2") is not a
    a.reserve()
    a.reserve()
    stats = budgets.stats()
    assert stats[("111111111111", "us-west-2")].acquired == 2
    assert stats[("222222222222", "us-west-2")].acquired == 0
    assert a.rate == 10


def test_pacing_spaces_actual_sends_even_when_callers_come_late() -> None:
    bucket, clock = make_bucket(rate=10)
    # Three callers got their slots (0, 0.1, 0.2) but were all started late, at 0.25.
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    clock.advance(0.25)
    sends = []
    for _ in range(3):
        bucket.pace_blocking()
        sends.append(clock())
    assert sends == pytest.approx([0.25, 0.35, 0.45])  # delayed, not bunched


def test_slots_are_not_granted_ahead_of_what_the_sends_can_follow() -> None:
    bucket, clock = make_bucket(rate=10)
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    clock.advance(0.25)  # started late: the sends go at 0.25, 0.35, 0.45
    for _ in range(3):
        bucket.pace_blocking()
    assert clock() == pytest.approx(0.45)
    # The slot schedule alone would grant now (0.45); the next send cannot go before 0.55.
    # Waiting for it in the bucket keeps a worker thread free, and the caller in its lane.
    assert bucket.reserve() == pytest.approx(0.1)


def test_pacing_does_not_delay_callers_that_are_on_time() -> None:
    bucket, clock = make_bucket(rate=10)

    async def run() -> list[float]:
        waits = []
        for _ in range(4):
            await bucket.acquire()
            waits.append(bucket.pace_blocking())
        return waits

    assert asyncio.run(run()) == pytest.approx([0.0] * 4)
    assert clock() == pytest.approx(0.3)
