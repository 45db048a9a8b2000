"""A state file written by bridge-runner 0.1 (schema version 1) is migrated in place: its
snapshot, baselines and pending events are kept, and its events gain their user's key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from runner.model import NewEvent
from runner.state.outbox import Outbox
from runner.state.store import STATE_FILE

ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"

# The schema of bridge-runner 0.1, as it created state files (runner/state/store.py at 946f1c1).
SCHEMA_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE snapshot (
    bridge_id TEXT NOT NULL, pool_arn TEXT NOT NULL, username TEXT NOT NULL,
    fingerprint TEXT NOT NULL, sub TEXT,
    PRIMARY KEY (bridge_id, pool_arn, username)
) WITHOUT ROWID;
CREATE TABLE baselines (
    bridge_id TEXT NOT NULL, pool_arn TEXT NOT NULL, completed_at REAL NOT NULL,
    PRIMARY KEY (bridge_id, pool_arn)
) WITHOUT ROWID;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, bridge_id TEXT NOT NULL, event_id TEXT NOT NULL,
    attributes TEXT NOT NULL, data TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'parked')),
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at REAL NOT NULL
);
CREATE INDEX events_by_bridge_state ON events (bridge_id, state, seq);
CREATE TABLE counters (
    bridge_id TEXT PRIMARY KEY, delivered INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE activity (bridge_id TEXT PRIMARY KEY, last_seen REAL NOT NULL) WITHOUT ROWID;
INSERT INTO schema_version (version) VALUES (1);
"""


def _write_v1_file(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(state_dir / STATE_FILE)
    try:
        conn.executescript(SCHEMA_V1)
        with conn:
            conn.execute(
                "INSERT INTO snapshot VALUES ('b', ?, 'alice', 'fp-alice', 'sub-alice')", (ARN,)
            )
            conn.execute("INSERT INTO baselines VALUES ('b', ?, 1.0)", (ARN,))
            for seq, username in ((1, "alice"), (2, "bob")):
                conn.execute(
                    "INSERT INTO events (seq, bridge_id, event_id, attributes, data, created_at)"
                    " VALUES (?, 'b', ?, ?, ?, 1.0)",
                    (
                        seq,
                        f"id-{seq}",
                        json.dumps({"id": f"id-{seq}"}),
                        json.dumps({"Username": username, "sub": None}),
                    ),
                )
            conn.execute("INSERT INTO counters VALUES ('b', 7, 1)")
    finally:
        conn.close()


def test_a_version_1_state_file_is_migrated_and_keeps_everything(tmp_path: Path) -> None:
    _write_v1_file(tmp_path)
    with Outbox.open(tmp_path) as box:
        assert box.has_baseline("b", ARN)
        assert box.load_snapshot("b", ARN)["alice"].fingerprint == "fp-alice"
        pending = box.pending("b", 10)
        assert [(ev.seq, ev.event_id, ev.user_key) for ev in pending] == [
            (1, "id-1", "alice"),
            (2, "id-2", "bob"),
        ]
        stats = box.stats("b")
        assert (stats.pending, stats.delivered, stats.dead_lettered) == (2, 7, 1)
        # New events go after the old ones, with their key.
        (seq,) = box.append_events("b", [NewEvent("id-3", {"id": "id-3"}, {}, user_key="carol")])
        assert seq == 3
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    finally:
        conn.close()
    # Opening again does not migrate twice.
    with Outbox.open(tmp_path) as box:
        assert [ev.user_key for ev in box.pending("b", 10)] == ["alice", "bob", "carol"]


def test_events_keep_their_user_key(tmp_path: Path) -> None:
    with Outbox.open(tmp_path) as box:
        box.append_events("b", [NewEvent("x", {"id": "x"}, {}, user_key="dave")])
        assert [ev.user_key for ev in box.undelivered("b")] == ["dave"]
