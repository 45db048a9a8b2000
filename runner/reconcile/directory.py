"""Reading the bridges directory: every bridge file, loaded, by bridge id.

    reader = BridgesDirectory(root, bridge_file_loader(root, secrets_dir=..., env_policy=...))
    files = reader.read()      # {bridge id: FileState}; OSError when the root cannot be listed

A file whose (inode, size, mtime) is the same as at the last read is not loaded again: its
last result is reused, so that a resync of a thousand unchanged files costs a thousand
`stat` calls, not a thousand parses. The loader is injected (`LoadBridgeFile`), so that the
reconciler can be tested over a real directory with any loader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from runner._kits.wording import printable
from runner.loader.config import load_bridge
from runner.loader.discovery import NOT_UTF8_NAME, discover_bridge_files, find_id_clashes, is_utf8
from runner.model import LoadResult, bridge_id_for
from runner.secrets.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy

log = logging.getLogger(__name__)

# One bridge file (below the bridges directory) -> what loading it gives. Never raises for
# bad input: every failure is a Problem in the result.
LoadBridgeFile = Callable[[Path], LoadResult]


@dataclass(frozen=True, slots=True)
class FileState:
    """What one read found in one file (reused while the file is unchanged)."""

    path: Path
    stamp: tuple[int, int, int]  # (inode, size, mtime_ns)
    result: LoadResult


class DirectoryReader(Protocol):
    """What the reconciler reads the directory through (production: `BridgesDirectory`)."""

    @property
    def root(self) -> Path: ...

    def read(self) -> Mapping[str, FileState]:
        """Every bridge file, by id. Raises OSError when the directory cannot be listed."""
        ...


def bridge_file_loader(
    root: Path,
    *,
    secrets_dir: Path,
    env: Mapping[str, str] | None = None,
    env_policy: EnvPolicy = DEFAULT_ENV_POLICY,
) -> LoadBridgeFile:
    """The production loader: `runner.loader.config.load_bridge`, problems named by the
    file's path relative to the bridges directory."""

    def load(path: Path) -> LoadResult:
        return load_bridge(
            path,
            root=root,
            secrets_dir=secrets_dir,
            env=env,
            env_policy=env_policy,
            display_path=path.relative_to(root).as_posix(),
        )

    return load


class BridgesDirectory:
    """The bridges directory, read through `load`, with a cache of the last read."""

    def __init__(self, root: Path, load: LoadBridgeFile) -> None:
        self.root = root
        self._load = load
        self._last: dict[str, FileState] = {}  # every bridge file of the last read, by id

    def read(self) -> dict[str, FileState]:
        """Load every bridge file (reusing results of files unchanged since last time)."""
        root = self.root
        files = discover_bridge_files(root) if root.is_dir() else []
        clashes = find_id_clashes(files, root)
        states: dict[str, FileState] = {}
        for path in files:
            bridge_id = bridge_id_for(root, path)
            if not is_utf8(bridge_id):
                # Nothing downstream (status file, log, metrics, state) could name it.
                # Escaped here, not only by the text formatter: JSON logs want UTF-8 too.
                shown = printable(str(path))
                log.warning("%s: the file name is not valid UTF-8: %s", shown, NOT_UTF8_NAME)
                continue
            try:
                st = path.stat()
            except OSError:
                continue  # removed while we read: the next batch will say so
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if path in clashes:
                log.warning(
                    "%s is ignored: bridge id %r is already used by %s (rename one of them)",
                    path,
                    bridge_id,
                    clashes[path],
                )
                continue
            previous = self._last.get(bridge_id)
            if previous is not None and previous.path == path and previous.stamp == stamp:
                result = previous.result
            else:
                result = self._load(path)
            states[bridge_id] = FileState(path, stamp, result)
        self._last = states
        return states
