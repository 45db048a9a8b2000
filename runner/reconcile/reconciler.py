"""Keeping one poller per bridge in step with the bridges directory, and its status files.

`Reconciler.reconcile()` is the one step the runner's loop calls on every change and on the
periodic resync: read the whole directory (the loader), compute the plan against what runs
(`runner.reconcile.plan`, pure), carry it out — stops before starts — and write the status files.
Every poller is a named task owned here; stopping one sets its stop flag, waits with a
deadline, then cancels and logs what was stuck. One bad file never touches another: each
file is loaded, started and reported on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from runner._kits.wording import plural, printable
from runner.delivery.leftovers import write_undelivered
from runner.errors import StateError
from runner.loader.config import load_bridge
from runner.loader.digest import move_key
from runner.loader.discovery import NOT_UTF8_NAME, discover_bridge_files, find_id_clashes, is_utf8
from runner.model import Bridge, LoadResult, bridge_id_for
from runner.polling.worker import BridgeWorker as BridgePoller
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
from runner.secrets.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.client import CognitoClients
from runner.state.outbox import Outbox
from runner.status.runrecord import RunIdentity
from runner.status.writer import StatusWriter, ce_attributes_for, render_status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    root: Path
    state_dir: Path
    secrets_dir: Path
    shard: Shard | None = None
    selector: Mapping[str, str] = field(default_factory=dict)
    stop_timeout: float = 10.0  # seconds a stopping poller gets before it is cancelled
    state_retention: float = 7 * 24 * 3600.0  # seconds a removed bridge's checkpoint is kept
    env: Mapping[str, str] | None = None
    env_policy: EnvPolicy = DEFAULT_ENV_POLICY  # the variables bridges may read
    once: bool = False  # each poller polls once, delivers what is pending, and ends


@dataclass
class _FileState:
    """What the last reconcile read from one file (reused while the file is unchanged)."""

    path: Path
    stamp: tuple[int, int, int]  # (inode, size, mtime_ns)
    result: LoadResult


@dataclass
class _Running:
    bridge: Bridge
    poller: BridgePoller
    stop: asyncio.Event
    task: asyncio.Task[None]


class Reconciler:
    """Owns the poller tasks of one runner and the status files of its bridges."""

    def __init__(
        self,
        settings: RunnerSettings,
        *,
        outbox: Outbox,
        clients: CognitoClients,
        http: httpx.AsyncClient,
        secrets: SecretResolver,
        status_writer: StatusWriter | None = None,
        run: RunIdentity | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.clients = clients
        self.http = http
        self.secrets = secrets
        self.status_writer = status_writer or StatusWriter()
        # Written into every status file, so that `status` can tell a status of this run
        # from one left by a run that has ended.
        self.run = run or RunIdentity.current()
        self.running: dict[str, _Running] = {}
        self._files: dict[str, _FileState] = {}  # every selected bridge file on disk, by id
        self._all_files: dict[str, _FileState] = {}  # every bridge file, for the load cache
        self._revision: str | None = None
        self.documents: dict[str, dict[str, object]] = {}  # last rendered status, by id
        self._lock = asyncio.Lock()  # one reconcile or status write at a time
        self.reconciles = 0

    @property
    def revision(self) -> str | None:
        """The git commit of the directory as last reconciled (None when not known)."""
        return self._revision

    # -- reading the directory -----------------------------------------------------------

    def _read_directory(self) -> dict[str, _FileState]:
        """Load every bridge file (reusing results of files unchanged since last time)."""
        root = self.settings.root
        files = discover_bridge_files(root) if root.is_dir() else []
        clashes = find_id_clashes(files, root)
        states: dict[str, _FileState] = {}
        for path in files:
            bridge_id = bridge_id_for(root, path)
            if not is_utf8(bridge_id):
                # Nothing downstream (status file, log, metrics, state) could name it.
                # Escaped here, not only by the text formatter: JSON logs want UTF-8 too.
                shown = printable(str(path))
                log.warning("%s: the file name is not valid UTF-8: %s", shown, NOT_UTF8_NAME)
                continue
            try:
                st = path.stat()
            except OSError:
                continue  # removed while we read: the next batch will say so
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if path in clashes:
                log.warning(
                    "%s is ignored: bridge id %r is already used by %s (rename one of them)",
                    path,
                    bridge_id,
                    clashes[path],
                )
                continue
            previous = self._all_files.get(bridge_id)
            if previous is not None and previous.path == path and previous.stamp == stamp:
                result = previous.result
            else:
                result = load_bridge(
                    path,
                    root=root,
                    secrets_dir=self.settings.secrets_dir,
                    env=self.settings.env,
                    env_policy=self.settings.env_policy,
                    display_path=path.relative_to(root).as_posix(),
                )
            states[bridge_id] = _FileState(path, stamp, result)
        return states

    def _selected(self, result: LoadResult) -> bool:
        labels = result.bridge.labels if result.bridge is not None else None
        return is_selected(
            result.id, labels, shard=self.settings.shard, selector=self.settings.selector
        )

    # -- the step ------------------------------------------------------------------------

    async def reconcile(self) -> Plan:
        """Bring the running pollers in line with the directory, then write every status.

        If the directory cannot be listed (a folder removed while it was read, as a checkout
        does; a path too long), nothing changes: the bridges keep running as they are and the
        next change or resync tries again. Stopping bridges because a listing failed would
        look exactly like their files being deleted."""
        async with self._lock:
            try:
                states = await asyncio.to_thread(self._read_directory)
            except OSError as exc:
                log.warning("cannot read %s (%s); keeping what runs", self.settings.root, exc)
                return Plan(())
            self._revision = await asyncio.to_thread(observed_revision, self.settings.root)
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
            self._all_files = states
            self._files = {bid: st for bid, st in states.items() if desired[bid].selected}
            moves = self._moves(plan)
            for action in plan.actions:  # stops come first: a moved bridge's old id is free
                if action.bridge_id in moves and action.kind is ActionKind.START:
                    await asyncio.to_thread(self._carry_state, moves[action.bridge_id], action)
                await self._apply(action)
            for path in removed:
                # The bridge's file is gone: so goes its status file (its state is kept
                # for --state-retention).
                await asyncio.to_thread(self.status_writer.remove, path)
            self.reconciles += 1
            await self._write_statuses()
            try:
                await asyncio.to_thread(self._expire_state)
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

    def _carry_state(self, old_id: str, action: Action) -> None:
        """A moved or renamed bridge keeps its checkpoint and undelivered events."""
        try:
            pending = len(self.outbox.undelivered(old_id))
            moved = self.outbox.move_bridge(old_id, action.bridge_id)
        except StateError as exc:
            log.warning("move %s -> %s: state not carried over: %s", old_id, action.bridge_id, exc)
            return
        if moved:
            log.info(
                "move %s -> %s: same spec; its checkpoint and %s go with it",
                old_id,
                action.bridge_id,
                plural(pending, "undelivered event"),
            )
        else:
            log.warning(
                "move %s -> %s: %s has state of its own, so it starts from that; "
                "the state of %s is kept for --state-retention",
                old_id,
                action.bridge_id,
                action.bridge_id,
                old_id,
            )

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
            await self.stop_bridge(action.bridge_id)
        if action.kind in (ActionKind.START, ActionKind.RESTART) and action.bridge is not None:
            self.start_bridge(action.bridge)

    def start_bridge(self, bridge: Bridge) -> BridgePoller:
        poller = BridgePoller(
            bridge,
            outbox=self.outbox,
            clients=self.clients,
            http=self.http,
            state_dir=self.settings.state_dir,
            secrets=self.secrets,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(self._guarded(poller, stop), name=f"bridge:{bridge.id}")
        self.running[bridge.id] = _Running(bridge, poller, stop, task)
        return poller

    async def _guarded(self, poller: BridgePoller, stop: asyncio.Event) -> None:
        """A poller's task: an unexpected error is logged and the poller restarted after a
        pause, so that one bridge's bug never takes the runner (or another bridge) down."""
        delay = 1.0
        while not stop.is_set():
            try:
                await poller.run(
                    stop, once=self.settings.once, delivery_deadline=self.settings.stop_timeout
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.settings.once:
                    log.exception("bridge %s: poller failed", poller.bridge.id)
                    return
                log.exception(
                    "bridge %s: poller failed; restarting in %.0fs", poller.bridge.id, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 60.0)

    async def stop_bridge(self, bridge_id: str) -> None:
        item = self.running.pop(bridge_id, None)
        if item is None:
            return
        item.stop.set()
        await self._wait_stopped(item)
        try:
            await asyncio.to_thread(self.outbox.touch, bridge_id)
        except StateError as exc:  # bookkeeping for retention only: never worth a crash
            log.warning("bridge %s: could not record when it stopped: %s", bridge_id, exc)

    async def shutdown(self) -> None:
        """Stop every poller in parallel, each within its deadline, and write final statuses.

        The stopped pollers stay known until their last status is written, so that the
        file shows the final counters (pending events included)."""
        items = list(self.running.values())
        for item in items:
            item.stop.set()
        await asyncio.gather(*(self._wait_stopped(item) for item in items))
        await asyncio.gather(
            *(item.poller.refresh_counts() for item in items), return_exceptions=True
        )
        await self.write_statuses()
        self.running.clear()

    async def _wait_stopped(self, item: _Running) -> None:
        if item.task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(item.task), self.settings.stop_timeout)
        except TimeoutError:
            log.warning(
                "bridge %s did not stop within %.0fs; cancelling it (pending events stay "
                "in the outbox)",
                item.bridge.id,
                self.settings.stop_timeout,
            )
            item.task.cancel()
            await asyncio.gather(item.task, return_exceptions=True)
        except Exception:
            log.exception("bridge %s: poller ended with an error", item.bridge.id)

    # -- status files --------------------------------------------------------------------

    async def write_statuses(self) -> int:
        """Write the status of every selected bridge file (only those that changed are written).

        Serialised with `reconcile`, so that a status rendered before a file was removed is
        never written after its removal (which would bring the status file back)."""
        async with self._lock:
            return await self._write_statuses()

    async def _write_statuses(self) -> int:
        # Reading the documents on disk (the first time after a start) is file I/O: not here.
        files = dict(self._files)
        previous = await asyncio.to_thread(
            lambda: {bid: self.status_writer.previous(st.path) for bid, st in files.items()}
        )
        now = datetime.now(UTC)
        self.documents = {
            bridge_id: self._render(bridge_id, state, now, previous[bridge_id])
            for bridge_id, state in files.items()
        }
        documents = [(files[bid].path, doc) for bid, doc in self.documents.items()]
        return await asyncio.to_thread(self._write_all, documents)

    async def wait_pollers(self) -> None:
        """Wait until every poller task has ended (they end by themselves with `once`)."""
        await asyncio.gather(*(item.task for item in self.running.values()), return_exceptions=True)

    def not_ready(self) -> dict[str, str]:
        """Bridges whose last rendered status is not Ready, with the reason and message."""
        out: dict[str, str] = {}
        for bridge_id, doc in self.documents.items():
            conditions = doc.get("conditions")
            ready = (
                next((c for c in conditions if c.get("type") == "Ready"), None)
                if isinstance(conditions, list)
                else None
            )
            if ready is None or ready.get("status") != "True":
                reason = ready.get("reason", "Unknown") if ready else "Unknown"
                message = ready.get("message", "") if ready else ""
                out[bridge_id] = f"{reason}: {message}"
        return out

    def _write_all(self, documents: list[tuple[Path, dict[str, object]]]) -> int:
        return sum(1 for path, doc in documents if self.status_writer.write(path, doc))

    def _render(
        self,
        bridge_id: str,
        state: _FileState,
        now: datetime,
        previous: Mapping[str, object] | None,
    ) -> dict[str, object]:
        result = state.result
        item = self.running.get(bridge_id)
        bridge = item.bridge if item is not None else result.bridge
        return render_status(
            bridge_id=bridge_id,
            file=state.path.relative_to(self.settings.root).as_posix(),
            observed_digest=result.file_digest,
            applied_digest=item.bridge.file_digest if item is not None else None,
            observed_revision=self._revision,
            problems=result.problems,
            source=item.poller.source_counters if item else None,
            sink=item.poller.sink_counters if item else None,
            source_ready=_health(item.poller) if item else None,
            sink_ready=item.poller.sink_health if item else None,
            ce_attributes=ce_attributes_for(bridge) if bridge is not None else (),
            suspended=bool(result.bridge is not None and result.bridge.suspend),
            previous=previous,
            runner=self.run.to_status(),
            now=now,
        )

    # -- state retention -----------------------------------------------------------------

    def _expire_state(self) -> None:
        """Forget the checkpoints of bridges gone for longer than --state-retention."""
        for bridge_id in self.running:
            self.outbox.touch(bridge_id)
        horizon = datetime.now(UTC) - timedelta(seconds=self.settings.state_retention)
        for bridge_id in self.outbox.bridge_ids():
            if bridge_id in self.running or bridge_id in self._files:
                continue
            seen = self.outbox.last_seen(bridge_id)
            if seen is not None and seen < horizon:
                undelivered = self.outbox.undelivered(bridge_id)
                if undelivered:
                    # Changes nobody has seen yet are kept, in a file, never dropped.
                    try:
                        path = write_undelivered(self.settings.state_dir, bridge_id, undelivered)
                    except OSError as exc:
                        log.warning(
                            "bridge %s: its state is kept past --state-retention, as its "
                            "undelivered events could not be written out: %s",
                            bridge_id,
                            exc,
                        )
                        continue
                    log.warning(
                        "bridge %s was removed with %s not delivered; written to %s",
                        bridge_id,
                        plural(len(undelivered), "event"),
                        path,
                    )
                log.info("forgetting the state of bridge %s (gone since %s)", bridge_id, seen)
                self.outbox.forget(bridge_id)


def _health(poller: BridgePoller) -> tuple[bool | None, str, str]:
    health = poller.source_health
    return (health.ready, health.reason, health.message)
