"""The reconcile plan: a pure diff of the bridges the directory asks for against those running.

    plan_reconcile(desired, running) -> Plan

No I/O and no clock: the reconciler (which owns the poller tasks) feeds it what the loader
found and what runs, then carries the plan out in order. Rules (DESIGN §4.3):

- a valid, selected, not suspended bridge that does not run is started;
- one that runs with another effective digest is restarted; with the same digest it is kept;
- a running bridge whose file was removed, is suspended or is no longer selected (shard /
  selector) is stopped;
- last good: a file that turns invalid keeps its running version (kept, no action); a file
  that has never been valid never starts.

Actions are ordered stops, restarts, starts, keeps (each group by id), so that everything that
must stop has stopped before anything new starts.

The shard and selector helpers that decide which bridges this runner owns live here too, as
they are pure functions of a bridge's id and labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from runner.errors import UsageError
from runner.model import Bridge


class ActionKind(StrEnum):
    """What the reconciler does to one bridge. The order of the members is the order of a plan."""

    STOP = "stop"
    RESTART = "restart"
    START = "start"
    KEEP = "keep"


_KIND_ORDER = {kind: index for index, kind in enumerate(ActionKind)}


class Reason(StrEnum):
    """Why an action was chosen: CamelCase, for logs and status messages."""

    REMOVED = "FileRemoved"  # the file is gone from the directory
    SUSPENDED = "Suspended"  # spec.suspend is true
    NOT_SELECTED = "NotSelected"  # another shard owns it, or --selector does not match
    SPEC_CHANGED = "SpecChanged"  # the effective spec digest differs from the running one
    ADDED = "Added"  # valid, wanted and not running
    UNCHANGED = "Unchanged"  # running with the digest on disk
    LAST_GOOD = "LastGood"  # the file is invalid; its last valid version keeps running


_REASON_TEXT = {
    Reason.REMOVED: "its file was removed",
    Reason.SUSPENDED: "spec.suspend is true",
    Reason.NOT_SELECTED: "not assigned to this runner (--shard / --selector)",
    Reason.SPEC_CHANGED: "its effective spec changed",
    Reason.ADDED: "valid and not running",
    Reason.UNCHANGED: "unchanged",
    Reason.LAST_GOOD: "the file is invalid; its last good version keeps running",
}


@dataclass(frozen=True, slots=True)
class DesiredBridge:
    """What the directory says about one bridge file.

    `bridge` is the valid version on disk, or None when the file is invalid (or unreadable).
    `selected` is False when this runner's shard or selector leaves the bridge to another
    runner (see `is_selected`).
    """

    id: str
    bridge: Bridge | None
    selected: bool = True

    @property
    def valid(self) -> bool:
        return self.bridge is not None

    @property
    def suspended(self) -> bool:
        return self.bridge is not None and self.bridge.suspend


@dataclass(frozen=True, slots=True)
class RunningBridge:
    """A bridge whose poller runs, and the effective digest of the version it runs."""

    id: str
    digest: str


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan.

    `bridge` is the version to run after the step: the one to start (START, RESTART), the
    unchanged one on disk (KEEP/Unchanged); None for STOP and for KEEP/LastGood (the running
    version stays, the file on disk is invalid). `running_digest` is the digest running before
    the step (None for START).
    """

    kind: ActionKind
    bridge_id: str
    reason: Reason
    bridge: Bridge | None = None
    running_digest: str | None = None

    @property
    def digest_after(self) -> str | None:
        """The effective digest running once the step is done (None: not running)."""
        if self.kind is ActionKind.STOP:
            return None
        if self.bridge is not None:
            return self.bridge.digest
        return self.running_digest

    def describe(self) -> str:
        """A log line: `restart team-a/signups: its effective spec changed (1a2b.. -> 9f8e..)`."""
        text = f"{self.kind.value} {self.bridge_id}: {_REASON_TEXT[self.reason]}"
        if self.kind is ActionKind.RESTART and self.bridge is not None:
            text += f" ({_short(self.running_digest)} -> {_short(self.bridge.digest)})"
        return text


@dataclass(frozen=True, slots=True)
class Plan:
    """Ordered actions: stops, then restarts, then starts, then keeps."""

    actions: tuple[Action, ...]

    def of_kind(self, kind: ActionKind) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind is kind)

    @property
    def stops(self) -> tuple[Action, ...]:
        return self.of_kind(ActionKind.STOP)

    @property
    def restarts(self) -> tuple[Action, ...]:
        return self.of_kind(ActionKind.RESTART)

    @property
    def starts(self) -> tuple[Action, ...]:
        return self.of_kind(ActionKind.START)

    @property
    def keeps(self) -> tuple[Action, ...]:
        return self.of_kind(ActionKind.KEEP)

    @property
    def changes(self) -> tuple[Action, ...]:
        """Every action that touches a task (all but KEEP)."""
        return tuple(a for a in self.actions if a.kind is not ActionKind.KEEP)


def plan_reconcile(
    desired: Mapping[str, DesiredBridge], running: Mapping[str, RunningBridge]
) -> Plan:
    """The actions that bring `running` in line with `desired` (both keyed by bridge id)."""
    actions = (
        _action_for(bridge_id, desired.get(bridge_id), running.get(bridge_id))
        for bridge_id in desired.keys() | running.keys()
    )
    chosen = [a for a in actions if a is not None]
    chosen.sort(key=lambda a: (_KIND_ORDER[a.kind], a.bridge_id))
    return Plan(tuple(chosen))


def _action_for(
    bridge_id: str, wanted: DesiredBridge | None, current: RunningBridge | None
) -> Action | None:
    running_digest = current.digest if current is not None else None
    stop_reason = _stop_reason(wanted)
    if stop_reason is not None or wanted is None:
        if current is None:
            return None
        return Action(
            ActionKind.STOP, bridge_id, stop_reason or Reason.REMOVED, running_digest=running_digest
        )
    if wanted.bridge is None:
        # Last good: an invalid file leaves whatever runs alone; one never valid never starts.
        if current is None:
            return None
        return Action(ActionKind.KEEP, bridge_id, Reason.LAST_GOOD, running_digest=running_digest)
    if current is None:
        return Action(ActionKind.START, bridge_id, Reason.ADDED, bridge=wanted.bridge)
    changed = current.digest != wanted.bridge.digest
    return Action(
        ActionKind.RESTART if changed else ActionKind.KEEP,
        bridge_id,
        Reason.SPEC_CHANGED if changed else Reason.UNCHANGED,
        bridge=wanted.bridge,
        running_digest=running_digest,
    )


def _stop_reason(wanted: DesiredBridge | None) -> Reason | None:
    """Why the bridge must not run at all, or None when it may."""
    if wanted is None:
        return Reason.REMOVED
    if not wanted.selected:
        return Reason.NOT_SELECTED
    if wanted.suspended:
        return Reason.SUSPENDED
    return None


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"


# --- which bridges this runner owns: --shard I/N and --selector key=value -----------------


@dataclass(frozen=True, slots=True)
class Shard:
    """`--shard I/N`: this runner owns the bridges whose `shard_of(id, N)` is I."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise UsageError(f"--shard {self.index}/{self.count}: need 0 <= I < N and N >= 1")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse `I/N` (e.g. `0/2`); UsageError when malformed."""
        index, sep, count = text.strip().partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/2")
        return cls(int(index), int(count))

    def owns(self, bridge_id: str) -> bool:
        return shard_of(bridge_id, self.count) == self.index


def shard_of(bridge_id: str, count: int) -> int:
    """The shard (0..count-1) of a bridge id: stable across processes, runs and machines.

    sha256 rather than `hash()`, which is salted per process (PYTHONHASHSEED), so that two
    replicas agree on who owns what.
    """
    if count < 1:
        raise ValueError(f"shard count must be at least 1, not {count}")
    digest = hashlib.sha256(bridge_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_selector(texts: Iterable[str]) -> dict[str, str]:
    """Parse `--selector` values (`key=value`, comma-separated, flag repeatable) into one map.

    Equality only, as kubectl's simplest form: every pair must match. UsageError when
    malformed or when one key is asked for two different values.
    """
    selector: dict[str, str] = {}
    for text in texts:
        for item in text.split(","):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or value.startswith("="):
                raise UsageError(f"--selector {text!r}: expected key=value[,key=value...]")
            if selector.get(key, value) != value:
                raise UsageError(f"--selector asks for {key}={selector[key]} and {key}={value}")
            selector[key] = value
    return selector


def matches_selector(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """True when the labels hold every `key=value` of the selector (an empty one matches all)."""
    return all(labels.get(key) == value for key, value in selector.items())


def is_selected(
    bridge_id: str,
    labels: Mapping[str, str] | None,
    *,
    shard: Shard | None = None,
    selector: Mapping[str, str] | None = None,
) -> bool:
    """Whether this runner owns the bridge.

    `labels` None means they are unknown (an invalid file with nothing running): such a file
    is owned by the shard alone, so that exactly one runner reports it.
    """
    if shard is not None and not shard.owns(bridge_id):
        return False
    if selector and labels is not None:
        return matches_selector(labels, selector)
    return True


def pair_moves(removed: Mapping[str, str], added: Mapping[str, str]) -> dict[str, str]:
    """Which added bridges are removed ones under a new id: `{new id: old id}`.

    Both map a bridge id to its move key (its effective spec without the name it takes
    from its file name). A removed and an added bridge pair up when they alone share a key:
    a file moved or renamed in one pass. When several share one (a file copied, then the
    original removed), none pairs, since which copy is "the" bridge cannot be told.
    """
    by_key: dict[str, tuple[list[str], list[str]]] = {}
    for bridge_id, key in removed.items():
        by_key.setdefault(key, ([], []))[0].append(bridge_id)
    for bridge_id, key in added.items():
        by_key.setdefault(key, ([], []))[1].append(bridge_id)
    return {new[0]: old[0] for old, new in by_key.values() if len(old) == 1 and len(new) == 1}
