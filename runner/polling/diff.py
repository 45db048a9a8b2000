"""Change detection: Cognito users -> normalized records -> created / updated / deleted.

Pure, no I/O. A streamed scan (`runner.polling.stream`) fingerprints the raw `UserType`
dicts of each chunk of pages (`to_record`) and compares them with the snapshot entries of
those users (username -> `SnapshotEntry`, `diff_chunk`), giving the `created` / `updated`
`Change`s (and the replacement pairs) that `runner.polling.events` turns into CloudEvents and
`runner.state.outbox` commits with the chunk (DESIGN §4.1). Deletions of users a scan did not
read are not found here: the stream's sweep after a complete scan finds them. What a whole
scan must come to is specified, over all its users at once, by the tests' oracle
(`tests/polling/oracle.py`).

Dates arrive as the epoch seconds of Cognito's JSON (`runner.sources.cognito.client` keeps
botocore from turning them into `tzlocal()` datetimes, which cost more than the whole
fingerprint); aware or naive datetimes and RFC 3339 strings are accepted as well, and one
instant gives one fingerprint and one string whatever form it came in.

Normalized data is the `sync_trigger` event data of DESIGN §3: exactly the seven
`UserType` fields, dates as RFC 3339 UTC strings. Dates are written the way TriggerMesh's
Go source wrote them (RFC3339Nano: fractional seconds only when non-zero, trailing zeros
trimmed, `Z`), so that its users receive the same strings.

The fingerprint is stored in every bridge's snapshot, so its canonical text (see
`to_record`) is part of the state format: changing it makes every user look updated once.
Bump `FINGERPRINT_VERSION` (which is hashed in) if it ever must change, and say so in the
release notes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner._kits.rfc3339 import instant_micros, rfc3339
from runner.errors import SourceRejected
from runner.model import ChangeType, SnapshotEntry

FINGERPRINT_VERSION = "1"
_INVALID_USER = "InvalidUserRecord"


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One scanned user: its key, its `sub` (None when it has no sub attribute) and the
    fingerprint of the whole record. Two records are equal when these are.

    `data` (the normalized `sync_trigger` data) is built from `raw` on each access, as a
    fresh dict: only changed users ever need it, and formatting the dates of every
    unchanged user in a 100,000-user scan would cost more than the rest of the diff.
    `raw` stays out of the repr: it holds people's e-mail addresses and phone numbers.
    """

    username: str
    sub: str | None
    fingerprint: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    modified_us: int = field(default=0, compare=False)  # UserLastModifiedDate, epoch µs

    @property
    def data(self) -> dict[str, Any]:
        return normalize_user(self.raw)


@dataclass(frozen=True, slots=True)
class Change:
    """One user's change. `record` is the user as scanned (None for `deleted`);
    `previous` is the snapshot entry before the change (None for `created`)."""

    kind: ChangeType
    username: str
    record: UserRecord | None
    previous: SnapshotEntry | None

    def entry(self) -> SnapshotEntry | None:
        """The snapshot entry after this change (None: the user leaves the snapshot)."""
        if self.record is None:
            return None
        return SnapshotEntry(self.record.fingerprint, self.record.sub)


def normalize_user(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A boto3 `UserType` as the `sync_trigger` data of DESIGN §3.

    Exactly `Username, Attributes, UserCreateDate, UserLastModifiedDate, Enabled,
    UserStatus, MFAOptions`, in that order; unknown fields are dropped (the TriggerMesh data
    schema allows no others). A missing `Attributes` or `MFAOptions` becomes `[]`, an
    attribute without a `Value` gets `""` (the API makes `Value` optional, the data schema
    does not). Field types are botocore's to guarantee: it parses responses by the service
    model. Raises `SourceRejected` (reason `InvalidUserRecord`) when a required field is
    missing or a date unreadable; the message names the field, never a user's data.
    """
    try:
        return {
            "Username": raw["Username"],
            "Attributes": [
                {"Name": attr["Name"], "Value": attr.get("Value", "")}
                for attr in raw.get("Attributes") or ()
            ],
            "UserCreateDate": rfc3339(raw["UserCreateDate"]),
            "UserLastModifiedDate": rfc3339(raw["UserLastModifiedDate"]),
            "Enabled": raw["Enabled"],
            "UserStatus": raw["UserStatus"],
            "MFAOptions": [
                {"AttributeName": opt["AttributeName"], "DeliveryMedium": opt["DeliveryMedium"]}
                for opt in raw.get("MFAOptions") or ()
            ],
        }
    except (KeyError, ValueError, TypeError) as exc:
        raise _invalid_user(exc) from None


def _invalid_user(exc: Exception) -> SourceRejected:
    if isinstance(exc, KeyError):
        message = f"Cognito returned a user without {exc.args[0]}"
    else:
        # Messages raised on this path (ours, and type errors) name types, never values.
        message = f"Cognito returned a user record that cannot be read: {exc}"
    return SourceRejected(message, reason=_INVALID_USER)


def to_record(raw: Mapping[str, Any]) -> UserRecord:
    """Fingerprint a boto3 `UserType` (or already normalized data) as a `UserRecord`.

    Every field the record needs is read and checked here (`SourceRejected` as in
    `normalize_user`), so reading `record.data` later cannot fail. `raw` is kept as given,
    not copied: do not mutate it afterwards.

    The fingerprint is a 128-bit blake2b of a canonical text of exactly what normalize_user
    keeps: fixed field order, attributes sorted by name (Cognito promises no order, and a
    reordering alone is not a change), dates as microseconds since the epoch (the same
    instant as epoch seconds, a datetime or a normalized string gives the same number, and
    no date is formatted that may never be sent). The text is `ascii()` of a tuple: fully
    determined by the values' code points, so it does not move with Python's Unicode
    database as `repr()` would, and about twice as fast as a JSON encoder. This function
    runs for every user on every poll (a 100,000-user pool: 100,000 calls), hence the
    inlining.
    """
    try:
        attributes = sorted(
            [(attr["Name"], attr.get("Value", "")) for attr in raw.get("Attributes") or ()]
        )
        mfa = raw.get("MFAOptions")
        modified_us = instant_micros(raw["UserLastModifiedDate"])
        text = ascii(
            (
                FINGERPRINT_VERSION,
                raw["Username"],
                attributes,
                instant_micros(raw["UserCreateDate"]),
                modified_us,
                raw["Enabled"],
                raw["UserStatus"],
                [(opt["AttributeName"], opt["DeliveryMedium"]) for opt in mfa] if mfa else [],
            )
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise _invalid_user(exc) from None
    sub = None
    for name, value in attributes:
        if name == "sub":
            sub = value
            break
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return UserRecord(raw["Username"], sub, digest, raw, modified_us)


def _replaced(previous: SnapshotEntry, user: UserRecord) -> bool:
    """Whether the scanned user is another user than the remembered one of its username."""
    return previous.sub is not None and user.sub is not None and previous.sub != user.sub


def _modified_before(user: UserRecord, other: UserRecord) -> bool:
    return user.modified_us < other.modified_us


@dataclass(frozen=True, slots=True)
class ChunkDiff:
    """What one chunk of a streamed scan changes: `changes` to commit with their events,
    and the `unchanged` users, which the commit only marks as seen by this scan."""

    changes: list[Change]
    unchanged: list[UserRecord]


def diff_chunk(known: Mapping[str, SnapshotEntry], users: Iterable[UserRecord]) -> ChunkDiff:
    """The created and updated users of one chunk of a streamed scan.

    `known` holds the snapshot entries of this chunk's usernames (those the snapshot has).
    A user twice in the chunk counts once, the copy modified last (the later one on a tie),
    at the place it first appeared; a replacement (another `sub` under the username, both
    known) is a `deleted` + `created` pair; a differing record without a `sub` on either
    side is an `updated`. Changes come in the chunk's order.

    A copy older (UserLastModifiedDate) than the one the snapshot holds, committed by an
    earlier chunk of this scan or by an earlier scan, is stale: ListUsers is eventually
    consistent, and a restarted segment reads its pages again. It changes nothing, and is
    `unchanged` (read, so not deleted): sending it would move the sink back to older data,
    and the current copy forward again. Deletions are never found here: only the sweep
    after a complete scan finds them (`runner.polling.stream`).
    """
    seen: dict[str, UserRecord] = {}
    for user in users:
        earlier = seen.get(user.username)
        if earlier is None or not _modified_before(user, earlier):
            seen[user.username] = user
    changes: list[Change] = []
    unchanged: list[UserRecord] = []
    for username, user in seen.items():
        previous = known.get(username)
        if previous is None:
            changes.append(Change("created", username, user, None))
        elif _stale(previous, user):
            unchanged.append(user)
        elif _replaced(previous, user):
            changes.append(Change("deleted", username, None, previous))
            changes.append(Change("created", username, user, None))
        elif previous.fingerprint != user.fingerprint:
            changes.append(Change("updated", username, user, previous))
        else:
            unchanged.append(user)
    return ChunkDiff(changes, unchanged)


def _stale(previous: SnapshotEntry, user: UserRecord) -> bool:
    """Whether `user` is an older copy than the one committed (a state file of 0.1 did not
    keep the date: then nothing is taken for stale)."""
    return previous.modified_us is not None and user.modified_us < previous.modified_us
