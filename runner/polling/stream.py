"""One streamed scan of one bridge's pool, committed chunk by chunk (DESIGN §4.1, §4.2).

    begin()                    a new scan generation (`Snapshots.begin_scan`)
    add_page(users)            pages gather into a chunk; a full chunk is diffed against the
                               snapshot entries of its users, turned into events and
                               committed with their rows, in a worker thread, while the scan
                               reads on
    finish(complete, segments) the last chunk; after a complete scan, the sweep: users the
                               scan did not read are deleted, page by page, and the baseline
                               is marked

Memory is one chunk being filled plus one being committed (and a page per segment in
flight), whatever the pool's size: the snapshot is never loaded whole. Each chunk's events
are in the outbox, and delivery is woken (`on_events`), before the scan's next chunk is
committed, so the first events leave after the first page.

What a crash or a stop leaves is always true: a committed chunk holds events for exactly
the users whose rows it wrote, so a user is never sent twice under new ids nor missed; an
interrupted scan sweeps nothing (a user it did not reach is not taken for deleted), and the
next scan, with a new generation, reads everyone again. A stop waits for the commit in
flight, so that a successor never reads the snapshot that commit is changing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runner._kits.gcpause import gc_paused
from runner.errors import BridgeRunnerError
from runner.model import Bridge, NewEvent
from runner.polling.diff import Change, EventView, diff_chunk, to_record
from runner.polling.events import build_events
from runner.sources.cognito.scan import segments_cover
from runner.state.outbox import Outbox

# A chunk is committed once it holds this many users (10 pages of 60)...
CHUNK_USERS = 600
# ...except the first ones, which double from one page: the first events leave after the
# first page, and a small pool is committed in one or two transactions.
FIRST_CHUNK_USERS = 60
# Users swept per transaction after a complete scan.
SWEEP_PAGE = 500


@dataclass(slots=True)
class StreamTotals:
    """What a streamed scan committed."""

    changes: int = 0
    events: int = 0
    users_read: int = 0  # as handed over by the scan, a user read twice counted twice
    uncovered: int = 0  # unseen users no segment of the scan could list (not swept)


class ScanStream:
    """Commits one scan of `bridge`'s pool chunk by chunk; see the module docstring.

    `send`: whether changes become events (False while an `initialSync: baseline` records
    the pool). `on_events(n)` is called on the event loop after each commit of n > 0 events,
    and with 0 by `begin` when events are pending (see `begin`).
    """

    def __init__(
        self,
        bridge: Bridge,
        outbox: Outbox,
        *,
        send: bool,
        on_events: Callable[[int], None],
    ) -> None:
        self.bridge = bridge
        self.totals = StreamTotals()
        self._outbox = outbox
        self._send = send
        self._on_events = on_events
        self._arn = bridge.source.pool.arn
        self._view = EventView(self._arn, bridge.events)
        self._scan_id = uuid.uuid4().hex
        self._generation = 0
        self._buffer: list[dict[str, Any]] = []
        self._threshold = FIRST_CHUNK_USERS
        self._commit: asyncio.Future[tuple[int, int]] | None = None
        self._launching = asyncio.Lock()
        self._failed: BridgeRunnerError | None = None

    async def begin(self) -> None:
        """A new scan generation. Pending events that no commit of this runner announced
        (`bridge-runner replay` unparked them from another process) wake delivery here,
        with `on_events(0)`: a running runner picks them up at the bridge's next poll."""
        self._generation, pending = await asyncio.to_thread(self._begin)
        if pending:
            self._on_events(0)

    def _begin(self) -> tuple[int, bool]:
        generation = self._outbox.begin_scan(self.bridge.id, self._arn)
        return generation, self._outbox.has_pending(self.bridge.id)

    async def add_page(self, users: list[dict[str, Any]]) -> None:
        """Take one page's users; commit a chunk when one is full. Raises what a commit
        raised (the scan then ends, incomplete)."""
        if self._failed is not None:
            raise self._failed
        self._buffer.extend(users)
        self.totals.users_read += len(users)
        if len(self._buffer) < self._threshold:
            return
        async with self._launching:  # pages of other segments keep gathering meanwhile
            if len(self._buffer) >= self._threshold:
                await self._wait_for_commit()
                self._launch()

    async def finish(self, *, complete: bool, segments: int) -> StreamTotals:
        """Commit what is left; after a `complete` scan, sweep and mark the baseline."""
        async with self._launching:
            await self._wait_for_commit()
            if self._buffer:
                self._launch()
                await self._wait_for_commit()
        if complete:
            await self._run_to_end(self._sweep, segments)
        return self.totals

    def _launch(self) -> None:
        users, self._buffer = self._buffer, []
        self._threshold = min(CHUNK_USERS, self._threshold * 2)
        self._commit = asyncio.ensure_future(asyncio.to_thread(self._commit_chunk, users))

    async def _wait_for_commit(self) -> None:
        commit, self._commit = self._commit, None
        if commit is None:
            return
        try:
            changes, events = await _finish_even_if_cancelled(commit)
        except BridgeRunnerError as exc:
            self._failed = exc
            raise
        self._counted(changes, events)

    async def _run_to_end(self, work: Callable[[int], tuple[int, int]], arg: int) -> None:
        changes, events = await _finish_even_if_cancelled(
            asyncio.ensure_future(asyncio.to_thread(work, arg))
        )
        self._counted(changes, events)

    def _counted(self, changes: int, events: int) -> None:
        self.totals.changes += changes
        self.totals.events += events
        if events:
            self._on_events(events)

    # -- in a worker thread ------------------------------------------------------------------

    def _commit_chunk(self, users: list[dict[str, Any]]) -> tuple[int, int]:
        """Diff one chunk against its users' snapshot entries and commit it; (changes,
        events) committed."""
        with gc_paused():  # a chunk's records make no cycles; see runner._kits.gcpause
            records = [to_record(user) for user in users]
        known = self._outbox.known_users(
            self.bridge.id, self._arn, [record.username for record in records]
        )
        diff = diff_chunk(known, records, self._view)
        events = self._events(diff.changes)
        self._outbox.commit_scan(
            self.bridge.id,
            self._arn,
            diff.changes,
            events,
            complete=False,
            generation=self._generation,
            unchanged=diff.unchanged,
        )
        return len(diff.changes), len(events)

    def _sweep(self, segments: int) -> tuple[int, int]:
        """After a complete scan: every user it did not read is deleted, page by page, except
        one that no segment could list (its `sub` is outside the prefixes; counted in
        `uncovered` and left for a scan in one piece). Then the baseline is marked."""
        after = ""
        changes = events = 0
        while True:
            unseen = self._outbox.unseen_users(
                self.bridge.id, self._arn, self._generation, after=after, limit=SWEEP_PAGE
            )
            if not unseen:
                break
            after = unseen[-1][0]
            deleted = [
                Change("deleted", username, None, entry)
                for username, entry in unseen
                if segments_cover(entry.sub, segments)
            ]
            self.totals.uncovered += len(unseen) - len(deleted)
            built = self._events(deleted)
            self._outbox.commit_scan(self.bridge.id, self._arn, deleted, built, complete=False)
            changes += len(deleted)
            events += len(built)
        self._outbox.commit_scan(self.bridge.id, self._arn, [], [], complete=True)
        return changes, events

    def _events(self, changes: list[Change]) -> list[NewEvent]:
        if not self._send or not changes:
            return []
        return build_events(
            self.bridge,
            changes,
            observed_at=datetime.now(UTC),
            scan_id=self._scan_id,
            view=self._view,
        )


async def _finish_even_if_cancelled(commit: asyncio.Future[tuple[int, int]]) -> tuple[int, int]:
    """Await a commit running in a worker thread. Cancelled meanwhile, wait for it still
    (the thread cannot be stopped, and a successor must not read what it is writing), then
    re-raise the cancellation."""
    try:
        return await asyncio.shield(commit)
    except asyncio.CancelledError:
        await asyncio.wait([commit])
        raise
