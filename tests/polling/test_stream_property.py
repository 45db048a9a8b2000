"""`ScanStream` held to the whole-scan oracle (tests/polling/oracle.py), over a real SQLite
outbox and without Cognito: the pages are handed to the stream as a scan would hand them.

Whatever the pages and the chunk boundaries, a streamed scan leaves every user with the entry
the oracle's changes leave, and commits the events of the oracle's changes, in the oracle's
order, for every user whose copies fall into one chunk. A user read in several chunks (a
duplicate of an eventually consistent ListUsers, or a restarted segment) may give more: each
chunk's copy that is not older than the one taken before it is reported against that one
(`created` then `updated` where the whole scan gives one `created`); exactly that, and no
other difference, is admitted (`oracle.streamed`). An interrupted scan deletes no one.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
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
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.errors import SourceRejected
from runner.model import Bridge, CognitoSource, PoolArn, Sink, SnapshotEntry, Target
from runner.polling import stream as stream_module
from runner.polling.diff import Change, UserRecord, to_record
from runner.polling.events import build_events
from runner.polling.stream import ScanStream
from runner.state.outbox import Outbox
from tests.peers.faults import OutboxProxy
from tests.polling.oracle import apply, diff_scan, diff_users, latest_copies, streamed

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


class Recording(OutboxProxy):
    """The real outbox, recording the usernames of each chunk the stream diffs (it asks for
    their entries once per chunk, in the chunk's order)."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(outbox)
        self.chunks: list[list[str]] = []

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


def of_user(changes: list[Change], username: str) -> list[Change]:
    return [c for c in changes if c.username == username]


def check_against_the_oracle(scan: Streamed, *, complete: bool) -> None:
    """The scan's events and snapshot are the oracle's, but for what `streamed` admits."""
    records = [user for chunk in scan.chunks for user in chunk]
    whole = diff_scan(scan.before, records, complete=complete)
    chunkwise = streamed(scan.before, scan.chunks, complete=complete)

    # The events: exactly those of the changes chunk by chunk, in order.
    assert sent(scan.events) == as_sent(chunkwise)
    # Those are the oracle's, user by user, but for a user read in several chunks; and all
    # of them, in the oracle's order, when there is none.
    spread = {
        username
        for username in NAMES
        if sum(any(u.username == username for u in chunk) for chunk in scan.chunks) > 1
    }
    for username in set(NAMES) - spread:
        assert of_user(chunkwise, username) == of_user(whole, username), username
    if not spread:
        assert sent(scan.events) == as_sent(whole)
    # The snapshot: the oracle's entries, and every user read keeps its last copy's date.
    assert identities(scan.after) == identities(apply(scan.before, whole))
    assert identities(apply(scan.before, chunkwise)) == identities(apply(scan.before, whole))
    latest = latest_copies(records)
    for username, after in scan.after.items():
        copy = latest.get(username)
        before = scan.before.get(username)
        stale = (
            copy is not None
            and before is not None
            and before.modified_us is not None
            and copy.modified_us < before.modified_us
        )
        expected = copy.modified_us if copy and not stale else before and before.modified_us
        assert after.modified_us == expected, username

    if not complete:
        assert_no_deletion(scan, records)
    label_what_was_tried(scan, chunkwise, whole, spread)


def label_what_was_tried(
    scan: Streamed, chunkwise: list[Change], whole: list[Change], spread: set[str]
) -> None:
    """Hypothesis' statistics (`--hypothesis-show-statistics`): how often each case of the
    property came up."""
    kinds = [(c.username, c.kind) for c in chunkwise]
    for (user, kind), (next_user, next_kind) in itertools.pairwise(kinds):
        if user == next_user and (kind, next_kind) == ("deleted", "created"):
            event("a replacement")
    read = {u.username for chunk in scan.chunks for u in chunk}
    if any(c.kind == "deleted" and c.username not in read for c in chunkwise):
        event("a deletion by the sweep")
    if any(username in scan.before and not of_user(chunkwise, username) for username in read):
        event("an unchanged user")
    for username in spread:
        event("a user read in several chunks")
        if of_user(chunkwise, username) != of_user(whole, username):
            event("... and reported otherwise than by the whole-scan oracle")


def assert_no_deletion(scan: Streamed, records: list[UserRecord]) -> None:
    """An interrupted scan: every `deleted` event is the first of a replacement pair, and no
    user it did not read left the snapshot or changed."""
    kinds = [(e.user_key, e.attributes["changetype"]) for e in scan.events]
    for i, (username, kind) in enumerate(kinds):
        if kind == "deleted":
            assert kinds[i + 1 : i + 2] == [(username, "created")]
    read = {u.username for u in records}
    for username, entry in scan.before.items():
        if username not in read:
            assert scan.after.get(username) == entry


# -- the property -----------------------------------------------------------------------------


def users(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        raw_user,
        st.sampled_from(names),
        st.sampled_from([None, "1", "2"]),  # no sub, the first user of the name, another one
        st.sampled_from(["a", "b"]),
        st.integers(min_value=0, max_value=3),
    )


@st.composite
def two_scans(draw: st.DrawFn) -> tuple[Pages, Pages]:
    """Two scans of a pool as pages: random users, duplicates and all, cut anywhere, empty
    pages too. The second holds some of the names only (the others are gone), and many of
    its users as the first read them (unchanged)."""
    first = draw(st.lists(users(NAMES), max_size=14))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, unique=True))
    fresh = users(names)
    kept = [u for u in first if u["Username"] in names]
    second = draw(st.lists(st.sampled_from(kept) | fresh if kept else fresh, max_size=14))
    return draw(paged(first)), draw(paged(second))


@st.composite
def paged(draw: st.DrawFn, scan: list[dict[str, Any]]) -> Pages:
    cuts = sorted(draw(st.lists(st.integers(0, len(scan)), max_size=6)))
    bounds = [0, *cuts, len(scan)]
    return [scan[a:b] for a, b in itertools.pairwise(bounds)]


# 60 examples: some 3 s on the 2-core machine; STREAM_PROPERTY_EXAMPLES=1000 for a long hunt.
@settings(
    max_examples=int(os.environ.get("STREAM_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    scans=two_scans(),
    first_complete=st.booleans(),
    second_complete=st.booleans(),
    sizes=st.tuples(st.integers(1, 3), st.integers(0, 4), st.integers(1, 3)),
)
def test_a_streamed_scan_commits_what_the_oracle_says(
    scans: tuple[Pages, Pages],
    first_complete: bool,
    second_complete: bool,
    sizes: tuple[int, int, int],
) -> None:
    first, second = scans
    first_chunk, more, sweep = sizes
    with chunk_sizes(first_chunk, first_chunk + more, sweep), fresh_outbox() as outbox:
        # The snapshot: what a first streamed scan committed (itself held to the oracle).
        check_against_the_oracle(
            stream_scan(outbox, first, complete=first_complete), complete=first_complete
        )
        scan = stream_scan(outbox, second, complete=second_complete)
        check_against_the_oracle(scan, complete=second_complete)
        assert outbox.has_baseline(BRIDGE.id, ARN) == (first_complete or second_complete)
        # Scanned again as it now is (each user once, in one page): nothing to tell.
        now = [u.raw for u in latest_copies(u for chunk in scan.chunks for u in chunk).values()]
        again = stream_scan(outbox, [now], complete=False)
        assert again.events == []
        assert identities(again.after) == identities(scan.after)
        assert [e.modified_us for e in again.after.values()] == [
            e.modified_us for e in scan.after.values()
        ]


# -- what the stream admits, by example -------------------------------------------------------


def test_a_user_read_in_two_chunks_newer_copy_later_is_created_then_updated() -> None:
    older, newer = raw_user("amy", email="a", modified=1), raw_user("amy", email="b", modified=2)
    with chunk_sizes(1, 1, 1), fresh_outbox() as outbox:
        scan = stream_scan(outbox, [[older], [newer]], complete=True)
        assert [(e.user_key, e.attributes["changetype"]) for e in scan.events] == [
            ("amy", "created"),
            ("amy", "updated"),
        ]
        assert [dict(e.data) for e in scan.events] == [to_record(u).data for u in (older, newer)]
        # The whole-scan oracle gives one creation, of the newer copy; the snapshot agrees.
        whole = diff_users({}, [older, newer], complete=True)
        assert [(c.kind, c.record) for c in whole] == [("created", to_record(newer))]
        assert identities(scan.after) == identities(apply({}, whole))
        chunks = [[to_record(older)], [to_record(newer)]]
        assert sent(scan.events) == as_sent(streamed({}, chunks, complete=True))


def test_an_older_copy_in_a_later_chunk_is_ignored_as_the_oracle_ignores_it() -> None:
    older, newer = raw_user("amy", email="a", modified=1), raw_user("amy", email="b", modified=2)
    with chunk_sizes(1, 1, 1), fresh_outbox() as outbox:
        scan = stream_scan(outbox, [[newer], [older]], complete=True)
        assert sent(scan.events) == as_sent(diff_users({}, [newer, older], complete=True))
        assert [e.attributes["changetype"] for e in scan.events] == ["created"]
        assert identities(scan.after) == {"amy": (to_record(newer).fingerprint, "1-amy")}


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
