"""`bridge-runner status` over status files it did not write: reported, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main

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
