"""Each bridge's snapshot of its pool: what the committed scans last saw of every user, and
whether a complete scan (a baseline) was ever committed.

The snapshot is read before a diff (`Snapshots.load_snapshot`) and written only together
with the events of the same scan (`runner.state.outbox.Outbox.commit_scan`, which applies a
`SnapshotDelta` in its transaction): a crash never leaves a snapshot that is ahead of the
outbox.

What the snapshot is told about a change is described here as Protocols (`SnapshotChange`,
`ScannedUser`), which `runner.polling.diff.Change` and its `UserRecord` satisfy as they are:
the durable layer needs nothing from the layer above it, and a scan of 100,000 new users is
not copied into other records before it is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from runner._kits.gcpause import gc_paused
from runner.model import SnapshotEntry
from runner.state.store import Store


class ScannedUser(Protocol):
    """What the snapshot keeps of a scanned user."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def sub(self) -> str | None: ...


class SnapshotChange(Protocol):
    """One user's change, as the snapshot applies it: `record` is the user as scanned, None
    when the user leaves the snapshot (deleted)."""

    @property
    def username(self) -> str: ...

    @property
    def record(self) -> ScannedUser | None: ...


@dataclass(frozen=True, slots=True)
class SnapshotDelta:
    """The snapshot rows one scan writes, built before its transaction begins (so that the
    write lock is held only to write)."""

    bridge_id: str
    pool_arn: str
    upserts: list[tuple[str, str, str, str, str | None]]
    deletions: list[tuple[str, str, str]]

    @classmethod
    def of(cls, bridge_id: str, pool_arn: str, changes: Sequence[SnapshotChange]) -> SnapshotDelta:
        upserts = [
            (bridge_id, pool_arn, change.username, change.record.fingerprint, change.record.sub)
            for change in changes
            if change.record is not None
        ]
        deletions = [
            (bridge_id, pool_arn, change.username) for change in changes if change.record is None
        ]
        return cls(bridge_id, pool_arn, upserts, deletions)


def write_delta(
    conn: sqlite3.Connection, delta: SnapshotDelta, *, complete: bool, now: float
) -> None:
    """Apply `delta` inside the caller's transaction, and mark the baseline when the scan
    was `complete`."""
    # Deletions first: a user deleted and created again under the same name between two
    # scans is a (deleted, created) pair, and the new entry must be what remains.
    conn.executemany(
        "DELETE FROM snapshot WHERE bridge_id = ? AND pool_arn = ? AND username = ?",
        delta.deletions,
    )
    conn.executemany(
        "INSERT INTO snapshot (bridge_id, pool_arn, username, fingerprint, sub)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (bridge_id, pool_arn, username)"
        " DO UPDATE SET fingerprint = excluded.fingerprint, sub = excluded.sub",
        delta.upserts,
    )
    if complete:
        conn.execute(
            "INSERT INTO baselines (bridge_id, pool_arn, completed_at) VALUES (?, ?, ?)"
            " ON CONFLICT (bridge_id, pool_arn) DO NOTHING",
            (delta.bridge_id, delta.pool_arn, now),
        )


class Snapshots(Store):
    """Reading the snapshots and baselines of a state file."""

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
