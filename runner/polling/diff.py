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

What changed, and what a bridge shows (`spec.events`, issue 13): besides the fingerprint,
the snapshot keeps a digest of each *part* of a user's record (each attribute by name, and
`@Enabled`, `@UserStatus`, `@MFAOptions`), written only for users that changed or were
created (`record_parts`), so an unchanged user costs nothing more. When the fingerprint
moved, the parts name what changed (`changedattributes`) and tell a visible change from one
to left-out attributes alone, which rewrites the user's row without an event (`silent`) and
so is never sent later either. Every attribute's digest is kept, left-out ones too, so that
editing `include` / `exclude` sends nothing by itself: an attribute that becomes visible was
already known, and only a later change to it is sent.

Part digests are 64-bit keyed blake2b, the key derived from the pool and the username (a
salt per user): the state file never holds a value in clear, equal values of two users
give different digests and no precomputed table applies. It is not encryption: someone
holding the state file can still test a guess of one user's low-entropy value (a phone
number), so the state directory stays as private as the README's security model says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from runner._kits.rfc3339 import instant_micros, rfc3339
from runner.errors import SourceRejected
from runner.model import ChangeType, EventsSpec, SnapshotEntry

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
    # The part digests to store (JSON text; None: not computed, as for a deletion).
    parts_text: str | None = field(default=None, compare=False)
    # `updated`: the sorted visible names that changed (None: unknown, the row predates parts).
    changed: tuple[str, ...] | None = field(default=None, compare=False)
    # A change to left-out attributes alone: the row is rewritten, no event is built.
    silent: bool = field(default=False, compare=False)

    def entry(self) -> SnapshotEntry | None:
        """The snapshot entry after this change (None: the user leaves the snapshot)."""
        if self.record is None:
            return None
        return SnapshotEntry(self.record.fingerprint, self.record.sub, parts=self.parts_text)


# Parts that are not attributes; `@` keeps them apart from any attribute name.
_FIELD_PARTS = ("Enabled", "UserStatus", "MFAOptions")


class EventView:
    """What one bridge shows of its users (`spec.events.attributes`) and the salt of its
    part digests (the pool ARN). Visibility is decided once per attribute name."""

    __slots__ = ("_seen", "salt", "spec")

    def __init__(self, salt: str = "", spec: EventsSpec | None = None) -> None:
        self.salt = salt
        self.spec = spec or EventsSpec()
        self._seen: dict[str, bool] = {}

    @property
    def filters(self) -> bool:
        return self.spec.filters_attributes

    def visible(self, name: str) -> bool:
        """Whether data carries the attribute: `include` (all when empty) minus `exclude`;
        `sub` stays unless excluded by its very name."""
        known = self._seen.get(name)
        if known is None:
            spec = self.spec
            if name == "sub":
                known = "sub" not in spec.exclude
            else:
                included = not spec.include or any(fnmatchcase(name, p) for p in spec.include)
                known = included and not any(fnmatchcase(name, p) for p in spec.exclude)
            self._seen[name] = known
        return known

    def shown(self, data: dict[str, Any]) -> dict[str, Any]:
        """`sync_trigger` data with the left-out attributes taken out (in place)."""
        if self.filters:
            data["Attributes"] = [a for a in data["Attributes"] if self.visible(a["Name"])]
        return data

    def parts(self, user: UserRecord) -> dict[str, str]:
        """The keyed digest of each part of the user's record (see the module docstring).

        One keyed hasher per user, copied for each part: a keyed constructor per part costs
        three times as much, and a backfill of 100,000 users computes 700,000 of them."""
        key = hashlib.blake2b(ascii((self.salt, user.username)).encode(), digest_size=32)
        keyed = hashlib.blake2b(key=key.digest(), digest_size=8)
        raw = user.raw
        texts = [(attr["Name"], attr.get("Value", "")) for attr in raw.get("Attributes") or ()]
        mfa = raw.get("MFAOptions") or ()
        texts.append(("@Enabled", ascii(raw["Enabled"])))
        texts.append(("@UserStatus", ascii(raw["UserStatus"])))
        texts.append(
            ("@MFAOptions", ascii(sorted((o["AttributeName"], o["DeliveryMedium"]) for o in mfa)))
        )
        parts: dict[str, str] = {}
        for name, text in texts:
            digest = keyed.copy()
            digest.update(str(text).encode())
            parts[name] = digest.hexdigest()
        return parts

    def changed(self, before: Mapping[str, str], now: Mapping[str, str]) -> tuple[str, ...]:
        """The sorted visible names whose digest differs (added and removed ones too)."""
        names = [
            name
            for name in before.keys() | now.keys()
            if before.get(name) != now.get(name)
            and (name[1:] in _FIELD_PARTS if name.startswith("@") else self.visible(name))
        ]
        return tuple(sorted(name.removeprefix("@") for name in names))


def parts_json(parts: Mapping[str, str]) -> str:
    # Unsorted: parts are compared as mappings, so their order is not part of the state.
    return json.dumps(parts, separators=(",", ":"))


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


def diff_chunk(
    known: Mapping[str, SnapshotEntry],
    users: Iterable[UserRecord],
    view: EventView | None = None,
) -> ChunkDiff:
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

    `view` (the bridge's `spec.events`, default: everything shown) names what changed and
    makes a change to left-out attributes alone `silent`; a user marked for a resync is an
    `updated` even when nothing changed (see the module docstring).
    """
    view = view or EventView()
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
            changes.append(_with_parts("created", user, None, view))
        elif _stale(previous, user):
            unchanged.append(user)
        elif _replaced(previous, user):
            changes.append(Change("deleted", username, None, previous))
            changes.append(_with_parts("created", user, None, view))
        elif previous.fingerprint != user.fingerprint or previous.resync:
            changes.append(_with_parts("updated", user, previous, view))
        else:
            unchanged.append(user)
    return ChunkDiff(changes, unchanged)


def _with_parts(
    kind: ChangeType, user: UserRecord, previous: SnapshotEntry | None, view: EventView
) -> Change:
    parts = view.parts(user)
    text = parts_json(parts)
    if previous is None:
        return Change(kind, user.username, user, None, text)
    if previous.parts is None:  # a row from before parts were kept: what changed is unknown
        return Change(kind, user.username, user, previous, text)
    changed = view.changed(json.loads(previous.parts), parts)
    silent = (
        view.filters
        and not changed
        and not previous.resync
        and previous.fingerprint != user.fingerprint
    )
    return Change(kind, user.username, user, previous, text, changed, silent)


def _stale(previous: SnapshotEntry, user: UserRecord) -> bool:
    """Whether `user` is an older copy than the one committed (a state file of 0.1 did not
    keep the date: then nothing is taken for stale)."""
    return previous.modified_us is not None and user.modified_us < previous.modified_us
