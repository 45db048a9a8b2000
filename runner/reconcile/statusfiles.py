"""The reconciler's side of the status files: what it hands `runner.status` to decide and
render.

    readiness = decide_all(files, running)                  # {bridge id: BridgeReadiness}
    documents = render_documents(files, running, readiness, root=..., revision=..., ...)
    written = write_documents(writer, files, documents)    # only changed ones are written

Deciding is `runner.status.readiness`'s, rendering `runner.status.document`'s and writing
`runner.status.writer`'s; this module only gathers, per selected bridge file, what its
readiness and document are made of (the file's load result, the running version and its
worker's counters and health). The readiness it decides is the one everyone reads
(`Reconciler.readiness()`): nobody parses the rendered documents back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from runner.reconcile.directory import FileState
from runner.reconcile.workers import RunningWorker
from runner.status.document import ce_attributes_for, render_document
from runner.status.readiness import BridgeReadiness, decide_readiness
from runner.status.runrecord import RunIdentity
from runner.status.writer import StatusWriter

Documents = dict[str, dict[str, object]]


def read_previous(
    writer: StatusWriter, files: Mapping[str, FileState]
) -> dict[str, dict[str, object] | None]:
    """The documents on disk (file I/O the first time after a start: not on the loop)."""
    return {bridge_id: writer.previous(state.path) for bridge_id, state in files.items()}


def decide_all(
    files: Mapping[str, FileState], running: Mapping[str, RunningWorker]
) -> dict[str, BridgeReadiness]:
    """The readiness of every bridge file in `files`, by id."""
    return {bridge_id: _decide(state, running.get(bridge_id)) for bridge_id, state in files.items()}


def render_documents(
    files: Mapping[str, FileState],
    running: Mapping[str, RunningWorker],
    readiness: Mapping[str, BridgeReadiness],
    *,
    root: Path,
    revision: str | None,
    run: RunIdentity,
    previous: Mapping[str, Mapping[str, object] | None],
    now: datetime,
) -> Documents:
    """The status document of every bridge file in `files`, by id, its conditions those of
    `readiness` (`decide_all`)."""
    return {
        bridge_id: _render(
            bridge_id,
            state,
            running.get(bridge_id),
            readiness[bridge_id],
            root,
            revision,
            run,
            previous[bridge_id],
            now,
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


def _decide(state: FileState, item: RunningWorker | None) -> BridgeReadiness:
    result = state.result
    return decide_readiness(
        problems=result.problems,
        applied_digest=item.bridge.file_digest if item is not None else None,
        suspended=bool(result.bridge is not None and result.bridge.suspend),
        source=item.poller.source_health if item is not None else None,
        sink=item.poller.sink_health if item is not None else None,
    )


def _render(
    bridge_id: str,
    state: FileState,
    item: RunningWorker | None,
    readiness: BridgeReadiness,
    root: Path,
    revision: str | None,
    run: RunIdentity,
    previous: Mapping[str, object] | None,
    now: datetime,
) -> dict[str, object]:
    result = state.result
    bridge = item.bridge if item is not None else result.bridge
    return render_document(
        readiness,
        bridge_id=bridge_id,
        file=state.path.relative_to(root).as_posix(),
        observed_digest=result.file_digest,
        applied_digest=item.bridge.file_digest if item is not None else None,
        observed_revision=revision,
        problems=result.problems,
        source=item.poller.source_counters if item else None,
        sink=item.poller.sink_counters if item else None,
        ce_attributes=ce_attributes_for(bridge) if bridge is not None else (),
        previous=previous,
        runner=run.to_status(),
        now=now,
    )
