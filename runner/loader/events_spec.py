"""`spec.events` of a bridge file: the attribute filter and the change types sent (issue 13).

The schema has checked the shapes (lists of non-empty names, change types from the enum);
what is left is what the schema cannot say: `sub` excluded by name (kept otherwise, so that
consumers can still tell users apart), and `changeTypes` against `emitDeletions`, which keeps
its meaning (no deletions when false, whatever `changeTypes` lists).
"""

from __future__ import annotations

from typing import cast

from runner import defaults
from runner.loader.document import BridgeDocument, DocPath
from runner.model import ChangeType, EventsSpec

EVENTS: DocPath = ("spec", "events")
_ATTRIBUTES: DocPath = (*EVENTS, "attributes")
_CHANGE_TYPES: DocPath = (*EVENTS, "changeTypes")


def events_spec(doc: BridgeDocument, *, emit_deletions: bool) -> EventsSpec:
    """The bridge's `EventsSpec` (the defaults when `spec.events` is absent or invalid: the
    schema's errors are reported already)."""
    include = _names(doc, (*_ATTRIBUTES, "include"))
    exclude = _names(doc, (*_ATTRIBUTES, "exclude"))
    if "sub" in exclude:
        doc.warn(
            (*_ATTRIBUTES, "exclude"),
            "sub is excluded: consumers can no longer tell users apart by the data (the "
            "partitionkey extension and user_deleted data still carry it)",
        )
    listed = doc.get(_CHANGE_TYPES)
    if not isinstance(listed, list) or doc.already_reported(_CHANGE_TYPES):
        return EventsSpec(include, exclude)
    # Canonical order, whatever the file's: the digest of the spec does not move with it.
    change_types = tuple(t for t in defaults.CHANGE_TYPES if t in listed)
    if "deleted" in change_types and not emit_deletions:
        sent = [t for t in change_types if t != "deleted"]
        if sent:
            doc.warn(
                _CHANGE_TYPES,
                "changeTypes lists deleted, but emitDeletions is false: no deletions are "
                f"sent, only {', '.join(sent)}",
            )
        else:
            doc.error(
                _CHANGE_TYPES,
                "changeTypes: [deleted] with emitDeletions: false sends nothing at all: set "
                "emitDeletions: true, or list the change types to send",
            )
    return EventsSpec(include, exclude, cast(tuple[ChangeType, ...], change_types))


def _names(doc: BridgeDocument, path: DocPath) -> tuple[str, ...]:
    value = doc.get(path)
    if not isinstance(value, list) or doc.already_reported(path):
        return ()
    return tuple(name for name in value if isinstance(name, str))
