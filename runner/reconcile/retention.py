"""A bridge's durable state when its file moves or goes away.

    carry_state(outbox, old_id, new_id)    a moved or renamed bridge keeps its checkpoint
    expire_state(outbox, running=, files=, horizon=, state_dir=, now=)
                                           forget bridges gone since before `horizon`

A removed bridge's checkpoint is kept for --state-retention, so that a revert resumes where
it stopped; after that it is forgotten, but undelivered events are written out to a file
first (`runner.delivery.leftovers`), never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

from runner._kits.wording import plural
from runner.delivery.leftovers import write_undelivered
from runner.errors import StateError
from runner.state.outbox import Outbox

log = logging.getLogger(__name__)


def carry_state(outbox: Outbox, old_id: str, new_id: str) -> None:
    """A moved or renamed bridge keeps its checkpoint and undelivered events."""
    try:
        # Counted, not loaded: a moved bridge may have a whole backfill pending.
        pending = outbox.count_pending(old_id) + outbox.count_parked(old_id)
        moved = outbox.move_bridge(old_id, new_id)
    except StateError as exc:
        log.warning("move %s -> %s: state not carried over: %s", old_id, new_id, exc)
        return
    if moved:
        log.info(
            "move %s -> %s: same spec; its checkpoint and %s go with it",
            old_id,
            new_id,
            plural(pending, "undelivered event"),
        )
    else:
        log.warning(
            "move %s -> %s: %s has state of its own, so it starts from that; "
            "the state of %s is kept for --state-retention",
            old_id,
            new_id,
            new_id,
            old_id,
        )


def expire_state(
    outbox: Outbox,
    *,
    running: Collection[str],
    touch: Collection[str] | None = None,
    files: Collection[str],
    horizon: datetime,
    state_dir: Path,
    now: datetime,
) -> None:
    """Forget the checkpoints of bridges gone for longer than --state-retention.

    `touch` (default: all of `running`) are marked as seen `now`; a bridge that runs or
    still has a (selected) file is never forgotten; any other last seen before `horizon` is."""
    for bridge_id in running if touch is None else touch:
        outbox.touch(bridge_id, now)
    for bridge_id in outbox.bridge_ids():
        if bridge_id in running or bridge_id in files:
            continue
        seen = outbox.last_seen(bridge_id)
        if seen is not None and seen < horizon:
            undelivered = outbox.undelivered(bridge_id)
            if undelivered:
                # Changes nobody has seen yet are kept, in a file, never dropped.
                try:
                    path = write_undelivered(state_dir, bridge_id, undelivered)
                except OSError as exc:
                    log.warning(
                        "bridge %s: its state is kept past --state-retention, as its "
                        "undelivered events could not be written out: %s",
                        bridge_id,
                        exc,
                    )
                    continue
                log.warning(
                    "bridge %s was removed with %s not delivered; written to %s",
                    bridge_id,
                    plural(len(undelivered), "event"),
                    path,
                )
            log.info("forgetting the state of bridge %s (gone since %s)", bridge_id, seen)
            outbox.forget(bridge_id)
