"""Live counters a bridge's worker keeps, shown in the status file (DESIGN §4.4).

Plain mutable dataclasses owned by one bridge's tasks (one event loop, so no locking), read
by the status document (`to_status`) and the metrics (`runner.observability.metrics`), which
never write them. They count since the poller started: a poller restarted after an edit starts
from zero (a counter reset to Prometheus).

Each field has one writer:

    SourceCounters            every field: `polling.poll.Poller`, per poll
    SinkCounters.emitted      `polling.worker.BridgeWorker`, when a poll commits events
    SinkCounters.delivered, retried, dead_lettered, last_delivery_time, last_error
                              the deliverer (`runner.delivery.deliverer`), per send
    SinkCounters.pending, parked
                              gauges of the outbox, written by the deliverer alone, which
                              changes the rows they count: decremented as it delivers,
                              dead-letters or parks, re-read from the outbox by
                              `Deliverer.refresh_gauges` (as a drain starts and ends, before
                              a retry wait, and when `BridgeWorker.refresh_counts` asks)

They never hold secret values: `last_error` strings are built from status codes,
exception class names and messages that never include resolved secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner._kits.rfc3339 import rfc3339


def _time(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value, timespec="auto")  # as 0.1 wrote them


@dataclass
class SourceCounters:
    last_poll_time: datetime | None = None
    last_successful_poll_time: datetime | None = None
    users_tracked: int = 0
    pages_read: int = 0  # total since start
    scans: int = 0  # complete scans since start
    last_scan_duration: float | None = None  # seconds
    throttles: int = 0
    last_error: str | None = None

    def to_status(self) -> dict[str, Any]:
        # Key names are the status file's `source` block (runner/schemas/status.schema.json).
        return {
            "lastPollTime": _time(self.last_poll_time),
            "lastSuccessfulPollTime": _time(self.last_successful_poll_time),
            "usersTracked": self.users_tracked,
            "pagesRead": self.pages_read,
            "scans": self.scans,
            "lastScanDurationSeconds": self.last_scan_duration,
            "throttles": self.throttles,
            "lastError": self.last_error,
        }


@dataclass
class SinkCounters:
    delivered: int = 0
    pending: int = 0
    retried: int = 0
    dead_lettered: int = 0
    parked: int = 0
    emitted: int = 0  # events committed to the outbox since start
    last_delivery_time: datetime | None = None
    last_error: str | None = None

    def to_status(self) -> dict[str, Any]:
        # Key names are the status file's `sink` block (runner/schemas/status.schema.json).
        return {
            "delivered": self.delivered,
            "pending": self.pending,
            "retried": self.retried,
            "deadLettered": self.dead_lettered,
            "parked": self.parked,
            "emitted": self.emitted,
            "lastDeliveryTime": _time(self.last_delivery_time),
            "lastError": self.last_error,
        }
