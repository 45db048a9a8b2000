"""The request budget's fair share per pool, on a virtual clock: an event loop whose time
jumps to the next timer instead of waiting for it, so that every grant time is exact and
the tests take no wall time."""

from __future__ import annotations

import asyncio
import itertools
import selectors
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from runner.sources.cognito.budget import TokenBucket

T = TypeVar("T")


class _SkippingSelector:
    """A selector that, with nothing to read, moves the loop's virtual time to the next timer."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._real.select(0)
        if events:
            return events
        if timeout is None:  # no timer: only another thread can wake the loop
            return self._real.select(5.0)
        self._loop.now += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_SkippingSelector(self))  # type: ignore[arg-type]

    def time(self) -> float:
        return self.now


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())


def bucket_on_this_loop(rate: float, *, fair: bool = True) -> TokenBucket:
    loop = asyncio.get_running_loop()
    return TokenBucket(rate, fair=fair, margin=0.0, clock=loop.time)  # slots exactly 1/rate


def max_in_one_second(times: list[float]) -> int:
    ordered = sorted(times)
    return max(sum(1 for u in ordered if t <= u < t + 1.0 - 1e-9) for t in ordered)


async def callers(
    bucket: TokenBucket,
    key: str,
    count: int,
    grants: list[tuple[str, float]],
    *,
    until: asyncio.Event,
    stop_at: int,
    think: float = 0.0,
    waits: list[float] | None = None,
) -> None:
    """`count` concurrent callers of pool `key`, each acquiring in a loop until `until` is
    set, which the caller that brings `grants` to `stop_at` does."""

    async def one() -> None:
        while not until.is_set():
            waited = await bucket.acquire(key)
            grants.append((key, asyncio.get_running_loop().time()))
            if len(grants) >= stop_at:
                until.set()
            if waits is not None:
                waits.append(waited)
            await asyncio.sleep(think)

    await asyncio.gather(*(one() for _ in range(count)))


async def race(*workers: Awaitable[None]) -> None:
    await asyncio.gather(*workers)


def busy_pools(rate: float, stop_at: int, *pools: tuple[str, int]) -> list[tuple[str, float]]:
    """The grants (pool, virtual time) of a bucket of `rate` to busy pools, each a (key,
    concurrent callers) asking back to back, until `stop_at` grants."""

    async def main() -> list[tuple[str, float]]:
        bucket = bucket_on_this_loop(rate)
        grants: list[tuple[str, float]] = []
        until = asyncio.Event()
        await race(
            *(callers(bucket, key, n, grants, until=until, stop_at=stop_at) for key, n in pools)
        )
        return grants

    return run_virtual(main)


def test_a_pool_alone_gets_the_whole_rate_even_from_16_concurrent_callers() -> None:
    times = [t for _, t in busy_pools(10, 100, ("big", 16))[:100]]
    # One reservation at a time, and the next reserved the moment the last is granted:
    # every slot of the rate is used, none twice.
    assert times == pytest.approx([i / 10 for i in range(100)])
    assert max_in_one_second(times) == 10


def test_two_busy_pools_take_turns_whatever_their_concurrency() -> None:
    grants = busy_pools(10, 200, ("big", 16), ("small", 1))[:200]
    keys = [key for key, _ in grants]
    # Strictly in turn once both want requests: the big pool's first caller, granted at
    # once, hands its lane on before the small pool has asked.
    assert keys[:2] == ["big", "big"]
    assert all(a != b for a, b in itertools.pairwise(keys[1:]))
    assert keys.count("big") - keys.count("small") == 2
    assert max_in_one_second([t for _, t in grants]) == 10


def test_three_pools_get_equal_shares() -> None:
    keys = [key for key, _ in busy_pools(30, 300, ("a", 16), ("b", 4), ("c", 1))[:300]]
    counts = [keys.count(k) for k in "abc"]
    assert max(counts) - min(counts) <= 2, counts  # the first turns go to who asked first
    assert keys[10:] == ["a", "b", "c"] * 96 + ["a", "b"]


@pytest.mark.parametrize(("fair", "most_slots_waited"), [(True, 2), (False, 16)])
def test_a_small_pools_requests_wait_behind_one_slot_of_a_busy_pool_not_its_backlog(
    fair: bool, most_slots_waited: int
) -> None:
    """The small pool asks for one page at a time, 0.3 s apart (its round trips); the big
    pool keeps 16 requests waiting. Fair: each small request waits for the big pool's one
    reserved slot and its own. First come first served (`fair=False`, the bucket before
    lanes): behind the big pool's 16."""

    async def main() -> list[float]:
        bucket = bucket_on_this_loop(10, fair=fair)
        grants: list[tuple[str, float]] = []
        small_waits: list[float] = []
        until = asyncio.Event()
        await race(
            callers(bucket, "big", 16, grants, until=until, stop_at=300),
            callers(
                bucket, "small", 1, grants, until=until, stop_at=300, think=0.3, waits=small_waits
            ),
        )
        return small_waits[2:]  # once the big pool's 16 callers are all waiting

    waits = run_virtual(main)
    assert len(waits) > 5
    assert max(waits) == pytest.approx(most_slots_waited / 10)


def test_a_head_woken_late_by_a_busy_loop_does_not_cost_its_pool_a_slot() -> None:
    """The loop is busy for 0.27 s every 0.5 s (a diff, a commit, another bridge), so a head
    wakes up to 0.27 s after its slot. The lane hands on as of the slot, not the wake-up:
    the slots that fell due meanwhile are granted at once (sends are paced apart anyway),
    and over 20 s the pool gets close to its 200 grants (handing on as of the wake-up: 171)."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        bucket = bucket_on_this_loop(10)
        grants: list[tuple[str, float]] = []
        until = asyncio.Event()

        async def busy_loop() -> None:
            while not until.is_set():
                await asyncio.sleep(0.5)
                loop.now += 0.27  # time passes and nothing else runs

        async def stop_at(when: float) -> None:
            await asyncio.sleep(when)
            until.set()

        await race(
            callers(bucket, "big", 16, grants, until=until, stop_at=10**6),
            busy_loop(),
            stop_at(20.0),
        )
        return sum(1 for _, t in grants if t < 20.0)

    assert run_virtual(main) >= 195


def test_callers_cancelled_in_the_lane_or_at_its_head_do_not_hold_up_their_pool() -> None:
    async def main() -> tuple[list[float], float]:
        bucket = bucket_on_this_loop(10)
        head = asyncio.ensure_future(bucket.acquire("other"))  # takes slot 0 (no wait)
        await head
        waiting = [asyncio.ensure_future(bucket.acquire("pool")) for _ in range(4)]
        await asyncio.sleep(0)  # all four in the lane: the first holds slot 0.1
        waiting[0].cancel()  # the head, while it waits for its slot
        waiting[2].cancel()  # one queued behind it
        done = await asyncio.gather(waiting[1], waiting[3])
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bucket.acquire("pool")  # the lane is empty again
        return done, loop.time() - started

    (second, fourth), last_wait = run_virtual(main)
    # The cancelled head's slot (0.1) is not given back; its successor takes the next (0.2).
    assert second == pytest.approx(0.2)
    assert fourth == pytest.approx(0.3)
    assert last_wait == pytest.approx(0.1)  # the next free slot, as for any caller


def test_blocking_callers_of_a_pool_take_turns_in_its_lane() -> None:
    """boto3's retries acquire from worker threads (`acquire_blocking`); they count against
    their pool's share, and the lane hands on between threads and the loop."""

    async def main() -> tuple[dict[str, int], list[str]]:
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(200, clock=loop.time)  # real time here: threads cannot skip it
        grants: list[tuple[str, float]] = []
        until = asyncio.Event()
        in_threads: list[float] = []

        def retries() -> None:
            for _ in range(10):
                in_threads.append(bucket.acquire_blocking("big"))

        threads = [threading.Thread(target=retries) for _ in range(2)]
        for thread in threads:
            thread.start()
        await race(
            callers(bucket, "big", 4, grants, until=until, stop_at=40),
            callers(bucket, "small", 1, grants, until=until, stop_at=40),
        )
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        assert len(in_threads) == 20
        counts = {key: s.acquired for key, s in bucket.stats_by_key().items()}
        return counts, [key for key, _ in grants]

    with asyncio.Runner() as runner:
        counts, on_loop = runner.run(main())
    assert counts == {"big": on_loop.count("big") + 20, "small": on_loop.count("small")}
    # The small pool had its turns while the big pool's lane went between loop and threads.
    assert on_loop.count("small") >= 10


def test_without_a_key_callers_reserve_at_once_first_come_first_served() -> None:
    async def main() -> list[float]:
        bucket = bucket_on_this_loop(10)
        return list(await asyncio.gather(*(bucket.acquire() for _ in range(5))))

    assert run_virtual(main) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
