"""Watching the bridges directory: one signal per batch of changes that matter (DESIGN §4.3).

    async with DirectoryWatcher(root) as watcher:      # armed when the block is entered
        batch = await watcher.next_batch(stop, timeout)   # set[Path]; empty on timeout or stop
    watch_changes(root, force_polling=..., debounce_ms=..., stop=...)   # the same, as an iterator

It only says "something changed": the reconciler re-reads the whole directory each time, so a
missed detail costs nothing as long as some signal comes. What it must get right is *seeing*
every kind of change a GitOps deployment makes:

- edits in place and editor saves (write a temp file, rename it over the bridge file);
- git-sync: the root (or a folder above it) is a symlink that is re-pointed atomically at a new
  worktree. An inotify watch on a symlinked directory follows the old target forever (DESIGN §8),
  so the watch is put on the *parent* of the deepest symlink on the root's path, resolved, and
  the symlink itself counts as a change;
- Kubernetes ConfigMaps / Secrets: the files are symlinks through `..data`, itself a symlink
  swapped at each update; a change of `..data` counts;
- the root deleted and re-created, or appearing after start: checked every second and re-armed.

Ignored: files and folders whose names start with `.` (including the status writer's temp
files and git's metadata), the runner's own `*.status.json`, and files that are not bridge
files. Any other deleted path counts, whatever its name (`team.v2`): once gone, it cannot be
told from a folder of bridges, except editors' temp files (`*.tmp`, `*.tmp4913`, `*~`).

watchfiles runs with a short debounce (its default 1.6 s is far too slow for a reconcile loop),
in a background task that coalesces batches while the consumer is busy: a burst of writes
costs at most one reconcile per debounce period plus one for whatever arrived meanwhile. If the
native watcher cannot be set up (the inotify watch limit, an odd filesystem) it falls back to
polling, as `force_polling` (bind mounts, network filesystems) does from the start. Polling
compares whole-second modification times, so in that mode each batch (and the arming) is
followed about a second later by one extra signal, which catches a write made in the same
second as the one before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from watchfiles import Change, awatch

from runner._kits.aio import sleep_or_wake, stop_within
from runner.model import BRIDGE_SUFFIXES, STATUS_SUFFIX

logger = logging.getLogger(__name__)

DEFAULT_DEBOUNCE_MS = 80
DEFAULT_POLL_DELAY_MS = 300
CONFIGMAP_DATA_LINK = "..data"  # Kubernetes' atomic writer swaps this symlink on every update
_REARM_CHECK_S = 1.0  # how often the watch checks that it still watches the right directory
_STOP_TIMEOUT_S = 5.0
_TEMP_SUFFIX = re.compile(r"\.tmp\d*", re.IGNORECASE)
_POLL_ECHO_S = 1.1  # polling sees whole-second mtimes: re-read once the second is surely over


@dataclass(frozen=True, slots=True)
class WatchTargets:
    """Where to watch a bridges directory from, as it is laid out right now.

    `paths` are watched recursively; `identity` is the (device, inode) of each, so that a
    re-created directory is noticed. `root_aliases` are the spellings under which watchfiles may
    report the root's contents; `links` the symlinks on the root's path, in the same terms.
    """

    root: Path
    resolved_root: Path
    paths: tuple[Path, ...]
    identity: tuple[tuple[int, int], ...]
    root_aliases: tuple[Path, ...]
    links: frozenset[Path]

    @property
    def watch_key(self) -> tuple[tuple[Path, ...], tuple[tuple[int, int], ...]]:
        """Changes when the watch must be set up again (not merely the filter refreshed)."""
        return self.paths, self.identity


def watch_targets(root: Path) -> WatchTargets | None:
    """The watch layout for `root`, or None when it is not (yet) a directory."""
    absolute = Path(os.path.abspath(root))  # normalised, symlinks kept
    try:
        resolved = absolute.resolve(strict=True)
        if not resolved.is_dir():
            return None
        links = _symlinks_on(absolute)
        aliases = {resolved, absolute, absolute.parent.resolve() / absolute.name}
        link_locations = set(links)
        for link in links:
            located = link.parent.resolve() / link.name
            link_locations.add(located)
            aliases.add(located / absolute.relative_to(link))
        if links:
            # The deepest symlink is the one git-sync re-points; its folder holds both the link
            # and (for git-sync's relative links) every worktree it can point at.
            base = links[-1].parent.resolve()
            paths: tuple[Path, ...] = (base,)
            if not resolved.is_relative_to(base):
                paths = (base, resolved)
        else:
            paths = (resolved,)
        identity = tuple((s.st_dev, s.st_ino) for s in (p.stat() for p in paths))
    except (OSError, RuntimeError):  # vanished meanwhile, unreadable, or a symlink loop
        return None
    return WatchTargets(
        root=absolute,
        resolved_root=resolved,
        paths=paths,
        identity=identity,
        root_aliases=tuple(sorted(aliases, key=lambda p: len(p.parts), reverse=True)),
        links=frozenset(link_locations),
    )


def _symlinks_on(path: Path) -> list[Path]:
    """The components of `path` that are symlinks, outermost first."""
    found = []
    current = Path(path.anchor)
    for part in path.parts[1:]:
        current = current / part
        if current.is_symlink():
            found.append(current)
    return found


class ChangeFilter:
    """Decides which raw changes from watchfiles matter (a `watch_filter` for `awatch`)."""

    def __init__(self, targets: WatchTargets) -> None:
        self.targets = targets

    def __call__(self, change: Change, raw_path: str) -> bool:
        return self.matters(change, Path(raw_path))

    def matters(self, change: Change, path: Path) -> bool:
        if path in self.targets.links or path.name == CONFIGMAP_DATA_LINK:
            return True
        for alias in self.targets.root_aliases:
            if path.is_relative_to(alias):
                return _matters_below_root(change, path, path.relative_to(alias))
        return False


def _matters_below_root(change: Change, path: Path, relative: Path) -> bool:
    if not relative.parts:
        return True  # the root itself appeared or went away
    if any(part.startswith(".") for part in relative.parts):
        return False  # dot-files and folders: temp files, .git, ConfigMap's timestamped dirs
    if path.name.endswith(STATUS_SUFFIX):
        return False  # our own writes must never trigger a reconcile
    if path.suffix in BRIDGE_SUFFIXES:
        return True
    if change == Change.deleted:
        # Gone, so there is no telling a file from a folder of bridges (`team.v2` as well as
        # `team`): anything but an editor's temp file counts. A stray one costs one re-read.
        return not _is_temp_file(path.name)
    return change == Change.added and path.is_dir()  # a folder moved in


def _is_temp_file(name: str) -> bool:
    """Editors' temp and backup files (`x.yaml.tmp`, `x.yaml.tmp4913`, `x.yaml~`); dot-files
    are out already. Narrow on purpose: a folder `team.tmpl` must still count when deleted."""
    return name.endswith("~") or _TEMP_SUFFIX.fullmatch(Path(name).suffix) is not None


class _StopFlag:
    """What awatch polls (from its worker thread) to know when to stop; set by us or by it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()


class DirectoryWatcher:
    """Watches a bridges directory from a background task; batches are collected until read."""

    def __init__(
        self,
        root: Path,
        *,
        force_polling: bool = False,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
        poll_delay_ms: int = DEFAULT_POLL_DELAY_MS,
    ) -> None:
        if debounce_ms < 1:
            raise ValueError("debounce_ms must be at least 1")
        self.root = Path(os.path.abspath(root))
        self.polling = force_polling
        self._debounce_ms = debounce_ms
        self._step_ms = max(1, min(50, debounce_ms // 2))
        self._poll_delay_ms = poll_delay_ms
        self._pending: set[Path] = set()
        self._changed = asyncio.Event()
        self._armed = asyncio.Event()
        self._closing = _StopFlag()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DirectoryWatcher:
        self._task = asyncio.create_task(self._run(), name=f"watch {self.root}")
        # `_run` sets `_armed` just before awatch builds its native watcher, which it does
        # without yielding to the loop: once we run again, changes are being recorded.
        armed = asyncio.create_task(self._armed.wait())
        await asyncio.wait({armed, self._task}, return_when=asyncio.FIRST_COMPLETED)
        armed.cancel()
        await asyncio.gather(armed, return_exceptions=True)
        if self._task.done():
            self._task.result()  # raise what killed it
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop watching; waits for the watch thread to finish (it checks every step)."""
        self._closing.set()
        task, self._task = self._task, None
        if task is None:
            return
        ended_before = task.done()
        if not await stop_within(task, _STOP_TIMEOUT_S) and not ended_before:
            logger.warning(
                "the watcher of %s did not stop within %.0f s", self.root, _STOP_TIMEOUT_S
            )

    async def next_batch(
        self, stop: asyncio.Event | None = None, max_wait: float | None = None
    ) -> set[Path]:
        """The paths changed since the last call; waits for one, for `stop`, or `max_wait` s.

        An empty set means nothing specific changed (the wait ran out, or `stop` was set):
        running out is an answer here, not an error.
        """
        await sleep_or_wake(max_wait, self._changed, *([stop] if stop is not None else []))
        batch, self._pending = self._pending, set()
        self._changed.clear()
        return batch

    def _signal(self, paths: set[Path]) -> None:
        self._pending |= paths
        self._changed.set()

    async def _run(self) -> None:
        """The guarded forever-loop: (re)arm, watch, re-arm when the layout changes."""
        waiting_logged = False
        while not self._closing.is_set():
            targets = watch_targets(self.root)
            if targets is None:
                if not waiting_logged:
                    logger.warning("%s is not a directory (yet); waiting for it", self.root)
                    waiting_logged = True
                self._armed.set()
                await self._pause()
                if watch_targets(self.root) is not None:
                    self._signal({self.root})
                continue
            waiting_logged = False
            try:
                await self._watch(targets)
                continue
            except (OSError, RuntimeError) as exc:  # RuntimeError: watchfiles' internal errors
                self._watch_failed(exc)
            except Exception:
                # Never let the watch die quietly: the runner would stop seeing changes.
                logger.exception("unexpected error while watching %s; re-arming", self.root)
                self._watch_failed(None)
            await self._pause()  # do not spin on a failure that repeats

    def _watch_failed(self, exc: BaseException | None) -> None:
        self._armed.set()
        self._signal({self.root})  # whatever happened, re-read the directory
        if exc is None or watch_targets(self.root) is None:
            pass  # it vanished meanwhile: the loop waits for it to come back
        elif not self.polling:
            logger.warning(
                "cannot watch %s natively (%s); polling every %d ms instead",
                self.root,
                exc,
                self._poll_delay_ms,
            )
            self.polling = True
        else:
            logger.warning("watching %s failed (%s); retrying", self.root, exc)

    async def _watch(self, targets: WatchTargets) -> None:
        """Watch one layout until it changes (then return, to be re-armed) or we close."""
        change_filter = ChangeFilter(targets)
        stream = awatch(
            *targets.paths,
            watch_filter=change_filter,
            debounce=self._debounce_ms,
            step=self._step_ms,
            stop_event=self._closing,
            rust_timeout=int(_REARM_CHECK_S * 1000),
            yield_on_timeout=True,
            force_polling=self.polling,
            poll_delay_ms=self._poll_delay_ms,
            ignore_permission_denied=True,
        )
        # Polling (notify's PollWatcher) compares modification times in whole seconds: a write
        # in the same second as the snapshot or change it last recorded is never reported. So
        # once such a second is surely over, ask for one more full read ("echo") after arming
        # and after every batch; the reconciler re-reads everything, so the echo is all it needs.
        loop = asyncio.get_running_loop()
        echo_at = loop.time() + _POLL_ECHO_S if self.polling else None
        async with contextlib.aclosing(stream):
            self._armed.set()
            async for changes in stream:
                now = loop.time()
                if changes:
                    self._signal({Path(path) for _, path in changes})
                    if self.polling:
                        echo_at = now + _POLL_ECHO_S
                elif echo_at is not None and now >= echo_at:
                    echo_at = None
                    self._signal({self.root})
                fresh = watch_targets(self.root)
                if fresh is None or fresh.watch_key != targets.watch_key:
                    self._signal({self.root})
                    return
                if fresh != targets:
                    # Same watch, new layout (a git-sync swap under the watched folder):
                    # only the spellings of the root's contents changed.
                    change_filter.targets = targets = fresh

    async def _pause(self) -> None:
        """Sleep between checks, waking early when closing."""
        for _ in range(int(_REARM_CHECK_S / 0.05)):
            if self._closing.is_set():
                return
            await asyncio.sleep(0.05)


async def watch_changes(
    root: Path,
    *,
    force_polling: bool = False,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    stop: asyncio.Event,
    resync_interval: float | None = None,
    poll_delay_ms: int = DEFAULT_POLL_DELAY_MS,
) -> AsyncIterator[set[Path]]:
    """Yield a set of changed paths for each batch of changes that matter, until `stop` is set.

    The first item is an empty set, yielded once the watch is armed: read the whole directory
    then. Later empty sets mark `resync_interval` seconds without a change (the periodic full
    resync). Close the iterator (`contextlib.aclosing`) if you leave it before `stop`.
    """
    async with DirectoryWatcher(
        root, force_polling=force_polling, debounce_ms=debounce_ms, poll_delay_ms=poll_delay_ms
    ) as watcher:
        yield set()
        while not stop.is_set():
            batch = await watcher.next_batch(stop, resync_interval)
            if stop.is_set():
                return
            yield batch
