"""The one interruptible sleep and the one stop-with-deadline (runner/_kits/aio.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from runner._kits.aio import sleep_or_wake, stop_within
from tests.conftest import ROOT


async def _sleep_or_wake_runs_out_when_no_event_is_set() -> None:
    event = asyncio.Event()
    started = time.monotonic()
    assert await sleep_or_wake(0.05, event) is False
    assert time.monotonic() - started >= 0.04


async def _sleep_or_wake_wakes_on_any_event() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, second.set)
    started = time.monotonic()
    assert await sleep_or_wake(30, first, second) is True
    assert time.monotonic() - started < 10  # woken, not timed out


async def _sleep_or_wake_returns_at_once_when_already_set() -> None:
    event = asyncio.Event()
    event.set()
    assert await sleep_or_wake(None, event) is True


async def _sleep_or_wake_leaves_no_waiter_behind_when_cancelled() -> None:
    event = asyncio.Event()
    before = len(asyncio.all_tasks())
    sleeper = asyncio.ensure_future(sleep_or_wake(None, event))
    await asyncio.sleep(0.01)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before


async def _sleep_or_wake_without_limit_or_event_is_refused() -> None:
    with pytest.raises(ValueError, match="needs an event"):
        await sleep_or_wake(None)


async def _stop_within_lets_a_task_finish() -> None:
    async def finishes() -> None:
        await asyncio.sleep(0.01)

    assert await stop_within(asyncio.ensure_future(finishes()), 5) is True


async def _stop_within_cancels_a_task_past_its_deadline() -> None:
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    task = asyncio.ensure_future(hangs())
    assert await stop_within(task, 0.02) is False
    assert task.cancelled() and cancelled.is_set()


async def _stop_within_raises_what_ended_the_task() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await stop_within(asyncio.ensure_future(fails()), 5)


async def _stop_within_never_lets_the_task_outlive_a_cancelled_owner() -> None:
    async def hangs() -> None:
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(hangs())
    owner = asyncio.ensure_future(stop_within(task, 3600))
    await asyncio.sleep(0.01)
    owner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner
    assert task.cancelled()


def test_sleep_or_wake_runs_out_when_no_event_is_set() -> None:
    asyncio.run(_sleep_or_wake_runs_out_when_no_event_is_set())


def test_sleep_or_wake_wakes_on_any_event() -> None:
    asyncio.run(_sleep_or_wake_wakes_on_any_event())


def test_sleep_or_wake_returns_at_once_when_already_set() -> None:
    asyncio.run(_sleep_or_wake_returns_at_once_when_already_set())


def test_sleep_or_wake_leaves_no_waiter_behind_when_cancelled() -> None:
    asyncio.run(_sleep_or_wake_leaves_no_waiter_behind_when_cancelled())


def test_sleep_or_wake_without_limit_or_event_is_refused() -> None:
    asyncio.run(_sleep_or_wake_without_limit_or_event_is_refused())


def test_stop_within_lets_a_task_finish() -> None:
    asyncio.run(_stop_within_lets_a_task_finish())


def test_stop_within_cancels_a_task_past_its_deadline() -> None:
    asyncio.run(_stop_within_cancels_a_task_past_its_deadline())


def test_stop_within_raises_what_ended_the_task() -> None:
    asyncio.run(_stop_within_raises_what_ended_the_task())


def test_stop_within_never_lets_the_task_outlive_a_cancelled_owner() -> None:
    asyncio.run(_stop_within_never_lets_the_task_outlive_a_cancelled_owner())


SIGNAL_WITH_A_FULL_SELF_PIPE = """
import asyncio, os, signal, threading
from runner._kits.aio import set_on_signals

async def main():
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    with set_on_signals(stop, [signal.SIGTERM]):
        def fill():  # thread completions, as thousands of bridges make them
            for _ in range(300_000):
                loop.call_soon_threadsafe(lambda: None)
        def busy():  # the loop is busy while the self-pipe fills, then SIGTERM comes
            filler = threading.Thread(target=fill)
            filler.start()
            filler.join()
            os.kill(os.getpid(), signal.SIGTERM)
        loop.call_soon(busy)
        try:
            await asyncio.wait_for(stop.wait(), 20)
            print("stopped")
        except TimeoutError:
            print("SIGTERM lost")
    print("handler restored" if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else "not")

asyncio.run(main())
"""


def test_a_signal_sets_the_event_even_when_the_loops_self_pipe_is_full() -> None:
    # With loop.add_signal_handler, this SIGTERM is lost: asyncio cannot write the signal's
    # byte to its full self-pipe (seen with 5,000 bridges, and in this script).
    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_WITH_A_FULL_SELF_PIPE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.stdout.split("\n")[:2] == ["stopped", "handler restored"], done.stderr
