"""The two asyncio shapes every loop of the runner needs, written once.

    await sleep_or_wake(seconds, *events) -> True if an event was set first, False if the
                                              time ran out (None: no limit)
    await stop_within(task, grace)        -> True if `task` ended by itself within `grace` s,
                                              False if it had to be cancelled
    with set_on_signals(event, signums):      `event` set by each of the signals, however busy
                                              the loop's self-pipe is

kopf's `aiotime.sleep(delays, wakeup=event)` and `aiotasks.stop` are the models: a loop
that waits between rounds must wake at once on shutdown, and a task asked to stop must not
outlive its owner's patience.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable, Iterator
from typing import Any


async def sleep_or_wake(seconds: float | None, *events: asyncio.Event) -> bool:
    """Sleep `seconds` (None: until woken), or less when one of `events` is set.

    Returns True when an event is set (at once, without yielding, if one already is), False
    when the time ran out. The waiters it creates never outlive the call, also when the
    caller is cancelled.
    """
    if any(event.is_set() for event in events):
        return True
    if not events:
        if seconds is not None:
            await asyncio.sleep(seconds)
            return False
        raise ValueError("sleep_or_wake with no limit needs an event to wake it")
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return any(event.is_set() for event in events)


async def stop_within(task: asyncio.Task[Any], grace: float) -> bool:
    """Give `task` (already asked to stop) up to `grace` seconds to end, then cancel it
    and wait for it to finish cancelling.

    Returns True when it ended by itself (its exception, if any, is raised here), False when
    it was cancelled. If the caller itself is cancelled meanwhile, `task` is cancelled too
    before the cancellation goes on: a task never outlives the one that owns it.
    """
    if not task.done():
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # our owner gave up on us
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            return False  # someone else cancelled the task itself
    if task.cancelled():
        return False
    task.result()
    return True


@contextlib.contextmanager
def set_on_signals(event: asyncio.Event, signums: Iterable[int]) -> Iterator[None]:
    """Set `event` (of the running loop) on each of `signums` while in the block.

    Not `loop.add_signal_handler`: asyncio learns of a signal from a byte written to its
    self-pipe, which thousands of worker-thread completions can fill; that byte, and with it
    the SIGTERM, is then lost ("Exception ignored when trying to write to the signal wakeup
    fd"), measured with 5,000 bridges. A Python-level handler runs on the main thread
    whatever the pipe holds, and `call_soon_threadsafe` wakes the loop.
    """
    loop = asyncio.get_running_loop()
    signums = list(signums)
    previous = {
        signum: signal.signal(signum, lambda *_: loop.call_soon_threadsafe(event.set))
        for signum in signums
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
