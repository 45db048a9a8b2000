"""The specification of a scan's changes: the whole-scan diff, the tests' oracle.

The runner streams its scans (`runner.polling.stream`): chunks of pages are diffed against
their users' snapshot entries (`runner.polling.diff.diff_chunk`) and committed one by one,
and the users a complete scan did not read are swept into deletions afterwards. What that
must produce is said here in one piece, over the whole scan at once, as the runner computed
it before it streamed (`diff_scan`, `diff_users`: moved here from `runner.polling.diff`):

- a user read twice in one scan counts once: the copy modified last (the later one on a
  tie), at the position where the user first appeared;
- a user deleted and created again under the same username (the scanned `sub` differs from
  the remembered one, both known) is a `deleted` + `created` pair, complete scan or not;
- deletions of users the scan did not read come only from a complete scan.

Self-contained on purpose: nothing here calls the runner's diff helpers, so that a mistake
in them cannot hide in the oracle as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
