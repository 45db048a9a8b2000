"""Live counters a bridge's worker keeps, shown in the status file (DESIGN §4.4).

Plain mutable dataclasses owned by one bridge's tasks (one event loop, so no locking), read
by the status document (`to_status`) and the metrics (`runner.observability.metrics`), which
never write them. They count since the poller started: a poller restarted after an edit starts
from zero (a counter reset to Prometheus).

Each field has one writer:

    SourceCounters            every field: `polling.poll.Poller`, per poll (the scan period
                              through `scan_started` / `scan_completed`)
    SinkCounters.emitted      `polling.worker.BridgeWorker`, when a poll commits events
    SinkCounters.delivered, retried, dead_lettered, last_delivery_time, last_error
                              the deliverer (`runner.delivery.deliverer`), per send
    SinkCounters.pending, parked
                              gauges of the outbox, written by the deliverer alone, which
                              changes the rows they count: decremented as it delivers,
                              dead-letters or parks, re-read from the outbox by
                              `Deliverer.refresh_gauges` (as a drain starts and ends, before
                              a retry wait, and when `BridgeWorker.refresh_counts` asks)

**Change tracking**: every assignment to a field (`pages_read += 1` included) bumps the
counters' `version` and calls the listener given to `listen`, if any: that is how the
reconciler knows which bridges' status files to render again (only those whose counters
moved) without a hook in the poller or the deliverer. The listener must be cheap (it runs on
every mutation) and must not touch the counters.

They never hold secret values: `last_error` strings are built from status codes,
exception class names and messages that never include resolved secrets.

**The achieved scan period** is the time between the starts of two consecutive complete
scans (a failed or incomplete poll between them breaks the pair: a failure's backoff is not
the budget's doing, and SourceReady already says the poll failed). The poll loop starts polls
one `pollInterval` apart, start to start, so the period is the interval while scans fit in
it, and longer when the request budget (or anything else) makes a scan outlast it. A bridge
*keeps up* while its period, and the duration of its last poll (a lower bound of the next
period), are within the interval plus `scan_period_tolerance(interval)`: 10 % of it, at
least half a second, for an event loop that wakes a sleeper late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner._kits.rfc3339 import rfc3339

SCAN_PERIOD_TOLERANCE = 0.1  # of the poll interval
MIN_SCAN_PERIOD_TOLERANCE = 0.5  # seconds


def _time(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value, timespec="auto")  # as 0.1 wrote them


def scan_period_tolerance(poll_interval: float) -> float:
    """How much longer than `poll_interval` a scan period may be and still keep up."""
    return max(MIN_SCAN_PERIOD_TOLERANCE, SCAN_PERIOD_TOLERANCE * poll_interval)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class ChangeTracked:
    """Counts the assignments to its instances' attributes (`version`) and tells a listener."""

    _version = 0
    _listener: Callable[[], None] | None = None

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_version", self._version + 1)
        listener = self._listener
        if listener is not None:
            listener()

    @property
    def version(self) -> int:
        """Moves on every change of a field (never goes back)."""
        return self._version

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call `listener()` after every change from now on (None: stop telling anyone)."""
        object.__setattr__(self, "_listener", listener)


@dataclass
class SourceCounters(ChangeTracked):
    last_poll_time: datetime | None = None
    last_successful_poll_time: datetime | None = None
    users_tracked: int = 0
    pages_read: int = 0  # total since start
    scans: int = 0  # complete scans since start
    last_scan_duration: float | None = None  # seconds
    throttles: int = 0
    last_error: str | None = None
    scan_period: float | None = None  # seconds between the starts of the last two complete scans
    poll_interval: float | None = None  # the interval the last complete scan was held to
    keeping_up: bool | None = None  # None until a scan has completed
    # Monotonic start of the poll in progress, and of the last complete scan while no failed
    # poll has come after it (see the module docstring).
    _started: float | None = field(default=None, repr=False)
    _last_complete_start: float | None = field(default=None, repr=False)
    _last_poll_duration: float = field(default=0.0, repr=False)

    def scan_started(self, at: float) -> None:
        """A poll starts, at `at` (monotonic seconds)."""
        if self._started is not None:  # the poll before never completed: no pair across it
            self._last_complete_start = None
        self._started = at

    def scan_completed(self, finished_at: float, poll_interval: float) -> None:
        """The poll under way (since `scan_started`) read the whole pool, done at
        `finished_at` (monotonic seconds)."""
        started_at = self._started
        if started_at is None:
            raise RuntimeError("scan_completed without scan_started")
        if self._last_complete_start is not None:
            self.scan_period = started_at - self._last_complete_start
        self._last_complete_start = started_at
        self._started = None
        self.poll_interval = poll_interval
        self._last_poll_duration = finished_at - started_at
        slowest = max(self.scan_period or 0.0, self._last_poll_duration)
        self.keeping_up = slowest <= poll_interval + scan_period_tolerance(poll_interval)

    def falling_behind(self) -> str | None:
        """Why the scans do not keep up with the poll interval, in words; None while they do."""
        if self.keeping_up is not False or self.poll_interval is None:
            return None
        if self.scan_period is not None and self.scan_period >= self._last_poll_duration:
            took = f"complete scans start {self.scan_period:.1f}s apart"
        else:
            took = f"the last scan took {self._last_poll_duration:.1f}s"
        return (
            f"{took}, longer than pollInterval {self.poll_interval:g}s: the request budget "
            "(--aws-rps) does not keep up with this pool"
        )

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
            "scanPeriodSeconds": _seconds(self.scan_period),
            "pollIntervalSeconds": self.poll_interval,
            "keepingUp": self.keeping_up,
        }


@dataclass
class SinkCounters(ChangeTracked):
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
