"""The reconciler's side of the status files: which bridges' statuses to render again, and
what it hands `runner.status` to decide and render.

    book = StatusBook(); book.track(bridge_id, item)      # item's counters mark it changed
    ids = book.stale(files, running, revision, book.take_marked())   # those to render again
    readiness = decide_all(files, running, ids)            # {bridge id: BridgeReadiness}
    documents = render_documents(files, running, readiness, root=..., revision=..., ...)
    written = write_documents(writer, files, documents)    # only changed ones are written

Status work is proportional to change: a bridge's status is rendered again only when what it
is rendered from moved (`render_key`: its file's load result, the running version, its
counters' versions, its SourceReady / SinkReady, the directory's revision). A bridge's counters
mark it in the book on every change (`runner.status.counters`, change tracking), and the book's
`changed` event wakes the reconciler's refresher; the reconciler also checks every bridge
after each reconcile and on a slow sweep (which catches a condition that changed alone, and a
status file someone deleted).

Deciding is `runner.status.readiness`'s, rendering `runner.status.document`'s and writing
`runner.status.writer`'s; this module only gathers, per selected bridge file, what its
readiness and document are made of (the file's load result, the running version and its
worker's counters and health). The readiness it decides is the one everyone reads
(`Reconciler.readiness()`): nobody parses the rendered documents back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from runner.reconcile.directory import FileState
from runner.reconcile.workers import RunningWorker
from runner.status.document import ce_attributes_for, render_document
from runner.status.readiness import BridgeReadiness, decide_readiness
from runner.status.runrecord import RunIdentity
from runner.status.writer import StatusWriter

Documents = dict[str, dict[str, object]]
RenderKey = tuple[object, ...]
T = TypeVar("T")

# Status file I/O runs on threads of its own, not asyncio's default pool: there it would
# queue behind every poller's state work (thousands of jobs as a big runner starts). Writes
# go in parallel, as each waits for its fsync.
IO_THREADS = 4
# A sweep checks one in this many status files, in turn: each is checked every this many
# sweeps (60 s at the reconciler's 10 s).
FILE_CHECK_EVERY = 6


def render_key(state: FileState, item: RunningWorker | None, revision: str | None) -> RenderKey:
    """What a bridge's status is rendered from, in a form cheap to compare: equal keys render
    the same document (but for `updatedAt`, and transition times that only keep their value).

    The load result and the running worker are compared by identity first (tuples do), and
    stay the same objects while nothing changes (`runner.reconcile.directory` reuses the
    result of an unchanged file)."""
    if item is None:
        return (state.path, state.result, revision)
    poller = item.poller
    return (
        state.path,
        state.result,
        revision,
        item,
        item.bridge,
        poller.source_counters.version,
        poller.sink_counters.version,
        poller.source_health,
        poller.sink_health,
    )


class StatusBook:
    """Which bridges' statuses may have changed since they were last rendered.

    `marked` holds the bridges whose counters moved (or that were marked for another reason)
    since `take_marked`; `changed` is set with every mark, for a refresher to await. `keys`
    are what each status was last rendered from (`render_key`)."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self._marked: set[str] = set()
        self._keys: dict[str, RenderKey] = {}

    def track(self, bridge_id: str, item: RunningWorker) -> None:
        """Mark `bridge_id` whenever the counters of `item`'s worker change."""
        mark = self._marker(bridge_id)
        item.poller.source_counters.listen(mark)
        item.poller.sink_counters.listen(mark)
        mark()

    def _marker(self, bridge_id: str) -> Callable[[], None]:
        marked, changed = self._marked, self.changed

        def mark() -> None:
            marked.add(bridge_id)
            changed.set()

        return mark

    def take_marked(self) -> set[str]:
        """The bridges marked since the last call (and clears `changed`)."""
        taken = set(self._marked)
        self._marked.clear()  # in place: the markers hold this set
        self.changed.clear()
        return taken

    def stale(
        self,
        files: Mapping[str, FileState],
        running: Mapping[str, RunningWorker],
        revision: str | None,
        candidates: Iterable[str],
    ) -> dict[str, RenderKey]:
        """Of `candidates`, the bridges in `files` whose render key moved, with their new key."""
        keys = self._keys
        found: dict[str, RenderKey] = {}
        for bridge_id in candidates:
            state = files.get(bridge_id)
            if state is None:
                continue
            key = render_key(state, running.get(bridge_id), revision)
            if keys.get(bridge_id) != key:
                found[bridge_id] = key
        return found

    def rendered(self, keys: Mapping[str, RenderKey]) -> None:
        """These statuses were rendered from these keys."""
        self._keys.update(keys)

    def forget(self, bridge_ids: Iterable[str]) -> None:
        """These bridges are no longer reported on (their files are gone or deselected)."""
        for bridge_id in bridge_ids:
            self._keys.pop(bridge_id, None)
            self._marked.discard(bridge_id)

    def invalidate(self, bridge_ids: Iterable[str]) -> None:
        """Render these again at the next check, whatever their keys (a status file gone)."""
        for bridge_id in bridge_ids:
            self._keys.pop(bridge_id, None)


def read_previous(
    writer: StatusWriter, files: Mapping[str, FileState], ids: Collection[str]
) -> dict[str, dict[str, object] | None]:
    """The documents on disk of `ids` (file I/O the first time after a start: not on the
    loop)."""
    return {bridge_id: writer.previous(files[bridge_id].path) for bridge_id in ids}


def missing_files(
    writer: StatusWriter, files: Mapping[str, FileState], ids: Iterable[str]
) -> list[str]:
    """Of `ids`, the bridges whose status file is not the one last written (deleted, or
    another file in its place): one `lstat` each, off the loop."""
    return [bridge_id for bridge_id in ids if not writer.intact(files[bridge_id].path)]


def decide_all(
    files: Mapping[str, FileState],
    running: Mapping[str, RunningWorker],
    ids: Iterable[str] | None = None,
) -> dict[str, BridgeReadiness]:
    """The readiness of the bridge files `ids` (default: all of `files`), by id."""
    chosen = files if ids is None else ids
    return {bridge_id: _decide(files[bridge_id], running.get(bridge_id)) for bridge_id in chosen}


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
    """The status document of each bridge in `readiness` (`decide_all`), by id, its
    conditions those of `readiness`."""
    return {
        bridge_id: _render(
            bridge_id,
            files[bridge_id],
            running.get(bridge_id),
            bridge_readiness,
            root,
            revision,
            run,
            previous[bridge_id],
            now,
        )
        for bridge_id, bridge_readiness in readiness.items()
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


class StatusFiles:
    """The status files of one reconciler: what they were last rendered from, rendering and
    writing those that moved, on its own threads. The reconciler serialises the calls."""

    def __init__(
        self, writer: StatusWriter, *, root: Path, run: RunIdentity, now: Callable[[], datetime]
    ) -> None:
        self.writer = writer
        self.book = StatusBook()
        self.readiness: dict[str, BridgeReadiness] = {}  # as last decided, by bridge id
        self.documents: Documents = {}  # as last rendered, by bridge id
        self.renders = 0  # documents rendered since start
        self._root = root
        self._run = run
        self._now = now
        self._io = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="status-files")
        self._check_turn = 0  # which share of the status files the next sweep checks

    async def off_loop(self, call: Callable[..., T], *args: object) -> T:
        """`call(*args)` on the status files' threads."""
        return await asyncio.get_running_loop().run_in_executor(self._io, call, *args)

    async def missing(self, files: Mapping[str, FileState]) -> list[str]:
        """Of one `FILE_CHECK_EVERY`-th of the bridges, in turn, those whose status file is
        not the one last written (see `missing_files`): each file is checked every
        `FILE_CHECK_EVERY` sweeps. Checking all 10,000 files every sweep (10 s) was most of
        an idle runner's CPU; a status file is lost only by hand (a git-sync swap comes with
        a new revision, which renders every status anyway)."""
        turn, self._check_turn = self._check_turn, (self._check_turn + 1) % FILE_CHECK_EVERY
        parts = _split(list(files)[turn::FILE_CHECK_EVERY], IO_THREADS)
        found = await asyncio.gather(
            *(self.off_loop(missing_files, self.writer, files, part) for part in parts)
        )
        return [bridge_id for part in found for bridge_id in part]

    async def write(
        self,
        files: Mapping[str, FileState],
        running: Mapping[str, RunningWorker],
        revision: str | None,
        candidates: Iterable[str],
        *,
        before_pollers: bool = False,
    ) -> int:
        """Render and write the statuses of `candidates` whose inputs moved; how many files
        were written. Bridges no longer in `files` are forgotten.

        `before_pollers`: do it all without yielding to the event loop, the loop thread
        waiting for the writes. For the first pass of a start, with the new workers' tasks
        created but not yet run: their first polls would otherwise fight the writes for the
        GIL, and thousands of status files would take many seconds instead of one or two. At
        that point nothing else runs that the wait could hold up."""
        gone = [bridge_id for bridge_id in self.readiness if bridge_id not in files]
        self.book.forget(gone)
        for bridge_id in gone:
            self.readiness.pop(bridge_id, None)
            self.documents.pop(bridge_id, None)
        stale = self.book.stale(files, running, revision, candidates)
        if not stale:
            return 0
        if before_pollers:
            previous = read_previous(self.writer, files, stale)
        else:
            previous = await self.off_loop(read_previous, self.writer, files, stale)
        documents = self._render(files, running, revision, stale, previous)
        parts = [
            {bridge_id: documents[bridge_id] for bridge_id in part}
            for part in _split(list(documents), IO_THREADS)
        ]
        if before_pollers:
            pending = [self._io.submit(write_documents, self.writer, files, p) for p in parts]
            return sum(future.result() for future in pending)
        written = await asyncio.gather(
            *(self.off_loop(write_documents, self.writer, files, part) for part in parts)
        )
        return sum(written)

    def _render(
        self,
        files: Mapping[str, FileState],
        running: Mapping[str, RunningWorker],
        revision: str | None,
        stale: Mapping[str, RenderKey],
        previous: Mapping[str, Mapping[str, object] | None],
    ) -> Documents:
        readiness = decide_all(files, running, stale)
        documents = render_documents(
            files,
            running,
            readiness,
            root=self._root,
            revision=revision,
            run=self._run,
            previous=previous,
            now=self._now(),
        )
        self.readiness.update(readiness)
        self.documents.update(documents)
        self.renders += len(documents)
        self.book.rendered(stale)
        return documents


def _split(items: list[str], parts: int) -> list[list[str]]:
    """`items` in at most `parts` slices of about equal size (none empty)."""
    size = max(1, -(-len(items) // parts))
    return [items[i : i + size] for i in range(0, len(items), size)]
