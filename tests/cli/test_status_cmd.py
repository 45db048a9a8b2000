"""`bridge-runner status` over status files it did not write: reported, never a crash."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner.cli.main import main

BRIDGE = """\
apiVersion: bridge-runner/v1alpha1
kind: Bridge
spec:
  source:
    awsCognitoUserPool:
      arn: arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B
  sink:
    uri: https://events.example.com/cognito
"""


@pytest.mark.parametrize(
    "content",
    ["[1, 2]", '{"conditions": ["Ready"]}', '{"source": {"lastPollTime": 5}}', "{not json"],
)
def test_a_malformed_status_file_is_reported_not_a_crash(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "b.yaml").write_text(BRIDGE)
    (tmp_path / "b.status.json").write_text(content)
    assert main(["status", str(tmp_path), "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["bridges"]
    assert row["bridge"] == "b" and row["ready"] == "Unknown"
    assert row["reason"] in {"InvalidStatus", "NoStatus"}

    # --wait keeps waiting for a real status, then times out naming the bridge.
    assert main(["status", str(tmp_path), "--wait", "--timeout", "1"]) == 1
    assert "b: " in capsys.readouterr().err


def test_revision_prefixes_need_seven_hex_characters_and_match_any_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkout (git CLI) at one commit, its status and runner record written by hand in
    their documented on-disk form, the runner being this (live) test process."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for args in (["init", "-q"], ["add", "b.yaml"], ["commit", "-qm", "A"]):
        (tmp_path / "b.yaml").write_text(BRIDGE)
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, env=env, check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    run = {"startedAt": now, "pid": os.getpid(), "host": socket.gethostname()}
    digest = hashlib.sha256(BRIDGE.encode()).hexdigest()
    ready = {"status": "True", "message": "", "lastTransitionTime": now}
    status = {
        "apiVersion": "bridge-runner/v1alpha1",
        "kind": "BridgeStatus",
        "bridge": "b",
        "file": "b.yaml",
        "observedDigest": digest,
        "appliedDigest": digest,
        "observedRevision": sha,
        "conditions": [
            {"type": kind, "reason": "Fine", **ready}
            for kind in ("Valid", "SourceReady", "SinkReady", "Ready")
        ],
        "errors": [],
        "source": dict.fromkeys(["lastPollTime", "lastSuccessfulPollTime"], now)
        | {"usersTracked": 0, "pagesRead": 1, "scans": 1, "lastScanDurationSeconds": 0.1}
        | {"throttles": 0, "lastError": None},
        "sink": dict.fromkeys(["delivered", "pending", "retried", "deadLettered", "parked"], 0)
        | {"emitted": 0, "lastDeliveryTime": None, "lastError": None},
        "ceAttributes": [],
        "updatedAt": now,
        "runner": run,
    }
    (tmp_path / "b.status.json").write_text(json.dumps(status))
    (tmp_path / ".bridge-runner").mkdir()
    record = {"kind": "RunnerRecord", "runner": run, "heartbeatAt": now, "stoppedAt": None}
    (tmp_path / ".bridge-runner" / "runner.json").write_text(json.dumps(record))

    for bad in (sha[:6], "g" * 7, sha[:7] + " x"):
        assert main(["status", str(tmp_path), "--wait", "--for-revision", bad]) == 2, bad
        assert "at least 7 hex characters" in capsys.readouterr().err
    for good in (sha[:7], sha[:7].upper(), sha.upper()):
        code = main(["status", str(tmp_path), "--wait", "--for-revision", good, "--timeout", "1m"])
        assert code == 0, capsys.readouterr().err
        assert "True" in capsys.readouterr().out
