"""The specification of a scan's changes: the whole-scan diff, the tests' oracle.

The runner streams its scans (`runner.polling.stream`): chunks of pages are diffed against
their users' snapshot entries (`runner.polling.diff.diff_chunk`) and committed one by one,
and the users a complete scan did not read are swept into deletions afterwards. What that
must produce is said here in one piece, over the whole scan at once, as the runner computed
it before it streamed (`diff_scan`, `diff_users`: moved here from `runner.polling.diff`):

- a user read twice in one scan counts once: the copy modified last (the later one on a
  tie), at the position where the user first appeared;
- a copy older (UserLastModifiedDate) than the one last committed for that user is stale
  (ListUsers is eventually consistent): it changes nothing, and the user was read;
- a user deleted and created again under the same username (the scanned `sub` differs from
  the remembered one, both known) is a `deleted` + `created` pair, complete scan or not;
- deletions of users the scan did not read come only from a complete scan.

`streamed` is the same diff applied chunk by chunk, which is what the stream is allowed to
produce where a user's copies fall into several chunks (see its docstring): the tests hold
`ScanStream` to `streamed`, and `streamed` to `diff_scan` (tests/polling/test_stream_property.py).

Self-contained on purpose: of the runner, only `to_record` (the fingerprint both sides
compare) is used, never its diff, so that a mistake in it cannot hide in the oracle as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner.model import SnapshotEntry
from runner.polling.diff import Change, UserRecord, to_record


def diff_scan(
    snapshot: Mapping[str, SnapshotEntry],
    users: Iterable[UserRecord],
    *,
    complete: bool,
) -> list[Change]:
    """The changes that turn `snapshot` into the scanned `users`.

    `created` and `updated` come in scan order, then `deleted` sorted by username.
    Deletions of missing users are reported only when `complete` is True: a user missing
    from an interrupted scan may simply not have been read. ListUsers is eventually
    consistent, so a user can appear twice in one scan; the copy modified last wins (the
    later one on a tie), at the position where the user first appeared.

    A user deleted and created again under the same username between two scans is a
    *replacement*: the scanned `sub` differs from the remembered one (both known). It gives
    a `deleted` change for the old user immediately followed by a `created` change for the
    new one, at the user's place in scan order, whether or not the scan is complete: the
    new record itself proves the old user is gone (a `sub` is never reused). Applied in
    order, the pair leaves the new user in the snapshot. Without a `sub` on either side a
    differing record stays an `updated`: nothing shows it is another user.
    """
    seen = latest_copies(users)
    changes: list[Change] = []
    for username, user in seen.items():
        previous = snapshot.get(username)
        if previous is None:
            changes.append(Change("created", username, user, None))
        elif previous.modified_us is not None and user.modified_us < previous.modified_us:
            continue  # stale
        elif previous.sub is not None and user.sub is not None and previous.sub != user.sub:
            changes.append(Change("deleted", username, None, previous))
            changes.append(Change("created", username, user, None))
        elif previous.fingerprint != user.fingerprint:
            changes.append(Change("updated", username, user, previous))
    if complete:
        changes.extend(
            Change("deleted", username, None, snapshot[username])
            for username in sorted(snapshot.keys() - seen.keys())
        )
    return changes


def diff_users(
    snapshot: Mapping[str, SnapshotEntry],
    users: Iterable[Mapping[str, Any]],
    *,
    complete: bool,
) -> list[Change]:
    """`diff_scan` of the raw `UserType` dicts of one scan (each through `to_record`, which
    raises `SourceRejected` for an unreadable one)."""
    return diff_scan(snapshot, [to_record(user) for user in users], complete=complete)


def latest_copies(users: Iterable[UserRecord]) -> dict[str, UserRecord]:
    """Username -> the copy of that user modified last (the later one on a tie), in the
    order the usernames first appear."""
    seen: dict[str, UserRecord] = {}
    for user in users:
        earlier = seen.get(user.username)
        if earlier is None or user.modified_us >= earlier.modified_us:
            seen[user.username] = user
    return seen


def apply(
    snapshot: Mapping[str, SnapshotEntry], changes: Iterable[Change]
) -> dict[str, SnapshotEntry]:
    """The snapshot after `changes`, applied in order (entries as `Change.entry` gives them:
    fingerprint and `sub`)."""
    result = dict(snapshot)
    for change in changes:
        after = change.entry()
        if after is None:
            del result[change.username]
        else:
            result[change.username] = after
    return result


def streamed(
    snapshot: Mapping[str, SnapshotEntry],
    chunks: Sequence[Sequence[UserRecord]],
    *,
    complete: bool,
) -> list[Change]:
    """`diff_scan` applied chunk by chunk, as a streamed scan commits: each chunk is diffed
    (incomplete) against the snapshot as the chunks before it left it, except that a user's
    copy (the chunk's latest, at the user's first place in the chunk) older than the one an
    earlier chunk of this scan took is ignored (as `diff_scan` ignores one older than the
    snapshot's); after a complete scan, the users no chunk read are deleted, sorted by
    username.

    It equals `diff_scan(snapshot, [all users], complete=...)` for every user whose copies
    all fall into one chunk. A user read in several chunks ends with the same entry, but
    each chunk's newer copy is reported against the previous one: `created` then `updated`
    where the whole scan gives one `created`, and so on.
    """
    current = dict(snapshot)
    read: dict[str, int] = {}  # username -> modified date of the copy this scan last took
    changes: list[Change] = []
    for chunk in chunks:
        copies = latest_copies(chunk).values()
        taken = [user for user in copies if user.modified_us >= read.get(user.username, 0)]
        for user in copies:  # a stale copy is read too: it is no deletion
            read.setdefault(user.username, 0)
        chunk_changes = diff_scan(current, taken, complete=False)
        changes += chunk_changes
        current = apply(current, chunk_changes)
        read.update((user.username, user.modified_us) for user in taken)
    if complete:
        changes.extend(
            Change("deleted", username, None, snapshot[username])
            for username in sorted(snapshot.keys() - read.keys())
        )
    return changes
