"""The small interfaces (Protocols) between bridge-runner's layers.

The poller writes changes into the outbox; the deliverer reads them back and reports
what the sink did. Both sides code against these Protocols, so each is tested with the
real SQLite outbox (`runner.state.outbox.Outbox`) and can be exercised on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from runner.model import OutboxEvent


class OutboxPort(Protocol):
    """What delivery needs from the outbox. Methods are synchronous (SQLite); async callers
    run them with `asyncio.to_thread`. Every method commits before it returns."""

    def pending(self, bridge_id: str, limit: int, *, after: int = 0) -> list[OutboxEvent]:
        """Up to `limit` events with a seq above `after` not yet delivered, dead-lettered or
        parked, oldest first."""
        ...

    def mark_delivered(self, bridge_id: str, seqs: Sequence[int]) -> None:
        """The sink accepted these events: they leave the outbox (or are marked delivered)."""
        ...

    def record_attempt(self, bridge_id: str, seqs: Sequence[int], error: str) -> None:
        """A retryable attempt failed: increment `attempts`, remember the (secret-free) error."""
        ...

    def mark_dead_lettered(self, bridge_id: str, seqs: Sequence[int], error: str) -> None:
        """Given up or refused, and written to the dead-letter sink: they leave the pending set."""
        ...

    def park(self, bridge_id: str, seqs: Sequence[int], error: str) -> None:
        """Given up or refused with no dead-letter sink: kept, not retried, counted."""
        ...

    def count_pending(self, bridge_id: str) -> int:
        """How many events wait for delivery (not parked)."""
        ...

    def count_parked(self, bridge_id: str) -> int:
        """How many events are parked."""
        ...
