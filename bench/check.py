"""Benchmark `bridge-runner check` against a bare YAML + JSON Schema loop over the same files.

    .venv/bin/python bench/check.py           # 1,000 generated bridges, median of 5 runs each
    .venv/bin/python bench/check.py --quick   # 100 bridges, 1 run: a smoke run

Measured in the same run, on the same generated directory:
- `check` as a real subprocess (`python -m runner check --quiet DIR`): the whole process, start-up
  and imports included, which is what a CI job pays;
- `check` in-process (`runner.cli.main.main`), after a warm-up: what re-reading the directory costs
  a running runner;
- the baseline: `yaml.safe_load` + `jsonschema.validate(instance, schema)` per file, in-process.

Targets (issue 2): the whole check process under 2 s for 1,000 bridges, and faster than the
baseline. Ratios are baseline time / check time: above 1 means check is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROCESS_TARGET_S = 2.0

BRIDGE = """\
apiVersion: bridge-runner/v1alpha1
kind: Bridge
metadata:
  name: bridge-{i}
  labels: {{team: team-{team}, tier: "{tier}"}}
spec:
  source:
    awsCognitoUserPool:
      arn: arn:aws:cognito-idp:us-west-2:{account}:userpool/us-west-2_pool{i:05d}
      auth:
        credentials:
          accessKeyID: {{valueFromEnv: BRIDGE_VAR_AWS_KEY_ID}}
          secretAccessKey: {{valueFromSecret: {{name: awscreds, key: aws_secret_access_key}}}}
        assumeIamRole: arn:aws:iam::{account}:role/cognito-reader
      pollInterval: {poll}s
      initialSync: baseline
  sink:
    uri: https://events.example.com/cognito/{i}
    format: binary
    headers: {{Authorization: {{valueFromEnv: BRIDGE_VAR_SINK_TOKEN}}, X-Bridge: "bridge-{i}"}}
    timeout: 10s
  delivery:
    retry: 10
    backoffPolicy: exponential
    backoffDelay: 500ms
    maxBackoff: 5m
    deadLetterSink: {{uri: "file:dead-letter/bridge-{i}.jsonl"}}
  ceOverrides:
    extensions: {{team: team-{team}}}
"""

TRIGGERMESH = """\
apiVersion: sources.triggermesh.io/v1alpha1
kind: AWSCognitoUserPoolSource
metadata:
  name: source-{i}
spec:
  arn: arn:aws:cognito-idp:eu-west-1:{account}:userpool/eu-west-1_pool{i:05d}
  auth:
    credentials:
      accessKeyID:
        valueFromSecret: {{name: awscreds, key: aws_access_key_id}}
      secretAccessKey:
        valueFromSecret: {{name: awscreds, key: aws_secret_access_key}}
  sink:
    uri: http://broker-ingress.knative-eventing.svc.cluster.local/team-{team}/default
"""


def generate(directory: Path, count: int) -> list[Path]:
    """`count` valid bridges in 20 team folders; one in ten is a TriggerMesh manifest."""
    files = []
    for i in range(count):
        team = i % 20
        template = TRIGGERMESH if i % 10 == 9 else BRIDGE
        text = template.format(
            i=i, team=team, tier=i % 3, account=f"{100000000000 + i:012d}", poll=30 + i % 60
        )
        path = directory / f"team-{team:02d}" / f"bridge-{i:04d}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        files.append(path)
    return files


def time_check_process(directory: Path) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "check", "--quiet", str(directory)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        output = completed.stdout + completed.stderr
        sys.exit(f"check failed (exit {completed.returncode}):\n{output}")
    return elapsed


def time_check_in_process(directory: Path) -> float:
    from runner.cli.main import main

    output = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(output):
        code = main(["check", "--quiet", str(directory)])
    elapsed = time.perf_counter() - started
    if code != 0:
        sys.exit(f"in-process check failed (exit {code}):\n{output.getvalue()}")
    return elapsed


def make_baseline(files: list[Path]) -> Callable[[], float]:
    schemas = {
        "Bridge": _shipped_schema("bridge.schema.json"),
        "AWSCognitoUserPoolSource": _shipped_schema("triggermesh.schema.json"),
    }

    def run() -> float:
        started = time.perf_counter()
        for path in files:
            instance = yaml.safe_load(path.read_text())
            jsonschema.validate(instance, schemas[instance["kind"]])
        return time.perf_counter() - started

    return run


def _shipped_schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "runner" / "schemas" / name).read_text())
    return loaded


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 files, 1 run (smoke run)")
    parser.add_argument("--files", type=int, help="number of bridges (default 1000)")
    parser.add_argument("--runs", type=int, help="runs per measurement (default 5)")
    options = parser.parse_args()
    count = options.files or (100 if options.quick else 1000)
    runs = options.runs or (1 if options.quick else 5)

    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        directory = Path(tmp) / "bridges"
        directory.mkdir()
        files = generate(directory, count)
        time_check_in_process(directory)  # warm-up: imports and compiled validators
        process = median_of(runs, lambda: time_check_process(directory))
        in_process = median_of(runs, lambda: time_check_in_process(directory))
        baseline = median_of(runs, make_baseline(files))

    print(f"bridges: {count} files, median of {runs} run(s) each")
    print(f"check, whole process (python -m runner check): {process:8.3f} s")
    print(f"check, in-process (runner.cli.main):           {in_process:8.3f} s")
    print(f"baseline (yaml.safe_load + jsonschema.validate): {baseline:6.3f} s")
    print(f"ratio baseline / check process:    {baseline / process:6.2f}x")
    print(f"ratio baseline / check in-process: {baseline / in_process:6.2f}x")
    if count == 1000:
        verdict = "met" if process < PROCESS_TARGET_S and process < baseline else "NOT met"
        print(f"target (process < {PROCESS_TARGET_S:.0f} s and faster than baseline): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
