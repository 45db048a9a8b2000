"""Faults injected where no peer can produce them on demand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.state.outbox import Outbox


class CrashBeforeMarking:
    """The real outbox, but the first `mark_delivered` raises `error`: the sink accepted the
    events and the process died before the outbox recorded it."""

    def __init__(self, outbox: Outbox, error: Exception) -> None:
        self._outbox = outbox
        self._error = error
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)

    def mark_delivered(self, bridge_id: str, seqs: Sequence[int]) -> None:
        if not self.crashed:
            self.crashed = True
            raise self._error
        self._outbox.mark_delivered(bridge_id, seqs)
