"""Builders for the in-process reconcile tests: bridge files, fake workers and their
factory, fake clocks, and `Setup` (a bridges directory, a real outbox, a reconciler over them).

The workers only record what the reconciler does to them: no Cognito, no sink, no
subprocess. The directory is real and read by the real loader, so that touches, renames and
broken edits are what a checkout does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from runner._kits.aio import sleep_or_wake
from runner.model import Bridge, LoadResult, NewEvent
from runner.reconcile.clock import SYSTEM_CLOCK, Clock
from runner.reconcile.directory import BridgesDirectory, bridge_file_loader
from runner.reconcile.reconciler import Reconciler, ReconcileSettings
from runner.state.outbox import Outbox
from runner.status.counters import SinkCounters, SourceCounters
from runner.status.readiness import Condition

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # a fixed time for FakeClock

ARN = "arn:aws:cognito-idp:us-west-2:123456789012:userpool/us-west-2_aaaaaaaaa"


def bridge_file(*, poll_interval: str = "30s", labels: str = "", comment: str = "") -> str:
    metadata = f"metadata:\n  labels: {labels}\n" if labels else ""
    return (
        f"{comment}"
        "apiVersion: bridge-runner/v1alpha1\n"
        "kind: Bridge\n"
        f"{metadata}"
        "spec:\n"
        "  source:\n"
        "    awsCognitoUserPool:\n"
        f"      arn: {ARN}\n"
        f"      pollInterval: {poll_interval}\n"
        "  sink:\n"
        "    uri: http://127.0.0.1:9/\n"
    )


def not_ready(reconciler: Reconciler) -> list[str]:
    """The bridges the reconciler last decided not Ready, by id (`run --once`'s rule)."""
    return [bid for bid, readiness in reconciler.readiness().items() if not readiness.ready]


# --- the fakes --------------------------------------------------------------------------------


FAKE_SOURCE_HEALTH = Condition("SourceReady", "True", "Polling", "fake worker")
FAKE_SINK_HEALTH = Condition("SinkReady", "True", "Idle", "nothing to deliver yet")


@dataclass
class FakeWorker:
    """Records what the reconciler does to it. `crashes`: runs that raise before one works;
    `stubborn`: ignores its stop flag (only cancelling ends it)."""

    bridge: Bridge
    crashes: int = 0
    stubborn: bool = False
    runs: int = 0
    stopped: bool = False  # run() returned because its stop flag was set
    cancelled: bool = False
    counts_refreshed: int = 0
    stop_seen_at: float | None = None
    cancelled_at: float | None = None
    running: asyncio.Event = field(default_factory=asyncio.Event)
    source_counters: SourceCounters = field(default_factory=SourceCounters)
    sink_counters: SinkCounters = field(default_factory=SinkCounters)
    source_health: Condition = FAKE_SOURCE_HEALTH
    sink_health: Condition = FAKE_SINK_HEALTH

    async def run(self, stop: asyncio.Event, *, once: bool, delivery_deadline: float) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            raise RuntimeError(f"crash {self.runs}")
        self.running.set()
        try:
            if once:
                return
            await stop.wait()
            self.stop_seen_at = time.monotonic()
            if self.stubborn:
                await asyncio.Event().wait()
            self.stopped = True
        except asyncio.CancelledError:
            self.cancelled = True
            self.cancelled_at = time.monotonic()
            raise

    async def refresh_counts(self) -> None:
        self.counts_refreshed += 1
        self.sink_counters.pending = 3  # what a real worker would read from the outbox


@dataclass
class FakeFactory:
    """The worker factory: one FakeWorker per start, shaped by `crashes` and `stubborn`."""

    crashes: Mapping[str, int] = field(default_factory=dict)
    stubborn: frozenset[str] = frozenset()
    started: list[FakeWorker] = field(default_factory=list)

    def __call__(self, bridge: Bridge) -> FakeWorker:
        worker = FakeWorker(
            bridge, crashes=self.crashes.get(bridge.id, 0), stubborn=bridge.id in self.stubborn
        )
        self.started.append(worker)
        return worker

    def of(self, bridge_id: str) -> list[FakeWorker]:
        return [w for w in self.started if w.bridge.id == bridge_id]


@dataclass
class FakeClock:
    """A clock that never waits: it records each sleep asked of it, then yields once; its
    time is `at` (the wall clock while that is None)."""

    at: datetime | None = None
    sleeps: list[float] = field(default_factory=list)
    woken_by: list[tuple[asyncio.Event, ...]] = field(default_factory=list)

    def now(self) -> datetime:
        return self.at or datetime.now(UTC)

    async def sleep(self, seconds: float, *wake: asyncio.Event) -> bool:
        self.sleeps.append(seconds)
        self.woken_by.append(wake)
        await asyncio.sleep(0)
        return any(event.is_set() for event in wake)


class SlowClock:
    """The real interruptible sleep, made `factor` times longer (the wall clock's time)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float, *wake: asyncio.Event) -> bool:
        return await sleep_or_wake(seconds * self.factor, *wake)


@dataclass
class Setup:
    root: Path
    outbox: Outbox
    factory: FakeFactory
    loads: list[Path]

    def reconciler(
        self, *, clock: Clock = SYSTEM_CLOCK, state_dir: Path | None = None, **settings: object
    ) -> Reconciler:
        loader = bridge_file_loader(self.root, secrets_dir=self.root)

        def counting_load(path: Path) -> LoadResult:
            self.loads.append(path)
            return loader(path)

        return Reconciler(
            ReconcileSettings(state_dir=state_dir or self.root.parent / "state", **settings),  # type: ignore[arg-type]
            directory=BridgesDirectory(self.root, counting_load),
            worker_factory=self.factory,
            outbox=self.outbox,
            clock=clock,
            revision_of=lambda _: None,
        )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


async def until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(root: Path, name: str) -> Path:
    return root / f"{name}.status.json"


def event(n: int) -> NewEvent:
    return NewEvent(f"id-{n}", {"id": f"id-{n}", "type": "t", "source": "s"}, {"n": n})
