"""`ScanStream` held to the whole-scan oracle (tests/polling/oracle.py), over a real SQLite
outbox and without Cognito: the pages are handed to the stream as a scan would hand them.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from runner.errors import SourceRejected
from runner.model import Bridge, CognitoSource, PoolArn, Sink, SnapshotEntry, Target
from runner.polling import stream as stream_module
from runner.polling.diff import Change, UserRecord, to_record
from runner.polling.events import build_events
from runner.polling.stream import ScanStream
from runner.state.outbox import Outbox
from tests.polling.oracle import diff_users

POOL_ID = "us-west-2_str3amed1"
ARN = f"arn:aws:cognito-idp:us-west-2:043455440429:userpool/{POOL_ID}"
BRIDGE = Bridge(
    id="team/streamed",
    file=Path("team/streamed.yaml"),
    name="streamed",
    source=CognitoSource(pool=PoolArn(ARN, "aws", "us-west-2", "043455440429", POOL_ID)),
    sink=Sink(target=Target("http://127.0.0.1:9/")),
)
# A small pool, so that scans meet their snapshot's users, duplicates and replacements often;
# names that differ only by case or by an accent, so that none is taken for another and the
# sweep's order (SQLite's) is held to the oracle's (Python's).
NAMES = ["amy", "Amy", "bob", "zoe", "zoë", "éva"]
T0 = 1_704_103_200.0  # 2024-01-01T10:00:00Z
Pages = list[list[dict[str, Any]]]  # a scan, as the pages its requests returned


def raw_user(
    name: str, sub: str | None = "1", email: str = "a", modified: float = 0
) -> dict[str, Any]:
    """A `UserType` as the runner's Cognito client returns it (dates as epoch seconds).
    `sub` None: no sub attribute; otherwise the sub is unique to (name, sub)."""
    attributes = [{"Name": "email", "Value": f"{name}.{email}@example.com"}]
    if sub is not None:
        attributes.append({"Name": "sub", "Value": f"{sub}-{name}"})
    return {
        "Username": name,
        "Attributes": attributes,
        "UserCreateDate": T0,
        "UserLastModifiedDate": T0 + modified,
        "Enabled": True,
        "UserStatus": "CONFIRMED",
    }


# -- running a stream -------------------------------------------------------------------------


class Recording:
    """The real outbox, recording the usernames of each chunk the stream diffs (it asks for
    their entries once per chunk, in the chunk's order)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.chunks: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)

    def known_users(
        self, bridge_id: str, pool_arn: str, usernames: Sequence[str]
    ) -> dict[str, SnapshotEntry]:
        self.chunks.append(list(usernames))
        return self._outbox.known_users(bridge_id, pool_arn, usernames)


@dataclass
class Streamed:
    """What one streamed scan did: its chunks (as records), the events it committed (as
    the outbox holds them) and the snapshot before and after (every name of the pool)."""

    chunks: list[list[UserRecord]]
    events: list[Any]
    before: dict[str, SnapshotEntry]
    after: dict[str, SnapshotEntry]


def snapshot_of(outbox: Outbox) -> dict[str, SnapshotEntry]:
    return outbox.known_users(BRIDGE.id, ARN, NAMES)


def stream_scan(outbox: Outbox, pages: Pages, *, complete: bool) -> Streamed:
    """One scan of `pages` through a `ScanStream`: begin, add_page per page, finish."""
    recording = Recording(outbox)
    before = snapshot_of(outbox)
    already = len(outbox.pending(BRIDGE.id, 10_000))
    woken: list[int] = []

    async def run() -> None:
        stream = ScanStream(BRIDGE, recording, send=True, on_events=woken.append)
        await stream.begin()
        for page in pages:
            await stream.add_page(page)
        totals = await stream.finish(complete=complete, segments=1)
        assert totals.users_read == sum(len(page) for page in pages)
        assert totals.events == sum(woken)

    asyncio.run(run())
    events = outbox.pending(BRIDGE.id, 10_000)[already:]
    assert sum(woken) == len(events)
    return Streamed(chunks_of(pages, recording.chunks), events, before, snapshot_of(outbox))


def chunks_of(pages: Pages, asked: list[list[str]]) -> list[list[UserRecord]]:
    """The chunks the stream diffed, as records: whole pages, in order, every page in one
    (the usernames it asked about must be those of the pages so grouped)."""
    chunks: list[list[UserRecord]] = []
    remaining = list(pages)
    for usernames in asked:
        chunk: list[dict[str, Any]] = []
        while len(chunk) < len(usernames):
            assert remaining, "the stream diffed users no page held"
            chunk += remaining.pop(0)
        assert [u["Username"] for u in chunk] == usernames, "a chunk is not whole pages"
        chunks.append([to_record(u) for u in chunk])
    assert all(page == [] for page in remaining), "a page was never diffed"
    return chunks


@contextmanager
def chunk_sizes(first: int, chunk: int, sweep: int) -> Iterator[None]:
    with mock.patch.multiple(
        stream_module, FIRST_CHUNK_USERS=first, CHUNK_USERS=chunk, SWEEP_PAGE=sweep
    ):
        yield


@contextmanager
def fresh_outbox() -> Iterator[Outbox]:
    """A state file of its own (hypothesis runs many examples in one test)."""
    with (
        tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp,
        Outbox.open(Path(tmp)) as outbox,
    ):
        yield outbox


# -- what a scan must have committed ----------------------------------------------------------


def as_sent(changes: list[Change]) -> list[tuple[str, str, Any, str | None]]:
    """(user, changetype, data, id of a creation) of the events the changes give, in order.
    A creation's id is keyed by its content; the others' by the scan's id, which is the
    stream's own."""
    built = build_events(BRIDGE, changes, observed_at=datetime.now(UTC), scan_id="any")
    return [described(e) for e in built]


def sent(events: list[Any]) -> list[tuple[str, str, Any, str | None]]:
    return [described(e) for e in events]


def described(e: Any) -> tuple[str, str, Any, str | None]:
    kind = e.attributes["changetype"]
    return (e.user_key, kind, dict(e.data), e.event_id if kind == "created" else None)


def identities(snapshot: dict[str, SnapshotEntry]) -> dict[str, tuple[str, str | None]]:
    """Username -> (fingerprint, sub): what makes two entries the same user's same record."""
    return {username: (e.fingerprint, e.sub) for username, e in snapshot.items()}


# -- the poller's entry point: raw users, the garbage collector paused ------------------------


def test_a_streamed_scan_of_raw_users_commits_the_oracles_changes() -> None:
    kept, changed, gone = raw_user("bob"), raw_user("zoe"), raw_user("éva")
    changed_now, new = raw_user("zoe", email="b", modified=1), raw_user("amy")
    for complete in (True, False):
        with fresh_outbox() as outbox:
            stream_scan(outbox, [[kept, changed, gone]], complete=True)
            scan = stream_scan(outbox, [[kept, changed_now, new]], complete=complete)
            expected = diff_users(scan.before, [kept, changed_now, new], complete=complete)
            assert sent(scan.events) == as_sent(expected)
            assert [(e.user_key, e.attributes["changetype"]) for e in scan.events] == [
                ("zoe", "updated"),
                ("amy", "created"),
                *([("éva", "deleted")] if complete else []),
            ]
            assert scan.events[0].data == to_record(changed_now).data


def test_the_stream_fingerprints_with_the_garbage_collector_paused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []

    def spy(raw: dict[str, Any]) -> UserRecord:
        seen.append(gc.isenabled())
        return to_record(raw)

    monkeypatch.setattr(stream_module, "to_record", spy)
    assert gc.isenabled()
    with fresh_outbox() as outbox:
        stream_scan(outbox, [[raw_user("amy")]], complete=True)
        assert seen == [False] and gc.isenabled()

        with pytest.raises(SourceRejected):  # the chunk's commit fails, inside the pause
            stream_scan(outbox, [[raw_user("bob"), {"Username": "no-dates"}]], complete=True)
        assert gc.isenabled()

        gc.disable()
        try:
            stream_scan(outbox, [[raw_user("zoe")]], complete=True)
            assert not gc.isenabled()  # an application running without GC keeps it off
        finally:
            gc.enable()
