"""The README's test command in a lone clone, and the CI script that runs it.

A clone into an empty folder has no `../shared/conformance` beside it: the README's test
command must pass there, reporting the conformance tests as skipped with the reason. That test
installs from PyPI and runs the whole suite, so it is `slow` (excluded by default, hence never
run again by the run it starts); `.ci/run` runs it as its own step. It clones the committed
HEAD: what is not committed is not tested.

The other tests here run `.ci/run` itself, with every tool it calls replaced by a stub that
records its arguments and environment: where `../shared/conformance` is beside the repository
the suite runs with BRIDGE_RUNNER_REQUIRE_CONFORMANCE=1 (so skipping them fails CI), and a
failing pytest step fails the script.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conformance import REQUIRE_ENV

ROOT = Path(__file__).resolve().parents[2]
# Set in the environment of the run this test starts: if that run ever came back here, it
# would fail at once instead of cloning again.
INNER = "BRIDGE_RUNNER_INSIDE_LONE_CLONE_TEST"


def readme_test_command() -> str:
    """The README's test command, as written: the one shell block that runs pytest."""
    blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text("utf-8"), re.S)
    found = [block for block in blocks if block.rstrip().endswith(".venv/bin/pytest")]
    assert len(found) == 1, found
    assert "\n" not in found[0]
    return found[0]


def lone_clone_env(tmp: Path) -> dict[str, str]:
    """This environment without what would make the clone less alone: nothing of this
    project's own settings, no virtualenv, no pytest options; its own temporary folder (the
    machine's /tmp/pytest-of-USER is shared with other runs)."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in dropped and not name.startswith(("BRIDGE_RUNNER_", "AWS_"))
    }
    venv_bin = Path(os.environ["VIRTUAL_ENV"]) / "bin" if "VIRTUAL_ENV" in os.environ else None
    if venv_bin is not None:
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != venv_bin
        )
    tmp.mkdir()
    return {**env, "TMPDIR": str(tmp), INNER: "1"}


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_readme_test_command_passes_in_a_lone_clone(tmp_path: Path) -> None:
    if os.environ.get(INNER):
        pytest.fail("the lone-clone test ran inside its own lone clone: slow tests must be off")
    empty = tmp_path / "lone"
    empty.mkdir()
    clone = empty / "bridge-runner"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    assert [p.name for p in empty.iterdir()] == ["bridge-runner"]  # nothing beside it
    env = lone_clone_env(tmp_path / "tmp")

    result = subprocess.run(
        ["bash", "-c", readme_test_command()],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=2200,
    )

    # pytest's report is on stdout; stderr is mostly pip's warnings, so it comes last and short.
    assert result.returncode == 0, (
        result.stdout[-8000:] + "\n--- stderr ---\n" + result.stderr[-1500:]
    )
    summary = result.stdout.strip().splitlines()[-1]  # pytest's; pip may warn on stderr
    # pytest-xdist's summary leaves out the deselected (slow) tests; the INNER guard above is
    # what fails a slow test run inside.
    assert re.fullmatch(r"=* ?\d+ passed, \d+ skipped(, \d+ deselected)? in .*", summary), summary
    skipped = re.findall(
        r"^SKIPPED \[(\d+)\] tests/conftest\.py:\d+: (.*)$", result.stdout, flags=re.M
    )
    reason = (
        f"no conformance data at {empty / 'shared' / 'conformance'} (the third-party "
        "reference files beside the repository): not held against the CloudEvents and "
        "TriggerMesh schemas"
    )
    assert [why for _, why in skipped] == [reason]
    # ... and that is every conformance test of the clone.
    collected = subprocess.run(
        [".venv/bin/pytest", "--collect-only", "-q", "-m", "conformance", "-p", "no:cacheprovider"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    count = re.search(r"^(\d+)/\d+ tests collected", collected.stdout, flags=re.M)
    assert count is not None, collected.stdout[-2000:]
    assert int(skipped[0][0]) == int(count.group(1)) > 50


# -- .ci/run --------------------------------------------------------------------------------

TOOLS = ("pip", "ruff", "mypy", "lint-imports", "hadolint", "kubernetes-validate", "pytest")


def ci_sandbox(tmp_path: Path, *, conformance: bool) -> tuple[Path, dict[str, str]]:
    """A copy of .ci/run in a repository of stubs, with or without ../shared/conformance."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "deploy" / "kubernetes").mkdir(parents=True)
    (repo / "deploy" / "kubernetes" / "runner.yaml").write_text("{}\n")
    if conformance:
        (tmp_path / "shared" / "conformance").mkdir(parents=True)
    log = tmp_path / "calls.log"
    stub = (
        "#!/bin/bash\n"
        f'echo "$(basename "$0") $* [{REQUIRE_ENV}=${{{REQUIRE_ENV}:-}}]" >> {log}\n'
        '[ "$(basename "$0")" = pytest ] || exit 0\n'
        '[ "$#" -eq 0 ] && exit "${STUB_SUITE_EXIT:-0}"\n'
        'exit "${STUB_SLOW_EXIT:-0}"\n'
    )
    (repo / ".venv" / "bin").mkdir(parents=True)
    for tool in TOOLS:
        path = repo / ".venv" / "bin" / tool
        path.write_text(stub)
        path.chmod(0o755)
    bin_dir = tmp_path / "bin"  # python3 -m venv .venv: the stubs are the venv
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ENV and not k.startswith("STUB_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"
    return repo, env


def run_ci(repo: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    result = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    log = repo.parent / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, [c for c in calls if c.startswith("pytest")]


def test_ci_requires_the_conformance_tests_where_the_folder_is(tmp_path: Path) -> None:
    repo, env = ci_sandbox(tmp_path, conformance=True)

    code, pytest_calls = run_ci(repo, env)

    assert code == 0
    assert pytest_calls == [
        f"pytest  [{REQUIRE_ENV}=1]",
        f"pytest -m slow tests/process/test_lone_clone.py [{REQUIRE_ENV}=1]",
    ]


def test_ci_lets_them_be_skipped_where_the_folder_is_not(tmp_path: Path) -> None:
    repo, env = ci_sandbox(tmp_path, conformance=False)

    code, pytest_calls = run_ci(repo, env)

    assert code == 0
    assert pytest_calls == [
        f"pytest  [{REQUIRE_ENV}=]",
        f"pytest -m slow tests/process/test_lone_clone.py [{REQUIRE_ENV}=]",
    ]


@pytest.mark.parametrize("suite_exit", [1, 2, 5])
def test_ci_fails_when_the_suite_fails_and_goes_no_further(tmp_path: Path, suite_exit: int) -> None:
    repo, env = ci_sandbox(tmp_path, conformance=True)

    code, pytest_calls = run_ci(repo, {**env, "STUB_SUITE_EXIT": str(suite_exit)})

    assert code == suite_exit
    assert pytest_calls == [f"pytest  [{REQUIRE_ENV}=1]"]


@pytest.mark.parametrize("slow_exit", [1, 5])
def test_ci_fails_when_the_lone_clone_step_fails(tmp_path: Path, slow_exit: int) -> None:
    repo, env = ci_sandbox(tmp_path, conformance=True)

    code, pytest_calls = run_ci(repo, {**env, "STUB_SLOW_EXIT": str(slow_exit)})

    assert code == slow_exit  # 5: no test collected, e.g. the test lost its `slow` mark
    assert len(pytest_calls) == 2


def test_the_lone_clone_test_is_slow_so_the_run_it_starts_skips_it() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    assert 'addopts = "-ra --strict-markers -m \\"not slow\\" ' in pyproject
    marks = test_the_readme_test_command_passes_in_a_lone_clone.pytestmark
    assert "slow" in [mark.name for mark in marks]
    assert readme_test_command().endswith("&& .venv/bin/pytest")  # no `-m` that would undo it
