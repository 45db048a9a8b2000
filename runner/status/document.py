"""The status document of one bridge, rendered from what the runner knows (DESIGN §4.4).

    render_document(readiness, ...) -> dict   pure: the document, from a decided BridgeReadiness
    render_status(...) -> dict                decide (`runner.status.readiness`) and render
    ce_attributes_for(bridge)                 the CloudEvents (type, source) pairs it emits

The document's schema is `runner/schemas/status.schema.json`. Conditions, in order: Valid,
SourceReady, SinkReady, Ready, as `runner.status.readiness` decides them.
`lastTransitionTime` changes only when a condition's status changes, as in Kubernetes.
No secret value reaches a status file: problems never hold one, and every free-text field
also goes through `Redactor` as a second line of defence. Writing the file is
`runner.status.writer`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from runner._kits.rfc3339 import rfc3339
from runner.model import API_VERSION, EVENT_TYPE_DELETED, EVENT_TYPE_SYNC, Bridge, Problem
from runner.secrets.redaction import Redactor
from runner.status.counters import SinkCounters, SourceCounters
from runner.status.readiness import (
    BridgeReadiness,
    Condition,
    camel,
    decide_readiness,
)

STATUS_KIND = "BridgeStatus"


def ce_attributes_for(bridge: Bridge) -> list[dict[str, str]]:
    """The CloudEvents (type, source) pairs a bridge emits, for `ceAttributes`."""
    source = bridge.source.pool.arn
    attributes = [{"type": EVENT_TYPE_SYNC, "source": source}]
    if bridge.source.emit_deletions:
        attributes.append({"type": EVENT_TYPE_DELETED, "source": source})
    return attributes


def render_status(
    *,
    bridge_id: str,
    file: str,
    observed_digest: str | None,
    applied_digest: str | None,
    observed_revision: str | None,
    problems: Sequence[Problem] = (),
    source: SourceCounters | None = None,
    sink: SinkCounters | None = None,
    source_ready: Condition | None = None,
    sink_ready: Condition | None = None,
    ce_attributes: Sequence[Mapping[str, str]] = (),
    suspended: bool = False,
    previous: Mapping[str, Any] | None = None,
    runner: Mapping[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """Decide the bridge's readiness (`decide_readiness`) and render its document.

    `source_ready` / `sink_ready` are what the poller and the deliverer report, None when no
    poller runs. The reconciler decides first and calls `render_document` itself; this is the
    one call for tools that render a single document (bench/endpoints.py, the tests).
    The other arguments are `render_document`'s.
    """
    readiness = decide_readiness(
        problems=problems,
        applied_digest=applied_digest,
        suspended=suspended,
        source=source_ready,
        sink=sink_ready,
    )
    return render_document(
        readiness,
        bridge_id=bridge_id,
        file=file,
        observed_digest=observed_digest,
        applied_digest=applied_digest,
        observed_revision=observed_revision,
        problems=problems,
        source=source,
        sink=sink,
        ce_attributes=ce_attributes,
        previous=previous,
        runner=runner,
        now=now,
    )


def render_document(
    readiness: BridgeReadiness,
    *,
    bridge_id: str,
    file: str,
    observed_digest: str | None,
    applied_digest: str | None,
    observed_revision: str | None,
    problems: Sequence[Problem] = (),
    source: SourceCounters | None = None,
    sink: SinkCounters | None = None,
    ce_attributes: Sequence[Mapping[str, str]] = (),
    previous: Mapping[str, Any] | None = None,
    runner: Mapping[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The status document of one bridge, its conditions those of `readiness`.

    `file` is the path relative to the bridges directory; `observed_digest` the sha256 of the
    file's bytes (None if unreadable); `applied_digest` the file digest of the version running
    (None if none runs), so that applied == observed says "what is on disk runs"; `problems`
    what the loader found (listed as `errors`); `previous` the document written before (keeps
    each unchanged condition's `lastTransitionTime`); `runner` the run that writes it
    (`RunIdentity.to_status()`, see `runner.status.runrecord`), so that a status left by a run
    that has ended can be told; `now` the current time.
    """
    stamp = rfc3339(now, timespec="seconds")
    previous_times = _previous_transitions(previous)
    conditions = [_condition(c, previous_times, stamp) for c in readiness.conditions]
    source_block = (source or SourceCounters()).to_status()
    sink_block = (sink or SinkCounters()).to_status()
    for block in (source_block, sink_block):
        if block.get("lastError"):
            block["lastError"] = Redactor.redact(block["lastError"])
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": STATUS_KIND,
        "bridge": bridge_id,
        "file": file,
        "observedDigest": observed_digest,
        "appliedDigest": applied_digest,
        "observedRevision": observed_revision,
        "conditions": conditions,
        "errors": [_problem(p) for p in problems],
        "source": source_block,
        "sink": sink_block,
        "ceAttributes": [{"type": a["type"], "source": a["source"]} for a in ce_attributes],
        "updatedAt": rfc3339(now, timespec="milliseconds"),
    }
    if runner is not None:
        document["runner"] = dict(runner)
    return document


def _condition(
    condition: Condition, previous_times: Mapping[str, tuple[str, str]], stamp: str
) -> dict[str, str]:
    before = previous_times.get(condition.type)
    return {
        "type": condition.type,
        "status": condition.status,
        "reason": camel(condition.reason),
        "message": Redactor.redact(condition.message),
        "lastTransitionTime": before[1] if before and before[0] == condition.status else stamp,
    }


def _previous_transitions(previous: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
    """condition type -> (status, lastTransitionTime) from an earlier document, if well formed."""
    found: dict[str, tuple[str, str]] = {}
    conditions = previous.get("conditions") if previous else None
    if not isinstance(conditions, list):
        return found
    for item in conditions:
        if not isinstance(item, Mapping):
            continue
        kind, status, when = item.get("type"), item.get("status"), item.get("lastTransitionTime")
        if isinstance(kind, str) and isinstance(status, str) and isinstance(when, str):
            found[kind] = (status, when)
    return found


def _problem(problem: Problem) -> dict[str, Any]:
    return {
        "line": problem.line,
        "column": problem.column,
        "path": problem.path,
        "message": Redactor.redact(problem.message),
        "severity": problem.severity,
    }
