"""The command line's frame (runner.cli.main): the registry, --version, and the one error handler.

This module doubles as a command module: the tests register it as command `boom`, whose `run`
raises whatever the test asks for, to see how `main` maps it to an exit code and a message.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from runner import __version__
from runner.cli import main as cli
from runner.errors import BridgeRunnerError, SourceRejected, UsageError
from runner.model import Problem
from runner.secrets.redaction import Redactor

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTESTSECRET"  # a fake key, registered as a resolved secret

RAISES: dict[str, BaseException] = {
    "usage": UsageError("--shard must look like I/N, e.g. 0/3"),
    "config": BridgeRunnerError(
        Problem("a.yaml", 3, 5, "spec.sink.uri", "must be an http(s) URL").render()
    ),
    "rejected": SourceRejected("user pool us-west-2_abc not found", reason="PoolNotFound"),
    "interrupt": KeyboardInterrupt(),
    "bug": RuntimeError(f"signature mismatch for key {SECRET}\nsecond line"),
    "long": ValueError("x" * 1000),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=sorted(RAISES))


def run(args: argparse.Namespace) -> int:
    raise RAISES[args.what]


@pytest.fixture
def boom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli.COMMANDS, "boom", cli.Command("raise on purpose", __name__))
    Redactor.register(SECRET)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"bridge-runner {__version__}\n"


def test_help_lists_every_registered_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, command in cli.COMMANDS.items():
        assert name in out
        assert command.help in out


def test_no_command_or_unknown_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main([]) == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err
    assert cli.main(["chekc", "bridges/"]) == 2
    assert "invalid choice: 'chekc'" in capsys.readouterr().err


@pytest.mark.usefixtures("boom")
@pytest.mark.parametrize(
    ("what", "code", "message"),
    [
        ("usage", 2, "bridge-runner: error: --shard must look like I/N, e.g. 0/3\n"),
        (
            "config",
            1,
            "bridge-runner: error: a.yaml:3:5: error: must be an http(s) URL [spec.sink.uri]\n",
        ),
        ("rejected", 1, "bridge-runner: error: user pool us-west-2_abc not found\n"),
        ("interrupt", 130, "bridge-runner: interrupted\n"),
    ],
)
def test_errors_map_to_exit_codes(
    what: str, code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["boom", what]) == code
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message)


@pytest.mark.usefixtures("boom")
def test_unexpected_error_is_one_redacted_line_and_exit_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["boom", "bug"]) == 3
    err = capsys.readouterr().err
    assert err == (
        "bridge-runner: internal error: RuntimeError: signature mismatch for key *** second line "
        "(run again with --debug for the traceback)\n"
    )


@pytest.mark.usefixtures("boom")
def test_unexpected_error_message_is_cut_short(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["boom", "long"]) == 3
    err = capsys.readouterr().err
    assert "ValueError: " + "x" * 280 in err
    assert "x" * 300 not in err
    assert "...(run again" not in err and "... (run again with --debug" in err


@pytest.mark.usefixtures("boom")
def test_debug_shows_the_traceback_still_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["boom", "--debug", "bug"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("bridge-runner: Traceback (most recent call last):\n")
    assert "raise RAISES[args.what]" in err
    assert "RuntimeError: signature mismatch for key ***\nsecond line" in err
    assert SECRET not in err


def test_python_dash_m_runner_is_the_same_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (completed.returncode, completed.stdout) == (0, f"bridge-runner {__version__}\n")


@pytest.mark.parametrize(
    "argv", [["schema", "bridge"], ["check", "--help"], ["check", "--quiet", "bridges/"]]
)
def test_offline_commands_import_nothing_slow(argv: list[str]) -> None:
    # Only the chosen command's module is imported, so check and schema do not load boto3 or
    # httpx; and the CLI keeps jsonschema from importing rfc3987_syntax (~2 s, unused formats).
    program = (
        "import contextlib, io, sys\n"
        "from runner.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({argv!r})\n"
        "slow = ('boto3', 'botocore', 'httpx', 'rfc3987_syntax', 'lark')\n"
        "print(code, 'jsonschema' in sys.modules, [m for m in slow if sys.modules.get(m)])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # jsonschema itself is loaded (so the rfc3987_syntax guard was put to the test).
    assert completed.stdout == "0 True []\n"
