"""The README's commands are real: every `bridge-runner` command and flag it shows exists in the
CLI and is exercised by at least one test, its first two commands are the ones tested, and its
real-pool quick start runs as written (against moto and a loopback sink). The words around them
hold too: the Python needed, how TriggerMesh polled, what a lone clone skips, and no pin to a
release tag that does not exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.cli.main import COMMANDS, build_parser
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.sink_server import SinkServer

ROOT = Path(__file__).resolve().parents[2]
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
        # `cmd ...; echo "exit $?"`: the command ends at the shell's separator.
        ends = [i for i, w in enumerate(words) if w.endswith(";")]
        if ends:
            words = [*words[: ends[0]], words[ends[0]].removesuffix(";")]
        build_parser([command]).parse_args([command, *words])
        parsed += 1
    assert parsed >= 5


# -- the words around the commands ------------------------------------------------------------


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def test_the_python_needed_is_stated_beside_the_two_commands() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    needed = re.search(r'^requires-python = ">=(\d+\.\d+)"$', pyproject, flags=re.M)
    assert needed is not None
    top = README[: README.index("\n## ")]
    assert f"Python ≥ {needed.group(1)}" in top


def test_the_migration_text_says_how_triggermesh_polled() -> None:
    text = " ".join(section("Migrating from TriggerMesh").split())
    assert "TriggerMesh's source polled with a backoff — 1 s after a poll that found changes, " in (
        text
    )
    assert "doubling up to 32 s while the pool stayed quiet" in text
    assert "every `pollInterval`: 30 s for a manifest." in text


def test_the_development_section_says_what_a_lone_clone_does_not_run() -> None:
    text = " ".join(section("Development").split())
    assert "**What a lone clone does not run.**" in text
    assert "`../shared/conformance/` *beside* the repository" in text
    assert "`pytest -m conformance` selects them" in text
    assert "`.ci/run` sets `BRIDGE_RUNNER_REQUIRE_CONFORMANCE=1`" in text
    assert "must sit beside the repository" not in text


# -- pinned versions ------------------------------------------------------------------------

# A ref that looks like a release: `...@v1.2.3` (pip, actions) or `rev: v1.2.3` (pre-commit).
_RELEASE_REF = re.compile(r"(?:@|\brev:\s*[\"']?)(v\d+\.\d+(?:\.\d+)?[\w.+-]*)")


def _documents() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md", "*.yaml", "*.yml", "*.txt", "*.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if not name.startswith("tests/")]


def test_every_release_the_docs_pin_is_a_tag_of_this_repository() -> None:
    tags = set(
        subprocess.run(
            ["git", "tag", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    documents = _documents()
    assert ROOT / "docs" / "ci.md" in documents and ROOT / "README.md" in documents
    missing = [
        f"{path.relative_to(ROOT)}: {ref}"
        for path in documents
        for ref in _RELEASE_REF.findall(path.read_text(encoding="utf-8"))
        if ref not in tags
    ]
    assert missing == [], f"pinned to tags that do not exist: {missing}"


def test_the_ci_doc_pins_bridge_runner_to_a_full_commit_sha() -> None:
    texts = [
        (ROOT / "docs" / "ci.md").read_text(encoding="utf-8"),
        (ROOT / "docs" / "examples" / "bridges-ci.yaml").read_text(encoding="utf-8"),
    ]
    revs = re.findall(r"repo: \S+/bridge-runner\n\s+rev: (\S+)", texts[0])
    pip_refs = [ref for text in texts for ref in re.findall(r"/bridge-runner@(\S+)", text)]
    assert revs and pip_refs
    for ref in revs + pip_refs:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), ref
    assert len(set(revs + pip_refs)) == 1  # the same commit for the hook and the install


# -- the real-pool quick start ----------------------------------------------------------------

EXAMPLE_ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
EXAMPLE_SINK = "https://events.example.com/cognito"


def real_pool_block() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)\n```", section("Running against a real pool"), re.S)
    return blocks[0].split("\n")


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not in the README block once"
    return text.replace(old, new)


def test_the_real_pool_quick_start_runs_in_a_folder_of_its_own(
    tmp_path: Path,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    """The block as written, run where the README says: in the clone (its examples in
    `bridges/`), with the user's profile; only the pool and the sink are this test's (the
    README's are examples), reached through AWS_ENDPOINT_URL, and `--once` ends the run."""
    install, *lines = real_pool_block()
    assert install == "python3 -m venv .venv && .venv/bin/pip install -e ."  # this venv
    script = "\n".join(lines)
    pool = cognito_pool()
    cognito_admin.create_user(pool.id, "alice", {"email": "alice@example.com"})
    script = replace_once(script, EXAMPLE_ARN, pool.arn)
    script = replace_once(script, EXAMPLE_SINK, sink_server.url)
    run_line = lines[-1]
    assert run_line.startswith("AWS_PROFILE=cognito-reader .venv/bin/bridge-runner run ")
    script = replace_once(script, run_line, f"{run_line} --once")
    script = script.replace(".venv/bin/", f"{Path(sys.executable).parent}/")

    clone = tmp_path / "clone"  # where `.venv` is: the clone, with its example bridges
    shutil.copytree(ROOT / "bridges", clone / "bridges")
    before = sorted(p.relative_to(clone) for p in clone.rglob("*"))
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        "[cognito-reader]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BRIDGE_RUNNER_"))}
    env |= {"HOME": str(home), "AWS_ENDPOINT_URL": moto_server.endpoint}

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 file checked: 1 valid, 0 invalid" in result.stdout + result.stderr
    bridges = home / "cognito-bridges" / "bridges"
    status = json.loads((bridges / "signups.status.json").read_text())
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", status
    assert status["source"]["usersTracked"] == 1
    assert sink_server.received == []  # initialSync: baseline, as the text after it says
    assert (home / "cognito-bridges" / "state" / "state.sqlite").is_file()
    assert sorted(p.relative_to(clone) for p in clone.rglob("*")) == before  # clone untouched
