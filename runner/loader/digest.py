"""What identifies a bridge's behaviour: the effective spec and its digests.

`bridge_digest` changes exactly when what a bridge runs changes (a reformatted file or a
default written out keeps it), and restarts the bridge; `move_key` leaves the name out, so
that a moved or renamed file is told from a new bridge. Secret references appear as
references, an inline value only as its sha256: a digest never reveals a secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from runner.model import Bridge, EventsSpec, SecretRef


def effective_spec(bridge: Bridge) -> dict[str, Any]:
    """What a bridge runs, as canonical JSON-ready data: every field of the model except its
    identity (id, file) and digests. Secret references appear as references; an inline
    value only as its sha256, so that changing it still changes the digest."""
    spec = _canonical(bridge)
    for identity in ("id", "file", "digest", "file_digest"):
        spec.pop(identity, None)
    if bridge.events == EventsSpec():
        # Left out when it is the default, so that the digests of bridges written before
        # `spec.events` existed do not move (and restart every bridge) on upgrade.
        spec.pop("events", None)
    return cast(dict[str, Any], spec)


def bridge_digest(bridge: Bridge) -> str:
    """sha256 hex of the canonical JSON of `effective_spec(bridge)`."""
    text = json.dumps(
        effective_spec(bridge), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def move_key(bridge: Bridge) -> str:
    """The digest that tells a moved or renamed bridge file from a new bridge: the effective
    spec without the name, which defaults to the file's name (`signups.yaml` -> `signups`)."""
    return bridge_digest(dataclasses.replace(bridge, name=""))


def _canonical(value: Any) -> Any:
    if isinstance(value, SecretRef):
        ref: dict[str, str] = {"source": value.source, "name": value.name, "key": value.key}
        if value.source == "value":
            ref["sha256"] = hashlib.sha256(value.literal.encode("utf-8")).hexdigest()
        return ref
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return value.as_posix()
    return value
