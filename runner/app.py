"""The composition root of `bridge-runner run`: open the state, the clients and HTTP, start
the reconciler and the endpoints, and run until stopped (or, with `once`, for one pass).

    ready = run_bridges(RunnerSettings(root=..., state_dir=..., secrets_dir=...))

The forever-loop is thin (STYLE habit 1): wait for a change batch from the watcher (or the
periodic resync), then call `Reconciler.reconcile()`. In between, `Reconciler.refresh_statuses`
renders the statuses of the bridges that changed, written only when their content did. Signal
handlers only set the stop flag; shutdown then stops every worker within its deadline.
The run is published for `status` (`runner.status.runrecord`): a record in the bridges
directory, written before the first reconcile, refreshed every `HEARTBEAT_SECONDS` and marked
stopped at the end, and the run's identity in every status file. With `metrics_addr`,
`runner.observability.endpoints` serves /metrics, /healthz and /readyz for as long as the
reconciler exists. Exit codes are the CLI's (`runner.cli.run`): this returns whether every
bridge ended Ready after a `once` pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httpx

from runner import defaults
from runner._kits.aio import set_on_signals, sleep_or_wake
from runner._kits.wording import plural
from runner.delivery.lanes import http_client
from runner.delivery.nats_sink import close_all as close_nats_connections
from runner.delivery.sink_tls import close_all as close_tls_clients
from runner.errors import StateError
from runner.model import Bridge
from runner.observability.endpoints import ListenAddress, serve_metrics
from runner.polling.shared_scan import PoolScans
from runner.polling.worker import BridgeWorker
from runner.reconcile.directory import BridgesDirectory, bridge_file_loader
from runner.reconcile.plan import Shard
from runner.reconcile.reconciler import (
    DEFAULT_STATE_RETENTION,
    DEFAULT_STOP_TIMEOUT,
    Reconciler,
    ReconcileSettings,
)
from runner.reconcile.watcher import watch_changes
from runner.reconcile.workers import WorkerFactory
from runner.secrets.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import RequestBudgets
from runner.sources.cognito.client import CognitoClients
from runner.state.lock import StateLock
from runner.state.outbox import Outbox
from runner.status.runrecord import HEARTBEAT_SECONDS, RunIdentity, RunRecordWriter

log = logging.getLogger("runner")

DEFAULT_RESYNC_INTERVAL = 60.0  # seconds between full re-reads of the directory


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    root: Path
    state_dir: Path
    secrets_dir: Path
    shard: Shard | None = None
    selector: Mapping[str, str] = field(default_factory=dict)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT  # seconds a stopping worker gets
    state_retention: float = DEFAULT_STATE_RETENTION  # seconds a removed bridge's state is kept
    env: Mapping[str, str] | None = None
    env_policy: EnvPolicy = DEFAULT_ENV_POLICY  # the variables bridges may read
    once: bool = False  # each poller polls once, delivers what is pending, and ends
    aws_rps: float = defaults.AWS_RPS
    force_polling: bool = False  # poll the directory instead of inotify
    resync_interval: float = DEFAULT_RESYNC_INTERVAL
    metrics_addr: ListenAddress | None = None

    def reconcile_settings(self) -> ReconcileSettings:
        return ReconcileSettings(
            state_dir=self.state_dir,
            shard=self.shard,
            selector=self.selector,
            stop_timeout=self.stop_timeout,
            state_retention=self.state_retention,
            once=self.once,
        )


def run_bridges(settings: RunnerSettings) -> bool:
    """Run until SIGTERM/SIGINT (True), or with `once` one pass: True if every bridge is Ready.

    Raises StateError when the state cannot be opened, and what `StateLock` raises when
    another runner holds it."""
    return asyncio.run(_main(settings))


def poller_factory(
    *,
    outbox: Outbox,
    clients: CognitoClients,
    http: httpx.AsyncClient,
    state_dir: Path,
    secrets: SecretResolver,
) -> WorkerFactory:
    """The production worker of a bridge: a `BridgeWorker` over the shared state and clients,
    taking part in the scans of its pool shared with the bridges that read it alike."""
    scans = PoolScans(clients)

    def build(bridge: Bridge) -> BridgeWorker:
        return BridgeWorker(
            bridge,
            outbox=outbox,
            clients=clients,
            http=http,
            state_dir=state_dir,
            secrets=secrets,
            scans=scans,
        )

    return build


async def _main(settings: RunnerSettings) -> bool:
    # Locked before the state is opened, and held until the process ends: a second runner
    # on this directory is refused here, before it could commit or send anything.
    lock = StateLock.acquire(settings.state_dir)
    try:
        outbox = Outbox.open(settings.state_dir)
    except Exception as exc:
        lock.release()
        raise StateError(f"cannot open the state in {settings.state_dir}: {exc}") from None
    secrets = SecretResolver(settings.secrets_dir, env_policy=settings.env_policy)
    clients = CognitoClients(secrets, RequestBudgets(settings.aws_rps))
    run = RunIdentity.current()
    shard = f"{settings.shard.index}/{settings.shard.count}" if settings.shard else None
    record = RunRecordWriter(settings.root, shard=shard, run=run)
    try:
        # Before the first reconcile: from now on, status files of an earlier run are stale.
        await asyncio.to_thread(record.beat, None)
        # One client over several connection pools: one pool slows as its requests in
        # flight grow (runner.delivery.lanes).
        async with http_client() as http:
            reconciler = _reconciler(settings, outbox, clients, http, secrets, run)
            try:
                async with serve_metrics(
                    settings.metrics_addr, reconciler, clients.budgets, bridges_dir=settings.root
                ):
                    if settings.once:
                        return await _once(reconciler)
                    await _forever(reconciler, settings, record)
                    return True
            finally:
                await asyncio.to_thread(record.stopped, reconciler.revision)
                # Senders hold them, and the bridges are stopped.
                await close_nats_connections()
                await close_tls_clients()
    finally:
        await asyncio.to_thread(clients.close)
        outbox.close()
        lock.release()


def _reconciler(
    settings: RunnerSettings,
    outbox: Outbox,
    clients: CognitoClients,
    http: httpx.AsyncClient,
    secrets: SecretResolver,
    run: RunIdentity,
) -> Reconciler:
    load = bridge_file_loader(
        settings.root,
        secrets_dir=settings.secrets_dir,
        env=settings.env,
        env_policy=settings.env_policy,
    )
    workers = poller_factory(
        outbox=outbox, clients=clients, http=http, state_dir=settings.state_dir, secrets=secrets
    )
    return Reconciler(
        settings.reconcile_settings(),
        directory=BridgesDirectory(settings.root, load),
        worker_factory=workers,
        outbox=outbox,
        run=run,
    )


async def _once(reconciler: Reconciler) -> bool:
    await reconciler.reconcile()
    # Each poller polls once, then delivers for at most --shutdown-timeout and ends by
    # itself; what is not delivered by then stays pending in the outbox.
    await reconciler.wait_pollers()
    await reconciler.shutdown()
    # Every selected bridge counts, a suspended one as not Ready: it delivers nothing.
    readiness = reconciler.readiness()
    not_ready = {bid: r.why_not for bid, r in readiness.items() if not r.ready}
    for bridge_id, why in sorted(not_ready.items()):
        log.warning("bridge %s is not Ready: %s", bridge_id, why)
    total = len(readiness)
    log.info("%d of %s Ready", total - len(not_ready), plural(total, "bridge"))
    return not not_ready


async def _forever(
    reconciler: Reconciler, settings: RunnerSettings, record: RunRecordWriter
) -> None:
    stop = asyncio.Event()
    with set_on_signals(stop, (signal.SIGTERM, signal.SIGINT)):
        await _watch_and_reconcile(reconciler, settings, record, stop)


async def _watch_and_reconcile(
    reconciler: Reconciler,
    settings: RunnerSettings,
    record: RunRecordWriter,
    stop: asyncio.Event,
) -> None:
    statuses = asyncio.create_task(reconciler.refresh_statuses(stop), name="status-writer")
    heartbeat = asyncio.create_task(_heartbeat(reconciler, record, stop), name="heartbeat")
    log.info("watching %s", settings.root)
    try:
        # watch_changes is an async generator: aclosing() ends its watch thread on exit.
        changes = cast(
            AsyncGenerator[set[Path], None],
            watch_changes(
                settings.root,
                force_polling=settings.force_polling,
                stop=stop,
                resync_interval=settings.resync_interval,
            ),
        )
        async with contextlib.aclosing(changes):
            async for batch in changes:
                log.debug("reconciling after %s", plural(len(batch), "changed path"))
                try:
                    await reconciler.reconcile()
                except Exception:
                    # The runner outlives any one failed pass: the next change or resync
                    # tries again, and the bridges keep running meanwhile.
                    log.exception("reconcile failed; the bridges keep running as they are")
    finally:
        stop.set()
        log.info("shutting down: stopping %s", plural(len(reconciler.running), "bridge"))
        await statuses
        await heartbeat
        await reconciler.shutdown()
        log.info("stopped")


async def _heartbeat(reconciler: Reconciler, record: RunRecordWriter, stop: asyncio.Event) -> None:
    """Refresh the runner record, so that `status` can tell this runner is alive."""
    while not await sleep_or_wake(HEARTBEAT_SECONDS, stop):
        await asyncio.to_thread(record.beat, reconciler.revision)
