"""The `bridge-runner` command line: parsing, the command registry, and the one place that exits.

Adding a command is one line in `COMMANDS` plus a module that defines

    def add_arguments(parser: argparse.ArgumentParser) -> None   # the command's own flags
    def run(args: argparse.Namespace) -> int                     # returns the exit code

Every command gets `--debug`; `runner.cli.flags` gives the common `--secrets-dir` /
`--state-dir` / `--allow-env` with their environment defaults. Only the chosen command's module is
imported, so `check` does not pay for boto3 or httpx that `run` needs. Every command module raises
errors from `runner.errors`; `main` alone turns them into exit codes (`runner.cli.exitcodes`) and
messages, so library code never calls `sys.exit`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from runner import __version__
from runner.cli.exitcodes import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
)
from runner.errors import BridgeRunnerError, UsageError
from runner.secrets.redaction import Redactor

PROG = "bridge-runner"

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
    "check": Command("validate bridge files offline (files or directories)", "runner.cli.check"),
    "schema": Command("print a JSON Schema (for editors and other tools)", "runner.cli.schema"),
    "run": Command(
        "run the bridges of a directory, keeping pollers in step with it", "runner.cli.run"
    ),
    "demo": Command(
        "try it: local Cognito emulator, sink and runner, events flowing", "runner.cli.demo"
    ),
    "status": Command(
        "show the status files of a bridges directory; --wait for Ready", "runner.cli.status"
    ),
    "replay": Command(
        "queue a bridge's parked events for delivery again (original ids)", "runner.cli.replay"
    ),
    "resync": Command(
        "send one event per current user of a bridge at its next poll", "runner.cli.resync"
    ),
}


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
