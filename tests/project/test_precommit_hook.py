"""The shipped pre-commit hook (.pre-commit-hooks.yaml), run by the real `pre-commit` in real repos.

pre-commit installs the hook as it would for a bridges repository: from a git repository that
holds this project (a committed snapshot of the working tree), into a virtualenv of its own.
That environment is built once per session, in a session-wide PRE_COMMIT_HOME (pip reads the
configured package indexes, as it does for a user).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from runner.loader.discovery import discover_bridge_files

ROOT = Path(__file__).resolve().parents[2]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"
HOOK_ID = "bridge-runner-check"

VALID_BRIDGE = """\
apiVersion: bridge-runner/v1alpha1
kind: Bridge
spec:
  source:
    awsCognitoUserPool:
      arn: arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B
  sink:
    uri: https://events.example.com/cognito
"""
# Not a bridge: the hook must never be shown it, or it would reject it.
WORKFLOW = """\
name: ci
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    steps: [{run: "true"}]
"""

GIT_IDENTITY = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def _environment(pre_commit_home: Path | None = None) -> dict[str, str]:
    # Nothing from a surrounding git hook or pre-commit run may leak in (GIT_DIR, GIT_INDEX_FILE).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(GIT_IDENTITY)
    if pre_commit_home is not None:
        env["PRE_COMMIT_HOME"] = str(pre_commit_home)
    return env


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=_environment(), check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class HookSource:
    """A git repository holding this project, as a bridges repository's config names it."""

    path: Path
    rev: str
    home: Path  # PRE_COMMIT_HOME: where pre-commit keeps the hook's environment


@pytest.fixture(scope="session")
def hook_source() -> Iterator[HookSource]:
    # Its own folder rather than pytest's numbered ones, which other pytest sessions on the
    # machine may clean up while this long-lived one is in use.
    with tempfile.TemporaryDirectory(prefix="bridge-runner-hook-") as temp:
        yield _snapshot(Path(temp))


def _snapshot(temp: Path) -> HookSource:
    # What `pip install .` needs, as the working tree has it (so uncommitted edits are tested).
    source = temp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "runner", source / "runner", ignore=shutil.ignore_patterns("__pycache__")
    )
    git(source, "init", "-q")
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "snapshot")
    return HookSource(source, git(source, "rev-parse", "HEAD"), temp / "pre-commit-home")


@dataclass(frozen=True)
class BridgesRepo:
    path: Path
    hook: HookSource

    def write(self, name: str, text: str = VALID_BRIDGE) -> None:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def stage(self, *names: str) -> None:
        git(self.path, "add", "--", *names)

    def commit(self, *names: str) -> None:
        self.stage(*names)
        git(self.path, "commit", "-q", "-m", "add " + " ".join(names))

    def run_hook(self) -> subprocess.CompletedProcess[str]:
        """`pre-commit run` on the staged files, as `git commit` runs it; output always shown."""
        return subprocess.run(
            [str(PRE_COMMIT), "run", "--color", "never", "--verbose", HOOK_ID],
            cwd=self.path,
            env=_environment(self.hook.home),
            capture_output=True,
            text=True,
            timeout=110,  # the first run builds the hook's environment
            stdin=subprocess.DEVNULL,
        )


def _config(hook: HookSource, hook_options: dict[str, object] | None = None) -> str:
    entry: dict[str, object] = {"id": HOOK_ID, **(hook_options or {})}
    return yaml.safe_dump({"repos": [{"repo": str(hook.path), "rev": hook.rev, "hooks": [entry]}]})


def _bridges_repo(path: Path, hook: HookSource, config: str) -> BridgesRepo:
    path.mkdir()
    git(path, "init", "-q")
    repo = BridgesRepo(path, hook)
    repo.write(".pre-commit-config.yaml", config)
    repo.commit(".pre-commit-config.yaml")
    return repo


@pytest.fixture
def bridges_repo(tmp_path: Path, hook_source: HookSource) -> BridgesRepo:
    """A bridges repository using the hook with its defaults (no `files`, no `exclude`)."""
    return _bridges_repo(tmp_path / "bridges-repo", hook_source, _config(hook_source))


def _summaries(output: str) -> list[str]:
    return re.findall(r"^\d+ files? checked: .*$", output, flags=re.MULTILINE)


def test_the_hook_pattern_picks_the_files_the_directory_walk_picks(tmp_path: Path) -> None:
    # pre-commit matches `files` and `exclude` with re.search on the path from the repository
    # root; the walk is runner.loader.discovery's, with the repository as the bridges directory.
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    names = [
        "a.yaml",
        "b.yml",
        "team/c.yaml",
        "dir.with.dots/d.yaml",
        "team/e.f.yml",
        "status.yaml",
        "kustomization.yaml",
        "deploy/kustomization.yml",
        ".pre-commit-config.yaml",
        ".pre-commit-hooks.yaml",
        ".github/workflows/ci.yml",
        ".github/dependabot.yml",
        "team/.drafts/wip.yaml",
        "team/.hidden.yaml",
        "..data/g.yaml",
        "a.status.yaml",
        "team/b.status.yml",
        "a.status.json",
        "a.yaml.bak",
        "UPPER.YAML",
        "notes.md",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("kind: Bridge\n")
    walked = sorted(p.relative_to(tmp_path).as_posix() for p in discover_bridge_files(tmp_path))
    hooked = sorted(
        name
        for name in names
        if re.search(hook["files"], name) and not re.search(hook["exclude"], name)
    )
    assert hooked == walked
    assert "kustomization.yaml" in walked and ".pre-commit-config.yaml" not in walked


def test_a_staged_yml_beside_a_committed_yaml_is_rejected(bridges_repo: BridgesRepo) -> None:
    bridges_repo.write("team/x.yaml")
    bridges_repo.commit("team/x.yaml")
    bridges_repo.write("team/x.yml")
    bridges_repo.stage("team/x.yml")
    done = bridges_repo.run_hook()
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "team/x.yml: error: bridge id 'x' is already used by team/x.yaml: "
        "rename or remove one of the two files"
    ) in done.stdout
    assert _summaries(done.stdout) == ["2 files checked: 1 valid, 1 invalid (1 error, 0 warnings)"]


def test_by_default_only_what_the_runner_would_read_is_checked(bridges_repo: BridgesRepo) -> None:
    # Each of these is a YAML file that the runner skips in its directory, and not a bridge.
    skipped = [
        ".pre-commit-hooks.yaml",
        ".github/workflows/ci.yml",
        "team/.drafts/wip.yaml",
        "team/signups.status.yaml",
    ]
    for name in skipped:
        bridges_repo.write(name, WORKFLOW)
    bridges_repo.write(".pre-commit-config.yaml", _config(bridges_repo.hook) + "# changed\n")
    bridges_repo.write("team/signups.yaml")
    bridges_repo.stage(*skipped, ".pre-commit-config.yaml", "team/signups.yaml")
    done = bridges_repo.run_hook()
    assert done.returncode == 0, done.stdout + done.stderr
    assert _summaries(done.stdout) == ["1 file checked: 1 valid, 0 invalid (0 errors, 0 warnings)"]


def test_a_kustomization_is_yaml_the_runner_would_reject_so_the_hook_does_too(
    bridges_repo: BridgesRepo,
) -> None:
    bridges_repo.write(
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n",
    )
    bridges_repo.stage("kustomization.yaml")
    done = bridges_repo.run_hook()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "kustomization.yaml:" in done.stdout


def test_all_staged_files_are_checked_by_one_process(bridges_repo: BridgesRepo) -> None:
    # pre-commit splits more than 4 files across its processes unless the hook is serial.
    names = [f"bridge-{index}.yaml" for index in range(8)]
    for name in names:
        bridges_repo.write(name)
    bridges_repo.stage(*names)
    done = bridges_repo.run_hook()
    assert done.returncode == 0, done.stdout + done.stderr
    assert _summaries(done.stdout) == ["8 files checked: 8 valid, 0 invalid (0 errors, 0 warnings)"]


def _documented_hook_options() -> dict[str, object]:
    """The hook entry of the example config in docs/ci.md's pre-commit section."""
    text = (ROOT / "docs" / "ci.md").read_text()
    section = text.split("\n## pre-commit\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    assert block, "docs/ci.md's pre-commit section shows a config"
    (hook,) = yaml.safe_load(block.group(1))["repos"][0]["hooks"]
    assert hook["id"] == HOOK_ID
    return {k: v for k, v in hook.items() if k != "id"}


def test_the_documented_config_checks_the_bridges_folder_only(
    tmp_path: Path, hook_source: HookSource
) -> None:
    options = _documented_hook_options()
    assert "files" in options  # the example narrows the hook to the bridges folder
    repo = _bridges_repo(tmp_path / "repo", hook_source, _config(hook_source, options))
    repo.write("bridges/team/signups.yaml")
    repo.write("bridges/.drafts/wip.yaml", WORKFLOW)  # still skipped once `files` is narrowed
    repo.write("deploy/kustomization.yaml", "kind: Kustomization\nresources: []\n")
    repo.write(".github/workflows/ci.yml", WORKFLOW)
    names = [
        "bridges/team/signups.yaml",
        "bridges/.drafts/wip.yaml",
        "deploy/kustomization.yaml",
        ".github/workflows/ci.yml",
    ]
    repo.stage(*names)
    done = repo.run_hook()
    assert done.returncode == 0, done.stdout + done.stderr
    assert _summaries(done.stdout) == ["1 file checked: 1 valid, 0 invalid (0 errors, 0 warnings)"]
