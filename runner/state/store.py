"""The SQLite file under all of `runner.state`: connection, pragmas, schema, transactions.

`<state-dir>/state.sqlite` is shared by all bridges, keyed by bridge id. It holds

    snapshot   (bridge, pool ARN, username) -> fingerprint, sub: what the last scans saw;
               `seen_gen` is the generation of the last scan that read the user, and
               `modified_us` its UserLastModifiedDate (microseconds since the epoch)
    scans      (bridge, pool ARN) -> the generation of the latest scan begun: a scan marks
               every user it reads with it, and only a complete one sweeps the unmarked
    baselines  (bridge, pool ARN) whose snapshot came from a complete scan
    events     the outbox: events committed with their scan, waiting for the sink, in `seq`
               order, each with its user's key (the username: one user's events are
               delivered in order); `state` is pending or parked; delivered and dead-lettered events
               leave the table and are counted in `counters`
    counters   per-bridge totals (delivered, dead-lettered) kept across restarts
    activity   when each bridge last wrote state or was touched (for --state-retention)

`runner.state.snapshots`, `runner.state.retention` and `runner.state.outbox` each own some of
these tables and build on the `Store` here; `Outbox` is all of them in one object.

Durability: WAL journal with `synchronous=NORMAL`. A commit is durable against a crash or
kill of the process (it is in the WAL, which the OS holds); a power loss or kernel crash
may roll back the last transactions, never corrupt the file. For at-least-once delivery
that is safe: a rolled-back scan is simply seen again by the next poll.

Threads: one connection, opened with `check_same_thread=False`, and a lock around every
method. The poller and the deliverer call in through `asyncio.to_thread`, from any worker
thread; SQLite serializes writers anyway, and the lock keeps a transaction from
interleaving with another thread's statements on the shared connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Self

from runner.errors import StateError
from runner.model import STATE_FILE_NAME

STATE_FILE = STATE_FILE_NAME  # one name, shared with the loader and file: sinks
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 10_000

# The two states an event in the outbox can be in (delivered ones leave the table).
PENDING = "pending"
PARKED = "parked"

# Every table keyed by bridge id: what forgetting or moving a bridge touches.
BRIDGE_TABLES = ("snapshot", "scans", "baselines", "events", "counters", "activity")

_SCANS = """
CREATE TABLE scans (
    bridge_id  TEXT NOT NULL,
    pool_arn   TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (bridge_id, pool_arn)
) WITHOUT ROWID;
"""

_SCHEMA = f"""
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE snapshot (
    bridge_id   TEXT NOT NULL,
    pool_arn    TEXT NOT NULL,
    username    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    sub         TEXT,
    seen_gen    INTEGER NOT NULL DEFAULT 0,
    modified_us INTEGER,
    PRIMARY KEY (bridge_id, pool_arn, username)
) WITHOUT ROWID;
{_SCANS}CREATE TABLE baselines (
    bridge_id    TEXT NOT NULL,
    pool_arn     TEXT NOT NULL,
    completed_at REAL NOT NULL,
    PRIMARY KEY (bridge_id, pool_arn)
) WITHOUT ROWID;
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    bridge_id  TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    user_key   TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL,
    data       TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT '{PENDING}' CHECK (state IN ('{PENDING}', '{PARKED}')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX events_by_bridge_state ON events (bridge_id, state, seq);
CREATE TABLE counters (
    bridge_id     TEXT PRIMARY KEY,
    delivered     INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE activity (
    bridge_id TEXT PRIMARY KEY,
    last_seen REAL NOT NULL
) WITHOUT ROWID;
"""

# From version 1 (bridge-runner 0.1): what version 2 added, applied in place. Events of a
# version-1 outbox get their user's key from their data (`Username` in both event types).
_ADDED_IN_2 = f"""
ALTER TABLE snapshot ADD COLUMN seen_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshot ADD COLUMN modified_us INTEGER;
{_SCANS}ALTER TABLE events ADD COLUMN user_key TEXT NOT NULL DEFAULT '';
"""
_MIGRATE_FROM_1 = (
    _ADDED_IN_2
    + """
UPDATE events SET user_key = coalesce(json_extract(data, '$.Username'), '');
UPDATE schema_version SET version = 2;
"""
)


class Store:
    """One open state file: the connection, its lock, and where transactions begin and end.

    Opening creates the file and its schema when missing and refuses a file of another
    schema version. Every method of the classes built on it commits before it returns, and
    raises `StateError` when SQLite fails (disk full, file locked by another process beyond
    the busy timeout, corruption).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; `_transaction` says where
            # each one begins and ends.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the state file {path}: {exc}") from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StateError(f"cannot use the state file {path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, state_dir: Path) -> Self:
        """The state of `state_dir` (`<state_dir>/state.sqlite`, created when missing)."""
        return cls(state_dir / STATE_FILE)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _migrate(self) -> None:
        with self._transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if not exists:
                _run_script(conn, _SCHEMA)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row else None
            if version == 1:
                _run_script(conn, _MIGRATE_FROM_1)
                return
            if version != SCHEMA_VERSION:
                raise StateError(
                    f"the state file {self.path} has schema version {version}, this "
                    f"bridge-runner knows version {SCHEMA_VERSION}: use a matching release, "
                    "or move the file away to start over"
                )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one write transaction; commit on success, roll back on any error.

        BEGIN IMMEDIATE takes the write lock up front, so a transaction never fails halfway
        because another connection wrote in between. SQLite errors become `StateError`.
        """
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StateError(f"cannot use the state file {self.path}: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                _roll_back(conn)
                if isinstance(exc, sqlite3.Error):
                    raise StateError(f"cannot write the state file {self.path}: {exc}") from exc
                raise

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock for a read; reads in autocommit mode see the last commit."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StateError(f"cannot read the state file {self.path}: {exc}") from exc


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # Statement by statement: `executescript` would commit the caller's transaction first.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _roll_back(conn: sqlite3.Connection) -> None:
    # Some errors (disk full, I/O) make SQLite roll back by itself; a failing ROLLBACK must
    # not hide the error that caused it.
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
