"""The in-flight window of one bridge's delivery: several sends at once, each user's in order.

    window = Window(max_in_flight, page_size, read=, send=, park=, marks=)
    await window.run(stop)       one drain: read the outbox ahead, send, until nothing is left
    window.sink_up               set while the sink takes what it is sent (see below)
    window.sink_failed() / window.sink_took()
    cut_into_units(page, capacity, encode) -> [Unit | Unencodable]   a page, as sends

A *unit* is what one request carries: one event, or a batch. `UserGate` admits units in seq
order and lets one start only when no earlier unit holding one of its users (`user_key`,
the username) is unfinished -- delivered, dead-lettered, parked, or stopped. So the events
of one user reach the sink strictly in order, retries included, and a user is never in two
unfinished batches; units of different users overlap, up to `max_in_flight` at once, and a
unit whose users are free may start before an earlier one that waits for its user.

When a send fails retryably the deliverer calls `sink_failed()`: the window starts no new
unit until the sink takes something again (`sink_took()`) -- except one when nothing at all
is in flight, so that delivery cannot stall behind a sink that refuses -- and the units
that failed retry one at a time (the deliverer's probe), not `max_in_flight` at once.

Reading: the outbox is read ahead in pages (`read(after_seq, limit)`, in a worker thread)
while the current page is sent, each page only events after the highest seq this drain
already read (units in flight and accepted-but-uncommitted events are still pending in the
outbox; the query skips them), so nothing is read twice. When a read finds
nothing new and the window is idle, the marks are flushed and the outbox is read once more
from its start (catching events unparked meanwhile); empty, the drain is over. The next
page is read only while at most half a page waits to start, so a drain holds about one and
a half pages plus the units in flight (`maxInFlight` * `maxBatchSize` events in batch mode).
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.delivery.marks import DeliveredMarks
from runner.delivery.texts import exception_text
from runner.model import OutboxEvent


@dataclass(frozen=True, slots=True)
class Unit:
    """Events sent in one request (one, or a batch), and that request, encoded once by the
    sink's `encode` (whatever its message type: the window only carries it)."""

    events: tuple[OutboxEvent, ...]
    message: Any

    @property
    def seqs(self) -> list[int]:
        return [ev.seq for ev in self.events]

    @property
    def users(self) -> frozenset[str]:
        return frozenset(ev.user_key for ev in self.events)


@dataclass(frozen=True, slots=True)
class Unencodable:
    """An outbox event that is not a valid CloudEvent: no sink can take it; it is parked."""

    event: OutboxEvent
    error: str


Item = Unit | Unencodable
Encode = Callable[[Sequence[OutboxEvent]], Any]  # ValueError: not a CloudEvent


def cut_into_units(page: Sequence[OutboxEvent], capacity: int, encode: Encode) -> list[Item]:
    """`page`, in seq order, cut into sends of at most `capacity` events, encoded; an event
    that is not a valid CloudEvent is taken out of its send (to be parked), the valid events
    around it sent as they come."""
    items: list[Item] = []
    for start in range(0, len(page), capacity):
        group = page[start : start + capacity]
        try:
            items.append(Unit(tuple(group), encode(group)))
        except ValueError:
            items.extend(_split_unencodable(group, encode))
    return items


def _split_unencodable(group: Sequence[OutboxEvent], encode: Encode) -> list[Item]:
    items: list[Item] = []
    valid: list[OutboxEvent] = []
    for ev in group:
        try:
            encode([ev])
        except ValueError as exc:
            if valid:
                items.append(Unit(tuple(valid), encode(valid)))
                valid = []
            items.append(Unencodable(ev, f"not a valid CloudEvent: {exception_text(exc)}"))
        else:
            valid.append(ev)
    if valid:
        items.append(Unit(tuple(valid), encode(valid)))
    return items


class UserGate:
    """Admitted units, in seq order, and which of them may start (see the module doc)."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[int]] = {}  # user -> its unfinished units, in order
        self._units: dict[int, Unit] = {}  # first seq -> unit, for the unfinished
        self._ready: list[int] = []  # heap of first seqs that may start now
        self.waiting_events = 0  # events of admitted units not started yet

    def __len__(self) -> int:
        return len(self._units)

    def admit(self, unit: Unit) -> None:
        key = unit.events[0].seq
        self._units[key] = unit
        self.waiting_events += len(unit.events)
        for user in unit.users:
            self._queues.setdefault(user, deque()).append(key)
        self._push_if_ready(key)

    def pop_ready(self) -> Unit | None:
        """The earliest admitted unit that may start now (it is then started), or None."""
        if not self._ready:
            return None
        unit = self._units[heapq.heappop(self._ready)]
        self.waiting_events -= len(unit.events)
        return unit

    def finish(self, unit: Unit) -> None:
        key = unit.events[0].seq
        del self._units[key]
        for user in unit.users:
            queue = self._queues[user]
            queue.popleft()  # a unit starts only at the head of each of its users' queues
            if queue:
                self._push_if_ready(queue[0])
            else:
                del self._queues[user]

    def _push_if_ready(self, key: int) -> None:
        if all(self._queues[user][0] == key for user in self._units[key].users):
            heapq.heappush(self._ready, key)


Read = Callable[[int, int], list[Item]]  # (after seq, limit) -> new items, in seq order
Send = Callable[[Unit, asyncio.Event | None], Awaitable[bool]]  # False: stopped first
Park = Callable[[Sequence[OutboxEvent], str], Awaitable[None]]


@dataclass(slots=True)
class _Drain:
    """One drain's state."""

    stop: asyncio.Event | None
    gate: UserGate = field(default_factory=UserGate)
    running: set[asyncio.Task[bool]] = field(default_factory=set)
    ended: list[asyncio.Task[bool]] = field(default_factory=list)
    reading: asyncio.Task[list[Item]] | None = None
    cursor: int = 0  # the highest seq read since the last read from the start
    exhausted: bool = False  # the last read found nothing after `cursor`

    @property
    def idle(self) -> bool:
        return not self.running and not len(self.gate) and self.reading is None


class Window:
    """Runs one bridge's drains: up to `max_in_flight` units at once (see the module doc)."""

    def __init__(
        self,
        max_in_flight: int,
        page_size: int,
        *,
        read: Read,
        send: Send,
        park: Park,
        marks: DeliveredMarks,
    ) -> None:
        self._max_in_flight = max(1, max_in_flight)
        self._page_size = page_size
        self._read = read
        self._send = send
        self._park = park
        self._marks = marks
        self._wake = asyncio.Event()
        self.sink_up = asyncio.Event()
        self.sink_up.set()

    def sink_failed(self) -> None:
        self.sink_up.clear()

    def sink_took(self) -> None:
        if not self.sink_up.is_set():
            self.sink_up.set()
            self._wake.set()

    async def run(self, stop: asyncio.Event | None) -> None:
        """Send every pending event; returns when none is left, or once `stop` is set and
        the units in flight have ended (they end soon: see `Deliverer.deliver_pending`)."""
        drain = _Drain(stop)
        watcher = asyncio.create_task(self._wake_on(stop)) if stop is not None else None
        try:
            while True:
                self._wake.clear()
                for task in drain.ended:
                    task.result()  # what a unit raised ends the drain
                drain.ended.clear()
                if stop is not None and stop.is_set():
                    if not drain.running:
                        return
                elif await self._step(drain):
                    return
                await self._wake.wait()
        finally:
            leftovers: list[asyncio.Task[Any]] = [*drain.running]
            if watcher is not None:
                leftovers.append(watcher)
            if drain.reading is not None:
                leftovers.append(drain.reading)
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)

    async def _step(self, drain: _Drain) -> bool:
        """Take in what was read, read ahead, start what may start; True when all is done."""
        if drain.reading is not None and drain.reading.done():
            items, drain.reading = drain.reading.result(), None
            if not items and drain.cursor == 0:
                return True  # read from the start, nothing pending: done
            drain.exhausted = not items
            await self._admit(drain, items)
        low = drain.gate.waiting_events <= self._page_size // 2
        if drain.reading is None and not drain.exhausted and low:
            drain.reading = asyncio.create_task(
                asyncio.to_thread(self._read, drain.cursor, self._page_size)
            )
            drain.reading.add_done_callback(lambda _: self._wake.set())
        self._start_ready(drain)
        if drain.exhausted and drain.idle:
            # Everything read was sent or given up: commit the marks, then read from the
            # start, once, for what came (or was unparked) meanwhile.
            await self._marks.flush()
            drain.cursor, drain.exhausted = 0, False
            self._wake.set()
        return False

    async def _admit(self, drain: _Drain, items: Sequence[Item]) -> None:
        for item in items:
            if isinstance(item, Unencodable):
                drain.cursor = max(drain.cursor, item.event.seq)
                await self._park([item.event], item.error)
            else:
                drain.cursor = max(drain.cursor, item.events[-1].seq)
                drain.gate.admit(item)

    def _start_ready(self, drain: _Drain) -> None:
        while len(drain.running) < self._max_in_flight:
            # While the sink fails, one unit at most: the others would only fail too.
            if not self.sink_up.is_set() and drain.running:
                return
            unit = drain.gate.pop_ready()
            if unit is None:
                return
            task = asyncio.create_task(self._run_unit(drain, unit))
            drain.running.add(task)
            task.add_done_callback(lambda done: self._ended(drain, done))

    def _ended(self, drain: _Drain, task: asyncio.Task[bool]) -> None:
        drain.running.discard(task)
        if not task.cancelled():
            drain.ended.append(task)
        self._wake.set()

    async def _run_unit(self, drain: _Drain, unit: Unit) -> bool:
        try:
            return await self._send(unit, drain.stop)
        finally:
            drain.gate.finish(unit)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()
