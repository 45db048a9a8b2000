"""Property: whatever bytes it is given, the loader returns a valid bridge or located
problems, and never raises."""

from __future__ import annotations

import copy
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.loader.config import load_bytes
from runner.model import LoadResult
from tests.loader.conftest import FULL, MINIMAL, ROOT

EXAMPLES = [yaml.safe_load(FULL), yaml.safe_load(MINIMAL)]
SETTINGS = settings(
    max_examples=int(os.environ.get("BRIDGE_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["${X}", "${", "file:../x", "P1M", "arn:aws:x", "0s", "-1"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


def check(result: LoadResult, *, parsed: bool) -> None:
    assert isinstance(result, LoadResult)
    assert result.file_digest is not None
    for problem in result.problems:
        assert problem.message and problem.severity in ("error", "warning")
        assert not problem.message.startswith("internal error"), problem.message
        if parsed:
            assert problem.line is not None and problem.line >= 1
            assert problem.column is not None and problem.column >= 1
    if result.bridge is not None:
        assert result.valid and len(result.bridge.digest) == 64
    else:
        assert result.errors


def load(data: bytes) -> LoadResult:
    return load_bytes(data, path=ROOT / "p.yaml", root=ROOT, env={"X": "1"})


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    result = load(data)
    check(result, parsed=False)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    check(load(text.encode("utf-8", "surrogatepass")), parsed=False)


def mutate(data: dict[str, Any], draw: Any) -> dict[str, Any]:
    """Delete, retype or add one value somewhere in the document."""
    doc = copy.deepcopy(data)
    node: Any = doc
    while isinstance(node, dict) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node)))
        if not isinstance(node[key], dict):
            break
        node = node[key]
    if not isinstance(node, dict):
        return doc
    action = draw(st.sampled_from(["delete", "retype", "insert"]))
    if action == "delete" and node:
        del node[draw(st.sampled_from(sorted(node)))]
    elif action == "retype" and node:
        node[draw(st.sampled_from(sorted(node)))] = draw(JUNK)
    else:
        node[draw(st.text(min_size=1, max_size=8))] = draw(JUNK)
    return doc


@SETTINGS
@given(st.data())
def test_mutated_examples(data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from(EXAMPLES))
    for _ in range(data.draw(st.integers(1, 3))):
        doc = mutate(doc, data.draw)
    text = yaml.safe_dump(doc, sort_keys=False)
    check(load(text.encode()), parsed=True)


@SETTINGS
@given(st.sampled_from([FULL, MINIMAL]), st.data())
def test_textual_mutations(source: str, data: st.DataObject) -> None:
    """Line-level edits of the YAML text: duplicated keys, dropped or garbled lines."""
    lines = source.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    action = data.draw(st.sampled_from(["duplicate", "drop", "garble", "insert"]))
    if action == "duplicate":
        lines.insert(index, lines[index])
    elif action == "drop":
        del lines[index]
    elif action == "garble":
        lines[index] = lines[index][: data.draw(st.integers(0, len(lines[index])))]
    else:
        lines.insert(index, data.draw(st.text(max_size=20)))
    result = load("\n".join(lines).encode("utf-8", "surrogatepass"))
    check(result, parsed=False)
    if action == "duplicate" and lines[index].strip() and ":" in lines[index]:
        # A duplicated "key: value" line is always an error, never silently accepted.
        assert result.bridge is None
