"""The `file:` sink: appends structured events as JSON lines in the state directory.

    FileSender(target, state_dir=, capacity=)
    sender.encode(events) -> HTTPMessage        JSON lines as the body; ValueError: not a
                                                valid CloudEvent
    await sender.deliver(message)               returns once the lines are fsync'd; raises
                                                SinkUnavailable (the write failed) or
                                                SinkMisconfigured (the file is off limits)
    await sender.send(events) -> SendOutcome    encode and deliver, the failure as a record

Lines are fsync'd before success, confined to the state directory and kept off the runner's
own SQLite files (both re-checked with symlinks resolved on every write), a torn last line
from a crash fenced off by a newline. Appends of one sender never interleave (a lock): a
dead-letter file may be written by several of a bridge's sends at once.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from cloudevents.core.bindings.http import HTTPMessage

from runner import defaults
from runner.delivery.encodings import encode_json_lines
from runner.delivery.policy import SendOutcome, report
from runner.delivery.texts import exception_text
from runner.errors import SinkMisconfigured, SinkUnavailable
from runner.model import STATE_FILE_NAME, OutboxEvent, Target


class FileSender:
    """Appends structured events as JSON lines to `<state_dir>/<file_path>`.

    Success is reported only after flush + fsync. The path is re-checked against the
    state directory on every send (after resolving symlinks), because the loader's check
    cannot see a symlink created later. I/O runs in a worker thread.
    """

    def __init__(
        self, target: Target, *, state_dir: Path, capacity: int = defaults.MAX_BATCH_SIZE
    ) -> None:
        if target.file_path is None:
            raise ValueError(f"{target.uri} is not a file: sink")
        self._uri = target.uri
        self._state_dir = state_dir
        self._file_path = target.file_path
        self._capacity = max(1, capacity)
        self._appending = threading.Lock()  # appends run in worker threads, one at a time

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capacity(self) -> int:
        return self._capacity

    def checked_path(self) -> Path:
        """The file to append to, symlinks resolved; `SinkMisconfigured` when that leaves
        the state directory or is the runner's own database."""
        base = self._state_dir.resolve()
        path = (base / self._file_path).resolve()
        if not path.is_relative_to(base) or path == base:
            raise SinkMisconfigured(
                f"{self._uri} resolves outside the state directory",
                reason="FileSinkOutsideStateDir",
            )
        # Compared after resolving, so a symlink to the database is caught too. A prefix,
        # case-insensitive, as the loader checks it: `-wal`, `-shm`, `-journal` and any
        # other file SQLite names after the database, on case-insensitive file systems too.
        if path.parent == base and path.name.lower().startswith(STATE_FILE_NAME):
            raise SinkMisconfigured(
                f"{self._uri} resolves to the runner's state database ({path.name})",
                reason="FileSinkIsStateDatabase",
            )
        return path

    def encode(self, events: Sequence[OutboxEvent]) -> HTTPMessage:
        return HTTPMessage(headers={}, body=encode_json_lines(events))

    async def send(self, events: Sequence[OutboxEvent]) -> SendOutcome:
        return await report(self.deliver(self.encode(events)))

    async def deliver(self, message: HTTPMessage) -> None:
        try:
            await asyncio.to_thread(self._append_alone, message.body)
        except OSError as exc:
            # Disk full, permissions, a read-only mount: an operator can fix these, so the
            # events stay pending and the write is retried like a 5xx.
            raise SinkUnavailable(exception_text(exc), reason="SinkWriteFailed") from None

    def _append_alone(self, lines: bytes) -> None:
        with self._appending:
            self._append(lines)

    def _append(self, lines: bytes) -> None:
        path = self.checked_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Re-check after mkdir: a directory swapped for a symlink in between must not win.
        if self.checked_path() != path:
            raise SinkMisconfigured(
                f"{self._uri} resolved elsewhere after its directory was created",
                reason="FileSinkOutsideStateDir",
            )
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o640)
        try:
            size = os.fstat(fd).st_size
            # A previous write cut short (crash, disk full) may have left half a line:
            # start on a fresh line so that the torn one does not swallow this event.
            if size and os.pread(fd, 1, size - 1) != b"\n":
                lines = b"\n" + lines
            view = memoryview(lines)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
