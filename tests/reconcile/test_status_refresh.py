"""Status work proportional to change: the reconciler renders (and writes) the status of a
bridge only when something about that bridge changed, never every bridge on a timer.

Renders are counted (`Reconciler.renders`) and files compared by inode and mtime, not timed.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from runner.reconcile import reconciler as reconciler_module
from runner.reconcile import statusfiles
from runner.reconcile.reconciler import Reconciler
from runner.status.readiness import Condition
from tests.reconcile.fakes import Setup, bridge_file, run, status_of, until

BRIDGES = 12


def _files(setup: Setup) -> None:
    for i in range(BRIDGES):
        (setup.root / f"b{i:02d}.yaml").write_text(bridge_file())


def _stamps(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in sorted(root.glob("*.status.json")):
        st = path.stat()
        found[path.name] = (st.st_ino, st.st_mtime_ns)
    return found


async def _started(setup: Setup) -> Reconciler:
    rec = setup.reconciler()
    await rec.reconcile()
    assert rec.renders == BRIDGES
    return rec


def test_nothing_changed_nothing_rendered_or_written(setup: Setup) -> None:
    _files(setup)

    async def scenario() -> None:
        rec = await _started(setup)
        before = _stamps(setup.root)
        assert len(before) == BRIDGES
        for _ in range(3):  # what the refresher does when woken, and its sweep
            assert await rec.write_statuses(sweep=False) == 0
            assert await rec.write_statuses(sweep=True) == 0
            await rec.reconcile()  # a resync over unchanged files
        assert rec.renders == BRIDGES
        assert _stamps(setup.root) == before
        await rec.shutdown()

    run(scenario)


def test_a_change_to_one_bridge_refreshes_that_bridge_alone(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No sweep comes to the rescue: the change itself must wake the refresher.
    monkeypatch.setattr(reconciler_module, "STATUS_SWEEP", 3600.0)
    _files(setup)

    async def scenario() -> None:
        rec = await _started(setup)
        stop = asyncio.Event()
        refresher = asyncio.create_task(rec.refresh_statuses(stop))
        await asyncio.sleep(0)
        before = _stamps(setup.root)
        (worker,) = setup.factory.of("b03")
        worker.source_counters.pages_read += 5  # what a poll does
        worker.source_counters.scans += 1

        def shown() -> bool:
            doc = json.loads(status_of(setup.root, "b03").read_text())
            return bool(doc["source"]["pagesRead"] == 5 and doc["source"]["scans"] == 1)

        await until(shown, "b03's status to show its poll")
        assert rec.renders == BRIDGES + 1  # both changes in one render, of b03 only
        after = _stamps(setup.root)
        changed = {name for name in after if after[name] != before[name]}
        assert changed == {"b03.status.json"}
        stop.set()
        await refresher
        await rec.shutdown()

    run(scenario)


def test_an_edit_renders_the_edited_bridge_only(setup: Setup) -> None:
    _files(setup)

    async def scenario() -> None:
        rec = await _started(setup)
        (setup.root / "b05.yaml").write_text(bridge_file(poll_interval="31s"))
        await rec.reconcile()
        assert rec.renders == BRIDGES + 1
        doc = json.loads(status_of(setup.root, "b05").read_text())
        assert doc["appliedDigest"] == doc["observedDigest"]
        await rec.shutdown()

    run(scenario)


def test_the_sweep_catches_a_condition_changed_alone_and_a_deleted_status(
    setup: Setup,
) -> None:
    _files(setup)

    async def scenario() -> None:
        rec = await _started(setup)
        (worker,) = setup.factory.of("b01")
        worker.sink_health = Condition("SinkReady", "False", "SinkUnavailable", "down")
        os.unlink(status_of(setup.root, "b07"))
        assert await rec.write_statuses(sweep=False) == 0  # no counter moved
        assert await rec.write_statuses(sweep=True) >= 1  # the condition: every sweep sees it
        # Each sweep checks a share of the status files, so the deleted one is back within
        # FILE_CHECK_EVERY sweeps, and only it was written again.
        for _ in range(statusfiles.FILE_CHECK_EVERY - 1):
            await rec.write_statuses(sweep=True)
        assert rec.renders == BRIDGES + 2
        doc = json.loads(status_of(setup.root, "b01").read_text())
        sink = {c["type"]: c["status"] for c in doc["conditions"]}["SinkReady"]
        assert sink == "False"
        assert status_of(setup.root, "b07").exists()
        assert not rec.readiness()["b01"].ready
        await rec.shutdown()

    run(scenario)


def test_a_removed_bridge_is_forgotten(setup: Setup) -> None:
    _files(setup)

    async def scenario() -> None:
        rec = await _started(setup)
        (setup.root / "b02.yaml").unlink()
        await rec.reconcile()
        assert "b02" not in rec.readiness() and "b02" not in rec.documents
        assert not status_of(setup.root, "b02").exists()
        assert rec.renders == BRIDGES  # nobody else was rendered again
        await rec.shutdown()

    run(scenario)
