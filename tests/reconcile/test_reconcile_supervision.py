"""The workers' supervision in-process with fake workers (tests/reconcile/fakes.py): a
crashing worker restarted with a doubling backoff, a stop cutting a pause short, and shutdown
stopping every worker in parallel within the one deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from tests.reconcile.fakes import (
    FakeClock,
    Setup,
    SlowClock,
    bridge_file,
    run,
    status_of,
    until,
)

# --- supervision ------------------------------------------------------------------------------


def test_a_crashing_worker_is_restarted_with_a_doubling_backoff(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    (setup.root / "a.yaml").write_text(bridge_file())
    setup.factory.crashes = {"a": 8}
    clock = FakeClock()

    async def scenario() -> None:
        rec = setup.reconciler(clock=clock)
        await rec.reconcile()
        [worker] = setup.factory.of("a")  # run again, not built again
        await asyncio.wait_for(worker.running.wait(), 5)
        assert worker.runs == 9
        assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
        # Each pause ends early when the bridge is stopped.
        assert all(wake == (rec.running["a"].stop,) for wake in clock.woken_by)
        assert not rec.running["a"].task.done()
        await rec.shutdown()
        assert worker.stopped

    with caplog.at_level(logging.ERROR, logger="runner.reconcile"):
        run(scenario)
    restarts = [r.getMessage() for r in caplog.records if "restarting in" in r.getMessage()]
    assert restarts[0] == "bridge a: poller failed; restarting in 1s"
    assert len(restarts) == 8


def test_a_bridge_stopped_during_its_restart_backoff_stops_at_once(setup: Setup) -> None:
    (setup.root / "a.yaml").write_text(bridge_file())
    setup.factory.crashes = {"a": 100}

    async def scenario() -> None:
        # The real interruptible sleep, with a first pause of 20 s.
        rec = setup.reconciler(clock=SlowClock(20.0), stop_timeout=60.0)
        await rec.reconcile()
        [worker] = setup.factory.of("a")
        await until(lambda: worker.runs >= 1, "the first crash")
        started = time.monotonic()
        (setup.root / "a.yaml").unlink()
        await rec.reconcile()
        assert time.monotonic() - started < 10.0  # not the rest of the pause
        assert worker.runs == 1 and "a" not in rec.running
        await rec.shutdown()

    run(scenario)


def test_with_once_a_crashing_worker_is_not_restarted(setup: Setup) -> None:
    (setup.root / "a.yaml").write_text(bridge_file())
    setup.factory.crashes = {"a": 1}
    clock = FakeClock()

    async def scenario() -> None:
        rec = setup.reconciler(clock=clock, once=True)
        await rec.reconcile()
        await asyncio.wait_for(rec.wait_pollers(), 5)
        [worker] = setup.factory.of("a")
        assert worker.runs == 1 and clock.sleeps == []
        await rec.shutdown()

    run(scenario)


def test_shutdown_stops_every_worker_in_parallel_within_the_deadline(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("calm", "stuck1", "stuck2", "stuck3"):
        (setup.root / f"{name}.yaml").write_text(bridge_file())
    setup.factory.stubborn = frozenset({"stuck1", "stuck2", "stuck3"})
    grace = 0.4

    async def scenario() -> None:
        rec = setup.reconciler(stop_timeout=grace)
        await rec.reconcile()
        workers = {w.bridge.id: w for w in setup.factory.started}
        for worker in workers.values():
            await asyncio.wait_for(worker.running.wait(), 5)
        started = time.monotonic()
        await rec.shutdown()
        elapsed = time.monotonic() - started
        assert elapsed >= grace
        assert elapsed < 10 * grace  # one deadline for all, not one after the other
        assert rec.running == {}
        calm, stuck = workers.pop("calm"), list(workers.values())
        assert calm.stopped and not calm.cancelled
        assert all(w.cancelled and not w.stopped for w in stuck)
        # Every worker was asked to stop before any was cancelled, and all were cancelled
        # together when the one deadline ran out (one after the other, they would be a
        # deadline apart).
        asked = [w.stop_seen_at or 0.0 for w in stuck]
        cancelled = [w.cancelled_at or 0.0 for w in stuck]
        assert 0.0 not in asked and 0.0 not in cancelled
        assert max(asked) < min(cancelled)
        assert max(cancelled) - min(cancelled) < grace / 2
        # The last statuses show the final counters of every worker, stuck ones included.
        assert all(w.counts_refreshed == 1 for w in (calm, *stuck))
        for name in ("calm", "stuck1"):
            final = json.loads(status_of(setup.root, name).read_text())
            assert final["appliedDigest"] == final["observedDigest"]
            assert final["sink"]["pending"] == 3

    with caplog.at_level(logging.WARNING, logger="runner.reconcile"):
        run(scenario)
    stuck_lines = sorted(r.getMessage() for r in caplog.records if "did not stop" in r.getMessage())
    assert stuck_lines == [
        f"bridge {name} did not stop within 0s; cancelling it (pending events stay in the outbox)"
        for name in ("stuck1", "stuck2", "stuck3")
    ]
