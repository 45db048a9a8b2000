"""Shared builders of the delivery tests: a bridge, its events as the poller builds them, and a
`Harness` that runs one bridge's deliverer over the real SQLite outbox with recorded sleeps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cloudevents.core.v1.event import CloudEvent

from runner.delivery.deliverer import Deliverer
from runner.model import (
    Bridge,
    CognitoSource,
    Delivery,
    HeaderValue,
    NewEvent,
    PoolArn,
    Sink,
    SinkFormat,
    Target,
)
from runner.polling.diff import Change, to_record
from runner.polling.events import build_events
from runner.secrets.resolver import SecretResolver
from runner.state.outbox import Outbox
from runner.status.counters import SinkCounters
from runner.status.readiness import Condition

POOL = PoolArn(
    arn="arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B",
    partition="aws",
    region="us-west-2",
    account="043455440429",
    pool_id="us-west-2_fak3p001B",
)
BRIDGE_ID = "team-a/signups"


def make_bridge(
    target: Target,
    *,
    format: SinkFormat = "binary",
    max_batch_size: int = 100,
    headers: dict[str, HeaderValue] | None = None,
    timeout: float = 5.0,
    max_in_flight: int = 1,
    **delivery: Any,
) -> Bridge:
    """A bridge on `target`. One request in flight unless asked (`max_in_flight`): the tests
    written for one-at-a-time delivery assert a total order at the sink, and script the
    sink's replies in arrival order; the overlapping tests ask for more."""
    return Bridge(
        id=BRIDGE_ID,
        file=Path(f"{BRIDGE_ID}.yaml"),
        name="signups",
        source=CognitoSource(pool=POOL, initial_sync="emit"),
        sink=Sink(
            target,
            format=format,
            max_batch_size=max_batch_size,
            headers=headers or {},
            timeout=timeout,
            max_in_flight=max_in_flight,
        ),
        delivery=Delivery(**delivery),
    )


def user_events(bridge: Bridge, count: int, start: int = 0) -> list[NewEvent]:
    """`count` created-user events built the way the poller builds them."""
    changes = []
    for n in range(start, start + count):
        raw = {
            "Username": f"user-{n:04d}",
            "Attributes": [{"Name": "sub", "Value": f"{n:08d}-0000-4000-8000-000000000000"}],
            "UserCreateDate": datetime(2024, 5, 1, tzinfo=UTC),
            "UserLastModifiedDate": datetime(2024, 5, 1, 0, 0, n % 60, tzinfo=UTC),
            "Enabled": True,
            "UserStatus": "CONFIRMED",
        }
        changes.append(Change("created", raw["Username"], to_record(raw), None))
    return build_events(bridge, changes, observed_at=datetime.now(UTC), scan_id="scan-1")


def scan_events(bridge: Bridge, users: int, scan: int) -> list[NewEvent]:
    """Scan number `scan`'s events: each of `users` users created (scan 0) or changed."""
    changes = []
    for n in range(users):
        raw = {
            "Username": f"user-{n:04d}",
            "Attributes": [{"Name": "sub", "Value": f"{n:08d}-0000-4000-8000-000000000000"}],
            "UserCreateDate": datetime(2024, 5, 1, tzinfo=UTC),
            "UserLastModifiedDate": datetime(2024, 5, 1, tzinfo=UTC) + timedelta(hours=scan),
            "Enabled": True,
            "UserStatus": "CONFIRMED",
        }
        kind = "created" if scan == 0 else "updated"
        changes.append(Change(kind, raw["Username"], to_record(raw), None))
    return build_events(bridge, changes, observed_at=datetime.now(UTC), scan_id=f"scan-{scan}")


class Sleeps:
    """An injected `sleep` (`sleep_or_wake`'s contract): records every requested delay and
    returns at once, True if one of the events (the deliverer's stop) is set."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.delays: list[float] = []
        self._on_sleep = on_sleep

    async def __call__(self, delay: float, *events: asyncio.Event) -> bool:
        if any(event.is_set() for event in events):
            return True  # as sleep_or_wake: no wait at all once stopped
        self.delays.append(delay)
        if self._on_sleep is not None:
            self._on_sleep(len(self.delays))
        await asyncio.sleep(0)
        return any(event.is_set() for event in events)


class Harness:
    """One bridge's deliverer over the real outbox, with recorded sleeps and counters."""

    def __init__(self, bridge: Bridge, outbox: Outbox, state_dir: Path, env: dict[str, str]):
        self.bridge = bridge
        self.outbox = outbox
        self.state_dir = state_dir
        self.secrets = SecretResolver(env=env)
        self.counters = SinkCounters()
        self.sleeps = Sleeps()
        # None: the deliverer's own random source, as in production.
        self.rng: random.Random | None = random.Random(SEED)
        self.deliverer: Deliverer | None = None

    def append(self, count: int, start: int = 0) -> list[str]:
        events = user_events(self.bridge, count, start)
        self.outbox.append_events(self.bridge.id, events)
        return [ev.event_id for ev in events]

    def run(
        self,
        body: Callable[[Deliverer], Awaitable[None]] | None = None,
        *,
        outbox: Any = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Build a deliverer on a fresh client and drain (or run `body` with it)."""

        async def main() -> None:
            async with httpx.AsyncClient() as http:
                self.deliverer = Deliverer(
                    self.bridge,
                    outbox or self.outbox,
                    http=http,
                    state_dir=self.state_dir,
                    secrets=self.secrets,
                    counters=self.counters,
                    sleep=self.sleeps,
                    rng=self.rng,
                )
                if body is not None:
                    await body(self.deliverer)
                else:
                    await self.deliverer.deliver_pending(stop)

        asyncio.run(main())

    @property
    def ready(self) -> Condition:
        assert self.deliverer is not None
        return self.deliverer.ready


def ids_of(events: Sequence[CloudEvent]) -> list[str]:
    return [event.get_id() for event in events]


SEED = 20261201


def within_backoff(delays: Sequence[float], backoffs: Sequence[float]) -> bool:
    """Each delay is a jittered draw of its backoff step: in [step / 2, step]."""
    return len(delays) == len(backoffs) and all(
        step / 2 <= delay <= step for delay, step in zip(delays, backoffs, strict=True)
    )
