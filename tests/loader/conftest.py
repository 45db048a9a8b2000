"""Builders shared by the loader's tests: the example bridges, a bridge loaded from text as the
file `/bridges/<name>` (nothing is read from disk, no environment unless given), and its
findings as comparable tuples."""

from __future__ import annotations

from pathlib import Path

from runner.loader.config import load_bytes
from runner.model import LoadResult

ROOT = Path("/bridges")
ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"

MINIMAL = f"""\
apiVersion: bridge-runner/v1alpha1
kind: Bridge
spec:
  source:
    awsCognitoUserPool:
      arn: {ARN}
  sink:
    uri: https://events.example.com/cognito
"""

FULL = f"""\
apiVersion: bridge-runner/v1alpha1
kind: Bridge
metadata:
  name: signups
  labels: {{team: identity}}
spec:
  suspend: true
  source:
    awsCognitoUserPool:
      arn: {ARN}
      auth:
        credentials:
          accessKeyID:     {{valueFromEnv: BRIDGE_VAR_AWS_KEY_ID}}
          secretAccessKey: {{valueFromSecret: {{name: awscreds, key: aws_secret_access_key}}}}
          sessionToken:    {{valueFromFile: aws/session-token}}
        assumeIamRole: arn:aws:iam::043455440429:role/cognito-reader
      endpoint: http://127.0.0.1:5000
      pollInterval: 1m
      initialSync: emit
      emitDeletions: false
  sink:
    uri: https://events.example.com/cognito
    format: batch
    maxBatchSize: 250
    headers: {{Authorization: {{valueFromEnv: BRIDGE_VAR_SINK_TOKEN}}, X-Team: identity}}
    timeout: PT5S
  delivery:
    retry: 10
    backoffPolicy: linear
    backoffDelay: 250ms
    maxBackoff: 1h
    deadLetterSink: {{uri: "file:./dead-letter//signups.jsonl"}}
  ceOverrides:
    extensions: {{team: identity}}
"""

Finding = tuple[int | None, int | None, str, str, str]


def load_text(text: str, env: dict[str, str] | None = None, name: str = "b.yaml") -> LoadResult:
    """`text` loaded as the bridge file `/bridges/<name>`, with only `env` as environment."""
    return load_bytes(text.encode(), path=ROOT / name, root=ROOT, env=env or {})


def findings(result: LoadResult) -> list[Finding]:
    """(line, column, path, message, severity) of every problem, in order."""
    return [(p.line, p.column, p.path, p.message, p.severity) for p in result.problems]
