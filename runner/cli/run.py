"""`bridge-runner run DIR`: the long-running runner (and `--once` for a single pass).

The forever-loop is thin (STYLE habit 1): wait for a change batch from the watcher (or the
periodic resync), then call `Reconciler.reconcile()`. Status files are refreshed every
`STATUS_INTERVAL` seconds in between, written only when their content changed. Signal
handlers only set the stop flag; shutdown then stops every poller within its deadline.
The run is published for `status` (`runner.status.runrecord`): a record in the bridges directory,
written before the first reconcile, refreshed every `HEARTBEAT_SECONDS` and marked stopped
at the end, and the run's identity in every status file.
With `--metrics-addr`, `runner.observability.endpoints` serves /metrics, /healthz and /readyz for as
long as the reconciler exists.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import cast

import httpx

from runner import defaults
from runner._kits.durations import duration_argument
from runner._kits.wording import plural
from runner.cli.exitcodes import EXIT_FAILED, EXIT_OK
from runner.cli.flags import (
    add_allow_env_flag,
    add_secrets_dir_flag,
    add_state_dir_flag,
    allowed_env,
)
from runner.errors import StateError, UsageError
from runner.observability.endpoints import ListenAddress, parse_listen_address, serve_metrics
from runner.observability.logs import configure_logging
from runner.reconcile.plan import Shard, parse_selector
from runner.reconcile.reconciler import Reconciler, RunnerSettings
from runner.reconcile.watcher import watch_changes
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import RequestBudgets
from runner.sources.cognito.client import CognitoClients
from runner.state.lock import StateLock
from runner.state.outbox import Outbox
from runner.status.runrecord import HEARTBEAT_SECONDS, RunIdentity, RunRecordWriter

log = logging.getLogger("runner")

STATUS_INTERVAL = 2.0  # seconds between status refreshes while running
METRICS_ADDR_ENV = "BRIDGE_RUNNER_METRICS_ADDR"


def _listen_address(text: str) -> ListenAddress:
    try:
        return parse_listen_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not rate > 0 or rate != rate or rate == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of requests per second")
    return rate


def _at_least_one_second(text: str) -> float:
    seconds = duration_argument(text)
    if seconds < 1.0:
        raise argparse.ArgumentTypeError("must be at least 1s (a shorter resync only spins)")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR", help="the bridges directory")
    parser.add_argument(
        "--once",
        action="store_true",
        help="one reconcile, one poll and delivery per bridge, status written; "
        "exit 0 only if every bridge is Ready",
    )
    add_state_dir_flag(parser)
    add_secrets_dir_flag(parser)
    add_allow_env_flag(parser)
    parser.add_argument(
        "--aws-rps",
        type=_positive_rate,
        default=defaults.AWS_RPS,
        metavar="N",
        help="Cognito requests per second shared by all pools of one account and region "
        "(default: %(default)g; Cognito's ListUsers quota is about 30)",
    )
    parser.add_argument(
        "--shard",
        type=Shard.parse,
        metavar="I/N",
        help="run only the bridges of shard I of N (stable assignment by bridge id)",
    )
    parser.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run only bridges with this label (repeatable: all must match)",
    )
    parser.add_argument(
        "--force-polling",
        action="store_true",
        help="poll the directory instead of using inotify (bind mounts, network filesystems)",
    )
    parser.add_argument(
        "--resync-interval",
        type=_at_least_one_second,
        default=60.0,
        metavar="DURATION",
        help="re-read the whole directory at least this often (default: 60s)",
    )
    parser.add_argument(
        "--state-retention",
        type=duration_argument,
        default=7 * 24 * 3600.0,
        metavar="DURATION",
        help="keep the checkpoint of a removed bridge this long, so a revert resumes it "
        "(default: 7d)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=duration_argument,
        default=10.0,
        metavar="DURATION",
        help="on SIGTERM/SIGINT, how long in-flight work may take before it is cancelled; "
        "with --once, how long delivery may take after the poll (default: 10s)",
    )
    parser.add_argument(
        "--metrics-addr",
        type=_listen_address,
        # A string default goes through `type` too, so a bad variable is a usage error.
        default=os.environ.get(METRICS_ADDR_ENV) or None,
        metavar="HOST:PORT",
        help="serve Prometheus /metrics, /healthz and /readyz on this address, e.g. "
        f"0.0.0.0:9090 (default: ${METRICS_ADDR_ENV}, else off)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format, args.log_level)
    root: Path = args.directory
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    policy = allowed_env(args)
    exposed = policy.exposed_credentials(os.environ)
    if exposed:
        # The operator allowed it (perhaps by a glob): said once, by name only.
        log.warning(
            "--allow-env lets bridges read the runner's own credentials: %s", ", ".join(exposed)
        )
    settings = RunnerSettings(
        root=root.absolute(),
        state_dir=args.state_dir.absolute(),
        secrets_dir=args.secrets_dir,
        env_policy=policy,
        shard=args.shard,
        selector=parse_selector(args.selector),
        stop_timeout=args.shutdown_timeout,
        state_retention=args.state_retention,
        once=args.once,
    )
    return asyncio.run(
        _main(
            settings,
            aws_rps=args.aws_rps,
            force_polling=args.force_polling,
            resync_interval=args.resync_interval,
            metrics_addr=args.metrics_addr,
        )
    )


async def _main(
    settings: RunnerSettings,
    *,
    aws_rps: float,
    force_polling: bool,
    resync_interval: float,
    metrics_addr: ListenAddress | None = None,
) -> int:
    # Locked before the state is opened, and held until the process ends: a second runner
    # on this directory is refused here, before it could commit or send anything.
    lock = StateLock.acquire(settings.state_dir)
    try:
        outbox = Outbox.open(settings.state_dir)
    except Exception as exc:
        lock.release()
        raise StateError(f"cannot open the state in {settings.state_dir}: {exc}") from None
    secrets = SecretResolver(settings.secrets_dir, env_policy=settings.env_policy)
    clients = CognitoClients(secrets, RequestBudgets(aws_rps))
    run = RunIdentity.current()
    shard = f"{settings.shard.index}/{settings.shard.count}" if settings.shard else None
    record = RunRecordWriter(settings.root, shard=shard, run=run)
    try:
        # Before the first reconcile: from now on, status files of an earlier run are stale.
        await asyncio.to_thread(record.beat, None)
        async with httpx.AsyncClient() as http:
            reconciler = Reconciler(
                settings, outbox=outbox, clients=clients, http=http, secrets=secrets, run=run
            )
            try:
                async with serve_metrics(
                    metrics_addr, reconciler, clients.budgets, bridges_dir=settings.root
                ):
                    if settings.once:
                        return await _once(reconciler, settings)
                    await _forever(reconciler, settings, force_polling, resync_interval, record)
                    return EXIT_OK
            finally:
                await asyncio.to_thread(record.stopped, reconciler.revision)
    finally:
        await asyncio.to_thread(clients.close)
        outbox.close()
        lock.release()


async def _once(reconciler: Reconciler, settings: RunnerSettings) -> int:
    await reconciler.reconcile()
    # Each poller polls once, then delivers for at most --shutdown-timeout and ends by
    # itself; what is not delivered by then stays pending in the outbox.
    await reconciler.wait_pollers()
    await reconciler.shutdown()
    not_ready = reconciler.not_ready()
    for bridge_id, why in sorted(not_ready.items()):
        log.warning("bridge %s is not Ready: %s", bridge_id, why)
    total = len(reconciler.documents)
    log.info("%d of %s Ready", total - len(not_ready), plural(total, "bridge"))
    return EXIT_FAILED if not_ready else EXIT_OK


async def _forever(
    reconciler: Reconciler,
    settings: RunnerSettings,
    force_polling: bool,
    resync_interval: float,
    record: RunRecordWriter,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    statuses = asyncio.create_task(_refresh_statuses(reconciler, stop), name="status-writer")
    heartbeat = asyncio.create_task(_heartbeat(reconciler, record, stop), name="heartbeat")
    log.info("watching %s", settings.root)
    try:
        # watch_changes is an async generator: aclosing() ends its watch thread on exit.
        changes = cast(
            AsyncGenerator[set[Path], None],
            watch_changes(
                settings.root,
                force_polling=force_polling,
                stop=stop,
                resync_interval=resync_interval,
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
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("stopped")


async def _refresh_statuses(reconciler: Reconciler, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATUS_INTERVAL)
        if not stop.is_set():
            try:
                await reconciler.write_statuses()
            except Exception:
                log.exception("writing status files failed")


async def _heartbeat(reconciler: Reconciler, record: RunRecordWriter, stop: asyncio.Event) -> None:
    """Refresh the runner record, so that `status` can tell this runner is alive."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
        if not stop.is_set():
            await asyncio.to_thread(record.beat, reconciler.revision)
