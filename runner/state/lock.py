"""One runner per state directory: an exclusive lock taken at start, held until exit.

    StateLock.acquire(state_dir) -> StateLock    or StateError naming the holder
    lock.release()

Two runners on one state directory would both commit scans and deliver them: every event
several times, updates under two different ids, one bridge's users sent to another's sink.
So `run` takes an `flock(2)` on `<state-dir>/state.sqlite-lock` before it opens the state.
The kernel drops the lock when the holder's file is closed, which includes any death of the
process (SIGKILL, OOM kill): a stale lock cannot outlive its runner, and there is no pid file
to clean up. The holder writes its pid, host and start time into the file so that a refused
runner can say who holds it. Only `run` locks: `check` and `status` never write the state.

The name starts with the database's name on purpose: the loader and `file:` sinks already
refuse every `state.sqlite*` path, so no bridge can append events to the lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from runner._kits.rfc3339 import rfc3339
from runner.errors import StateError
from runner.model import STATE_FILE_NAME

LOCK_FILE_NAME = STATE_FILE_NAME + "-lock"
_MAX_HOLDER_BYTES = 4096  # the holder record is ~100 bytes; never read more of a foreign file


class StateLock:
    """An exclusive lock on a state directory, held by this process until `release()`."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        """Lock `state_dir` (created when missing), or raise StateError naming the holder."""
        path = state_dir / LOCK_FILE_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a planted symlink must not make us truncate some other file.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise StateError(f"cannot lock the state directory {state_dir}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise StateError(
                f"the state directory {state_dir} is in use by another runner ({holder}); "
                "two runners on one state directory would deliver every event twice: "
                "stop the other one, or give this one its own --state-dir"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot lock the state directory {state_dir}: {exc}") from None
        lock = cls(fd, path)
        lock._record_holder()
        return lock

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _record_holder(self) -> None:
        assert self._fd is not None
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "startedAt": rfc3339(float(int(time.time()))),
        }
        # Informative only: a failure to write it (a full disk) must not stop the runner,
        # which holds the lock either way.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(record).encode() + b"\n", 0)


def _describe_holder(fd: int) -> str:
    """`pid 12, host web-1, since 2026-12-01T09:00:00Z`, or what can be said without it."""
    try:
        record = json.loads(os.pread(fd, _MAX_HOLDER_BYTES, 0))
        pid, host, since = int(record["pid"]), str(record["host"]), str(record["startedAt"])
    except (OSError, ValueError, TypeError, KeyError):
        return "holder unknown"
    # The host name comes from a file anyone with access to the directory could edit: keep
    # it printable and short before it reaches a log line.
    host = "".join(ch if ch.isprintable() else "?" for ch in host)[:64]
    since = "".join(ch if ch.isprintable() else "?" for ch in since)[:32]
    return f"pid {pid}, host {host}, since {since}"
