"""The flags several commands share, with their environment defaults (a container image sets
them once): `--secrets-dir`, `--state-dir`, `--allow-env`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runner.errors import UsageError
from runner.secrets.envpolicy import ALLOW_ENV_FLAG, ALLOW_ENV_VAR, BRIDGE_VAR_PREFIX, EnvPolicy
from runner.secrets.envpolicy import parse_allow_env as _parse_allow_env
from runner.secrets.resolver import DEFAULT_SECRETS_DIR

# Common flags: defaults come from the environment so a container image can set them once.
SECRETS_DIR_ENV = "BRIDGE_RUNNER_SECRETS_DIR"
STATE_DIR_ENV = "BRIDGE_RUNNER_STATE_DIR"
# Relative to the working directory; hidden, so that a state directory kept inside the bridges
# directory is never mistaken for bridges. The container image sets BRIDGE_RUNNER_STATE_DIR.
DEFAULT_STATE_DIR = ".bridge-runner-state"


def add_secrets_dir_flag(parser: argparse.ArgumentParser) -> None:
    """`--secrets-dir`: where valueFromFile / valueFromSecret references are read from."""
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        default=Path(os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR),
        metavar="DIR",
        help=(
            "directory that valueFromFile and valueFromSecret references are read from "
            f"(default: ${SECRETS_DIR_ENV}, else {DEFAULT_SECRETS_DIR})"
        ),
    )


def add_state_dir_flag(parser: argparse.ArgumentParser) -> None:
    """`--state-dir`: the runner's SQLite state, and the base of `file:` sinks."""
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR),
        metavar="DIR",
        help=(
            "directory for the runner's state; file: sink paths are relative to it "
            f"(default: ${STATE_DIR_ENV}, else ./{DEFAULT_STATE_DIR})"
        ),
    )


def add_allow_env_flag(parser: argparse.ArgumentParser) -> None:
    """`--allow-env`: which environment variables bridges may read (`runner.secrets.envpolicy`).
    `run` and `check` both take it, so that `check` accepts exactly what `run` accepts;
    read the result with `allowed_env(args)`."""
    parser.add_argument(
        ALLOW_ENV_FLAG,
        dest="allow_env",
        action="append",
        type=_allow_env_pattern,
        default=None,  # None: not given, $BRIDGE_RUNNER_ALLOW_ENV applies (see allowed_env)
        metavar="PATTERN",
        help=(
            f"let bridges read this environment variable through ${{VAR}} and valueFromEnv: "
            f"a name or a shell-style glob such as SINK_* (repeatable; replaces "
            f"${ALLOW_ENV_VAR}, comma-separated; {BRIDGE_VAR_PREFIX}* is always allowed, "
            "nothing else by default)"
        ),
    )


def allowed_env(args: argparse.Namespace) -> EnvPolicy:
    """The environment policy of a command line that has `add_allow_env_flag`: its
    `--allow-env` flags if any, else `$BRIDGE_RUNNER_ALLOW_ENV`. A bad entry in the variable
    is a `UsageError` that gives its position, not its text."""
    if args.allow_env is not None:
        return EnvPolicy(tuple(dict.fromkeys(args.allow_env)))
    try:
        return _parse_allow_env(os.environ.get(ALLOW_ENV_VAR, "").split(","), source=ALLOW_ENV_VAR)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _allow_env_pattern(text: str) -> str:
    try:
        _parse_allow_env([text], source=ALLOW_ENV_FLAG)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a variable name or a glob of one "
            "(letters, digits, _ and the glob characters * ? [ ] !)"
        ) from None
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()
