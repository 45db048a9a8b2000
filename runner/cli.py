"""The `bridge-runner` command line: parsing, the command registry, and the one place that exits.

Adding a command is one line in `COMMANDS` plus a module that defines

    def add_arguments(parser: argparse.ArgumentParser) -> None   # the command's own flags
    def run(args: argparse.Namespace) -> int                     # returns the exit code

Every command gets `--debug`; `add_secrets_dir_flag` / `add_state_dir_flag` /
`add_allow_env_flag` give the common `--secrets-dir` / `--state-dir` / `--allow-env` with their
environment defaults. Only the chosen command's module is imported, so `check` does not pay for
boto3 or httpx that `run` needs. Every command module raises errors from `runner.errors`;
`main` alone turns them into exit codes (`EXIT_*` below) and messages, so library code never
calls `sys.exit`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from runner import __version__
from runner.errors import BridgeRunnerError, UsageError
from runner.secrets.envpolicy import ALLOW_ENV_FLAG, ALLOW_ENV_VAR, BRIDGE_VAR_PREFIX, EnvPolicy
from runner.secrets.envpolicy import parse_allow_env as _parse_allow_env
from runner.secrets.redaction import Redactor
from runner.secrets.resolver import DEFAULT_SECRETS_DIR

PROG = "bridge-runner"

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and found a problem (invalid bridge, bridge not Ready, ...)
EXIT_USAGE = 2  # the command line was wrong (argparse uses 2 as well)
EXIT_INTERNAL = 3  # a bug or an unexpected environment failure
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

# Common flags: defaults come from the environment so a container image can set them once.
SECRETS_DIR_ENV = "BRIDGE_RUNNER_SECRETS_DIR"
STATE_DIR_ENV = "BRIDGE_RUNNER_STATE_DIR"
# Relative to the working directory; hidden, so that a state directory kept inside the bridges
# directory is never mistaken for bridges. The container image sets BRIDGE_RUNNER_STATE_DIR.
DEFAULT_STATE_DIR = ".bridge-runner-state"

# Imported by jsonschema when installed, and slow to import: see _skip_slow_optional_imports.
_SLOW_OPTIONAL_MODULE = "rfc3987_syntax"
# An unexpected error's message is shown in one line, cut to this length.
_MAX_INTERNAL_MESSAGE = 300


class CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True, slots=True)
class Command:
    help: str
    module: str  # dotted name of the module with add_arguments() and run()


COMMANDS: dict[str, Command] = {
    "check": Command("validate bridge files offline (files or directories)", "runner.check"),
    "schema": Command("print a JSON Schema (for editors and other tools)", "runner.schema_cmd"),
    "run": Command(
        "run the bridges of a directory, keeping pollers in step with it", "runner.run_cmd"
    ),
    "demo": Command(
        "try it: local Cognito emulator, sink and runner, events flowing", "runner.demo"
    ),
    "status": Command(
        "show the status files of a bridges directory; --wait for Ready", "runner.status_cmd"
    ),
}


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


def _common_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an unexpected error",
    )
    return common


def _chosen_command(argv: Sequence[str]) -> str | None:
    # The top-level parser has flags only (no option takes a value), so the first word that is
    # not a flag is the command.
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for `argv`: every command listed, only the chosen one's module imported."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Turn Amazon Cognito user pool changes into CloudEvents, "
        "declared as YAML bridge files kept in git.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen_command(argv)
    common = _common_flags()
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(
            name, help=command.help, description=command.help, parents=[common]
        )
        if name == chosen:
            module = cast(CommandModule, importlib.import_module(command.module))
            module.add_arguments(sub)
            sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `bridge-runner` command line and return its exit code.

    The CLI's one error handler: what a command raises becomes an exit code and a message.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    _skip_slow_optional_imports()
    try:
        return _parse_and_run(words)
    except UsageError as exc:
        _error(f"error: {exc}")
        return EXIT_USAGE
    except BridgeRunnerError as exc:
        # Messages of our own errors are written for people and never carry secret values.
        _error(f"error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        # `--debug` is looked for in the words, as parsing itself may be what failed.
        _report_unexpected(exc, debug="--debug" in words)
        return EXIT_INTERNAL


def _skip_slow_optional_imports() -> None:
    # jsonschema's format-nongpl extra installs rfc3987-syntax, which jsonschema imports (if
    # present) to check the `iri` formats; importing it compiles a grammar and takes ~2 s, more
    # than a whole `check` of 1,000 bridges. No schema of ours uses `iri`, so the CLI process
    # marks the module as absent before anything imports jsonschema, and jsonschema then skips
    # those two format checkers (it treats the module as optional). Other formats are unaffected.
    if _SLOW_OPTIONAL_MODULE not in sys.modules:
        # None in sys.modules is Python's documented way to make an import raise ImportError.
        sys.modules[_SLOW_OPTIONAL_MODULE] = None  # type: ignore[assignment]


def _parse_and_run(words: list[str]) -> int:
    try:
        args = build_parser(words).parse_args(words)
    except SystemExit as exc:
        # argparse has printed help, the version, or a usage error; keep its code (0 or 2).
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = cast(Callable[[argparse.Namespace], int], args.handler)
    return handler(args)


def _report_unexpected(exc: Exception, *, debug: bool) -> None:
    # A foreign exception's text or traceback may quote anything (a request, a header), so
    # without --debug only one redacted line is shown, and even --debug output goes through
    # the Redactor that masks every secret value resolved in this process.
    if debug:
        text = "".join(traceback.format_exception(exc))
        _error(Redactor.redact(text.rstrip()))
        return
    detail = " ".join(Redactor.redact(str(exc)).split())
    if len(detail) > _MAX_INTERNAL_MESSAGE:
        detail = detail[: _MAX_INTERNAL_MESSAGE - 3] + "..."
    summary = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    _error(f"internal error: {summary} (run again with --debug for the traceback)")


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)
