"""The reconciler's side of the status files: what it hands `runner.status` to render, and
the one place that reads readiness back.

    documents = render_documents(files, running, root=..., revision=..., run=..., ...)
    written = write_documents(writer, files, documents)    # only changed ones are written
    not_ready(documents)                                    # {bridge id: "Reason: message"}

Rendering and writing are `runner.status.writer`'s; this module only gathers, per selected
bridge file, what its document shows (the file's load result, the running version and its
worker's counters and health).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from runner.reconcile.directory import FileState
from runner.reconcile.workers import RunningWorker, Worker
from runner.status.runrecord import RunIdentity
from runner.status.writer import StatusWriter, ce_attributes_for, render_status

Documents = dict[str, dict[str, object]]


def read_previous(
    writer: StatusWriter, files: Mapping[str, FileState]
) -> dict[str, dict[str, object] | None]:
    """The documents on disk (file I/O the first time after a start: not on the loop)."""
    return {bridge_id: writer.previous(state.path) for bridge_id, state in files.items()}


def render_documents(
    files: Mapping[str, FileState],
    running: Mapping[str, RunningWorker],
    *,
    root: Path,
    revision: str | None,
    run: RunIdentity,
    previous: Mapping[str, Mapping[str, object] | None],
    now: datetime,
) -> Documents:
    """The status document of every bridge file in `files`, by id."""
    return {
        bridge_id: _render(
            bridge_id, state, running.get(bridge_id), root, revision, run, previous[bridge_id], now
        )
        for bridge_id, state in files.items()
    }


def write_documents(
    writer: StatusWriter,
    files: Mapping[str, FileState],
    documents: Mapping[str, Mapping[str, object]],
) -> int:
    """Write each document beside its bridge file; how many were written (changed)."""
    return sum(
        1
        for bridge_id, document in documents.items()
        if writer.write(files[bridge_id].path, document)
    )


def not_ready(documents: Mapping[str, Mapping[str, object]]) -> dict[str, str]:
    """Bridges whose last rendered status is not Ready, with the reason and message."""
    out: dict[str, str] = {}
    for bridge_id, doc in documents.items():
        conditions = doc.get("conditions")
        ready = (
            next((c for c in conditions if c.get("type") == "Ready"), None)
            if isinstance(conditions, list)
            else None
        )
        if ready is None or ready.get("status") != "True":
            reason = ready.get("reason", "Unknown") if ready else "Unknown"
            message = ready.get("message", "") if ready else ""
            out[bridge_id] = f"{reason}: {message}"
    return out


def _render(
    bridge_id: str,
    state: FileState,
    item: RunningWorker | None,
    root: Path,
    revision: str | None,
    run: RunIdentity,
    previous: Mapping[str, object] | None,
    now: datetime,
) -> dict[str, object]:
    result = state.result
    bridge = item.bridge if item is not None else result.bridge
    return render_status(
        bridge_id=bridge_id,
        file=state.path.relative_to(root).as_posix(),
        observed_digest=result.file_digest,
        applied_digest=item.bridge.file_digest if item is not None else None,
        observed_revision=revision,
        problems=result.problems,
        source=item.poller.source_counters if item else None,
        sink=item.poller.sink_counters if item else None,
        source_ready=_health(item.poller) if item else None,
        sink_ready=item.poller.sink_health if item else None,
        ce_attributes=ce_attributes_for(bridge) if bridge is not None else (),
        suspended=bool(result.bridge is not None and result.bridge.suspend),
        previous=previous,
        runner=run.to_status(),
        now=now,
    )


def _health(worker: Worker) -> tuple[bool | None, str, str]:
    health = worker.source_health
    return (health.ready, health.reason, health.message)
