"""One supervised task per bridge: started, restarted after a crash, stopped with a deadline.

    workers = BridgeWorkers(factory, stop_timeout=10.0)
    workers.start(bridge)            # factory(bridge) -> Worker, run in task "bridge:<id>"
    await workers.stop(bridge_id)    # stop flag, then `stop_within(task, stop_timeout)`
    await workers.stop_all()         # every worker in parallel, each within the deadline

What a worker is comes from outside (`WorkerFactory`; in production `runner.app` builds a
`BridgeWorker`), so that the reconciler is tested with fake workers. A worker that raises is
logged and run again after a backoff (1 s, doubling, at most `RESTART_CAP`), so that one
bridge's bug never takes the runner, or another bridge, down; with `once` it is not run again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from runner._kits.aio import stop_within
from runner._kits.backoff import backoff_step
from runner.model import Bridge
from runner.reconcile.clock import SYSTEM_CLOCK, Clock
from runner.status.counters import SinkCounters, SourceCounters
from runner.status.readiness import Condition

log = logging.getLogger(__name__)

RESTART_BASE = 1.0  # seconds before the first restart of a worker that failed
RESTART_CAP = 60.0  # the restart backoff doubles up to this


class Worker(Protocol):
    """What the reconciler needs of the worker of one bridge (production: `BridgeWorker`)."""

    @property
    def source_counters(self) -> SourceCounters: ...

    @property
    def sink_counters(self) -> SinkCounters: ...

    @property
    def source_health(self) -> Condition:
        """SourceReady, as the worker's last poll left it."""
        ...

    @property
    def sink_health(self) -> Condition:
        """SinkReady, as the worker's deliverer (or its idleness) says."""
        ...

    async def run(self, stop: asyncio.Event, *, once: bool, delivery_deadline: float) -> None:
        """Work until `stop` is set (with `once`: one round, then return by itself)."""
        ...

    async def refresh_counts(self) -> None:
        """Bring the counters up to date (for the last status before a stop)."""
        ...


WorkerFactory = Callable[[Bridge], Worker]


@dataclass
class RunningWorker:
    bridge: Bridge  # the version running; a KEEP updates it to the file's latest
    poller: Worker
    stop: asyncio.Event
    task: asyncio.Task[None]


class BridgeWorkers:
    """Owns the worker tasks of one runner, by bridge id."""

    def __init__(
        self,
        factory: WorkerFactory,
        *,
        stop_timeout: float,
        once: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._factory = factory
        self.stop_timeout = stop_timeout  # seconds a stopping worker gets before it is cancelled
        self.once = once
        self._clock = clock
        self.running: dict[str, RunningWorker] = {}

    def start(self, bridge: Bridge) -> RunningWorker:
        worker = self._factory(bridge)
        stop = asyncio.Event()
        task = asyncio.create_task(
            self._supervise(bridge.id, worker, stop), name=f"bridge:{bridge.id}"
        )
        item = RunningWorker(bridge, worker, stop, task)
        self.running[bridge.id] = item
        return item

    async def _supervise(self, bridge_id: str, worker: Worker, stop: asyncio.Event) -> None:
        """A worker's task: an unexpected error is logged and the worker run again after a
        pause, so that one bridge's bug never takes the runner (or another bridge) down."""
        failures = 0
        while not stop.is_set():
            try:
                await worker.run(stop, once=self.once, delivery_deadline=self.stop_timeout)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.once:
                    log.exception("bridge %s: poller failed", bridge_id)
                    return
                delay = backoff_step(RESTART_BASE, failures, cap=RESTART_CAP)
                log.exception("bridge %s: poller failed; restarting in %.0fs", bridge_id, delay)
                await self._clock.sleep(delay, stop)
                failures += 1

    async def stop(self, bridge_id: str) -> bool:
        """Stop the worker of `bridge_id` within the deadline; False if none was running."""
        item = self.running.pop(bridge_id, None)
        if item is None:
            return False
        item.stop.set()
        await self._stopped(item)
        return True

    async def stop_all(self) -> list[RunningWorker]:
        """Stop every worker in parallel, each within the deadline. They stay in `running`
        (their last counters are still to be shown) until `forget_all`."""
        items = list(self.running.values())
        for item in items:
            item.stop.set()
        await asyncio.gather(*(self._stopped(item) for item in items))
        return items

    def forget_all(self) -> None:
        self.running.clear()

    async def wait_all(self) -> None:
        """Wait until every worker task has ended (they end by themselves with `once`)."""
        await asyncio.gather(*(item.task for item in self.running.values()), return_exceptions=True)

    async def _stopped(self, item: RunningWorker) -> None:
        if item.task.done():
            return
        try:
            ended = await stop_within(item.task, self.stop_timeout)
        except Exception:
            log.exception("bridge %s: poller ended with an error", item.bridge.id)
            return
        if not ended:
            log.warning(
                "bridge %s did not stop within %.0fs; cancelling it (pending events stay "
                "in the outbox)",
                item.bridge.id,
                self.stop_timeout,
            )
