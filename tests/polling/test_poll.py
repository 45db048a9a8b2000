"""One poll end to end: moto's Cognito over HTTP -> diff -> SQLite outbox (and on to a loopback
sink, so that what was committed is seen as sent).

Issue 3's acceptance: a 1,000-user backfill, one event per later change, none for an
unchanged rescan, conformance of every event, and crash safety between every two steps of
a poll. (The worker's loops, delivery and stopping: test_worker.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runner.schemas import validator
from runner.state.outbox import Outbox
from tests.peers.faults import OutboxProxy
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.sink_server import SinkServer
from tests.polling.conftest import DELETED, SYNC, Boom, Harness, changes_of, make_bridge


def assert_conformant(sink: SinkServer) -> None:
    """Every event valid: the sink checked each envelope and its data against the project's
    schemas (and the CloudEvents and TriggerMesh ones, where ../shared/conformance is)."""
    assert sink.problems == []
    assert sink.events()
    for event in sink.events():
        data = event.get_data()
        if event.get_type() == SYNC:
            assert list(validator("sync_trigger").iter_errors(data)) == [], data
        else:
            assert event.get_type() == DELETED
            assert list(validator("user_deleted").iter_errors(data)) == []


def test_backfill_then_one_event_per_change(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 1000)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)

    first = harness.pass_(bridge)
    events = sink_server.events(accepted_only=True)
    assert len(events) == 1000
    assert len({e.get_id() for e in events}) == 1000
    assert sorted(e.get_data()["Username"] for e in events) == sorted(names)  # type: ignore[index]
    assert {e.get_extension("changetype") for e in events} == {"created"}
    assert {e.get_type() for e in events} == {SYNC}
    assert {e.get_source() for e in events} == {pool.arn}
    assert {e.get_subject() for e in events} == {pool.id}
    assert first.source_counters.users_tracked == 1000
    assert first.sink_counters.delivered == 1000
    assert first.sink_counters.pending == 0

    # Unchanged rescan: nothing.
    harness.pass_(bridge)
    assert len(sink_server.events()) == 1000

    cognito_admin.create_user(pool.id, "newcomer", {"email": "new@example.com"})
    cognito_admin.update_user(pool.id, names[1], {"email": "changed@example.com"})
    cognito_admin.disable_user(pool.id, names[2])
    cognito_admin.delete_user(pool.id, names[3])
    harness.pass_(bridge)
    later = sink_server.events()[1000:]
    by_user = {
        (e.get_data()["Username"], e.get_extension("changetype"), e.get_type())  # type: ignore[index]
        for e in later
    }
    assert len(later) == 4
    assert by_user == {
        ("newcomer", "created", SYNC),
        (names[1], "updated", SYNC),
        (names[2], "updated", SYNC),
        (names[3], "deleted", DELETED),
    }
    disabled = next(e for e in later if e.get_data()["Username"] == names[2])  # type: ignore[index]
    assert disabled.get_data()["Enabled"] is False  # type: ignore[index]
    deleted = next(e for e in later if e.get_type() == DELETED)
    assert deleted.get_data()["sub"]  # type: ignore[index]
    assert_conformant(sink_server)


def test_baseline_sends_nothing_then_the_first_change(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 5)
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
    worker = harness.pass_(bridge)
    assert sink_server.events() == []
    assert worker.source_counters.users_tracked == 5

    cognito_admin.create_user(pool.id, "after-baseline")
    harness.pass_(bridge)
    assert [e.get_data()["Username"] for e in sink_server.events()] == ["after-baseline"]  # type: ignore[index]


def test_empty_pool_is_a_baseline_so_the_first_user_is_sent(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    # TriggerMesh bug #35: the first user ever created in an empty pool was never sent.
    pool = cognito_pool()
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
    harness.pass_(bridge)
    cognito_admin.create_user(pool.id, "first-ever")
    harness.pass_(bridge)
    events = sink_server.events()
    assert [(e.get_data()["Username"], e.get_extension("changetype")) for e in events] == [  # type: ignore[index]
        ("first-ever", "created")
    ]


def test_without_emit_deletions_the_snapshot_still_forgets_the_user(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.create_user(pool.id, "ghost")
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url, emit_deletions=False)
    harness.pass_(bridge)
    cognito_admin.delete_user(pool.id, "ghost")
    harness.pass_(bridge)
    assert [e.get_type() for e in sink_server.events()] == [SYNC]  # no user_deleted
    cognito_admin.create_user(pool.id, "ghost")  # the same name again is a new user
    harness.pass_(bridge)
    assert [e.get_extension("changetype") for e in sink_server.events()] == ["created", "created"]


# -- crash safety: an exception between any two steps loses nothing -------------------------


class CrashAfterScan(OutboxProxy):
    """The real outbox, but the first chunk's question to it raises: the process dies after
    the scan read its first page and before anything was committed. A chunk first asks the
    outbox for its users' snapshot entries, so the outbox (which a poll is given) is the
    seam that stops it there."""

    def known_users(self, *args: Any) -> Any:
        raise Boom("after_scan")


class CrashAfterCommit(OutboxProxy):
    """The real outbox, but the process dies as soon as a scan's first commit is done,
    before the poll has counted or woken anything."""

    def commit_scan(self, *args: Any, **kwargs: Any) -> list[int]:
        self._outbox.commit_scan(*args, **kwargs)
        raise Boom("after_commit")


CRASHES: dict[str, Callable[[Outbox], Any]] = {
    "after_scan": CrashAfterScan,
    "after_commit": CrashAfterCommit,
}


@pytest.mark.parametrize("step", ["after_scan", "after_commit"])
def test_crash_in_the_poll_loses_nothing(
    step: str,
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 70)  # two pages
    bridge = make_bridge(pool, moto_server.endpoint, sink_server.url)
    with pytest.raises(Boom):
        harness.pass_(bridge, outbox=CRASHES[step](harness.outbox))
    assert sink_server.events() == []  # nothing is sent before the commit
    harness.reopen_outbox()
    harness.pass_(bridge)  # the restarted runner
    events = sink_server.events(accepted_only=True)
    assert len({e.get_id() for e in events}) == 70
    assert set(changes_of(events)) == {(f"user{i:06d}", "created") for i in range(70)}


def test_incomplete_scan_never_emits_deletions(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    cognito_proxy: Any,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 130)  # three pages
    bridge = make_bridge(pool, cognito_proxy.endpoint, sink_server.url)
    harness.pass_(bridge)
    assert len(sink_server.events()) == 130
    # Every pagination token is rejected from now on: each restart sees only the first
    # page, so the scan gives up incomplete with 70 users unseen.
    cognito_proxy.reject_token_next(1000)
    worker = harness.pass_(bridge)
    assert len(sink_server.events()) == 130  # no deletions from a partial scan
    assert worker.source_health.status == "False"
