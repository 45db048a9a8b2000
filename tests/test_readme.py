"""The README's commands are real: every `bridge-runner` command and flag it shows exists in the
CLI and is exercised by at least one test, and its first two commands are the ones tested."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from runner.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
TESTS = "\n".join(
    p.read_text(encoding="utf-8")
    for p in (ROOT / "tests").rglob("*.py")
    if p.name != "test_readme.py"
)

# `bridge-runner COMMAND ...` as the README writes it, in code blocks and inline code.
_INVOCATION = re.compile(r"bridge-runner\s+([a-z]+)((?:[ \t]+[^`\n|]*)?)")


def _readme_invocations() -> list[tuple[str, str]]:
    found = []
    for match in _INVOCATION.finditer(README):
        command, rest = match.group(1), match.group(2)
        if command in COMMANDS:
            found.append((command, rest))
    return found


def _flags_by_command() -> dict[str, set[str]]:
    flags: dict[str, set[str]] = {}
    for command, rest in _readme_invocations():
        flags.setdefault(command, set()).update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest))
    return flags


def test_the_first_two_commands_are_demo_and_tests() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    assert blocks[0] == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[demo]' "
        "&& .venv/bin/bridge-runner demo"
    )
    assert blocks[1] == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    )
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/pytest" in ci and "pip install --quiet -e '.[dev]'" in ci
    assert '"bridge-runner[test]"' in (ROOT / "pyproject.toml").read_text()  # dev includes test


def test_every_command_shown_exists() -> None:
    shown = {command for command, _ in _readme_invocations()}
    assert shown >= {"check", "run", "status", "schema", "demo"}


@pytest.mark.parametrize("command", sorted(_flags_by_command()))
def test_every_flag_shown_exists_and_is_exercised_by_a_test(command: str) -> None:
    parser = build_parser([command])
    sub = next(
        action.choices[command]
        for action in parser._actions
        if getattr(action, "choices", None) and command in action.choices
    )
    known = {opt for action in sub._actions for opt in action.option_strings}
    for flag in sorted(_flags_by_command()[command]):
        assert flag in known, f"README shows `bridge-runner {command} {flag}`, which does not exist"
        assert flag in TESTS, f"no test uses `{flag}` (README shows it for `{command}`)"


def test_concrete_readme_command_lines_parse() -> None:
    """Lines written as a user would type them (no [brackets] or placeholders) parse as shown."""
    parsed = 0
    for command, rest in _readme_invocations():
        if any(mark in rest for mark in ("[", "...", "…", "|", "$(")) or rest.strip().endswith(
            "\\"
        ):
            continue  # a synopsis, not a command line
        if not rest.strip():
            continue  # the command named in prose (`bridge-runner check` tells you ...)
        words = shlex.split(rest.replace("$GITHUB_SHA", "abc1234").replace('"', ""))
        words = words[: words.index(">")] if ">" in words else words  # shell redirection
        build_parser([command]).parse_args([command, *words])
        parsed += 1
    assert parsed >= 5
