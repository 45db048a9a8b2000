"""Status files on disk: where they go, and writing them atomically (DESIGN §4.4).

    StatusWriter.write(file, doc)     atomic, only when the content changed (updatedAt aside)
    StatusWriter.remove(file)         when the bridge file is deleted
    StatusWriter.intact(file)         the file written last is still there (one lstat)
    StatusWriter.previous(file)       the document written before (kept, or read after a restart)
    status_path_for(file)             `signups.yaml` -> `signups.status.json`
    write_atomically(path, data)      temp file, fsync, rename

What the document says is `runner.status.document`'s (rendered) and `runner.status.readiness`'s
(decided); this module only knows files.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner._kits.safefile import read_regular
from runner.model import STATUS_SUFFIX

logger = logging.getLogger(__name__)

_STATUS_FILE_MODE = 0o644  # read by CI, people and sidecars, not only by the runner's user
# Status files read back (by the runner after a restart, by `status`) larger than this are not
# status files: a real one is a few KiB, and its errors come from a bridge file of 1 MiB at most.
MAX_STATUS_BYTES = 16 * 1024 * 1024


def status_path_for(bridge_file: Path) -> Path:
    """Where a bridge file's status goes: `team-a/signups.yaml` -> `team-a/signups.status.json`."""
    return bridge_file.with_name(bridge_file.stem + STATUS_SUFFIX)


class StatusWriter:
    """Writes status files next to bridge files: atomically, and only when they changed.

    "Changed" ignores `updatedAt`, or every poll would rewrite every file. A file that has
    disappeared or is not the one written (a git-sync swap brings a fresh worktree without it,
    or with a committed file or link in its place) is written again even if its content did
    not change. Writing renames a temp file over the path, so a link there is replaced, never
    written through. A directory that cannot be written (read-only ConfigMap mount,
    permissions) is logged once, then skipped quietly until a write there succeeds again: the
    runner carries on without status files rather than failing.
    """

    def __init__(self) -> None:
        self._written: dict[Path, str] = {}  # status path -> comparable content last written
        # status path -> (device, inode) of the file written: another file there (a git-sync
        # swap, a link committed in its place) is replaced even if the content is unchanged.
        self._inodes: dict[Path, tuple[int, int] | None] = {}
        # Per bridge file, its status file as a string and what was written there: what the
        # idle sweep checks, thousands of times a minute, without building a Path each time.
        self._last_written: dict[Path, tuple[str, tuple[int, int] | None]] = {}
        self._documents: dict[Path, dict[str, Any]] = {}
        self._unwritable: set[Path] = set()  # directories already logged as unwritable

    def previous(self, bridge_file: Path) -> dict[str, Any] | None:
        """The document last written for this bridge, or the one on disk (after a restart).

        The file on disk is read as `runner._kits.safefile` reads: never through a link, only a
        regular file, at most `MAX_STATUS_BYTES` (a committed link to a FIFO or to
        `/dev/zero` is no previous document). It may block on a stalled mount: call it off
        the event loop.
        """
        path = status_path_for(bridge_file)
        known = self._documents.get(path)
        if known is not None:
            return known
        try:
            loaded = json.loads(read_regular(path, limit=MAX_STATUS_BYTES))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.debug("%s is not a status file to go on from (%s)", path, exc)
            return None
        if isinstance(loaded, dict):
            self._documents[path] = loaded
            return loaded
        return None

    def write(self, bridge_file: Path, document: Mapping[str, Any]) -> bool:
        """Write the bridge's status file if its content changed or it is missing.

        Returns True when the file was written.
        """
        path = status_path_for(bridge_file)
        comparable = _comparable(document)
        if self._written.get(path) == comparable:
            on_disk = _identity(path)
            if on_disk is not None and on_disk == self._inodes.get(path):
                return False
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        try:
            # Renamed over whatever is there: a link is replaced, never written through.
            # A lone surrogate (a byte of a name that is not UTF-8) cannot be UTF-8: written as
            # its JSON escape rather than failing every status write after it.
            write_atomically(path, text.encode("utf-8", "backslashreplace"))
        except OSError as exc:
            self._cannot_write(path.parent, exc)
            return False
        self._unwritable.discard(path.parent)
        self._written[path] = comparable
        self._inodes[path] = _identity(path)
        self._last_written[bridge_file] = (str(path), self._inodes[path])
        self._documents[path] = dict(document)
        return True

    def intact(self, bridge_file: Path) -> bool:
        """Whether the status file this writer last wrote for the bridge is still there, the
        same file (not deleted, nothing else renamed or swapped in its place). False when it
        has written none. One `lstat`: call it off the event loop."""
        last = self._last_written.get(bridge_file)
        return last is not None and last[1] is not None and _identity(last[0]) == last[1]

    def remove(self, bridge_file: Path) -> bool:
        """Remove the bridge's status file (its bridge file is gone). True if one was removed."""
        path = status_path_for(bridge_file)
        self._written.pop(path, None)
        self._inodes.pop(path, None)
        self._last_written.pop(bridge_file, None)
        self._documents.pop(path, None)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._cannot_write(path.parent, exc)
            return False
        return True

    def _cannot_write(self, directory: Path, exc: OSError) -> None:
        if directory in self._unwritable:
            return
        self._unwritable.add(directory)
        logger.warning(
            "cannot write status files in %s (%s); carrying on without them",
            directory,
            exc.strerror or type(exc).__name__,
        )


def _identity(path: Path | str) -> tuple[int, int] | None:
    """(device, inode) of `path` itself (a link is not followed), None when there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _comparable(document: Mapping[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in document.items() if k != "updatedAt"}, sort_keys=True, default=str
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, then rename over the target (STYLE habit 7).

    The temp name starts with a dot so that the watcher and discovery ignore it. The folder is
    not fsynced: a status file lost to a power cut is simply written again.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _STATUS_FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
