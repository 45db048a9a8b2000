"""`diff_chunk`: one chunk of a streamed scan against its users' snapshot entries (pure),
held to the oracle (tests/polling/oracle.py): the whole-scan diff for a chunk whose users
this scan has not read before, the diff chunk by chunk (`streamed`) for one it has."""

from __future__ import annotations

import pytest

from runner.model import SnapshotEntry
from runner.polling.diff import diff_chunk, to_record
from tests.polling.oracle import diff_scan, streamed
from tests.polling.test_diff import SUB, boto3_user

GEN = 7


def entry_of(raw: dict[str, object], *, seen_gen: int = 0) -> SnapshotEntry:
    record = to_record(raw)
    return SnapshotEntry(record.fingerprint, record.sub, seen_gen, record.modified_us)


def kinds(diff: object) -> list[tuple[str, str]]:
    return [(c.kind, c.username) for c in diff.changes]  # type: ignore[attr-defined]


def test_new_changed_replaced_and_unchanged_users() -> None:
    same = boto3_user(Username="same")
    changed_before = boto3_user(Username="changed")
    changed_now = boto3_user(Username="changed", Enabled=False)
    replaced_before = boto3_user(Username="again")
    replaced_now = boto3_user(
        Username="again", Attributes=[{"Name": "sub", "Value": "another-" + SUB}]
    )
    known = {
        "same": entry_of(same),
        "changed": entry_of(changed_before),
        "again": entry_of(replaced_before),
    }
    users = [to_record(u) for u in (boto3_user(Username="new"), same, changed_now, replaced_now)]
    diff = diff_chunk(known, users)
    assert kinds(diff) == [
        ("created", "new"),
        ("updated", "changed"),
        ("deleted", "again"),
        ("created", "again"),
    ]
    assert [u.username for u in diff.unchanged] == ["same"]
    assert diff.changes == diff_scan(known, users, complete=False)


@pytest.mark.parametrize("seen_gen", [GEN, GEN - 1], ids=["this scan", "an earlier scan"])
def test_an_older_copy_than_the_committed_one_is_stale_read_but_not_sent(seen_gen: int) -> None:
    newer = boto3_user(UserLastModifiedDate=1_800_000_000.0, Enabled=False)
    older = boto3_user(UserLastModifiedDate=1_700_000_000.0)
    known = {"johndoe": entry_of(newer, seen_gen=seen_gen)}
    diff = diff_chunk(known, [to_record(older)])
    assert kinds(diff) == []  # sending it would move the sink back to older data
    assert [u.username for u in diff.unchanged] == ["johndoe"]  # read: not swept
    assert diff_scan(known, [to_record(older)], complete=True) == []  # the oracle agrees
    # The oracle, chunk by chunk: the second chunk's older copy adds nothing.
    chunks = [[to_record(newer)], [to_record(older)]]
    assert [c.kind for c in streamed({}, chunks, complete=True)] == ["created"]


def test_a_committed_entry_without_a_date_takes_no_copy_for_stale() -> None:
    # A state file of bridge-runner 0.1 kept no modified date: compared as before.
    newer = boto3_user(UserLastModifiedDate=1_800_000_000.0, Enabled=False)
    older = boto3_user(UserLastModifiedDate=1_700_000_000.0)
    record = to_record(newer)
    known = {"johndoe": SnapshotEntry(record.fingerprint, record.sub)}
    assert kinds(diff_chunk(known, [to_record(older)])) == [("updated", "johndoe")]


def test_a_newer_copy_of_a_user_this_scan_already_committed_is_an_update() -> None:
    older = boto3_user(UserLastModifiedDate=1_700_000_000.0)
    newer = boto3_user(UserLastModifiedDate=1_800_000_000.0, Enabled=False)
    known = {"johndoe": entry_of(older, seen_gen=GEN)}
    assert kinds(diff_chunk(known, [to_record(newer)])) == [("updated", "johndoe")]
    chunks = [[to_record(older)], [to_record(newer)]]
    assert [c.kind for c in streamed({}, chunks, complete=True)] == ["created", "updated"]


def test_a_user_twice_in_one_chunk_counts_once_the_copy_modified_last() -> None:
    older = boto3_user(UserLastModifiedDate=1_700_000_000.0)
    newer = boto3_user(UserLastModifiedDate=1_800_000_000.0, Enabled=False)
    diff = diff_chunk({}, [to_record(newer), to_record(older)])
    assert kinds(diff) == [("created", "johndoe")]
    assert diff.changes == diff_scan({}, [to_record(newer), to_record(older)], complete=False)
    assert diff.changes[0].record is not None
    assert diff.changes[0].record.raw["Enabled"] is False
