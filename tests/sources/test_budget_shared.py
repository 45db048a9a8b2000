"""The request budget shared by the pools of one account and region, with real peers: moto's
Cognito server over HTTP, pools read through the runner's clients, one bucket between them.

Figures are counted in grants and slots of the bucket, not in wall time: a slot is 1/rate
of the bucket's own schedule, so a loaded machine changes how long a test takes, not what
it asserts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner.model import Bridge, Delivery, Sink, Target
from runner.observability.metrics import BridgeSample, Counters, RunnerSnapshot, metric_families
from runner.schemas import validator
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import MARGIN, RequestBudgets
from runner.sources.cognito.client import CognitoClients
from runner.sources.cognito.scan import ScanResult
from runner.status.counters import SinkCounters
from tests.builders import render_status
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.sink_server import SinkServer
from tests.sources.conftest import bridge_poller

RATE = 20.0  # requests/s: low, so that the big pool's segments queue up in the bucket


@pytest.fixture
def budget_clients(secrets: SecretResolver) -> Iterator[Callable[[bool], CognitoClients]]:
    made: list[CognitoClients] = []

    def make(fair: bool) -> CognitoClients:
        clients = CognitoClients(secrets, RequestBudgets(RATE, fair=fair))
        made.append(clients)
        return clients

    yield make
    for clients in made:
        clients.close()


@pytest.mark.usefixtures("dummy_aws_credentials")
@pytest.mark.parametrize("fair", [True, False], ids=["fair", "first-come-baseline"])
def test_a_small_pool_is_not_held_up_by_a_big_pools_backlog(
    fair: bool,
    budget_clients: Callable[[bool], CognitoClients],
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
) -> None:
    """A 3,000-user pool scanned in 16 segments and a 5-user pool scanned over and over
    meanwhile, on one bucket. Fair: each of the small pool's requests waits for at most the
    big pool's one reserved slot and its own, and both pools' grants are counted against the
    one bucket. The first-come bucket (`fair=False`, the bucket before per-pool lanes) is run
    as the baseline: there the small pool waits behind the big pool's queued segments."""
    clients = budget_clients(fair)
    big_info, small_info = cognito_pool("big"), cognito_pool("small")
    cognito_admin.seed_users(big_info, 3000)
    cognito_admin.seed_users(small_info, 5)
    big = clients.pool(big_info.source(moto_server.endpoint))
    small = clients.pool(small_info.source(moto_server.endpoint))
    assert big.bucket is small.bucket

    async def together() -> tuple[ScanResult, list[ScanResult]]:
        big_scan = asyncio.create_task(big.scan(segments=16))
        await asyncio.sleep(0.5)  # every segment is queued by now
        small_scans = []
        while not big_scan.done():
            small_scans.append(await small.scan())
        return await big_scan, small_scans

    big_result, small_results = asyncio.run(together())
    assert big_result.complete and len(big_result.users) == 3000
    assert small_results and all(r.complete and len(r.users) == 5 for r in small_results)

    by_pool = big.bucket.stats_by_key()
    assert by_pool[big_info.id].acquired == big_result.pages
    assert by_pool[small_info.id].acquired == sum(r.pages for r in small_results)
    assert big.bucket.stats().acquired == big_result.pages + by_pool[small_info.id].acquired
    slots_waited = by_pool[small_info.id].max_wait_seconds * RATE / (1 + MARGIN)
    if fair:
        assert slots_waited <= 2 + 1e-6
    else:
        assert slots_waited >= 6  # 16 segments queued, less the few in flight


def bridge(pool: PoolInfo, endpoint: str, sink: SinkServer, interval: float) -> Bridge:
    return Bridge(
        id=pool.name,
        file=Path(f"{pool.name}.yaml"),
        name=pool.name,
        source=pool.source(endpoint, poll_interval=interval, initial_sync="baseline"),
        sink=Sink(Target(sink.url), format="binary", timeout=5.0),
        delivery=Delivery(backoff_delay=0.01, max_backoff=0.05),
    )


@pytest.mark.usefixtures("dummy_aws_credentials")
def test_a_pool_whose_scans_cannot_keep_up_with_its_interval_is_reported_so(
    tmp_path: Path,
    make_clients: Callable[..., CognitoClients],
    secrets: SecretResolver,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    """600 users are 10 pages: at 5 requests/s a scan takes about 2 s, and pollInterval asks
    for one every second. A 5-user pool polled every 30 s on the same budget keeps up."""
    clients = make_clients(rate=5)
    slow_info, quick_info = cognito_pool("slow"), cognito_pool("quick")
    cognito_admin.seed_users(slow_info, 600)
    cognito_admin.seed_users(quick_info, 5)
    slow = bridge(slow_info, moto_server.endpoint, sink_server, interval=1.0)
    quick = bridge(quick_info, moto_server.endpoint, sink_server, interval=30.0)

    async def two_polls_each() -> list[tuple[str, object, object]]:
        polled = []
        for each in (slow, quick):
            async with bridge_poller(
                each, clients=clients, secrets=secrets, state_dir=tmp_path / each.id
            ) as worker:
                for _ in range(2):  # back to back, as the poll loop does when it is late
                    assert (await worker.poll_once()).complete
                polled.append((each.id, worker.source_counters, worker.source_health))
        return polled

    (_, slow_counters, slow_health), (_, quick_counters, quick_health) = asyncio.run(
        two_polls_each()
    )
    assert slow_counters.keeping_up is False
    assert slow_counters.scan_period is not None and slow_counters.scan_period > 1.5
    assert quick_counters.keeping_up is True
    # Late is not wrong: SourceReady stays True, and its message says why the pool is late.
    assert slow_health.status == "True"
    assert "longer than pollInterval 1s" in slow_health.message
    assert "pollInterval" not in quick_health.message

    document = render_status(
        bridge_id="slow",
        file="slow.yaml",
        observed_digest="f" * 64,
        applied_digest="a" * 64,
        observed_revision=None,
        source=slow_counters,
        source_ready=slow_health,
        sink_ready=(True, "Delivering", "ok"),
        now=datetime.now(UTC),
    )
    assert not list(validator("status").iter_errors(document))
    assert document["source"]["keepingUp"] is False
    assert document["source"]["pollIntervalSeconds"] == 1.0
    ready = {c["type"]: c["status"] for c in document["conditions"]}
    assert ready["Ready"] == "True"

    snapshot = RunnerSnapshot(
        reconciles=1,
        pollers_running=2,
        bridges=(
            BridgeSample("slow", Counters(slow_counters, SinkCounters()), None),
            BridgeSample("quick", Counters(quick_counters, SinkCounters()), None),
        ),
        rate_limits={},
    )
    keeping_up = next(
        f for f in metric_families(snapshot) if f.name == "bridge_runner_scan_keeping_up"
    )
    assert {s.labels["bridge"]: s.value for s in keeping_up.samples} == {
        "slow": 0.0,
        "quick": 1.0,
    }
