"""`bridge-runner run DIR`: the long-running runner (and `--once` for a single pass).

This module is the command's surface: its flags, turned into `runner.app.RunnerSettings`,
and the exit code. What runs (state, clients, the reconciler, the watch loop, the endpoints)
is wired in `runner.app`.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from runner import defaults
from runner._kits.durations import duration_argument
from runner.app import DEFAULT_RESYNC_INTERVAL, RunnerSettings, run_bridges
from runner.cli.exitcodes import EXIT_FAILED, EXIT_OK
from runner.cli.flags import (
    add_allow_env_flag,
    add_secrets_dir_flag,
    add_state_dir_flag,
    allowed_env,
)
from runner.errors import UsageError
from runner.observability.endpoints import ListenAddress, parse_listen_address
from runner.observability.logs import configure_logging
from runner.reconcile.plan import Shard, parse_selector
from runner.reconcile.reconciler import DEFAULT_STATE_RETENTION, DEFAULT_STOP_TIMEOUT

log = logging.getLogger("runner")

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
        default=DEFAULT_RESYNC_INTERVAL,
        metavar="DURATION",
        help="re-read the whole directory at least this often (default: 60s)",
    )
    parser.add_argument(
        "--state-retention",
        type=duration_argument,
        default=DEFAULT_STATE_RETENTION,
        metavar="DURATION",
        help="keep the checkpoint of a removed bridge this long, so a revert resumes it "
        "(default: 7d)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=duration_argument,
        default=DEFAULT_STOP_TIMEOUT,
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
        aws_rps=args.aws_rps,
        force_polling=args.force_polling,
        resync_interval=args.resync_interval,
        metrics_addr=args.metrics_addr,
    )
    # Only `--once` can end with bridges not Ready; running until stopped ends OK.
    return EXIT_OK if run_bridges(settings) else EXIT_FAILED
