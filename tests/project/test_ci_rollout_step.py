"""The rollout step of docs/examples/bridges-ci.yaml, run as GitHub runs it (`bash -e`), against
real git repositories: an upstream, the CI clone at the commit being rolled out, and one git
worktree per pod holding that pod's status files and runner record. `kubectl` is a stand-in
that serves each pod's worktree where the step expects `/git/current`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.reconcile.plan import shard_of
from runner.status.runrecord import RunIdentity, RunRecordWriter
from runner.status.writer import status_path_for
from tests.builders import render_status
from tests.peers.git import GIT_ENV, git

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "examples" / "bridges-ci.yaml"
STEP = "Wait until every bridge is Ready at this commit"
VENV_BIN = Path(sys.executable).parent
ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
NAMES = [f"b{i}" for i in range(6)]
pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "tar", "find", "git")),
    reason="needs bash, tar, find and git",
)


def bridge(interval: str = "30s") -> str:
    return (
        "apiVersion: bridge-runner/v1alpha1\nkind: Bridge\nspec:\n  source:\n"
        f"    awsCognitoUserPool:\n      arn: {ARN}\n      pollInterval: {interval}\n"
        "  sink:\n    uri: https://events.example.com/cognito\n"
    )


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def step_script() -> str:
    workflow: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    for step in workflow["jobs"]["rollout"]["steps"]:
        if step.get("name") == STEP:
            return str(step["run"])
    raise AssertionError(f"no step {STEP!r}")


class Cluster:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.upstream = tmp_path / "upstream"
        self.upstream.mkdir()
        git(self.upstream, "init", "-q", "-b", "main")
        files = {f"bridges/{n}.yaml": bridge() for n in NAMES}
        self.a = commit(self.upstream, {".gitignore": "*.status.json\n", **files}, "A")
        # The CI checkout of A, with its history (fetch-depth: 0), made before later pushes.
        self.ci = tmp_path / "ci"
        git(tmp_path, "clone", "-q", str(self.upstream), str(self.ci))
        git(self.ci, "checkout", "-q", "--detach", self.a)
        self.pods = tmp_path / "pods"
        self.pods.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "kubectl").write_text(
            "#!/bin/sh\n"
            f'pods="{self.pods}"\n'
            'case "$3" in\n'
            '  get) for p in $(ls "$pods"); do echo "pod/$p"; done ;;\n'
            '  exec) pod="${4#pod/}"\n'
            '        script=$(printf "%s" "${10}" | sed "s#/git/current#$pods/$pod#g")\n'
            '        exec sh -c "$script" ;;\n'
            '  *) echo "unexpected: $*" >&2; exit 2 ;;\n'
            "esac\n"
        )
        (bin_dir / "kubectl").chmod(0o755)
        self.env = {
            **GIT_ENV,
            "PATH": f"{bin_dir}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "NAMESPACE": "bridge-runner",
            "GITHUB_SHA": self.a,
        }

    def pod(self, ordinal: int, at: str, *, reported: bool = True) -> None:
        """Pod `ordinal` of 2, at commit `at`, its shard's bridges Ready (if `reported`)."""
        checkout = self.pods / f"bridge-runner-{ordinal}"
        git(self.upstream, "worktree", "add", "-q", "--detach", str(checkout), at)
        if not reported:
            return
        bridges = checkout / "bridges"
        run = RunIdentity.current()
        run = RunIdentity(f"2026-01-01T00:00:0{ordinal}.000Z", run.pid, run.host)
        for name in NAMES:
            if shard_of(name, 2) != ordinal:
                continue
            path = bridges / f"{name}.yaml"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            doc = render_status(
                bridge_id=name, file=path.name, observed_digest=digest, applied_digest=digest,
                observed_revision=at, source_ready=(True, "Polling", "pool scanned"),
                sink_ready=(True, "Delivered", "the sink accepts events"), runner=run.to_status(),
                now=datetime.now(UTC),
            )  # fmt: skip
            status_path_for(path).write_text(json.dumps(doc))
        assert RunRecordWriter(bridges, shard=f"{ordinal}/2", run=run).beat(at)

    def run_step(self, timeout: str = "5m") -> subprocess.CompletedProcess[str]:
        script = step_script()
        assert "--timeout 5m" in script
        return subprocess.run(
            ["bash", "-e", "-c", script.replace("--timeout 5m", f"--timeout {timeout}")],
            cwd=self.ci,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
        )


def test_both_shards_ready_at_a_later_docs_only_commit(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    b = commit(cluster.upstream, {"docs/README.md": "docs\n"}, "B: docs only")
    assert {shard_of(n, 2) for n in NAMES} == {0, 1}
    cluster.pod(0, b)
    cluster.pod(1, b)
    done = cluster.run_step()
    assert done.returncode == 0, done.stdout + done.stderr
    # Both pods' statuses and records were gathered into the CI checkout.
    assert sorted(p.name for p in (cluster.ci / "bridges" / ".bridge-runner").iterdir()) == [
        "runner-0-of-2.json",
        "runner-1-of-2.json",
    ]


def test_a_bridge_changed_by_a_later_commit_is_found_superseded_after_the_fetch(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path)
    b = commit(cluster.upstream, {"bridges/b0.yaml": bridge("60s")}, "B: b0 changes")
    cluster.pod(0, b)
    cluster.pod(1, b)
    done = cluster.run_step()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"b0: superseded by {b[:12]}" in done.stderr


def test_a_shard_that_has_not_reported_fails_the_step_naming_its_bridges(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    cluster.pod(0, cluster.a)
    cluster.pod(1, cluster.a, reported=False)
    done = cluster.run_step(timeout="3s")
    assert done.returncode == 1
    assert f"::error::bridges not Ready at {cluster.a}" in done.stdout
    report = done.stderr[done.stderr.index("timed out") :]
    named = {line.split(":")[0].strip() for line in report.splitlines()[1:]}
    assert named == {n for n in NAMES if shard_of(n, 2) == 1}
