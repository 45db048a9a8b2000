"""runner.state stands on its own: it stores plain records, and never imports the poller's
modules (the durable layer is below polling, issue 10)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from runner.model import NewEvent, SnapshotEntry
from runner.state.outbox import Outbox
from tests.conftest import ROOT

ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
BRIDGE = "team-a/signups"


@dataclass(frozen=True)
class PlainChange:
    """A change as any caller may describe one: no `runner.polling` type involved."""

    username: str
    record: SnapshotEntry | None


def test_a_scan_of_plain_records_is_committed_with_its_events(tmp_path: Path) -> None:
    with Outbox.open(tmp_path) as box:
        box.commit_scan(
            BRIDGE,
            ARN,
            [PlainChange("amy", SnapshotEntry("f1", "s1")), PlainChange("bob", None)],
            [NewEvent("id-1", {"id": "id-1"}, {"Username": "amy"})],
            complete=True,
        )
        assert box.load_snapshot(BRIDGE, ARN) == {"amy": SnapshotEntry("f1", "s1")}
        assert box.has_baseline(BRIDGE, ARN)
        assert [e.event_id for e in box.pending(BRIDGE, 10)] == ["id-1"]

        # A replacement (deleted, then created under the same name): the new entry remains.
        replaced = SnapshotEntry("f2", "s2")
        box.commit_scan(
            BRIDGE,
            ARN,
            [PlainChange("amy", None), PlainChange("amy", replaced)],
            [],
            complete=True,
        )
        assert box.load_snapshot(BRIDGE, ARN) == {"amy": replaced}


def test_the_state_modules_import_nothing_of_polling() -> None:
    # In a fresh interpreter: this test process has long imported runner.polling itself.
    code = (
        "import pkgutil, importlib, sys, runner.state\n"
        "for m in pkgutil.iter_modules(runner.state.__path__, 'runner.state.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('runner.polling')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
