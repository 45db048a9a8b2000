"""What `replay` and `resync` share: the bridge named on the command line, and its state.

A bridge is named by its id (its path below the directory without the extension, as `run`
and `status` show it); its events and snapshot are keyed by that id in
`<state-dir>/state.sqlite`. The state file is opened beside a running runner, which is
safe: SQLite in WAL mode lets both use it (each write waits for the other's, up to the busy
timeout), and the runner's lock (`runner.state.lock`) only keeps a second *runner* out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli.flags import add_state_dir_flag
from runner.errors import BridgeRunnerError, UsageError
from runner.model import BRIDGE_SUFFIXES, STATE_FILE_NAME
from runner.state.outbox import Outbox


def add_bridge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR", help="the bridges directory")
    parser.add_argument(
        "bridge", metavar="BRIDGE", help="the bridge's id: its path below DIR, without .yaml"
    )
    add_state_dir_flag(parser)


def bridge_id(args: argparse.Namespace) -> str:
    """The bridge id of the command line, once its file is known to be in the directory."""
    directory: Path = args.directory
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    name = str(args.bridge).removesuffix(".yaml").removesuffix(".yml")
    if not any((directory / f"{name}{suffix}").is_file() for suffix in BRIDGE_SUFFIXES):
        raise UsageError(f"no bridge {name!r} in {directory} (no {name}.yaml or {name}.yml)")
    return name


def open_state(args: argparse.Namespace) -> Outbox:
    """The existing state of `--state-dir`; never creates one (a typo would look empty)."""
    path = Path(args.state_dir) / STATE_FILE_NAME
    if not path.is_file():
        raise BridgeRunnerError(
            f"no state in {args.state_dir} ({STATE_FILE_NAME} is missing): give the "
            "--state-dir the runner uses"
        )
    return Outbox(path)
