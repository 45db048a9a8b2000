"""`spec.events` in the pure stages: which attributes data carries (`EventView`), what
changed (`changedattributes`), `partitionkey`, `changeTypes`, and the resync mark — all on
`diff_chunk` and `build_events`, with no I/O (the same over moto and a sink:
test_events_peers.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from runner.model import EventsSpec, NewEvent, SnapshotEntry
from runner.polling.diff import Change, EventView, diff_chunk, to_record
from runner.polling.events import build_events
from runner.schemas import validator
from tests.polling.test_events import ARN, BRIDGE, OBSERVED, raw_user

HIDDEN = EventsSpec(exclude=("phone_number", "custom:*"))


def user(name: str = "amy", modified: float = 0, *, enabled: bool = True, **attrs: str) -> Any:
    raw = raw_user(name, modified, **{k.replace("__", ":"): v for k, v in attrs.items()})
    raw["Enabled"] = enabled
    return to_record(raw)


def committed(change: Change) -> SnapshotEntry:
    """The snapshot entry a commit of `change` leaves (as `runner.state.snapshots` reads it
    back: the date is kept)."""
    assert change.record is not None
    return SnapshotEntry(
        change.record.fingerprint,
        change.record.sub,
        1,
        change.record.modified_us,
        change.parts_text,
    )


def events(spec: EventsSpec, changes: list[Change], **bridge: Any) -> list[NewEvent]:
    b = replace(BRIDGE, events=spec, **bridge)
    return build_events(b, changes, observed_at=OBSERVED, scan_id="s", view=EventView(ARN, spec))


def first_then(spec: EventsSpec, before: Any, after: Any) -> list[NewEvent]:
    """The events of `after`, the snapshot having committed `before`."""
    view = EventView(ARN, spec)
    (created,) = diff_chunk({}, [before], view).changes
    diff = diff_chunk({before.username: committed(created)}, [after], view)
    return events(spec, diff.changes)


def test_globs_and_names_decide_which_attributes_are_shown() -> None:
    view = EventView(ARN, EventsSpec(include=("email*", "custom:*"), exclude=("custom:secret",)))
    shown = {n: view.visible(n) for n in ("email", "email_verified", "custom:team", "name")}
    assert shown == {"email": True, "email_verified": True, "custom:team": True, "name": False}
    assert not view.visible("custom:secret")
    assert view.visible("sub")  # kept although include does not list it...
    assert EventView(ARN, EventsSpec(exclude=("s*",))).visible("sub")  # ...nor by a glob
    assert not EventView(ARN, EventsSpec(exclude=("sub",))).visible("sub")


def test_left_out_attributes_are_absent_from_valid_data() -> None:
    record = user(email="a@example.com", phone_number="+1555", custom__team="x")
    (created,) = diff_chunk({}, [record], EventView(ARN, HIDDEN)).changes
    (event,) = events(HIDDEN, [created])
    assert [a["Name"] for a in event.data["Attributes"]] == ["sub", "email"]
    assert list(validator("sync_trigger").iter_errors(event.data)) == []
    (unfiltered,) = events(EventsSpec(), [created])
    assert len(unfiltered.data["Attributes"]) == 4


def test_a_change_to_left_out_attributes_alone_sends_nothing_and_is_committed() -> None:
    before = user(email="a@example.com", phone_number="+1555")
    after = user(modified=5, email="a@example.com", phone_number="+1666")
    view = EventView(ARN, HIDDEN)
    (created,) = diff_chunk({}, [before], view).changes
    (silent,) = diff_chunk({"amy": committed(created)}, [after], view).changes
    assert silent.silent and events(HIDDEN, [silent]) == []
    # Committed (its row rewritten), so the next scan finds nothing to send either.
    assert diff_chunk({"amy": committed(silent)}, [after], view).changes == []
    # Without a filter, the same change is an update naming what changed.
    (event,) = first_then(EventsSpec(), before, after)
    assert event.attributes["changedattributes"] == "phone_number"


def test_changedattributes_names_visible_changes_sorted() -> None:
    before = user(email="a@example.com", phone_number="+1555", given_name="Amy")
    after = user(
        modified=5, enabled=False, email="b@example.com", phone_number="+1666", nickname="A"
    )
    (event,) = first_then(HIDDEN, before, after)
    assert event.attributes["changetype"] == "updated"
    # given_name removed, nickname added, email changed, Enabled flipped; phone_number left out.
    assert event.attributes["changedattributes"] == "Enabled,email,given_name,nickname"


def test_changedattributes_for_status_and_mfa() -> None:
    before = user()
    raw = dict(before.raw)
    raw["UserStatus"] = "RESET_REQUIRED"
    raw["MFAOptions"] = [{"AttributeName": "phone_number", "DeliveryMedium": "SMS"}]
    (event,) = first_then(EventsSpec(), before, to_record(raw))
    assert event.attributes["changedattributes"] == "MFAOptions,UserStatus"


def test_no_changedattributes_on_created_and_deleted_nor_when_nothing_is_named() -> None:
    record = user(email="a@example.com")
    view = EventView(ARN)
    (created,) = diff_chunk({}, [record], view).changes
    deleted = Change("deleted", "amy", None, committed(created))
    assert all(
        "changedattributes" not in e.attributes for e in events(EventsSpec(), [created, deleted])
    )
    # A move of UserLastModifiedDate alone: sent without a filter (as before), naming nothing.
    (moved,) = first_then(EventsSpec(), record, user(modified=9, email="a@example.com"))
    assert "changedattributes" not in moved.attributes
    assert first_then(HIDDEN, record, user(modified=9, email="a@example.com")) == []


def test_partitionkey_is_the_sub_on_every_event() -> None:
    before, after = user(email="a@example.com"), user(modified=5, email="b@example.com")
    view = EventView(ARN)
    (created,) = diff_chunk({}, [before], view).changes
    (updated,) = diff_chunk({"amy": committed(created)}, [after], view).changes
    deleted = Change("deleted", "amy", None, committed(updated))
    sent = events(EventsSpec(), [created, updated, deleted])
    assert [e.attributes["partitionkey"] for e in sent] == ["sub-amy"] * 3
    no_sub = to_record({**before.raw, "Attributes": []})
    (alone,) = events(EventsSpec(), diff_chunk({}, [no_sub], view).changes)
    assert alone.attributes["partitionkey"] == "amy"  # the username, for a user without sub


def test_editing_the_filter_sends_nothing_by_itself() -> None:
    before = user(email="a@example.com", phone_number="+1555")
    (created,) = diff_chunk({}, [before], EventView(ARN, HIDDEN)).changes
    entry = committed(created)
    # Now phone_number is shown: it was known all along, so an unchanged user sends nothing...
    assert diff_chunk({"amy": entry}, [before], EventView(ARN)).changes == []
    # ...and a later change to it is named.
    after = user(modified=5, email="a@example.com", phone_number="+1666")
    (updated,) = diff_chunk({"amy": entry}, [after], EventView(ARN)).changes
    assert updated.changed == ("phone_number",) and not updated.silent


def test_the_snapshot_keeps_keyed_digests_never_values() -> None:
    amy = user("amy", email="same@example.com", phone_number="+15551234")
    bob = user("bob", email="same@example.com", phone_number="+15551234")
    view = EventView(ARN, HIDDEN)
    amy_parts = json.loads(diff_chunk({}, [amy], view).changes[0].parts_text or "")
    bob_parts = json.loads(diff_chunk({}, [bob], view).changes[0].parts_text or "")
    assert "+15551234" not in json.dumps(amy_parts) and "same@" not in json.dumps(amy_parts)
    assert amy_parts["email"] != bob_parts["email"]  # salted per user
    assert set(amy_parts) == {
        "sub",
        "email",
        "phone_number",
        "@Enabled",
        "@UserStatus",
        "@MFAOptions",
    }


def test_a_resync_mark_sends_an_unchanged_user_as_updated() -> None:
    record = user(email="a@example.com")
    view = EventView(ARN)
    (created,) = diff_chunk({}, [record], view).changes
    marked = committed(created)._replace(resync=True)
    (change,) = diff_chunk({"amy": marked}, [record], view).changes
    (event,) = events(HIDDEN, [change])
    assert event.attributes["changetype"] == "updated"
    assert "changedattributes" not in event.attributes
    assert diff_chunk({"amy": committed(change)}, [record], view).changes == []


def test_change_types_and_emit_deletions_combine() -> None:
    before, after = user(email="a@example.com"), user(modified=5, email="b@example.com")
    view = EventView(ARN)
    (created,) = diff_chunk({}, [before], view).changes
    (updated,) = diff_chunk({"amy": committed(created)}, [after], view).changes
    deleted = Change("deleted", "amy", None, committed(updated))
    changes = [created, updated, deleted]

    def kinds(spec: EventsSpec, emit_deletions: bool = True) -> list[str]:
        source = replace(BRIDGE.source, emit_deletions=emit_deletions)
        return [e.attributes["changetype"] for e in events(spec, changes, source=source)]

    assert kinds(EventsSpec()) == ["created", "updated", "deleted"]
    assert kinds(EventsSpec(change_types=("deleted",))) == ["deleted"]
    assert kinds(EventsSpec(change_types=("created", "deleted"))) == ["created", "deleted"]
    assert kinds(EventsSpec(), emit_deletions=False) == ["created", "updated"]
    assert kinds(EventsSpec(change_types=("deleted",)), emit_deletions=False) == []


def test_a_row_from_before_digests_gives_an_update_without_names() -> None:
    before, after = user(email="a@example.com"), user(modified=5, email="b@example.com")
    old_row = SnapshotEntry(before.fingerprint, before.sub, 1, before.modified_us)
    (change,) = diff_chunk({"amy": old_row}, [after], EventView(ARN, HIDDEN)).changes
    (event,) = events(HIDDEN, [change])
    assert change.changed is None and "changedattributes" not in event.attributes
    assert change.parts_text is not None  # written now: the next change is named
