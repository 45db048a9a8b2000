"""The durable state of every bridge: user snapshots and the event outbox, in one SQLite file.

`<state-dir>/state.sqlite` is shared by all bridges, keyed by bridge id. It holds

    snapshot   (bridge, pool ARN, username) -> fingerprint, sub: what the last scans saw
    baselines  (bridge, pool ARN) whose snapshot came from a complete scan
    events     the outbox: events committed with their scan, waiting for the sink, in `seq`
               order; `state` is pending or parked; delivered and dead-lettered events
               leave the table and are counted in `counters`
    counters   per-bridge totals (delivered, dead-lettered) kept across restarts
    activity   when each bridge last wrote state or was touched (for --state-retention)

A scan's snapshot delta and its events are written in ONE transaction (`commit_scan`)
before anything is sent (the outbox pattern, DESIGN §4.2), and an event leaves the outbox
only once delivery reports it delivered or dead-lettered: a crash at any point loses
nothing, and a resent event keeps its id.

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

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner._kits.gcpause import gc_paused
from runner.errors import StateError
from runner.model import STATE_FILE_NAME, OutboxEvent
from runner.polling.diff import Change, SnapshotEntry
from runner.polling.events import NewEvent
from runner.state.ports import OutboxPort
from runner.state.storedjson import StoredJson

STATE_FILE = STATE_FILE_NAME  # one name, shared with the loader and file: sinks
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

_PENDING = "pending"
_PARKED = "parked"
# Errors are stored for people to read; a bound keeps a huge response body out of the file.
_MAX_ERROR_CHARS = 2_000
# SQLite's default limit on host parameters is 32,766 (3.32+); stay far below it.
_CHUNK = 500

# Every table keyed by bridge id: what forgetting or moving a bridge touches.
_BRIDGE_TABLES = ("snapshot", "baselines", "events", "counters", "activity")

_SCHEMA = f"""
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE snapshot (
    bridge_id   TEXT NOT NULL,
    pool_arn    TEXT NOT NULL,
    username    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    sub         TEXT,
    PRIMARY KEY (bridge_id, pool_arn, username)
) WITHOUT ROWID;
CREATE TABLE baselines (
    bridge_id    TEXT NOT NULL,
    pool_arn     TEXT NOT NULL,
    completed_at REAL NOT NULL,
    PRIMARY KEY (bridge_id, pool_arn)
) WITHOUT ROWID;
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    bridge_id  TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    attributes TEXT NOT NULL,
    data       TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT '{_PENDING}' CHECK (state IN ('{_PENDING}', '{_PARKED}')),
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


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """One bridge's outbox, as the status file's `sink` block shows it.

    `pending` and `parked` are counted now; `delivered` and `dead_lettered` are totals
    since the bridge's state was created, kept across restarts.
    """

    pending: int
    parked: int
    delivered: int
    dead_lettered: int


class Outbox:
    """The SQLite state of all bridges. Implements `runner.state.ports.OutboxPort`.

    Every method commits before it returns, and raises `StateError` when SQLite fails
    (disk full, file locked by another process beyond the busy timeout, corruption).
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
    def open(cls, state_dir: Path) -> Outbox:
        """The state of `state_dir` (`<state_dir>/state.sqlite`, created when missing)."""
        return cls(state_dir / STATE_FILE)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if not exists:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row else None
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

    # -- snapshot -------------------------------------------------------------------------

    def has_baseline(self, bridge_id: str, pool_arn: str) -> bool:
        """Whether a complete scan of this pool was committed for this bridge."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT 1 FROM baselines WHERE bridge_id = ? AND pool_arn = ?",
                (bridge_id, pool_arn),
            ).fetchone()
        return row is not None

    def load_snapshot(self, bridge_id: str, pool_arn: str) -> dict[str, SnapshotEntry]:
        """Username -> what the committed scans last saw of that user.

        One entry per user of a pool (100,000 for a large one), built while the scan is in
        memory: the cyclic GC is paused meanwhile (`runner._kits.gcpause`)."""
        with self._reading() as conn, gc_paused():
            rows = conn.execute(
                "SELECT username, fingerprint, sub FROM snapshot"
                " WHERE bridge_id = ? AND pool_arn = ?",
                (bridge_id, pool_arn),
            )
            return {username: SnapshotEntry(fp, sub) for username, fp, sub in rows}

    def commit_scan(
        self,
        bridge_id: str,
        pool_arn: str,
        changes: Sequence[Change],
        events: Sequence[NewEvent],
        *,
        complete: bool,
    ) -> list[int]:
        """Apply one scan in ONE transaction and return the new events' seqs, in order.

        Writes the snapshot delta (created/updated users upserted, deleted ones removed),
        marks the baseline when the scan was `complete`, appends `events` to the outbox and
        records the bridge as active. On any error nothing of it is kept.
        """
        upserts = [
            (bridge_id, pool_arn, change.username, change.record.fingerprint, change.record.sub)
            for change in changes
            if change.record is not None
        ]
        deletions = [
            (bridge_id, pool_arn, change.username) for change in changes if change.record is None
        ]
        rows = _event_rows(bridge_id, events)
        now = time.time()
        with self._transaction() as conn:
            # Deletions first: a user deleted and created again under the same name between
            # two scans is a (deleted, created) pair, and the new entry must be what remains.
            conn.executemany(
                "DELETE FROM snapshot WHERE bridge_id = ? AND pool_arn = ? AND username = ?",
                deletions,
            )
            conn.executemany(
                "INSERT INTO snapshot (bridge_id, pool_arn, username, fingerprint, sub)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (bridge_id, pool_arn, username)"
                " DO UPDATE SET fingerprint = excluded.fingerprint, sub = excluded.sub",
                upserts,
            )
            if complete:
                conn.execute(
                    "INSERT INTO baselines (bridge_id, pool_arn, completed_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (bridge_id, pool_arn) DO NOTHING",
                    (bridge_id, pool_arn, now),
                )
            seqs = _insert_events(conn, rows, now)
            _touch(conn, bridge_id, now)
        return seqs

    # -- the outbox (runner.state.ports.OutboxPort) --------------------------------------------

    def append_events(self, bridge_id: str, events: Sequence[NewEvent]) -> list[int]:
        """Append events without a scan (tests, benchmarks); returns their seqs."""
        rows = _event_rows(bridge_id, events)
        now = time.time()
        with self._transaction() as conn:
            seqs = _insert_events(conn, rows, now)
            _touch(conn, bridge_id, now)
        return seqs

    def pending(self, bridge_id: str, limit: int) -> list[OutboxEvent]:
        """Up to `limit` pending (not parked) events of the bridge, lowest seq first.

        Attributes and data come as `StoredJson`: parsed only when read, and their stored
        text can be sent as is (see `runner.delivery.encodings.to_structured_json`)."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, event_id, attributes, data, attempts FROM events"
                " WHERE bridge_id = ? AND state = ? ORDER BY seq LIMIT ?",
                (bridge_id, _PENDING, limit),
            ).fetchall()
        return [
            OutboxEvent(seq, bridge_id, event_id, StoredJson(attrs), StoredJson(data), attempts)
            for seq, event_id, attrs, data, attempts in rows
        ]

    def mark_delivered(self, bridge_id: str, seqs: Sequence[int]) -> None:
        """The sink took these events: they leave the outbox and count as delivered.

        Seqs already gone (a repeated call) are not counted twice."""
        with self._transaction() as conn:
            removed = _delete_events(conn, bridge_id, seqs)
            _add_to_counter(conn, bridge_id, "delivered", removed)

    def mark_dead_lettered(self, bridge_id: str, seqs: Sequence[int], error: str) -> None:
        """Written to the dead-letter sink (which carries `error`): they leave the outbox."""
        with self._transaction() as conn:
            removed = _delete_events(conn, bridge_id, seqs)
            _add_to_counter(conn, bridge_id, "dead_lettered", removed)

    def record_attempt(self, bridge_id: str, seqs: Sequence[int], error: str) -> None:
        """A retryable attempt failed: `attempts` += 1 and remember the (secret-free) error."""
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE events SET attempts = attempts + 1, last_error = ?"
                " WHERE bridge_id = ? AND seq = ?",
                [(error[:_MAX_ERROR_CHARS], bridge_id, seq) for seq in seqs],
            )

    def park(self, bridge_id: str, seqs: Sequence[int], error: str) -> None:
        """Given up with no dead-letter sink: kept with `error`, not retried until `unpark`."""
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE events SET state = ?, last_error = ? WHERE bridge_id = ? AND seq = ?",
                [(_PARKED, error[:_MAX_ERROR_CHARS], bridge_id, seq) for seq in seqs],
            )

    def unpark(self, bridge_id: str) -> int:
        """Make every parked event of the bridge pending again (after the sink was fixed).

        They keep their seqs, so they are delivered before anything committed after them.
        Returns how many were unparked."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE events SET state = ? WHERE bridge_id = ? AND state = ?",
                (_PENDING, bridge_id, _PARKED),
            )
            return cursor.rowcount

    def count_pending(self, bridge_id: str) -> int:
        return self._count(bridge_id, _PENDING)

    def count_parked(self, bridge_id: str) -> int:
        return self._count(bridge_id, _PARKED)

    def _count(self, bridge_id: str, state: str) -> int:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT count(*) FROM events WHERE bridge_id = ? AND state = ?",
                (bridge_id, state),
            ).fetchone()
        return int(row[0])

    def stats(self, bridge_id: str) -> OutboxStats:
        with self._reading() as conn:
            by_state = dict(
                conn.execute(
                    "SELECT state, count(*) FROM events WHERE bridge_id = ? GROUP BY state",
                    (bridge_id,),
                ).fetchall()
            )
            totals = conn.execute(
                "SELECT delivered, dead_lettered FROM counters WHERE bridge_id = ?",
                (bridge_id,),
            ).fetchone()
        delivered, dead_lettered = totals if totals else (0, 0)
        return OutboxStats(
            pending=by_state.get(_PENDING, 0),
            parked=by_state.get(_PARKED, 0),
            delivered=delivered,
            dead_lettered=dead_lettered,
        )

    # -- retention ------------------------------------------------------------------------

    def bridge_ids(self) -> list[str]:
        """Every bridge with state here, sorted. (Every write that creates state for a
        bridge also records its activity, so the small activity table lists them all.)"""
        with self._reading() as conn:
            rows = conn.execute("SELECT bridge_id FROM activity ORDER BY bridge_id").fetchall()
        return [bridge_id for (bridge_id,) in rows]

    def touch(self, bridge_id: str, when: datetime | None = None) -> None:
        """Record the bridge as active at `when` (now by default) without a scan, e.g. while
        it runs suspended or cannot reach its pool, so retention does not expire it."""
        instant = when.timestamp() if when is not None else time.time()
        with self._transaction() as conn:
            _touch(conn, bridge_id, instant)

    def last_seen(self, bridge_id: str) -> datetime | None:
        """When the bridge last wrote state (a scan, events) or was touched; None if never."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT last_seen FROM activity WHERE bridge_id = ?", (bridge_id,)
            ).fetchone()
        return datetime.fromtimestamp(row[0], UTC) if row else None

    def undelivered(self, bridge_id: str) -> list[OutboxEvent]:
        """Every event of the bridge not delivered yet, pending and parked, in seq order."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, event_id, attributes, data, attempts FROM events"
                " WHERE bridge_id = ? ORDER BY seq",
                (bridge_id,),
            ).fetchall()
        return [
            OutboxEvent(seq, bridge_id, event_id, StoredJson(attrs), StoredJson(data), attempts)
            for seq, event_id, attrs, data, attempts in rows
        ]

    def move_bridge(self, old_id: str, new_id: str) -> bool:
        """Give everything kept for `old_id` (snapshots, baselines, events, counters) to
        `new_id`, in one transaction: a bridge file moved or renamed with its spec unchanged.
        Refused (False, nothing changed) when `new_id` already has state of its own."""
        with self._transaction() as conn:
            taken = conn.execute(
                "SELECT 1 FROM activity WHERE bridge_id = ? UNION ALL "
                "SELECT 1 FROM events WHERE bridge_id = ? LIMIT 1",
                (new_id, new_id),
            ).fetchone()
            if taken:
                return False
            for table in _BRIDGE_TABLES:
                conn.execute(
                    f"UPDATE {table} SET bridge_id = ? WHERE bridge_id = ?",  # noqa: S608
                    (new_id, old_id),
                )
        return True

    def forget(self, bridge_id: str) -> None:
        """Drop everything kept for the bridge: snapshots, baselines, events (parked ones
        included), counters. For --state-retention expiry; a bridge that comes back later
        starts over with its `initialSync`."""
        with self._transaction() as conn:
            for table in _BRIDGE_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE bridge_id = ?", (bridge_id,))  # noqa: S608


def _roll_back(conn: sqlite3.Connection) -> None:
    # Some errors (disk full, I/O) make SQLite roll back by itself; a failing ROLLBACK must
    # not hide the error that caused it.
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _event_rows(bridge_id: str, events: Iterable[NewEvent]) -> list[tuple[str, str, str, str]]:
    # Serialized before the transaction starts: an event that cannot be stored fails the
    # whole commit before anything is written, and the write lock is held only to write.
    return [
        (bridge_id, event.event_id, _to_json(event.attributes), _to_json(event.data))
        for event in events
    ]


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _insert_events(
    conn: sqlite3.Connection, rows: Sequence[tuple[str, str, str, str]], now: float
) -> list[int]:
    if not rows:
        return []
    # One statement per row with RETURNING, because executemany cannot return the new
    # seqs. It costs ~2.5 us per event more (0.25 s for a 100,000-user `emit` backfill,
    # next to 0.8 s of JSON encoding); re-selecting them after an executemany would
    # depend on how AUTOINCREMENT picks seqs.
    statement = (
        "INSERT INTO events (bridge_id, event_id, attributes, data, created_at)"
        " VALUES (?, ?, ?, ?, ?) RETURNING seq"
    )
    return [conn.execute(statement, (*row, now)).fetchone()[0] for row in rows]


def _delete_events(conn: sqlite3.Connection, bridge_id: str, seqs: Sequence[int]) -> int:
    removed = 0
    for start in range(0, len(seqs), _CHUNK):
        chunk = list(seqs[start : start + _CHUNK])
        placeholders = ",".join("?" * len(chunk))
        cursor = conn.execute(
            f"DELETE FROM events WHERE bridge_id = ? AND seq IN ({placeholders})",  # noqa: S608
            (bridge_id, *chunk),
        )
        removed += cursor.rowcount
    return removed


def _add_to_counter(conn: sqlite3.Connection, bridge_id: str, column: str, amount: int) -> None:
    if amount:
        conn.execute(
            f"INSERT INTO counters (bridge_id, {column}) VALUES (?, ?)"  # noqa: S608
            f" ON CONFLICT (bridge_id) DO UPDATE SET {column} = {column} + excluded.{column}",
            (bridge_id, amount),
        )


def _touch(conn: sqlite3.Connection, bridge_id: str, when: float) -> None:
    conn.execute(
        "INSERT INTO activity (bridge_id, last_seen) VALUES (?, ?)"
        " ON CONFLICT (bridge_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
        (bridge_id, when),
    )


def _as_port(outbox: Outbox) -> OutboxPort:
    # Never called: mypy checks here that Outbox implements runner.state.ports.OutboxPort.
    return outbox
