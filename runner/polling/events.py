"""CloudEvents for user changes: attributes and data as DESIGN §3 defines them.

Pure, no I/O. `build_events` turns the `Change`s of one chunk of a streamed scan, or of its
sweep (`runner.polling.stream`), into `NewEvent`s, which the outbox stores as JSON (`time` as
an RFC 3339 string) and delivery sends, rebuilding a cloudevents SDK event for each send
(`runner.delivery.encodings.to_cloudevent`).

Event ids are deterministic, so sinks can dedupe on (source, id): a hash of the pool ARN,
the username, the change type and a marker (DESIGN §3). The outbox stores each id with its
event, so every resend carries it. The marker decides which changes share an id:

    created   UserLastModifiedDate + the record's fingerprint: the content alone, so
              re-emitting a pool after its state was lost repeats the same ids
    updated   UserLastModifiedDate + the id of the scan that saw the change
    deleted   the id of the scan that saw the deletion

Updates cannot be keyed by content: the timestamp does not move on every change (moto
leaves it alone on AdminDisableUser/AdminEnableUser; Cognito's has millisecond
resolution), so disable -> enable -> disable would give the first and third events one id,
and a deduping sink would drop the third. A scan sees each change once: the snapshot it
commits with its events makes the next scan find nothing for that user.

A user deleted and created again under its username gives a `deleted` change and a
`created` one in the same chunk of a scan (`runner.polling.diff.diff_chunk`); the change type
is hashed in, so the two events never share an id.

What a bridge sends (`spec.events`, issue 13): only the change types it lists (`deleted`
also needs `emitDeletions`), `sync_trigger` data without the left-out attributes, nothing
for a `silent` change; every event carries `partitionkey` (the user's `sub`, the username
for a user without one) and an `updated` one `changedattributes`, when some visible name
changed. Both are extensions: the data stays TriggerMesh's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

from runner._kits.rfc3339 import rfc3339
from runner.model import (
    CHANGEDATTRIBUTES_EXTENSION,
    CHANGETYPE_EXTENSION,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_SYNC,
    PARTITIONKEY_EXTENSION,
    RESERVED_ATTRIBUTES,
    Bridge,
    ChangeType,
    NewEvent,
)
from runner.polling.diff import Change, EventView

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"


def event_id(arn: str, username: str, change: ChangeType, marker: str) -> str:
    """The deterministic id of one change: 32 hex digits of a sha256 over the four fields.

    They are hashed as a JSON array, so no choice of values can make two different
    tuples produce the same input.
    """
    text = json.dumps([arn, username, change, marker], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build_events(
    bridge: Bridge,
    changes: Sequence[Change],
    *,
    observed_at: datetime,
    scan_id: str,
    emit_deletions: bool | None = None,
    view: EventView | None = None,
) -> list[NewEvent]:
    """One event per change the bridge sends, in the order of `changes`.

    `scan_id` identifies the scan (unique per scan, e.g. a uuid4); `observed_at`
    (timezone-aware) is when it ran: the `time` of deletion events. `emit_deletions`
    overrides the bridge's `emitDeletions`; when deletions are not emitted, `deleted`
    changes give no event (the snapshot still drops the user), and so does a change of a
    type outside `spec.events.changeTypes`, or a `silent` one. `view` is the bridge's
    attribute filter (built from the bridge when not given). Extensions from the bridge's
    `ceOverrides` are added to every event; they never replace an attribute in
    `RESERVED_ATTRIBUTES` (the loader rejects such names).
    """
    if observed_at.tzinfo is None:
        raise ValueError("observed_at must be timezone-aware")
    if emit_deletions is None:
        emit_deletions = bridge.source.emit_deletions
    arn = bridge.source.pool.arn
    view = view or EventView(arn, bridge.events)
    sent = set(bridge.events.change_types)
    if not emit_deletions:
        sent.discard("deleted")
    extensions = {
        name: value
        for name, value in bridge.ce_extensions.items()
        if name not in RESERVED_ATTRIBUTES
    }
    deleted_at = rfc3339(observed_at)

    events: list[NewEvent] = []
    for change in changes:
        if change.kind not in sent or change.silent:
            continue
        if change.record is not None:
            data = view.shown(change.record.data)
            time = data["UserLastModifiedDate"]
            unique = change.record.fingerprint if change.kind == "created" else scan_id
            marker = f"{time}/{unique}"
            event_type = EVENT_TYPE_SYNC
            sub = change.record.sub
        else:
            sub = change.previous.sub if change.previous is not None else None
            data = {"Username": change.username, "sub": sub}
            time = deleted_at
            marker = scan_id
            event_type = EVENT_TYPE_DELETED
        identifier = event_id(arn, change.username, change.kind, marker)
        attributes = {
            **extensions,
            "specversion": SPECVERSION,
            "id": identifier,
            "source": arn,
            "type": event_type,
            "subject": bridge.source.pool.pool_id,
            "time": time,
            "datacontenttype": DATACONTENTTYPE,
            CHANGETYPE_EXTENSION: change.kind,
            PARTITIONKEY_EXTENSION: sub or change.username,
        }
        if change.kind == "updated" and change.changed:
            attributes[CHANGEDATTRIBUTES_EXTENSION] = ",".join(change.changed)
        events.append(NewEvent(identifier, attributes, data, user_key=change.username))
    return events
