"""The example bridges in bridges/ are what users copy: each must be valid, warning-free, and
point editors at its schema; complete.yaml must spell out every field of the bridge schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.cli.check import check_paths
from runner.loader.config import load_bridge
from runner.loader.discovery import discover_bridge_files
from runner.schemas import load_schema

ROOT = Path(__file__).resolve().parents[2]
BRIDGES = ROOT / "bridges"
EXAMPLES = discover_bridge_files(BRIDGES)


def test_the_three_documented_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"minimal.yaml", "complete.yaml", "triggermesh.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_is_valid_without_any_warning(path: Path, tmp_path: Path) -> None:
    # An empty environment: examples may only use ${VAR:-default}, so they check anywhere.
    result = load_bridge(path, root=BRIDGES, secrets_dir=tmp_path, env={})
    assert [problem.render() for problem in result.problems] == []
    assert result.valid and result.bridge is not None


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_names_its_schema_for_editors(path: Path) -> None:
    first_line = path.read_text().splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first_line.startswith(prefix)
    assert (path.parent / first_line.removeprefix(prefix)).resolve().is_file()


def test_check_accepts_the_whole_examples_directory(tmp_path: Path) -> None:
    report = check_paths([BRIDGES], secrets_dir=tmp_path, env={}, strict=True)
    assert report.passed
    assert report.display_paths and report.valid_count == len(EXAMPLES)


def test_minimal_example_relies_on_the_defaults(tmp_path: Path) -> None:
    bridge = load_bridge(
        BRIDGES / "minimal.yaml", root=BRIDGES, secrets_dir=tmp_path, env={}
    ).bridge
    assert bridge is not None
    assert (bridge.id, bridge.name) == ("minimal", "minimal")
    assert bridge.source.auth.credentials is None
    assert (bridge.source.poll_interval, bridge.source.initial_sync) == (5.0, "baseline")
    assert (bridge.sink.format, bridge.delivery.retry) == ("binary", None)


def test_triggermesh_example_gets_triggermesh_defaults(tmp_path: Path) -> None:
    result = load_bridge(BRIDGES / "triggermesh.yaml", root=BRIDGES, secrets_dir=tmp_path, env={})
    bridge = result.bridge
    assert bridge is not None
    assert bridge.origin == "AWSCognitoUserPoolSource"
    assert bridge.source.emit_deletions is False
    assert bridge.source.pool.pool_id == "us-west-2_abcdefghi"
    credentials = bridge.source.auth.credentials
    assert credentials is not None
    assert repr(credentials.secret_access_key) == "SecretRef(secret awscreds/aws_secret_access_key)"


def test_complete_example_uses_the_defaults_of_its_variables(tmp_path: Path) -> None:
    path = BRIDGES / "complete.yaml"
    bridge = load_bridge(path, root=BRIDGES, secrets_dir=tmp_path, env={}).bridge
    assert bridge is not None
    assert bridge.sink.target.uri == "https://events.example.com/cognito"
    overridden = load_bridge(
        path,
        root=BRIDGES,
        secrets_dir=tmp_path,
        env={"BRIDGE_VAR_SINK_URL": "http://127.0.0.1:9/x"},
    ).bridge
    assert overridden is not None and overridden.sink.target.uri == "http://127.0.0.1:9/x"


def _schema_fields(schema: dict[str, Any], prefix: str = "") -> set[str]:
    fields = set()
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        fields.add(path)
        fields |= _schema_fields(sub, path + ".")
    return fields


def _document_fields(data: Any, prefix: str = "") -> set[str]:
    if not isinstance(data, dict):
        return set()
    fields = set()
    for name, value in data.items():
        fields.add(f"{prefix}{name}")
        fields |= _document_fields(value, f"{prefix}{name}.")
    return fields


def test_complete_example_spells_out_every_field_of_the_bridge_schema() -> None:
    """complete.yaml has an http(s) sink: the fields only an AWS or NATS sink takes
    (endpoint, auth) are spelled out by the AWS examples and nats.yaml instead."""
    documented = _document_fields(yaml.safe_load((BRIDGES / "complete.yaml").read_text()))
    for name in AWS_EXAMPLES:
        documented |= _document_fields(yaml.safe_load((BRIDGES / name).read_text()))
    documented |= _document_fields(yaml.safe_load((BRIDGES / "nats.yaml").read_text()))
    missing = _schema_fields(load_schema("bridge")) - documented
    assert missing == set()


AWS_EXAMPLES = {
    "aws-sqs.yaml": ("sqs", True),
    "aws-sns.yaml": ("sns", False),
    "aws-eventbridge.yaml": ("events", False),
    "aws-kinesis.yaml": ("kinesis", False),
}


@pytest.mark.parametrize("name", sorted(AWS_EXAMPLES))
def test_each_aws_sink_has_an_example(name: str, tmp_path: Path) -> None:
    bridge = load_bridge(BRIDGES / name, root=BRIDGES, secrets_dir=tmp_path, env={}).bridge
    assert bridge is not None
    aws = bridge.sink.target.aws
    assert aws is not None
    assert (aws.arn.service, aws.arn.fifo) == AWS_EXAMPLES[name]
    text = (BRIDGES / name).read_text()
    assert "IAM:" in text  # each says which actions its credentials need
