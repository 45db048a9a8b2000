"""Faults injected where no peer can produce them on demand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.state.outbox import Outbox


class OutboxProxy:
    """The real outbox, handed to a poller or deliverer in its place: every method a subclass
    does not define is the outbox's own, so a fault injector or recorder defines only the
    one it changes (and calls `self._outbox` for the real thing)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)


class CrashBeforeMarking(OutboxProxy):
    """The real outbox, but the first `mark_delivered` raises `error`: the sink accepted the
    events and the process died before the outbox recorded it."""

    def __init__(self, outbox: Outbox, error: Exception) -> None:
        super().__init__(outbox)
        self._error = error
        self.crashed = False

    def mark_delivered(self, bridge_id: str, seqs: Sequence[int]) -> None:
        if not self.crashed:
            self.crashed = True
            raise self._error
        self._outbox.mark_delivered(bridge_id, seqs)
