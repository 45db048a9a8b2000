"""Keeping one worker per bridge in step with the bridges directory, and its status files.

`Reconciler.reconcile()` is the one step the runner's loop calls on every change and on the
periodic resync: read the whole directory (`runner.reconcile.directory`), compute the plan
against what runs (`runner.reconcile.plan`, pure), carry it out — stops before starts, a
moved bridge's state carried to its new id — then write the status files
(`runner.reconcile.statusfiles`) and expire the state of bridges gone for longer than
--state-retention (`runner.reconcile.retention`). The worker tasks are
`runner.reconcile.workers`'. One bad file never touches another: each file is loaded,
started and reported on its own.

Status work is proportional to change (`runner.reconcile.statusfiles.StatusBook`): after a
reconcile, only the statuses whose inputs moved are rendered; in between, `refresh_statuses`
waits for a bridge's counters to change, lets a burst settle for `STATUS_COALESCE` seconds
and renders those bridges, and every `STATUS_SWEEP` seconds checks all of them (a condition
that changed alone, a status file deleted or replaced).

Every collaborator is injected: the directory reader (and through it the loader), the worker
factory, the outbox, the clock, the status writer; `runner.app` wires the production ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from runner._kits.aio import sleep_or_wake
from runner.errors import StateError
from runner.loader.digest import move_key
from runner.model import LoadResult
from runner.reconcile import statusfiles
from runner.reconcile.clock import SYSTEM_CLOCK, Clock
from runner.reconcile.directory import DirectoryReader, FileState
from runner.reconcile.gitrev import observed_revision
from runner.reconcile.plan import (
    Action,
    ActionKind,
    DesiredBridge,
    Plan,
    Reason,
    RunningBridge,
    Shard,
    is_selected,
    pair_moves,
    plan_reconcile,
)
from runner.reconcile.retention import carry_state, expire_state
from runner.reconcile.workers import BridgeWorkers, RunningWorker, WorkerFactory
from runner.state.outbox import Outbox
from runner.status.readiness import BridgeReadiness
from runner.status.runrecord import RunIdentity
from runner.status.writer import StatusWriter

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10.0  # seconds a stopping worker gets before it is cancelled
DEFAULT_STATE_RETENTION = 7 * 24 * 3600.0  # seconds a removed bridge's checkpoint is kept
STATUS_COALESCE = 0.2  # seconds a change waits for others before the statuses are rendered
STATUS_SWEEP = 10.0  # seconds between checks of every status, changed or not
TOUCH_EVERY = 3600.0  # seconds between two "last seen" stamps of a bridge that keeps running


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    state_dir: Path  # where undelivered events of an expired bridge are written out
    shard: Shard | None = None
    selector: Mapping[str, str] = field(default_factory=dict)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    state_retention: float = DEFAULT_STATE_RETENTION
    once: bool = False  # each worker does one round, delivers what is pending, and ends


class Reconciler:
    """Keeps the workers of one runner in step with its bridges directory, and the status
    files of its bridges."""

    def __init__(
        self,
        settings: ReconcileSettings,
        *,
        directory: DirectoryReader,
        worker_factory: WorkerFactory,
        outbox: Outbox,
        clock: Clock = SYSTEM_CLOCK,
        status_writer: StatusWriter | None = None,
        run: RunIdentity | None = None,
        revision_of: Callable[[Path], str | None] = observed_revision,
    ) -> None:
        self.settings = settings
        self.root = directory.root
        self._directory = directory
        self._outbox = outbox
        self._clock = clock
        self._revision_of = revision_of
        self.workers = BridgeWorkers(
            worker_factory, stop_timeout=settings.stop_timeout, once=settings.once, clock=clock
        )
        self.status_writer = status_writer or StatusWriter()
        # Written into every status file, so that `status` can tell a status of this run
        # from one left by a run that has ended.
        self.run = run or RunIdentity.current()
        self._files: dict[str, FileState] = {}  # every selected bridge file on disk, by id
        self._revision: str | None = None
        self._statuses = statusfiles.StatusFiles(
            self.status_writer, root=self.root, run=self.run, now=clock.now
        )
        self._book = self._statuses.book
        self._touched_at: datetime | None = None  # when every running bridge was last touched
        self._untouched: set[str] = set()  # bridges started since then
        self._lock = asyncio.Lock()  # one reconcile or status write at a time
        self.reconciles = 0

    @property
    def documents(self) -> Mapping[str, dict[str, object]]:
        """The status documents as last rendered, by bridge id."""
        return self._statuses.documents

    @property
    def renders(self) -> int:
        """Status documents rendered since start (only those whose inputs moved)."""
        return self._statuses.renders

    @property
    def running(self) -> dict[str, RunningWorker]:
        """The workers running now, by bridge id."""
        return self.workers.running

    @property
    def revision(self) -> str | None:
        """The git commit of the directory as last reconciled (None when not known)."""
        return self._revision

    def _selected(self, result: LoadResult) -> bool:
        labels = result.bridge.labels if result.bridge is not None else None
        return is_selected(
            result.id, labels, shard=self.settings.shard, selector=self.settings.selector
        )

    # -- the step ------------------------------------------------------------------------

    async def reconcile(self) -> Plan:
        """Bring the running workers in line with the directory, then the statuses that moved.

        If the directory cannot be listed (a folder removed while it was read, as a checkout
        does; a path too long), nothing changes: the bridges keep running as they are and the
        next change or resync tries again. Stopping bridges because a listing failed would
        look exactly like their files being deleted."""
        async with self._lock:
            try:
                # On the status files' threads: the default pool may be queued up with
                # the pollers' state work, and an edit must not wait behind it.
                states = await self._statuses.off_loop(self._directory.read)
            except OSError as exc:
                log.warning("cannot read %s (%s); keeping what runs", self.root, exc)
                return Plan(())
            self._revision = await self._statuses.off_loop(self._revision_of, self.root)
            desired: dict[str, DesiredBridge] = {}
            for bridge_id, state in states.items():
                result = state.result
                valid = result.bridge if result.valid else None
                desired[bridge_id] = DesiredBridge(bridge_id, valid, self._selected(result))
            running = {
                bridge_id: RunningBridge(bridge_id, item.bridge.digest)
                for bridge_id, item in self.running.items()
            }
            plan = plan_reconcile(desired, running)
            removed = [st.path for bid, st in self._files.items() if bid not in states]
            self._files = {bid: st for bid, st in states.items() if desired[bid].selected}
            moves = self._moves(plan)
            first = not self.running  # a start: no poller runs yet
            for action in plan.actions:  # stops come first: a moved bridge's old id is free
                if action.bridge_id in moves and action.kind is ActionKind.START:
                    old_id = moves[action.bridge_id]
                    await asyncio.to_thread(carry_state, self._outbox, old_id, action.bridge_id)
                await self._apply(action)
            for path in removed:
                # The bridge's file is gone: so goes its status file (its state is kept
                # for --state-retention).
                await self._statuses.off_loop(self.status_writer.remove, path)
            self.reconciles += 1
            self._book.take_marked()  # every bridge is checked now
            # Nothing above yields to the loop after the first workers started (a first
            # start has no stops, moves or removals): their tasks have not run yet.
            await self._write_statuses(list(self._files), before_pollers=first)
            try:
                await self._expire_state()
            except StateError as exc:
                log.warning("state retention skipped this time: %s", exc)
            return plan

    def _moves(self, plan: Plan) -> dict[str, str]:
        """`{new id: old id}` for the bridges this plan stops because their file is gone and
        starts under another id with the same spec (see `runner.reconcile.plan.pair_moves`)."""
        removed = {
            a.bridge_id: move_key(self.running[a.bridge_id].bridge)
            for a in plan.actions
            if a.kind is ActionKind.STOP
            and a.reason is Reason.REMOVED
            and a.bridge_id in self.running
        }
        added = {
            a.bridge_id: move_key(a.bridge)
            for a in plan.actions
            if a.kind is ActionKind.START and a.bridge is not None
        }
        return pair_moves(removed, added) if removed and added else {}

    async def _apply(self, action: Action) -> None:
        if action.kind is ActionKind.KEEP:
            current = self.running.get(action.bridge_id)
            if current is not None and action.bridge is not None:
                # Same effective spec, maybe a new file (a comment changed): the running
                # version is now this file's, so appliedDigest follows it.
                current.bridge = action.bridge
            return
        log.info("%s", action.describe())
        if action.kind in (ActionKind.STOP, ActionKind.RESTART):
            await self._stop(action.bridge_id)
        if action.kind in (ActionKind.START, ActionKind.RESTART) and action.bridge is not None:
            self._book.track(action.bridge_id, self.workers.start(action.bridge))
            self._untouched.add(action.bridge_id)

    async def _stop(self, bridge_id: str) -> None:
        if not await self.workers.stop(bridge_id):
            return
        try:
            await asyncio.to_thread(self._outbox.touch, bridge_id, self._clock.now())
        except StateError as exc:  # bookkeeping for retention only: never worth a crash
            log.warning("bridge %s: could not record when it stopped: %s", bridge_id, exc)

    async def shutdown(self) -> None:
        """Stop every worker in parallel, each within its deadline, and write final statuses.

        The stopped workers stay known until their last status is written, so that the
        file shows the final counters (pending events included)."""
        items = await self.workers.stop_all()
        await asyncio.gather(
            *(item.poller.refresh_counts() for item in items), return_exceptions=True
        )
        await self.write_statuses()
        self.workers.forget_all()

    async def wait_pollers(self) -> None:
        """Wait until every worker task has ended (they end by themselves with `once`)."""
        await self.workers.wait_all()

    # -- status files --------------------------------------------------------------------

    async def write_statuses(self, *, sweep: bool = True) -> int:
        """Write the status of the selected bridges that changed; how many were written.

        `sweep`: check every bridge (its inputs, and that its status file is still there);
        else only those whose counters moved since the last write. Serialised with
        `reconcile`, so that a status rendered before a file was removed is never written
        after its removal (which would bring the status file back)."""
        async with self._lock:
            marked = self._book.take_marked()  # before the checks: later marks are news
            if not sweep:
                return await self._write_statuses(marked)
            files = dict(self._files)
            self._book.invalidate(await self._statuses.missing(files))
            return await self._write_statuses(files)

    async def refresh_statuses(self, stop: asyncio.Event) -> None:
        """Until `stop`: write the statuses of the bridges that changed, a burst of changes
        coalesced into one pass, and sweep every bridge every `STATUS_SWEEP` seconds."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + STATUS_SWEEP
        while not stop.is_set():
            await sleep_or_wake(max(0.0, next_sweep - loop.time()), self._book.changed, stop)
            if stop.is_set():
                return
            sweep = loop.time() >= next_sweep
            if not sweep and await sleep_or_wake(STATUS_COALESCE, stop):
                return
            try:
                await self.write_statuses(sweep=sweep)
            except Exception:
                log.exception("writing status files failed")
            if sweep:
                next_sweep = loop.time() + STATUS_SWEEP

    async def _write_statuses(
        self, candidates: Iterable[str], *, before_pollers: bool = False
    ) -> int:
        files = dict(self._files)
        return await self._statuses.write(
            files, self.running, self._revision, candidates, before_pollers=before_pollers
        )

    def readiness(self) -> Mapping[str, BridgeReadiness]:
        """The readiness of every selected bridge as last decided (the status files show the
        same), by id: what `run --once`, `/readyz` and the metrics report."""
        return dict(self._statuses.readiness)

    # -- state retention -----------------------------------------------------------------

    async def _expire_state(self) -> None:
        now = self._clock.now()
        # Touching every running bridge on every reconcile (each edit) was one state commit
        # per bridge per edit; its "last seen" only has to be recent on the scale of
        # --state-retention, so all are touched once per TOUCH_EVERY (at most), the newly
        # started at once.
        every = timedelta(seconds=min(TOUCH_EVERY, self.settings.state_retention / 10))
        if self._touched_at is None or now - self._touched_at >= every:
            touch, self._touched_at = list(self.running), now
        else:
            touch = [bridge_id for bridge_id in self._untouched if bridge_id in self.running]
        self._untouched.clear()
        await asyncio.to_thread(
            expire_state,
            self._outbox,
            touch=touch,
            running=list(self.running),
            files=set(self._files),
            horizon=now - timedelta(seconds=self.settings.state_retention),
            state_dir=self.settings.state_dir,
            now=now,
        )
