"""The reconciler's clock: what time it is, and waiting that a stop cuts short.

Injected (`Reconciler(clock=...)`, `BridgeWorkers(clock=...)`), so that a test can see the
restart backoff a crashing worker is given, and move time past --state-retention, without
waiting for either. Production is `SYSTEM_CLOCK`: the wall clock in UTC and
`runner._kits.aio.sleep_or_wake`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

from runner._kits.aio import sleep_or_wake


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float, *wake: asyncio.Event) -> bool:
        """Wait `seconds`, or less when one of `wake` is set; True if one was."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float, *wake: asyncio.Event) -> bool:
        return await sleep_or_wake(seconds, *wake)


SYSTEM_CLOCK = SystemClock()
