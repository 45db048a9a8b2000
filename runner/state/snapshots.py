"""Each bridge's snapshot of its pool: what the committed scans last saw of every user, and
whether a complete scan (a baseline) was ever committed.

A streamed scan begins a generation (`Snapshots.begin_scan`), reads the entries of each
chunk's usernames (`known_users`), and writes each chunk's rows only together with the
chunk's events (`runner.state.outbox.Outbox.commit_scan`, which applies a `SnapshotDelta` in
its transaction): a crash never leaves a snapshot that is ahead of the outbox. Every user a
scan reads is marked with its generation, changed or not; after a complete scan the users
left unmarked (`unseen_users`) are the deleted ones. An interrupted scan marks only what it
read and sweeps nothing, and the next scan's new generation starts the marking afresh.

What the snapshot is told about a change is described here as Protocols (`SnapshotChange`,
`ScannedUser`), which `runner.polling.diff.Change` and its `UserRecord` satisfy as they are:
the durable layer needs nothing from the layer above it, and a scan of 100,000 new users is
not copied into other records before it is written.

The `fingerprint` column holds more than the fingerprint, so that no schema migration was
needed for `spec.events` (issue 13): `<fingerprint>` or `<fingerprint> <part digests as
JSON>` (`runner.polling.diff` writes the digests of the users it commits), prefixed with
`~` while `bridge-runner resync` asks for the user to be sent again (`request_resync`; the
next commit of the user's row drops it). `_stored` and `_entry` are the only places that
write and read that form.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from runner._kits.gcpause import gc_paused
from runner.model import SnapshotEntry
from runner.state.store import Store

# Usernames per `IN (...)` query: far below SQLite's host-parameter limit (32,766).
_IN_CHUNK = 500
_MARK_SEEN = (
    "UPDATE snapshot SET seen_gen = ? WHERE bridge_id = ? AND pool_arn = ? AND username IN ({})"
)
_KNOWN_USERS = (
    "SELECT username, fingerprint, sub, seen_gen, modified_us FROM snapshot"
    " WHERE bridge_id = ? AND pool_arn = ? AND username IN ({})"
)


_RESYNC = "~"


def _stored(fingerprint: str, parts: str | None) -> str:
    return fingerprint if parts is None else f"{fingerprint} {parts}"


def _entry(stored: str, sub: str | None, gen: int, modified: int | None) -> SnapshotEntry:
    resync = stored.startswith(_RESYNC)
    fingerprint, _, parts = stored.removeprefix(_RESYNC).partition(" ")
    return SnapshotEntry(fingerprint, sub, gen, modified, parts or None, resync)


class ScannedUser(Protocol):
    """What the snapshot keeps of a scanned user."""

    @property
    def username(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def sub(self) -> str | None: ...

    @property
    def modified_us(self) -> int: ...


class SnapshotChange(Protocol):
    """One user's change, as the snapshot applies it: `record` is the user as scanned, None
    when the user leaves the snapshot (deleted)."""

    @property
    def username(self) -> str: ...

    @property
    def record(self) -> ScannedUser | None: ...

    # Optional: `parts_text` (str | None), the part digests to keep with the row (see the
    # module docstring); a change without it keeps none.


@dataclass(frozen=True, slots=True)
class SnapshotDelta:
    """The snapshot rows one scan writes, built before its transaction begins (so that the
    write lock is held only to write)."""

    bridge_id: str
    pool_arn: str
    upserts: list[tuple[str, str, str, str, str | None, int, int]]
    deletions: list[tuple[str, str, str]]
    generation: int
    marks: list[str]  # usernames of the unchanged users the scan read

    @classmethod
    def of(
        cls,
        bridge_id: str,
        pool_arn: str,
        changes: Sequence[SnapshotChange],
        *,
        generation: int = 0,
        unchanged: Sequence[ScannedUser] = (),
    ) -> SnapshotDelta:
        upserts = [
            (
                bridge_id,
                pool_arn,
                change.username,
                _stored(change.record.fingerprint, getattr(change, "parts_text", None)),
                change.record.sub,
                generation,
                change.record.modified_us,
            )
            for change in changes
            if change.record is not None
        ]
        deletions = [
            (bridge_id, pool_arn, change.username) for change in changes if change.record is None
        ]
        marks = [user.username for user in unchanged]
        return cls(bridge_id, pool_arn, upserts, deletions, generation, marks)


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
        "INSERT INTO snapshot"
        " (bridge_id, pool_arn, username, fingerprint, sub, seen_gen, modified_us)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (bridge_id, pool_arn, username)"
        " DO UPDATE SET fingerprint = excluded.fingerprint, sub = excluded.sub,"
        " seen_gen = excluded.seen_gen, modified_us = excluded.modified_us",
        delta.upserts,
    )
    # An unchanged user keeps its fingerprint, so its modified date too: only the mark moves.
    # One statement per 500 users: measured ~3x faster than one per user.
    for start in range(0, len(delta.marks), _IN_CHUNK):
        chunk = delta.marks[start : start + _IN_CHUNK]
        conn.execute(
            _MARK_SEEN.format(",".join("?" * len(chunk))),
            (delta.generation, delta.bridge_id, delta.pool_arn, *chunk),
        )
    if complete:
        conn.execute(
            "INSERT INTO baselines (bridge_id, pool_arn, completed_at) VALUES (?, ?, ?)"
            " ON CONFLICT (bridge_id, pool_arn) DO NOTHING",
            (delta.bridge_id, delta.pool_arn, now),
        )


class Snapshots(Store):
    """Reading the snapshots and baselines of a state file, and numbering the scans."""

    def begin_scan(self, bridge_id: str, pool_arn: str) -> int:
        """A new scan of the pool for the bridge: its generation, higher than any before."""
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO scans (bridge_id, pool_arn, generation) VALUES (?, ?, 1)"
                " ON CONFLICT (bridge_id, pool_arn) DO UPDATE SET generation = generation + 1"
                " RETURNING generation",
                (bridge_id, pool_arn),
            ).fetchone()
        return int(row[0])

    def known_users(
        self, bridge_id: str, pool_arn: str, usernames: Sequence[str]
    ) -> dict[str, SnapshotEntry]:
        """The snapshot entries of those of `usernames` the snapshot has (one chunk's)."""
        known: dict[str, SnapshotEntry] = {}
        with self._reading() as conn:
            for start in range(0, len(usernames), _IN_CHUNK):
                chunk = list(usernames[start : start + _IN_CHUNK])
                query = _KNOWN_USERS.format(",".join("?" * len(chunk)))
                rows = conn.execute(query, (bridge_id, pool_arn, *chunk))
                for username, *entry in rows:
                    known[username] = _entry(*entry)
        return known

    def unseen_users(
        self, bridge_id: str, pool_arn: str, generation: int, *, after: str, limit: int
    ) -> list[tuple[str, SnapshotEntry]]:
        """Up to `limit` users the scan `generation` did not read, by username after `after`
        (keyset paging, so that a sweep holds one page at a time)."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT username, fingerprint, sub, seen_gen, modified_us FROM snapshot"
                " WHERE bridge_id = ? AND pool_arn = ? AND username > ? AND seen_gen != ?"
                " ORDER BY username LIMIT ?",
                (bridge_id, pool_arn, after, generation, limit),
            ).fetchall()
        return [
            (username, _entry(fp, sub, gen, modified)) for username, fp, sub, gen, modified in rows
        ]

    def request_resync(self, bridge_id: str) -> int:
        """Mark every user of the bridge's snapshots to be sent again by the next scan that
        reads it (`bridge-runner resync`); returns how many users the snapshots hold. A
        user already marked stays marked once."""
        with self._transaction() as conn:
            conn.execute(
                f"UPDATE snapshot SET fingerprint = '{_RESYNC}' || fingerprint"  # noqa: S608
                f" WHERE bridge_id = ? AND fingerprint NOT LIKE '{_RESYNC}%'",
                (bridge_id,),
            )
            row = conn.execute(
                "SELECT count(*) FROM snapshot WHERE bridge_id = ?", (bridge_id,)
            ).fetchone()
        return int(row[0])

    def count_users(self, bridge_id: str, pool_arn: str) -> int:
        """How many users the bridge's snapshot of the pool holds."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT count(*) FROM snapshot WHERE bridge_id = ? AND pool_arn = ?",
                (bridge_id, pool_arn),
            ).fetchone()
        return int(row[0])

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
            return {username: _entry(fp, sub, 0, None) for username, fp, sub in rows}
