"""Undelivered events of a removed bridge whose state expires: kept in a file, never dropped.

    write_undelivered(state_dir, bridge_id, events) -> Path

`--state-retention` forgets a removed bridge's checkpoint, but events it committed and never
delivered (pending, or parked by a sink that refused them) are changes nobody has seen. They
are written, before the state is forgotten, to

    <state-dir>/undelivered/<bridge id, percent-encoded>.<UTC time>.jsonl

one structured CloudEvent (JSON format) per line, in commit order, so that an operator can
replay them (`curl --data-binary @-` per line, or any CloudEvents tool). The file is written
as status files are (`write_atomically`): a crash leaves either no file (and the state, which
the next pass exports again) or the whole file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from runner.delivery.encodings import to_structured_json
from runner.model import OutboxEvent
from runner.status.writer import write_atomically

UNDELIVERED_DIR = "undelivered"


def write_undelivered(state_dir: Path, bridge_id: str, events: Sequence[OutboxEvent]) -> Path:
    """Write `events` as JSON lines under `state_dir`; returns the file's path."""
    folder = state_dir / UNDELIVERED_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    # The id holds `/` (`team-a/signups`) and whatever a file name may hold: one flat,
    # reversible, printable name.
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / f"{quote(bridge_id, safe='')}.{stamp}.jsonl"
    write_atomically(target, b"".join(_line(event) + b"\n" for event in events))
    return target


def _line(event: OutboxEvent) -> bytes:
    try:
        return to_structured_json(event)
    except ValueError:
        # Not a valid CloudEvent (so it could never have been sent either): kept as stored.
        stored = {"attributes": dict(event.attributes), "data": dict(event.data)}
        return json.dumps(stored, separators=(",", ":")).encode()
