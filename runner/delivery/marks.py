"""Group commit of one bridge's delivered marks, off the send path.

    marks = DeliveredMarks(outbox, bridge_id)
    marks.add(seqs)          the sink accepted these events (any order: marks are by seq)
    await marks.flush()      wait until every seq added so far is committed

Accepted seqs are committed in a worker thread while the next requests are on the wire:
once `MARK_MAX` have gathered, or `MARK_INTERVAL` seconds after the oldest uncommitted one
was accepted (a timer, so a quiet sink does not hold them back), and on `flush` (before a
backoff, a give-up, re-reading the outbox from its start, returning). A SQLite commit costs
milliseconds whatever its size (measured: ~60 us/event in commits of 50, ~34 in commits of
100, ~10 in commits of 500), so one per request would cap throughput. While a commit runs,
what is accepted meanwhile is committed right after it.

The price: a crash loses the marks not yet committed -- at most `MARK_MAX` accepted events,
plus those accepted during the one commit in progress, none older than `MARK_INTERVAL` plus
that commit -- and those events are sent again, with their ids, which at-least-once
delivery allows and sinks dedupe on (source, id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from runner.state.ports import OutboxPort

# Delivered marks are committed at least this often (seconds) or per this many events.
MARK_INTERVAL = 1.0
MARK_MAX = 500


class DeliveredMarks:
    """The delivered marks of one bridge, committed in groups (see the module doc).

    Safe for the several sends of one deliverer to use at once: one commit runs at a time,
    and `flush` waits only for what was added before it was called, so that a flush amid
    steady deliveries ends.
    """

    def __init__(self, outbox: OutboxPort, bridge_id: str) -> None:
        self._outbox = outbox
        self._bridge_id = bridge_id
        self._queued: list[int] = []
        # Seqs ever added, and ever settled (committed, or lost with a failed commit: those
        # stay pending in the outbox and are sent again): `flush`'s yardstick.
        self._added = 0
        self._settled = 0
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def add(self, seqs: Sequence[int]) -> None:
        self._surface()  # a failed commit is raised now rather than at the next flush
        self._queued.extend(seqs)
        self._added += len(seqs)
        if self._task is not None:
            return  # the commit under way takes these right after its own
        if len(self._queued) >= MARK_MAX:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(MARK_INTERVAL, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._task is None and self._queued:
            self._start()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._task = asyncio.create_task(self._commit(), name=f"delivery-marks:{self._bridge_id}")

    async def _commit(self) -> None:
        while self._queued:
            seqs, self._queued = self._queued, []
            try:
                await asyncio.to_thread(self._outbox.mark_delivered, self._bridge_id, seqs)
            finally:
                self._settled += len(seqs)

    def _surface(self) -> None:
        if self._task is not None and self._task.done():
            task, self._task = self._task, None
            task.result()

    async def flush(self) -> None:
        """Wait until every seq added so far is committed; raises what a commit raised.

        Shielded: a flush given up (its caller cancelled) does not cancel the commit that
        other callers may be waiting for."""
        target = self._added
        while self._settled < target:
            self._surface()
            if self._task is None:
                self._start()
            task = self._task
            assert task is not None
            try:
                await asyncio.shield(task)
            except Exception:
                if self._task is task:
                    self._task = None
                raise
