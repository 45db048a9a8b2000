"""The one YAML reader of bridge-runner: safe parsing that keeps every value's position.

PyYAML's `safe_load` loses positions, silently keeps the last of two duplicate keys and
expands aliases without limit. Here libyaml (`CSafeLoader`, ~8x faster than the pure-Python
loader, which is the fallback) only *composes* the node tree; this module builds the plain
Python data itself, so that it can:

- remember the 1-based line/column of every key and value, addressed by path tuples
  (`("spec", "sink", "uri")`, list items by int index);
- report duplicate keys (at the second key), non-string keys, unsupported tags, a top level
  that is not a mapping, more than one document, files over 1 MiB (checked before parsing),
  bytes that are not UTF-8, syntax errors with their position;
- refuse alias bombs: the number of values built, aliases expanded included, is capped,
  and so is nesting depth (recursive aliases hit one of the two limits). Merge keys
  (`<<`) count too: every source of a merge list and every merged key, kept or shadowed.

Every failure becomes a located `Problem`; nothing here raises for bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from runner.model import Problem

try:
    _Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

MAX_FILE_BYTES = 1024 * 1024
# A bridge has a few dozen values; these limits are far above any honest file and far below
# what an alias bomb ("billion laughs") expands to.
MAX_NODES = 10_000
MAX_DEPTH = 64

Path = tuple[str | int, ...]
_NEEDS_QUOTING = re.compile(r"[.\[\]\s\"]")
Position = tuple[int, int]

_TAG = "tag:yaml.org,2002:"
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_MERGE_TAG = _TAG + "merge"
_KEY_TYPE_NAMES = {
    _TAG + "int": "a number",
    _TAG + "float": "a number",
    _TAG + "bool": "a boolean",
    _TAG + "null": "null",
    _TAG + "timestamp": "a date",
}


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A parsed YAML document: its plain data and the position of every node in it.

    `data` is made of dict/list/str/int/float/bool/None only. Positions are 1-based.
    """

    data: dict[str, Any]
    value_positions: dict[Path, Position]
    key_positions: dict[Path, Position]

    def locate(self, path: Path) -> Position:
        """Where the value at `path` starts; for a path that does not exist (a missing
        required field), the key of its nearest existing ancestor."""
        found = self.value_positions.get(path)
        if found is not None:
            return found
        for end in range(len(path) - 1, -1, -1):
            ancestor = path[:end]
            found = self.key_positions.get(ancestor) or self.value_positions.get(ancestor)
            if found is not None:
                return found
        return (1, 1)

    def locate_key(self, path: Path) -> Position:
        """Where the key naming `path` is written (for unknown or duplicate fields)."""
        return self.key_positions.get(path) or self.locate(path)

    def paths(self) -> Iterator[Path]:
        return iter(self.value_positions)


class _Refused(Exception):
    """Internal: building stops at the first structural problem, located at a node."""

    def __init__(self, node: yaml.Node, path: Path, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.path = path
        self.message = message


def parse_document(data: bytes, file: str) -> ParsedDocument | list[Problem]:
    """Parse one YAML document holding a mapping; every failure is a located Problem."""
    if len(data) > MAX_FILE_BYTES:
        return [
            Problem(
                file,
                None,
                None,
                "",
                f"file is too large: {len(data):,} bytes (bridge files are limited to 1 MiB)",
            )
        ]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _position_of_offset(data[: exc.start].decode("utf-8", "replace"))
        return [
            Problem(
                file,
                line,
                column,
                "",
                f"file is not UTF-8 text (invalid byte 0x{data[exc.start]:02x})",
            )
        ]
    try:
        root = _compose_single(text, file)
    except _MultipleDocuments as multiple:
        return [multiple.problem]
    except yaml.MarkedYAMLError as exc:
        return [_syntax_problem(exc, file)]
    except yaml.reader.ReaderError as exc:
        line, column = _position_of_offset(text[: exc.position])
        return [Problem(file, line, column, "", f"YAML syntax error: {exc.reason}")]
    except yaml.YAMLError as exc:  # anything else libyaml may raise, without a position
        return [Problem(file, 1, 1, "", f"YAML syntax error: {type(exc).__name__}")]
    except RecursionError:  # the pure-Python composer on absurd nesting
        return [Problem(file, 1, 1, "", "YAML is nested too deeply")]

    if root is None:
        return [
            Problem(
                file,
                1,
                1,
                "",
                "file is empty: expected a bridge (apiVersion, kind, metadata, spec)",
            )
        ]
    if not isinstance(root, yaml.MappingNode) or root.tag != _MAP_TAG:
        line, column = _mark(root.start_mark)
        return [
            Problem(
                file,
                line,
                column,
                "",
                "the top level must be a mapping (apiVersion, kind, metadata, spec), "
                f"not {_describe_node(root)}",
            )
        ]
    builder = _Builder()
    try:
        value = builder.build(root, (), 0)
    except _Refused as refused:
        line, column = _mark(refused.node.start_mark)
        return [Problem(file, line, column, format_path(refused.path), refused.message)]
    # The builder's own located problems (duplicate keys etc.) come from _Refused too: we stop
    # at the first, as a file whose structure is broken gives unreliable later findings.
    assert isinstance(value, dict)
    return ParsedDocument(value, builder.value_positions, builder.key_positions)


class _MultipleDocuments(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _compose_single(text: str, file: str) -> yaml.Node | None:
    loader = _Loader(text)
    try:
        if not loader.check_node():
            return None
        root: yaml.Node | None = loader.get_node()
        if loader.check_node():
            second = loader.get_node()
            line, column = _mark(second.start_mark) if second is not None else (1, 1)
            raise _MultipleDocuments(
                Problem(
                    file,
                    line,
                    column,
                    "",
                    "more than one YAML document ('---'): put each bridge in its own file",
                )
            )
        return root
    finally:
        loader.dispose()


class _Builder:
    """Turns composed nodes into plain data, recording positions and enforcing limits."""

    def __init__(self) -> None:
        self.value_positions: dict[Path, Position] = {}
        self.key_positions: dict[Path, Position] = {}
        self.nodes_built = 0
        # Scalars are constructed with PyYAML's own safe constructors (ints like 0x1f, 1_000,
        # floats like .inf, YAML 1.1 booleans), so values mean what PyYAML users expect.
        self._constructor = yaml.constructor.SafeConstructor()

    def _count(self, node: yaml.Node, path: Path, depth: int) -> None:
        self.nodes_built += 1
        if self.nodes_built > MAX_NODES:
            raise _Refused(
                node,
                path,
                f"the document expands to more than {MAX_NODES:,} values "
                "(too many aliases?): refused",
            )
        if depth > MAX_DEPTH:
            raise _Refused(node, path, f"the document is nested more than {MAX_DEPTH} levels deep")

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self._count(node, path, depth)
        self.value_positions.setdefault(path, _mark(node.start_mark))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise _Refused(node, path, f"unsupported YAML tag {node.tag!r}")
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                raise _Refused(node, path, f"unsupported YAML tag {node.tag!r}")
            result: dict[str, Any] = {}
            self._fill_mapping(node, path, depth, result, merged=False)
            return result
        raise _Refused(
            node, path, "unsupported YAML node"
        )  # pragma: no cover - no other node kinds

    def _fill_mapping(
        self,
        node: yaml.MappingNode,
        path: Path,
        depth: int,
        result: dict[str, Any],
        *,
        merged: bool,
    ) -> None:
        merges: list[yaml.Node] = []
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            if key in first_seen:
                raise _Refused(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first defined on line {first_seen[key]})",
                )
            first_seen[key] = key_node.start_mark.line + 1
            if merged and key in result:
                # Keys written in the mapping itself (or merged earlier) win over merged ones.
                # A skipped key is still work: count it, or `<<: [*a, *a, ...]` repeats a big
                # mapping thousands of times for free.
                self._count(key_node, path, depth + 1)
                continue
            child = (*path, key)
            self.key_positions.setdefault(child, _mark(key_node.start_mark))
            result[key] = self.build(value_node, child, depth + 1)
        for merge in merges:
            self._merge(merge, path, depth, result)

    def _merge(self, node: yaml.Node, path: Path, depth: int, result: dict[str, Any]) -> None:
        """YAML merge keys (`<<: *defaults`): explicit keys take precedence over merged ones."""
        self._count(node, path, depth)
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            # Each source of a merge list costs one value of the budget, whatever it adds.
            self._count(source, path, depth + 1)
            if not isinstance(source, yaml.MappingNode) or source.tag != _MAP_TAG:
                raise _Refused(
                    source, path, "a merge key ('<<') needs a mapping or a list of mappings"
                )
            self._fill_mapping(source, path, depth + 1, result, merged=True)

    def _key(self, node: yaml.Node, path: Path) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise _Refused(node, path, f"mapping keys must be strings, not {_describe_node(node)}")
        if node.tag == _TAG + "str":
            return str(node.value)
        kind = _KEY_TYPE_NAMES.get(node.tag, f"tagged {node.tag!r}")
        raise _Refused(
            node,
            path,
            f"mapping key {node.value!r} is read as {kind}, not a string: quote it",
        )

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        tag = node.tag
        if tag == _TAG + "str":
            return node.value
        # Dates stay text: no field of a bridge is a date, and labels such as
        # `released: 2024-05-01` mean the string.
        if tag == _TAG + "timestamp":
            return node.value
        if tag in (_TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null"):
            try:
                return self._constructor.construct_object(node)
            except (ValueError, yaml.YAMLError):
                raise _Refused(
                    node, path, f"value tagged !!{tag[len(_TAG) :]} is not valid"
                ) from None
        raise _Refused(node, path, f"unsupported YAML tag {tag!r}")


def format_path(path: Path) -> str:
    """The dotted form of a path: `spec.sink.headers.X-Token`, list items as `[0]`, keys that
    contain dots, brackets or spaces quoted (`metadata.labels["app.kubernetes.io/name"]`)."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part and not _NEEDS_QUOTING.search(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part)}]")
    return "".join(out)


def _mark(mark: Any) -> Position:
    return (mark.line + 1, mark.column + 1)


def _position_of_offset(prefix: str) -> Position:
    line = prefix.count("\n") + 1
    return (line, len(prefix) - (prefix.rfind("\n") + 1) + 1)


def _describe_node(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if node.tag == _TAG + "null":
        return "an empty value"
    return "a single value"


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, column = _mark(mark) if mark is not None else (1, 1)
    parts = [p for p in (exc.context, exc.problem) if p]
    return Problem(file, line, column, "", "YAML syntax error: " + (", ".join(parts) or "invalid"))
