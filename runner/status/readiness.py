"""Readiness, decided once: the four conditions of a bridge as typed values (DESIGN §4.4).

    Condition                      one condition: type, status (True/False/Unknown), reason, message
    BridgeReadiness                Valid, SourceReady, SinkReady and Ready of one bridge
    decide_readiness(...)          the one rule: the four conditions from what the runner knows
    sink_ready_or_idle(...)        SinkReady before the first send: idle is no reason to be unready
    readiness_from_document(doc)   the same types, read back from a status document

The status document is rendered from a `BridgeReadiness` (`runner.status.document`); `/readyz`,
the metrics, `run --once` and `status --wait` read the same values instead of deciding again.

Ready is (Valid, or its last good version running) and SourceReady and SinkReady. A suspended
bridge is Ready=False with reason Suspended: it is validated but deliberately not polled, and
`run --once` / `status --wait` must not report it as delivering. When Ready is not True its
reason is the first failing input's (False before Unknown), so a table shows the cause.

The conditions a decision returns are as the status file shows them: the reason CamelCase (the
schema's word; other spellings are converted, not rejected, so that one odd reason from a
poller cannot make a status file invalid) and the message redacted. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from runner._kits.wording import plural
from runner.model import Problem
from runner.secrets.redaction import Redactor

CONDITION_TYPES = ("Valid", "SourceReady", "SinkReady", "Ready")
ConditionType = Literal["Valid", "SourceReady", "SinkReady", "Ready"]
ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_STATUSES: tuple[ConditionStatus, ...] = ("True", "False", "Unknown")
# The Ready reason of a suspended bridge: not polled on purpose, which is no reason to call the
# runner unready (`/readyz`), but never "delivering" either (`run --once`, `status --wait`).
SUSPENDED_REASON = "Suspended"

_CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def status_word(status: bool | None) -> ConditionStatus:
    """True / False / None (not known) as the status file spells them."""
    return "Unknown" if status is None else ("True" if status else "False")


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition, as the status file shows it (without its transition time)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str

    @classmethod
    def of(cls, kind: str, status: bool | None, reason: str, message: str) -> Condition:
        return cls(kind, status_word(status), reason, message)

    @property
    def known(self) -> bool | None:
        """The status as a bool, None when Unknown."""
        return None if self.status == "Unknown" else self.status == "True"

    def shown(self) -> Condition:
        """This condition as the status file shows it: CamelCase reason, redacted message."""
        return Condition(self.type, self.status, camel(self.reason), Redactor.redact(self.message))


@dataclass(frozen=True, slots=True)
class BridgeReadiness:
    """The four conditions of one bridge. `ready` and `why_not` are what everyone asks."""

    valid: Condition
    source: Condition
    sink: Condition
    ready_condition: Condition

    @property
    def conditions(self) -> tuple[Condition, Condition, Condition, Condition]:
        """In the status file's order: Valid, SourceReady, SinkReady, Ready."""
        return (self.valid, self.source, self.sink, self.ready_condition)

    def condition(self, kind: str) -> Condition:
        for item in self.conditions:
            if item.type == kind:
                return item
        raise KeyError(kind)

    @property
    def ready(self) -> bool:
        return self.ready_condition.status == "True"

    @property
    def suspended(self) -> bool:
        return self.ready_condition.reason == SUSPENDED_REASON

    @property
    def why_not(self) -> str:
        """`Reason: message` of the Ready condition ("" when Ready), for people."""
        if self.ready:
            return ""
        ready = self.ready_condition
        return f"{ready.reason}: {ready.message}" if ready.message else ready.reason


def decide_readiness(
    *,
    problems: Sequence[Problem] = (),
    applied_digest: str | None,
    suspended: bool = False,
    source: Condition | None = None,
    sink: Condition | None = None,
) -> BridgeReadiness:
    """The conditions of one bridge. `problems` are what the loader found (errors make Valid
    False); `applied_digest` the file digest of the version running (None when none runs);
    `source` / `sink` what the poller and the deliverer report, None while no poller runs."""
    valid = not any(p.severity == "error" for p in problems)
    valid_condition = _valid_condition(problems, valid, applied_digest)
    if suspended:
        source = Condition(
            "SourceReady", "Unknown", "Suspended", "spec.suspend is true: not polled"
        )
        sink = Condition("SinkReady", "Unknown", "Suspended", "spec.suspend is true: not polled")
    else:
        source = _as("SourceReady", source or _not_running(applied_digest))
        sink = _as("SinkReady", sink or _not_running(applied_digest))
    source, sink = source.shown(), sink.shown()
    ready = _ready_condition(valid, applied_digest, suspended, source, sink)
    return BridgeReadiness(valid_condition.shown(), source, sink, ready.shown())


def sink_ready_or_idle(sink: Condition, *, pending: int, source: Condition) -> Condition:
    """SinkReady of a running bridge. Before the first send the deliverer cannot know; with
    nothing pending and the source polled, the sink is simply idle, which is no reason to call
    the bridge not Ready."""
    if sink.status == "Unknown" and pending == 0 and source.status == "True":
        return Condition(sink.type, "True", "Idle", "nothing to deliver yet")
    return sink


def _as(kind: str, condition: Condition) -> Condition:
    return condition if condition.type == kind else Condition(kind, *_parts(condition))


def _parts(condition: Condition) -> tuple[ConditionStatus, str, str]:
    return condition.status, condition.reason, condition.message


def _valid_condition(
    problems: Sequence[Problem], valid: bool, applied_digest: str | None
) -> Condition:
    if valid:
        warnings = len(problems)
        if warnings:
            message = f"the file is valid, with {plural(warnings, 'warning')}"
            return Condition("Valid", "True", "Validated", message)
        return Condition("Valid", "True", "Validated", "the file is valid")
    errors = [p for p in problems if p.severity == "error"]
    first = errors[0]
    where = f"line {first.line}: " if first.line is not None else ""
    at = f" [{first.path}]" if first.path else ""
    more = f" (and {plural(len(errors) - 1, 'more error')})" if len(errors) > 1 else ""
    if applied_digest:
        running = f"; the last good version ({applied_digest[:12]}) keeps running"
    else:
        running = "; no version of this bridge runs"
    message = f"{where}{first.message}{at}{more}{running}"
    return Condition("Valid", "False", "ValidationFailed", message)


def _not_running(applied_digest: str | None) -> Condition:
    # The type is set by the caller (`_as`): the same words serve SourceReady and SinkReady.
    if applied_digest:
        return Condition("", "Unknown", "Starting", "the poller has not reported yet")
    return Condition("", "Unknown", "NotRunning", "no version of this bridge runs")


def _ready_condition(
    valid: bool, applied_digest: str | None, suspended: bool, source: Condition, sink: Condition
) -> Condition:
    if suspended:
        message = "spec.suspend is true: the bridge is validated, not polled"
        return Condition("Ready", "False", SUSPENDED_REASON, message)
    if not valid and not applied_digest:
        message = "the file is invalid and no earlier version runs"
        return Condition("Ready", "False", "ValidationFailed", message)
    for wanted in ("False", "Unknown"):
        for item in (source, sink):
            if item.status == wanted:
                return Condition("Ready", item.status, item.reason, f"{item.type}: {item.message}")
    if not valid:
        message = "the file is invalid; its last good version delivers"
        return Condition("Ready", "True", "LastGoodRunning", message)
    return Condition("Ready", "True", "Ready", "polling and delivering")


def camel(reason: str) -> str:
    """`reason` as the schema wants it (CamelCase); other spellings are converted."""
    if _CAMEL_CASE.match(reason):
        return reason
    words = re.findall(r"[A-Za-z0-9]+", reason)
    converted = "".join(w[0].upper() + w[1:] for w in words)
    return converted if _CAMEL_CASE.match(converted) else "Unknown"


# --- read back --------------------------------------------------------------------------------


def readiness_from_document(document: Mapping[str, Any] | None) -> BridgeReadiness:
    """The conditions of a status document (rendered here, or read from disk and checked
    against the schema). A condition missing or malformed reads as Unknown, reason Unknown."""
    found: dict[str, Condition] = {}
    conditions = document.get("conditions") if document else None
    for item in conditions if isinstance(conditions, list) else ():
        if not isinstance(item, Mapping):
            continue
        kind, status = item.get("type"), item.get("status")
        reason, message = item.get("reason", "Unknown"), item.get("message", "")
        if isinstance(kind, str) and status in CONDITION_STATUSES and kind not in found:
            found[kind] = Condition(
                kind,
                status,
                reason if isinstance(reason, str) else "Unknown",
                message if isinstance(message, str) else "",
            )
    parts = [
        found.get(kind) or Condition(kind, "Unknown", "Unknown", "") for kind in CONDITION_TYPES
    ]
    return BridgeReadiness(*parts)
