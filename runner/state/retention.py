"""Which bridges have state, when each was last active, and moving or forgetting a bridge's
state as a whole (`--state-retention`, a bridge file moved with its spec unchanged).

Every write that creates state for a bridge also records its activity (`record_activity`,
in the same transaction), so the small `activity` table lists every bridge with state.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

from runner.state.store import BRIDGE_TABLES, Store


def record_activity(conn: sqlite3.Connection, bridge_id: str, when: float) -> None:
    """Inside the caller's transaction: the bridge was active at `when` (epoch seconds);
    an earlier `when` than the one recorded changes nothing."""
    conn.execute(
        "INSERT INTO activity (bridge_id, last_seen) VALUES (?, ?)"
        " ON CONFLICT (bridge_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
        (bridge_id, when),
    )


class Retention(Store):
    """The bridges of a state file, their activity, and moving or dropping their state."""

    def bridge_ids(self) -> list[str]:
        """Every bridge with state here, sorted."""
        with self._reading() as conn:
            rows = conn.execute("SELECT bridge_id FROM activity ORDER BY bridge_id").fetchall()
        return [bridge_id for (bridge_id,) in rows]

    def touch(self, bridge_id: str, when: datetime | None = None) -> None:
        """Record the bridge as active at `when` (now by default) without a scan, e.g. while
        it runs suspended or cannot reach its pool, so retention does not expire it."""
        instant = when.timestamp() if when is not None else time.time()
        with self._transaction() as conn:
            record_activity(conn, bridge_id, instant)

    def last_seen(self, bridge_id: str) -> datetime | None:
        """When the bridge last wrote state (a scan, events) or was touched; None if never."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT last_seen FROM activity WHERE bridge_id = ?", (bridge_id,)
            ).fetchone()
        return datetime.fromtimestamp(row[0], UTC) if row else None

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
            for table in BRIDGE_TABLES:
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
            for table in BRIDGE_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE bridge_id = ?", (bridge_id,))  # noqa: S608
