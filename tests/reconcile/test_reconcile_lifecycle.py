"""The reconcile loop in-process with fake workers (tests/reconcile/fakes.py): what a change
of the directory starts, restarts, keeps or stops, what happens to a bridge's state when its
file moves or goes, and which bridges the shard and the selector give this runner.

In the spirit of kopf's `adjust_tasks` tests: milliseconds each. What is about the process
(signals, crashes, the watch) stays in tests/process/.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.reconcile.plan import Shard
from tests.reconcile.fakes import (
    T0,
    FakeClock,
    Setup,
    bridge_file,
    event,
    not_ready,
    run,
    status_of,
)

# --- start, restart, stop -----------------------------------------------------------------------


def test_an_added_file_starts_its_worker_and_gets_a_status(setup: Setup) -> None:
    async def scenario() -> None:
        rec = setup.reconciler()
        await rec.reconcile()
        assert setup.factory.started == []
        (setup.root / "a.yaml").write_text(bridge_file())
        plan = await rec.reconcile()
        assert [a.bridge_id for a in plan.starts] == ["a"]
        [worker] = setup.factory.of("a")
        await asyncio.wait_for(worker.running.wait(), 5)
        assert rec.running["a"].task.get_name() == "bridge:a"
        assert status_of(setup.root, "a").exists()
        assert not_ready(rec) == []  # the fake worker reports Ready
        await rec.shutdown()
        assert worker.stopped and worker.counts_refreshed == 1

    run(scenario)


def test_a_changed_spec_restarts_but_a_touch_or_a_comment_does_not(setup: Setup) -> None:
    path = setup.root / "a.yaml"
    path.write_text(bridge_file())

    async def scenario() -> None:
        rec = setup.reconciler()
        await rec.reconcile()
        [first] = setup.factory.of("a")
        first_digest = rec.running["a"].bridge.file_digest
        loads = len(setup.loads)

        await rec.reconcile()  # nothing changed: the file is not even loaded again
        assert len(setup.loads) == loads

        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        plan = await rec.reconcile()
        assert len(setup.loads) == loads + 1  # a new stamp: loaded again...
        assert plan.changes == ()  # ...and found the same
        path.write_text(bridge_file(comment="# a comment changes the file, not the spec\n"))
        plan = await rec.reconcile()
        assert plan.changes == ()
        assert setup.factory.of("a") == [first] and not first.stop_seen_at
        # The running version is now the file's: appliedDigest follows it.
        assert rec.running["a"].bridge.file_digest != first_digest

        path.write_text(bridge_file(poll_interval="45s"))
        plan = await rec.reconcile()
        assert [a.bridge_id for a in plan.restarts] == ["a"]
        assert first.stopped and not first.cancelled
        [_, second] = setup.factory.of("a")
        assert rec.running["a"].poller is second
        assert second.bridge.source.poll_interval == 45.0
        await rec.shutdown()

    run(scenario)


def test_a_deleted_file_stops_its_worker_and_removes_its_status(setup: Setup) -> None:
    (setup.root / "a.yaml").write_text(bridge_file())
    (setup.root / "b.yaml").write_text(bridge_file())

    clock = FakeClock(at=T0)

    async def scenario() -> None:
        rec = setup.reconciler(clock=clock)
        await rec.reconcile()
        assert status_of(setup.root, "a").exists()
        (setup.root / "a.yaml").unlink()
        clock.at = T0 + timedelta(minutes=5)
        plan = await rec.reconcile()
        assert [a.bridge_id for a in plan.stops] == ["a"]
        [a] = setup.factory.of("a")
        assert a.stopped and not a.cancelled
        assert list(rec.running) == ["b"]
        assert not status_of(setup.root, "a").exists()
        assert status_of(setup.root, "b").exists()
        # Its state is kept, marked with when it stopped, for --state-retention.
        assert setup.outbox.last_seen("a") == clock.at
        assert setup.outbox.bridge_ids() == ["a", "b"]
        await rec.shutdown()

    run(scenario)


def test_a_broken_edit_keeps_the_last_good_version_running(setup: Setup) -> None:
    path = setup.root / "a.yaml"
    path.write_text(bridge_file())

    async def scenario() -> None:
        rec = setup.reconciler()
        await rec.reconcile()
        [worker] = setup.factory.of("a")
        digest = rec.running["a"].bridge.digest
        path.write_text("apiVersion: bridge-runner/v1alpha1\nkind: Bridge\nspec: [not, a, map\n")
        plan = await rec.reconcile()
        assert plan.changes == ()
        assert [a.reason.value for a in plan.keeps] == ["LastGood"]
        assert setup.factory.of("a") == [worker] and not worker.stop_seen_at
        assert rec.running["a"].bridge.digest == digest
        # The status says the file on disk is not what runs, and why; the bridge still
        # delivers, so it stays Ready.
        conditions = {c["type"]: c for c in rec.documents["a"]["conditions"]}  # type: ignore[attr-defined]
        assert conditions["Valid"]["status"] == "False"
        assert "the last good version" in conditions["Valid"]["message"]
        assert conditions["Ready"]["reason"] == "LastGoodRunning"
        assert not_ready(rec) == []

        path.write_text(bridge_file(poll_interval="45s"))  # fixed: the new version runs
        plan = await rec.reconcile()
        assert [a.bridge_id for a in plan.restarts] == ["a"]
        assert not_ready(rec) == []
        await rec.shutdown()

    run(scenario)


def test_a_file_never_valid_never_starts(setup: Setup) -> None:
    (setup.root / "a.yaml").write_text("kind: Bridge\n")

    async def scenario() -> None:
        rec = setup.reconciler()
        plan = await rec.reconcile()
        assert plan.actions == () and setup.factory.started == []
        assert not_ready(rec) == ["a"]
        assert status_of(setup.root, "a").exists()
        await rec.shutdown()

    run(scenario)


def test_a_moved_file_carries_its_state_to_the_new_id(setup: Setup) -> None:
    (setup.root / "a.yaml").write_text(bridge_file())
    setup.outbox.append_events("a", [event(1), event(2)])

    async def scenario() -> None:
        rec = setup.reconciler()
        await rec.reconcile()
        (setup.root / "team").mkdir()
        (setup.root / "a.yaml").rename(setup.root / "team" / "b.yaml")
        plan = await rec.reconcile()
        assert [a.bridge_id for a in plan.stops] == ["a"]
        assert [a.bridge_id for a in plan.starts] == ["team/b"]
        assert [e.event_id for e in setup.outbox.undelivered("team/b")] == ["id-1", "id-2"]
        assert setup.outbox.undelivered("a") == []
        assert setup.outbox.bridge_ids() == ["team/b"]
        await rec.shutdown()

    run(scenario)


def test_a_move_onto_an_id_with_state_of_its_own_carries_nothing(setup: Setup) -> None:
    (setup.root / "a.yaml").write_text(bridge_file())
    setup.outbox.append_events("a", [event(1)])
    setup.outbox.append_events("b", [event(2)])

    async def scenario() -> None:
        rec = setup.reconciler()
        await rec.reconcile()
        (setup.root / "a.yaml").rename(setup.root / "b.yaml")
        await rec.reconcile()
        assert [e.event_id for e in setup.outbox.undelivered("b")] == ["id-2"]
        assert [e.event_id for e in setup.outbox.undelivered("a")] == ["id-1"]
        await rec.shutdown()

    run(scenario)


def test_the_state_of_a_removed_bridge_expires_after_the_retention(setup: Setup) -> None:
    (setup.root / "a.yaml").write_text(bridge_file())
    start = datetime.now(UTC)  # the outbox stamps appended events with the wall clock
    clock = FakeClock(at=start)

    async def scenario() -> None:
        rec = setup.reconciler(clock=clock, state_retention=3600.0)
        await rec.reconcile()
        setup.outbox.append_events("a", [event(1)])
        (setup.root / "a.yaml").unlink()
        await rec.reconcile()
        clock.at = start + timedelta(minutes=59)
        await rec.reconcile()
        assert setup.outbox.bridge_ids() == ["a"]  # kept: a revert would resume it
        clock.at = start + timedelta(minutes=61)
        await rec.reconcile()
        assert setup.outbox.bridge_ids() == []
        # Its undelivered event was written out before its state was forgotten.
        [leftover] = rec.settings.state_dir.rglob("a.*.jsonl")
        assert '"id-1"' in leftover.read_text()
        await rec.shutdown()

    run(scenario)


# --- selection -----------------------------------------------------------------------------------


def test_the_selector_chooses_what_runs_and_what_gets_a_status(setup: Setup) -> None:
    (setup.root / "a.yaml").write_text(bridge_file(labels="{team: x}"))
    (setup.root / "b.yaml").write_text(bridge_file(labels="{team: y}"))

    async def scenario() -> None:
        rec = setup.reconciler(selector={"team": "x"})
        await rec.reconcile()
        assert list(rec.running) == ["a"]
        assert status_of(setup.root, "a").exists()
        assert not status_of(setup.root, "b").exists()  # another runner reports on it

        (setup.root / "a.yaml").write_text(bridge_file(labels="{team: y}"))
        (setup.root / "b.yaml").write_text(bridge_file(labels="{team: x}"))
        plan = await rec.reconcile()
        assert [(a.bridge_id, a.reason.value) for a in plan.stops] == [("a", "NotSelected")]
        assert [a.bridge_id for a in plan.starts] == ["b"]
        assert list(rec.running) == ["b"]
        assert status_of(setup.root, "b").exists()
        await rec.shutdown()

    run(scenario)


def test_two_shards_share_the_bridges_without_overlap(setup: Setup, tmp_path: Path) -> None:
    names = [f"bridge-{n}" for n in range(12)]
    for name in names:
        (setup.root / f"{name}.yaml").write_text(bridge_file())

    async def scenario() -> None:
        owned = []
        for index in (0, 1):
            rec = setup.reconciler(shard=Shard(index, 2))
            await rec.reconcile()
            owned.append(set(rec.running))
            assert set(rec.documents) == owned[-1]  # each reports on its own bridges only
            await rec.shutdown()
        assert owned[0] and owned[1]
        assert not owned[0] & owned[1]
        assert owned[0] | owned[1] == set(names)

    run(scenario)
