"""The outbox: events committed with their scan, waiting for their sink, in `seq` order.

A scan's snapshot delta and its events are written in ONE transaction (`commit_scan`)
before anything is sent (the outbox pattern, DESIGN §4.2), and an event leaves the outbox
only once delivery reports it delivered or dead-lettered: a crash at any point loses
nothing, and a resent event keeps its id. An event the sink gave up on with no dead-letter
sink is parked, kept until `unpark`; delivered and dead-lettered events are counted in
per-bridge totals kept across restarts.

`Outbox` is the whole state file (`runner.state.store`): the outbox here, the snapshots
(`runner.state.snapshots`) and retention (`runner.state.retention`), so that the runner opens
one object per state directory. It implements `runner.state.ports.OutboxPort`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from runner.model import NewEvent, OutboxEvent
from runner.state.ports import OutboxPort
from runner.state.retention import Retention, record_activity
from runner.state.snapshots import (
    ScannedUser,
    SnapshotChange,
    SnapshotDelta,
    Snapshots,
    write_delta,
)
from runner.state.store import PARKED, PENDING
from runner.state.storedjson import StoredJson

# Errors are stored for people to read; a bound keeps a huge response body out of the file.
_MAX_ERROR_CHARS = 2_000
# SQLite's default limit on host parameters is 32,766 (3.32+); stay far below it.
_CHUNK = 500


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


class Outbox(Snapshots, Retention):
    """The SQLite state of all bridges, opened once per state directory. Implements
    `runner.state.ports.OutboxPort`.

    Every method commits before it returns, and raises `StateError` when SQLite fails
    (disk full, file locked by another process beyond the busy timeout, corruption).
    """

    def commit_scan(
        self,
        bridge_id: str,
        pool_arn: str,
        changes: Sequence[SnapshotChange],
        events: Sequence[NewEvent],
        *,
        complete: bool,
        generation: int = 0,
        unchanged: Sequence[ScannedUser] = (),
    ) -> list[int]:
        """Apply one scan, or one chunk of a streamed scan, in ONE transaction and return
        the new events' seqs, in order.

        Writes the snapshot delta (created/updated users upserted, deleted ones removed,
        both marked with the scan's `generation`, as are the `unchanged` users it read),
        marks the baseline when the scan was `complete` (a streamed scan: its last
        transaction, after the sweep), appends `events` to the outbox and records the
        bridge as active. On any error nothing of it is kept.
        """
        delta = SnapshotDelta.of(
            bridge_id, pool_arn, changes, generation=generation, unchanged=unchanged
        )
        rows = _event_rows(bridge_id, events)
        now = time.time()
        with self._transaction() as conn:
            write_delta(conn, delta, complete=complete, now=now)
            seqs = _insert_events(conn, rows, now)
            record_activity(conn, bridge_id, now)
        return seqs

    def append_events(self, bridge_id: str, events: Sequence[NewEvent]) -> list[int]:
        """Append events without a scan (tests, benchmarks); returns their seqs."""
        rows = _event_rows(bridge_id, events)
        now = time.time()
        with self._transaction() as conn:
            seqs = _insert_events(conn, rows, now)
            record_activity(conn, bridge_id, now)
        return seqs

    def pending(self, bridge_id: str, limit: int, *, after: int = 0) -> list[OutboxEvent]:
        """Up to `limit` pending (not parked) events of the bridge with a seq above `after`,
        lowest seq first (`after`: delivery reads ahead past what it already holds).

        Attributes and data come as `StoredJson`: parsed only when read, and their stored
        text can be sent as is (see `runner.delivery.encodings.to_structured_json`)."""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608
                " WHERE bridge_id = ? AND state = ? AND seq > ? ORDER BY seq LIMIT ?",
                (bridge_id, PENDING, after, limit),
            ).fetchall()
        return [_outbox_event(bridge_id, row) for row in rows]

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
                [(PARKED, error[:_MAX_ERROR_CHARS], bridge_id, seq) for seq in seqs],
            )

    def unpark(self, bridge_id: str) -> int:
        """Make every parked event of the bridge pending again (after the sink was fixed).

        They keep their seqs, so they are delivered before anything committed after them.
        Returns how many were unparked."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE events SET state = ? WHERE bridge_id = ? AND state = ?",
                (PENDING, bridge_id, PARKED),
            )
            return cursor.rowcount

    def parked(self, bridge_id: str) -> list[OutboxEvent]:
        """The bridge's parked events, in seq order (what `unpark` would release)."""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608
                " WHERE bridge_id = ? AND state = ? ORDER BY seq",
                (bridge_id, PARKED),
            ).fetchall()
        return [_outbox_event(bridge_id, row) for row in rows]

    def has_pending(self, bridge_id: str) -> bool:
        """Whether any event of the bridge is pending (one index lookup)."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT 1 FROM events WHERE bridge_id = ? AND state = ? LIMIT 1",
                (bridge_id, PENDING),
            ).fetchone()
        return row is not None

    def last_errors(self, bridge_id: str, seqs: Sequence[int]) -> dict[int, str | None]:
        """The last error stored with each of these events (for `replay --dry-run`)."""
        found: dict[int, str | None] = {}
        with self._reading() as conn:
            for start in range(0, len(seqs), _CHUNK):
                chunk = list(seqs[start : start + _CHUNK])
                rows = conn.execute(
                    "SELECT seq, last_error FROM events WHERE bridge_id = ?"  # noqa: S608
                    f" AND seq IN ({','.join('?' * len(chunk))})",
                    (bridge_id, *chunk),
                )
                found.update(rows)
        return found

    def count_pending(self, bridge_id: str) -> int:
        return self._count(bridge_id, PENDING)

    def count_parked(self, bridge_id: str) -> int:
        return self._count(bridge_id, PARKED)

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
            pending=by_state.get(PENDING, 0),
            parked=by_state.get(PARKED, 0),
            delivered=delivered,
            dead_lettered=dead_lettered,
        )

    def undelivered(self, bridge_id: str) -> list[OutboxEvent]:
        """Every event of the bridge not delivered yet, pending and parked, in seq order."""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608
                " WHERE bridge_id = ? ORDER BY seq",
                (bridge_id,),
            ).fetchall()
        return [_outbox_event(bridge_id, row) for row in rows]


_EVENT_COLUMNS = "seq, event_id, attributes, data, attempts, user_key"


def _outbox_event(bridge_id: str, row: tuple[Any, ...]) -> OutboxEvent:
    seq, event_id, attributes, data, attempts, user_key = row
    return OutboxEvent(
        seq, bridge_id, event_id, StoredJson(attributes), StoredJson(data), attempts, user_key
    )


_EventRow = tuple[str, str, str, str, str]


def _event_rows(bridge_id: str, events: Iterable[NewEvent]) -> list[_EventRow]:
    # Serialized before the transaction starts: an event that cannot be stored fails the
    # whole commit before anything is written, and the write lock is held only to write.
    return [
        (
            bridge_id,
            event.event_id,
            event.user_key,
            _to_json(event.attributes),
            _to_json(event.data),
        )
        for event in events
    ]


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _insert_events(conn: sqlite3.Connection, rows: Sequence[_EventRow], now: float) -> list[int]:
    if not rows:
        return []
    # One statement per row with RETURNING, because executemany cannot return the new
    # seqs. It costs ~2.5 us per event more (0.25 s for a 100,000-user `emit` backfill,
    # next to 0.8 s of JSON encoding); re-selecting them after an executemany would
    # depend on how AUTOINCREMENT picks seqs.
    statement = (
        "INSERT INTO events (bridge_id, event_id, user_key, attributes, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING seq"
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


def _as_port(outbox: Outbox) -> OutboxPort:
    # Never called: mypy checks here that Outbox implements runner.state.ports.OutboxPort.
    return outbox
