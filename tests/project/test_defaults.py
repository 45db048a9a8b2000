"""Every bridge default is written once, in `runner.defaults`, and everything that restates one
agrees with it: the JSON Schemas' `default` keywords and their "Default: ..." descriptions, the
model's dataclass defaults, what the loader fills in for a minimal file (in both formats), the
README's table of fields and its `--aws-rps` default, `run --aws-rps` and the request budget.

Change a value in `runner.defaults` and this fails until the schema and the README follow."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import defaults
from runner._kits.durations import parse_duration
from runner.cli.main import build_parser
from runner.loader.config import load_bytes
from runner.model import Bridge, CognitoSource, Delivery, PoolArn, Sink, Target
from runner.schemas import load_schema
from runner.sources.cognito.budget import RequestBudgets

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"

# Where each default lands in the model, by its field in a bridge file.
MODEL_FIELD: dict[str, Callable[[Bridge], object]] = {
    "spec.suspend": lambda b: b.suspend,
    "spec.source.awsCognitoUserPool.pollInterval": lambda b: b.source.poll_interval,
    "spec.source.awsCognitoUserPool.initialSync": lambda b: b.source.initial_sync,
    "spec.source.awsCognitoUserPool.emitDeletions": lambda b: b.source.emit_deletions,
    "spec.sink.format": lambda b: b.sink.format,
    "spec.sink.maxBatchSize": lambda b: b.sink.max_batch_size,
    "spec.sink.timeout": lambda b: b.sink.timeout,
    "spec.sink.maxInFlight": lambda b: b.sink.max_in_flight,
    "spec.delivery.retry": lambda b: b.delivery.retry,
    "spec.delivery.backoffPolicy": lambda b: b.delivery.backoff_policy,
    "spec.delivery.backoffDelay": lambda b: b.delivery.backoff_delay,
    "spec.delivery.maxBackoff": lambda b: b.delivery.max_backoff,
    "spec.events.changeTypes": lambda b: b.events.change_types,
}
# A default with no value to write in a file (None) is said in words.
IN_WORDS = {"spec.delivery.retry": "until delivered"}

MINIMAL_BRIDGE = f"""\
apiVersion: bridge-runner/v1alpha1
kind: Bridge
spec:
  source:
    awsCognitoUserPool:
      arn: {ARN}
  sink:
    uri: https://events.example.com/cognito
"""
MINIMAL_TRIGGERMESH = f"""\
apiVersion: sources.triggermesh.io/v1alpha1
kind: AWSCognitoUserPoolSource
metadata:
  name: signups
spec:
  arn: {ARN}
  sink:
    uri: https://events.example.com/cognito
"""


def as_written(path: str, text: str) -> object:
    """A default as a bridge file (or the README) writes it, in the model's terms."""
    expected = defaults.BRIDGE_FIELDS[path]
    if isinstance(expected, tuple):  # a list, written `a,b,c`
        return tuple(text.split(","))
    if isinstance(expected, bool):
        assert text in ("true", "false"), f"{path}: {text!r} is not a boolean"
        return text == "true"
    if isinstance(expected, float):
        return parse_duration(text)
    if isinstance(expected, int):
        return int(text.replace(",", ""))
    return text


def schema_defaults(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, schema) of every property of a schema that declares a `default`."""
    if not isinstance(node, dict):
        return
    if "default" in node:
        yield path, node
    for name, child in node.get("properties", {}).items():
        yield from schema_defaults(child, f"{path}.{name}" if path else name)


def load(text: str) -> Bridge:
    result = load_bytes(text.encode(), path=Path("/b/signups.yaml"), root=Path("/b"), env={})
    assert result.bridge is not None and not result.problems, result.problems
    return result.bridge


def test_the_bridge_schema_declares_exactly_these_defaults() -> None:
    declared = dict(schema_defaults(load_schema("bridge")))
    with_a_value = {path for path, value in defaults.BRIDGE_FIELDS.items() if value is not None}
    assert set(declared) == with_a_value
    for path, schema in declared.items():
        written = schema["default"]
        value = as_written(path, written) if isinstance(written, str) else written
        value = tuple(value) if isinstance(value, list) else value
        assert value == defaults.BRIDGE_FIELDS[path], path


def test_the_bridge_schema_descriptions_say_the_same_defaults() -> None:
    for path, schema in schema_defaults(load_schema("bridge")):
        said = re.findall(r"Default: ([^\s.]+(?:\.\d+)?)\.", schema["description"])
        assert len(said) == 1, f"{path}: the description should say its default once"
        assert as_written(path, said[0]) == defaults.BRIDGE_FIELDS[path], path


def test_the_triggermesh_schema_states_what_a_manifest_runs_with() -> None:
    schema = load_schema("triggermesh")
    assert dict(schema_defaults(schema)) == {}, "a manifest has no defaults of its own to declare"
    description = schema["description"]
    sync = re.search(r"initialSync (\w+)", description)
    deletions = re.search(r"emitDeletions (true|false)", description)
    sink_format = re.search(r"(\w+) format\)", description)
    interval = re.search(r"scanned every (\S+?)\.", description)
    assert sync and deletions and sink_format and interval, description
    assert sync.group(1) == defaults.TRIGGERMESH_INITIAL_SYNC
    assert (deletions.group(1) == "true") is defaults.TRIGGERMESH_EMIT_DELETIONS
    assert sink_format.group(1) == defaults.TRIGGERMESH_SINK_FORMAT
    assert parse_duration(interval.group(1)) == defaults.TRIGGERMESH_POLL_INTERVAL


def test_the_models_dataclass_defaults_are_these() -> None:
    pool = PoolArn(ARN, "aws", "us-west-2", "043455440429", "us-west-2_fak3p001B")
    bridge = Bridge(
        id="signups",
        file=Path("signups.yaml"),
        name="signups",
        source=CognitoSource(pool=pool),
        sink=Sink(target=Target("https://events.example.com/cognito")),
    )
    assert set(MODEL_FIELD) == set(defaults.BRIDGE_FIELDS)
    assert bridge.delivery == Delivery()
    for path, read in MODEL_FIELD.items():
        assert read(bridge) == defaults.BRIDGE_FIELDS[path], path


def test_the_loader_fills_in_these_defaults_for_a_minimal_bridge() -> None:
    bridge = load(MINIMAL_BRIDGE)
    for path, read in MODEL_FIELD.items():
        assert read(bridge) == defaults.BRIDGE_FIELDS[path], path


def test_the_loader_runs_a_minimal_triggermesh_manifest_as_triggermesh_did() -> None:
    bridge = load(MINIMAL_TRIGGERMESH)
    assert bridge.source.poll_interval == defaults.TRIGGERMESH_POLL_INTERVAL
    assert bridge.source.initial_sync == defaults.TRIGGERMESH_INITIAL_SYNC
    assert bridge.source.emit_deletions is defaults.TRIGGERMESH_EMIT_DELETIONS
    assert bridge.sink.format == defaults.TRIGGERMESH_SINK_FORMAT


def readme_field_defaults() -> dict[str, str]:
    """The README's table of bridge fields: full dotted path -> its default cell."""
    section = README.split("### Fields", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]*) \|", section, flags=re.MULTILINE)
    assert rows, "the README's table of fields was not found"
    found: dict[str, str] = {}
    for written, cell in rows:
        if written.startswith("…"):  # `…awsCognitoUserPool.pollInterval`: a known suffix
            matches = [p for p in defaults.BRIDGE_FIELDS if p.endswith(written[1:])]
            if len(matches) != 1:
                continue
            written = matches[0]
        found[written] = cell.strip()
    return found


def test_the_readme_table_of_fields_says_the_same_defaults() -> None:
    table = readme_field_defaults()
    for path, value in defaults.BRIDGE_FIELDS.items():
        assert path in table, f"{path} is missing from the README's table of fields"
        cell = table[path]
        if value is None:
            assert cell == IN_WORDS[path], path
            continue
        code = re.fullmatch(r"`([^`]+)`", cell)
        assert code, f"{path}: the README's default {cell!r} is not one value in code"
        assert as_written(path, code.group(1)) == value, path


@pytest.mark.parametrize(
    "said",
    [
        # The table of `run` flags, and the prose about the request budget.
        *re.findall(r"^\| `--aws-rps` \| `([^`]+)` \|", README, flags=re.MULTILINE),
        *re.findall(r"--aws-rps`, default ([\d.]+) requests/s", README),
    ],
)
def test_the_readme_says_the_aws_rps_default(said: str) -> None:
    assert float(said) == defaults.AWS_RPS


def test_the_readme_says_the_aws_rps_default_in_both_places() -> None:
    assert len(re.findall(r"^\| `--aws-rps` \| ", README, flags=re.MULTILINE)) == 1
    assert len(re.findall(r"--aws-rps`, default [\d.]+ requests/s", README)) == 1


def test_run_and_the_request_budget_default_to_the_same_rate() -> None:
    words = ["run", "bridges"]
    args = build_parser(words).parse_args(words)
    assert args.aws_rps == defaults.AWS_RPS
    assert RequestBudgets().rate == defaults.AWS_RPS
