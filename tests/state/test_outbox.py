"""runner.state.outbox against a real SQLite file: atomic scan commits, ordering, parking,
restarts."""

from __future__ import annotations

import gc
import inspect
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.utils import parse_timestamp

from runner.errors import StateError
from runner.model import NewEvent, SnapshotEntry
from runner.polling.diff import Change, to_record
from runner.state.outbox import Outbox, OutboxStats
from runner.state.ports import OutboxPort
from runner.state.store import STATE_FILE
from runner.state.storedjson import StoredJson
from tests.conftest import ROOT
from tests.polling.oracle import diff_scan

ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
OTHER_ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_other0001"
BRIDGE = "team-a/signups"


def raw_user(name: str, modified: float = 0.0) -> dict[str, Any]:
    return {
        "Username": name,
        "Attributes": [{"Name": "sub", "Value": f"sub-{name}"}],
        "UserCreateDate": parse_timestamp(1_704_103_200),
        "UserLastModifiedDate": parse_timestamp(1_704_103_200 + modified),
        "Enabled": True,
        "UserStatus": "CONFIRMED",
    }


def scan(*names: str, modified: float = 0.0) -> list[Any]:
    return [to_record(raw_user(name, modified)) for name in names]


def event(n: int, **attributes: Any) -> NewEvent:
    attrs = {"specversion": "1.0", "id": f"id-{n}", "source": ARN, "type": "t", **attributes}
    return NewEvent(f"id-{n}", attrs, {"n": n})


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox.open(tmp_path / "state") as box:
        yield box


def commit(
    box: Outbox,
    changes: list[Change],
    events: list[NewEvent],
    complete: bool = True,
    bridge: str = BRIDGE,
    arn: str = ARN,
) -> list[int]:
    return box.commit_scan(bridge, arn, changes, events, complete=complete)


# -- the file -------------------------------------------------------------------------------


def test_open_creates_the_state_file_in_wal_mode(tmp_path: Path) -> None:
    state_dir = tmp_path / "deep" / "state"
    with Outbox.open(state_dir) as box:
        assert box.path == state_dir / STATE_FILE
    conn = sqlite3.connect(state_dir / STATE_FILE)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    finally:
        conn.close()


def test_a_state_file_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    Outbox.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    with conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(StateError, match="schema version 99"):
        Outbox.open(tmp_path)


def test_a_corrupt_state_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(b"this is not a database, just some text" * 200)
    with pytest.raises(StateError, match="state file"):
        Outbox.open(tmp_path)


def test_outbox_implements_the_port() -> None:
    for name, member in inspect.getmembers(OutboxPort, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert inspect.signature(getattr(Outbox, name)) == inspect.signature(member), name


# -- snapshots and baselines ----------------------------------------------------------------


def test_load_snapshot_leaves_the_garbage_collector_on(tmp_path: Path) -> None:
    # It pauses the collector while it builds the entries (runner._kits.gcpause).
    box = Outbox.open(tmp_path / "state")
    try:
        commit(box, diff_scan({}, scan("amy"), complete=True), [])
        assert set(box.load_snapshot(BRIDGE, ARN)) == {"amy"}
        assert gc.isenabled()
    finally:
        box.close()
    with pytest.raises(StateError):
        box.load_snapshot(BRIDGE, ARN)  # a closed connection: fails inside the pause
    assert gc.isenabled()


def test_commit_scan_applies_the_snapshot_delta(outbox: Outbox) -> None:
    assert not outbox.has_baseline(BRIDGE, ARN)
    assert outbox.load_snapshot(BRIDGE, ARN) == {}

    first = scan("amy", "bob", "cyd")
    commit(outbox, diff_scan({}, first, complete=True), [])
    assert outbox.has_baseline(BRIDGE, ARN)
    assert outbox.load_snapshot(BRIDGE, ARN) == {
        r.username: SnapshotEntry(r.fingerprint, r.sub) for r in first
    }

    second = [*scan("amy"), *scan("bob", modified=9), *scan("dan")]
    changes = diff_scan(outbox.load_snapshot(BRIDGE, ARN), second, complete=True)
    assert sorted((c.kind, c.username) for c in changes) == [
        ("created", "dan"),
        ("deleted", "cyd"),
        ("updated", "bob"),
    ]
    commit(outbox, changes, [])
    assert outbox.load_snapshot(BRIDGE, ARN) == {
        r.username: SnapshotEntry(r.fingerprint, r.sub) for r in second
    }
    assert diff_scan(outbox.load_snapshot(BRIDGE, ARN), second, complete=True) == []


def test_an_incomplete_scan_is_no_baseline(outbox: Outbox) -> None:
    commit(outbox, diff_scan({}, scan("amy"), complete=False), [], complete=False)
    assert not outbox.has_baseline(BRIDGE, ARN)
    assert set(outbox.load_snapshot(BRIDGE, ARN)) == {"amy"}
    commit(outbox, [], [], complete=True)  # an empty pool is a baseline too
    assert outbox.has_baseline(BRIDGE, ARN)


def test_snapshots_are_kept_per_bridge_and_pool(outbox: Outbox) -> None:
    commit(outbox, diff_scan({}, scan("amy"), complete=True), [])
    commit(outbox, diff_scan({}, scan("bob"), complete=True), [], bridge="other")
    commit(outbox, diff_scan({}, scan("cyd"), complete=False), [], arn=OTHER_ARN, complete=False)
    assert set(outbox.load_snapshot(BRIDGE, ARN)) == {"amy"}
    assert set(outbox.load_snapshot("other", ARN)) == {"bob"}
    assert set(outbox.load_snapshot(BRIDGE, OTHER_ARN)) == {"cyd"}
    assert not outbox.has_baseline(BRIDGE, OTHER_ARN)


# -- atomicity ------------------------------------------------------------------------------


def install_failure(box: Outbox, event_id: str) -> None:
    """Make SQLite itself fail midway through a commit: after the snapshot writes, on the
    insert of the event with this id."""
    conn = sqlite3.connect(box.path)
    with conn:
        conn.execute(
            "CREATE TRIGGER fail_midway BEFORE INSERT ON events"
            f" WHEN NEW.event_id = '{event_id}' BEGIN SELECT RAISE(ABORT, 'injected'); END"
        )
    conn.close()


def test_a_failure_midway_through_commit_scan_leaves_nothing_applied(outbox: Outbox) -> None:
    commit(outbox, diff_scan({}, scan("amy", "bob"), complete=False), [event(1)], complete=False)
    before = (outbox.load_snapshot(BRIDGE, ARN), outbox.pending(BRIDGE, 100))
    install_failure(outbox, "id-3")

    changes = diff_scan(
        outbox.load_snapshot(BRIDGE, ARN), scan("bob", "cyd", modified=1), complete=True
    )
    assert {c.kind for c in changes} == {"created", "updated", "deleted"}
    with pytest.raises(StateError, match="injected"):
        commit(outbox, changes, [event(2), event(3), event(4)])

    assert (outbox.load_snapshot(BRIDGE, ARN), outbox.pending(BRIDGE, 100)) == before
    assert not outbox.has_baseline(BRIDGE, ARN)
    # The connection is usable afterwards, and the same commit goes through once fixed.
    conn = sqlite3.connect(outbox.path)
    with conn:
        conn.execute("DROP TRIGGER fail_midway")
    conn.close()
    seqs = commit(outbox, changes, [event(2), event(3), event(4)])
    assert [e.event_id for e in outbox.pending(BRIDGE, 100)] == ["id-1", "id-2", "id-3", "id-4"]
    assert seqs == [e.seq for e in outbox.pending(BRIDGE, 100)][1:]


def test_an_event_that_cannot_be_stored_fails_the_whole_commit(outbox: Outbox) -> None:
    changes = diff_scan({}, scan("amy"), complete=True)
    with pytest.raises(TypeError):
        commit(outbox, changes, [event(1), event(2, bad=object())])
    with pytest.raises(ValueError):
        commit(outbox, changes, [event(3, bad=float("nan"))])
    assert outbox.load_snapshot(BRIDGE, ARN) == {}
    assert outbox.pending(BRIDGE, 10) == []
    assert not outbox.has_baseline(BRIDGE, ARN)


KILLED_CHILD = """
import os, signal, sys
from pathlib import Path
from botocore.utils import parse_timestamp
from runner.model import NewEvent
from runner.polling.diff import to_record
from runner.state.outbox import Outbox
from tests.polling.oracle import diff_scan

box = Outbox.open(Path(sys.argv[1]))
def user(name):
    return to_record({"Username": name, "Attributes": [], "Enabled": True,
                      "UserStatus": "CONFIRMED", "UserCreateDate": parse_timestamp(0),
                      "UserLastModifiedDate": parse_timestamp(0)})
events = [NewEvent(f"id-{n}", {"specversion": "1.0", "id": f"id-{n}", "source": "s",
                               "type": "t"}, {"n": n}) for n in range(3)]
if sys.argv[2] == "after-commit":
    box.commit_scan("b", "arn", diff_scan({}, [user("amy")], complete=True), events,
                    complete=True)
else:
    # Die inside the transaction: after the snapshot rows, while inserting the events.
    box._conn.create_function("die", 0, lambda: os.kill(os.getpid(), signal.SIGKILL))
    box._conn.execute("CREATE TEMP TRIGGER die BEFORE INSERT ON events BEGIN SELECT die(); END")
    box.commit_scan("b", "arn", diff_scan({}, [user("bob")], complete=True), events,
                    complete=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no cleanup
"""


@pytest.mark.parametrize("when", ["after-commit", "mid-commit"])
def test_a_killed_process_loses_nothing_committed_and_keeps_nothing_half_done(
    tmp_path: Path, when: str
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_CHILD), str(tmp_path), when],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    with Outbox.open(tmp_path) as box:
        if when == "after-commit":
            assert set(box.load_snapshot("b", "arn")) == {"amy"}
            assert box.has_baseline("b", "arn")
            assert [e.event_id for e in box.pending("b", 10)] == ["id-0", "id-1", "id-2"]
        else:
            assert box.load_snapshot("b", "arn") == {}
            assert not box.has_baseline("b", "arn")
            assert box.pending("b", 10) == []


# -- the outbox -----------------------------------------------------------------------------


def test_pending_is_oldest_first_per_bridge_with_a_limit(outbox: Outbox) -> None:
    seqs = commit(outbox, [], [event(1), event(2)])
    seqs += outbox.append_events("other", [event(3)])
    seqs += outbox.append_events(BRIDGE, [event(4)])
    assert seqs == sorted(seqs) and len(set(seqs)) == 4

    pending = outbox.pending(BRIDGE, 10)
    assert [e.event_id for e in pending] == ["id-1", "id-2", "id-4"]
    assert [e.seq for e in pending] == [seqs[0], seqs[1], seqs[3]]
    assert pending[0].attributes == event(1).attributes
    assert pending[0].data == {"n": 1}
    assert pending[0].bridge_id == BRIDGE and pending[0].attempts == 0
    assert [e.event_id for e in outbox.pending(BRIDGE, 2)] == ["id-1", "id-2"]
    assert [e.event_id for e in outbox.pending("other", 10)] == ["id-3"]
    # Reading ahead past what delivery already holds: only later seqs, the limit theirs.
    assert [e.event_id for e in outbox.pending(BRIDGE, 10, after=seqs[0])] == ["id-2", "id-4"]
    assert [e.event_id for e in outbox.pending(BRIDGE, 1, after=seqs[0])] == ["id-2"]
    assert outbox.pending(BRIDGE, 10, after=seqs[3]) == []


def test_pending_events_hold_their_stored_json_text(outbox: Outbox) -> None:
    outbox.append_events(BRIDGE, [event(1, team="é")])
    [pending] = outbox.pending(BRIDGE, 1)

    assert isinstance(pending.attributes, StoredJson) and isinstance(pending.data, StoredJson)
    # The compact, non-ASCII-escaping text the outbox wrote, ready to be sent as is.
    assert pending.data.text == '{"n":1}'
    assert '"team":"é"' in pending.attributes.text
    assert json.loads(pending.attributes.text) == dict(pending.attributes)
    assert pending.attributes == event(1, team="é").attributes


def test_stored_json_reads_as_a_read_only_mapping() -> None:
    stored = StoredJson('{"a": 1, "b": [2]}')

    assert stored == {"a": 1, "b": [2]} and stored == StoredJson('{"b":[2],"a":1}')
    assert stored["a"] == 1 and stored.get("z") is None and "b" in stored and "z" not in stored
    assert list(stored) == ["a", "b"] and len(stored) == 2
    assert dict(stored.items()) == {"a": 1, "b": [2]} and list(stored.values()) == [1, [2]]
    assert not hasattr(stored, "__setitem__")
    assert repr(stored) == """StoredJson('{"a": 1, "b": [2]}')"""
    with pytest.raises(ValueError, match="not an object"):
        len(StoredJson("[1, 2]"))
    with pytest.raises(ValueError):
        StoredJson('{"a": ').get("a")


def test_delivered_and_dead_lettered_events_leave_and_are_counted_once(outbox: Outbox) -> None:
    seqs = outbox.append_events(BRIDGE, [event(n) for n in range(5)])
    outbox.mark_delivered(BRIDGE, seqs[:2])
    outbox.mark_delivered(BRIDGE, seqs[:2])  # repeated: not counted twice
    outbox.mark_dead_lettered(BRIDGE, [seqs[2]], "HTTP 400 Bad Request")
    outbox.mark_delivered("other", seqs[3:])  # another bridge's seqs: nothing happens

    assert [e.event_id for e in outbox.pending(BRIDGE, 10)] == ["id-3", "id-4"]
    assert outbox.stats(BRIDGE) == OutboxStats(pending=2, parked=0, delivered=2, dead_lettered=1)
    assert outbox.stats("other") == OutboxStats(0, 0, 0, 0)


def test_failed_attempts_are_counted_on_the_event(outbox: Outbox) -> None:
    seqs = outbox.append_events(BRIDGE, [event(1), event(2)])
    outbox.record_attempt(BRIDGE, [seqs[0]], "HTTP 503")
    outbox.record_attempt(BRIDGE, [seqs[0]], "HTTP 503")
    assert [e.attempts for e in outbox.pending(BRIDGE, 10)] == [2, 0]


def test_parked_events_wait_until_unparked_and_keep_their_place(outbox: Outbox) -> None:
    seqs = outbox.append_events(BRIDGE, [event(1), event(2), event(3)])
    outbox.park(BRIDGE, seqs[:2], "HTTP 400 Bad Request")
    assert [e.event_id for e in outbox.pending(BRIDGE, 10)] == ["id-3"]
    assert (outbox.count_pending(BRIDGE), outbox.count_parked(BRIDGE)) == (1, 2)
    assert outbox.stats(BRIDGE) == OutboxStats(pending=1, parked=2, delivered=0, dead_lettered=0)

    assert outbox.unpark("other") == 0
    assert outbox.unpark(BRIDGE) == 2
    assert [e.event_id for e in outbox.pending(BRIDGE, 10)] == ["id-1", "id-2", "id-3"]
    assert (outbox.count_pending(BRIDGE), outbox.count_parked(BRIDGE)) == (3, 0)


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    with Outbox.open(tmp_path) as box:
        commit(box, diff_scan({}, scan("amy", "bob"), complete=True), [])
        seqs = box.append_events(BRIDGE, [event(n) for n in range(5)])
        box.mark_delivered(BRIDGE, [seqs[0]])
        box.mark_dead_lettered(BRIDGE, [seqs[1]], "gone")
        box.park(BRIDGE, [seqs[2]], "HTTP 400")
        box.record_attempt(BRIDGE, [seqs[3]], "HTTP 503")
        snapshot = box.load_snapshot(BRIDGE, ARN)
        pending = box.pending(BRIDGE, 10)

    with Outbox.open(tmp_path) as box:
        assert box.has_baseline(BRIDGE, ARN)
        assert box.load_snapshot(BRIDGE, ARN) == snapshot
        assert box.pending(BRIDGE, 10) == pending
        assert [(e.event_id, e.attempts) for e in pending] == [("id-3", 1), ("id-4", 0)]
        assert box.stats(BRIDGE) == OutboxStats(pending=2, parked=1, delivered=1, dead_lettered=1)
        # New seqs never reuse those of events that left.
        assert box.append_events(BRIDGE, [event(9)])[0] > seqs[-1]
        assert box.unpark(BRIDGE) == 1


def test_stored_errors_are_bounded(outbox: Outbox) -> None:
    (seq,) = outbox.append_events(BRIDGE, [event(1)])
    outbox.park(BRIDGE, [seq], "x" * 100_000)
    conn = sqlite3.connect(outbox.path)
    try:
        (length,) = conn.execute("SELECT length(last_error) FROM events").fetchone()
    finally:
        conn.close()
    assert length == 2_000


# -- retention ------------------------------------------------------------------------------


def test_bridges_are_listed_touched_and_forgotten(outbox: Outbox) -> None:
    assert outbox.bridge_ids() == []
    assert outbox.last_seen(BRIDGE) is None
    before = datetime.now(UTC)
    commit(outbox, diff_scan({}, scan("amy"), complete=True), [event(1)])
    outbox.append_events("parked-only", [event(2)])
    seen = outbox.last_seen(BRIDGE)
    assert seen is not None and before - timedelta(seconds=1) <= seen <= datetime.now(UTC)

    outbox.touch("idle", datetime(2024, 1, 1, tzinfo=UTC))
    assert outbox.last_seen("idle") == datetime(2024, 1, 1, tzinfo=UTC)
    outbox.touch("idle", datetime(2023, 1, 1, tzinfo=UTC))  # never moves back
    assert outbox.last_seen("idle") == datetime(2024, 1, 1, tzinfo=UTC)
    assert outbox.bridge_ids() == ["idle", "parked-only", BRIDGE]

    outbox.mark_delivered(BRIDGE, [e.seq for e in outbox.pending(BRIDGE, 10)])
    outbox.forget(BRIDGE)
    assert outbox.bridge_ids() == ["idle", "parked-only"]
    assert outbox.load_snapshot(BRIDGE, ARN) == {}
    assert not outbox.has_baseline(BRIDGE, ARN)
    assert outbox.stats(BRIDGE) == OutboxStats(0, 0, 0, 0)
    assert outbox.last_seen(BRIDGE) is None
    assert [e.event_id for e in outbox.pending("parked-only", 10)] == ["id-2"]


# -- threads --------------------------------------------------------------------------------


def test_concurrent_callers_from_many_threads(outbox: Outbox) -> None:
    errors: list[BaseException] = []
    seqs: list[int] = []
    seqs_lock = threading.Lock()

    def writer(worker: int) -> None:
        try:
            for n in range(20):
                got = outbox.append_events(BRIDGE, [event(worker * 100 + n)])
                with seqs_lock:
                    seqs.extend(got)
                outbox.pending(BRIDGE, 5)
                outbox.stats(BRIDGE)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(set(seqs)) == 120
    assert outbox.count_pending(BRIDGE) == 120
    assert [e.seq for e in outbox.pending(BRIDGE, 200)] == sorted(seqs)
