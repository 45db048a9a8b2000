"""The YAML reader: data, positions, and every structural problem located."""

from __future__ import annotations

import pytest
import yaml

from runner.loader import yamlsafe
from runner.loader.yamlsafe import (
    MAX_FILE_BYTES,
    MAX_NODES,
    ParsedDocument,
    format_path,
    parse_document,
)
from runner.model import Problem


def parsed(text: str) -> ParsedDocument:
    result = parse_document(text.encode(), "f.yaml")
    assert isinstance(result, ParsedDocument), result
    return result


def problem(data: bytes) -> tuple[int | None, int | None, str, str]:
    result = parse_document(data, "f.yaml")
    assert isinstance(result, list) and len(result) == 1, result
    (found,) = result
    assert isinstance(found, Problem) and found.file == "f.yaml" and found.severity == "error"
    return (found.line, found.column, found.path, found.message)


def test_builds_plain_data_with_yaml_scalars() -> None:
    doc = parsed("a: 0x1f\nb: 1_000\nc: yes\nd: ~\ne: 2024-05-01\nf: [1.5, 'x']\ng: {h: i}\n")
    assert doc.data == {
        "a": 31,
        "b": 1000,
        "c": True,
        "d": None,
        "e": "2024-05-01",  # dates stay text
        "f": [1.5, "x"],
        "g": {"h": "i"},
    }


def test_positions_of_values_and_keys_are_one_based() -> None:
    doc = parsed("spec:\n  sink:\n    uri: http://x\n  list:\n    - a\n    - b\n")
    assert doc.locate(("spec", "sink", "uri")) == (3, 10)
    assert doc.locate_key(("spec", "sink", "uri")) == (3, 5)
    assert doc.locate(("spec", "list", 1)) == (6, 7)
    # A path that does not exist: the key of its nearest existing ancestor.
    assert doc.locate(("spec", "sink", "format")) == (2, 3)
    assert doc.locate(("nothing", "here")) == (1, 1)


def test_merge_keys_let_explicit_keys_win() -> None:
    doc = parsed("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n")
    assert doc.data["m"] == {"x": 1, "y": 3}
    assert doc.locate(("m", "x")) == (1, 14)  # where the merged value is written


def test_single_document_markers_are_fine() -> None:
    assert parsed("---\na: 1\n...\n").data == {"a": 1}


def test_utf8_bom_is_accepted() -> None:
    result = parse_document(b"\xef\xbb\xbfa: 1\n", "f.yaml")
    assert isinstance(result, ParsedDocument) and result.data == {"a": 1}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a: 1\na: 2\n", (2, 1, "a", "duplicate key 'a' (first defined on line 1)")),
        (b"s:\n  x: 1\n  x: 2\n", (3, 3, "s.x", "duplicate key 'x' (first defined on line 2)")),
        (
            b"- a\n- b\n",
            (
                1,
                1,
                "",
                "the top level must be a mapping (apiVersion, kind, metadata, spec), not a list",
            ),
        ),
        (
            b"just text\n",
            (
                1,
                1,
                "",
                "the top level must be a mapping (apiVersion, kind, metadata, spec), "
                "not a single value",
            ),
        ),
        (
            b"a: 1\n---\nb: 2\n",
            (3, 1, "", "more than one YAML document ('---'): put each bridge in its own file"),
        ),
        (
            b"",
            (1, 1, "", "file is empty: expected a bridge (apiVersion, kind, metadata, spec)"),
        ),
        (
            b"# only a comment\n",
            (1, 1, "", "file is empty: expected a bridge (apiVersion, kind, metadata, spec)"),
        ),
        (
            b"a: [1, 2\n",
            (
                2,
                1,
                "",
                "YAML syntax error: while parsing a flow sequence, did not find expected ',' or ']'",  # noqa: E501 - exact message
            ),
        ),
        (b"a: b\x00\n", (1, 5, "", "YAML syntax error: control characters are not allowed")),
        (b"a: 1\nb: \xff\n", (2, 4, "", "file is not UTF-8 text (invalid byte 0xff)")),
        (b"1: x\n", (1, 1, "", "mapping key '1' is read as a number, not a string: quote it")),
        (
            b"a:\n  no: x\n",
            (2, 3, "a", "mapping key 'no' is read as a boolean, not a string: quote it"),
        ),
        (b"? [a]\n: x\n", (1, 3, "", "mapping keys must be strings, not a list")),
        (b"a: !custom x\n", (1, 4, "a", "unsupported YAML tag '!custom'")),
        (b"a: !!binary aGk=\n", (1, 4, "a", "unsupported YAML tag 'tag:yaml.org,2002:binary'")),
        (b"a: !!int abc\n", (1, 4, "a", "value tagged !!int is not valid")),
        (
            b"a: &r [*r]\n",
            (1, 4, "a" + "[0]" * 64, "the document is nested more than 64 levels deep"),
        ),
        (
            b"a: 1\n<<: x\n",
            (2, 5, "", "a merge key ('<<') needs a mapping or a list of mappings"),
        ),
    ],
)
def test_structural_problems_are_located(data: bytes, expected: tuple[int, int, str, str]) -> None:
    assert problem(data) == expected


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    line, _, _, message = problem("\n".join(lines).encode())
    assert message == "the document expands to more than 10,000 values (too many aliases?): refused"
    assert line is not None and line <= 8


def test_merge_key_bomb_is_refused_after_a_bounded_amount_of_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One mapping of 500 keys merged 500 times: only the first merge adds keys, the other
    # 499 are shadowed, yet each used to be walked key by key without being counted.
    keys = ", ".join(f"k{i}: {i}" for i in range(500))
    refs = ", ".join(["*a"] * 500)
    data = f"a: &a {{{keys}}}\nb: {{<<: [{refs}]}}\n".encode()
    keys_read = 0
    read_key = yamlsafe._Builder._key

    def counting_key(builder: yamlsafe._Builder, node: yaml.Node, path: yamlsafe.Path) -> str:
        nonlocal keys_read
        keys_read += 1
        return read_key(builder, node, path)

    monkeypatch.setattr(yamlsafe._Builder, "_key", counting_key)
    _, _, path, message = problem(data)
    assert (path, message) == (
        "b",
        "the document expands to more than 10,000 values (too many aliases?): refused",
    )
    # The work done is bounded by the budget, not by keys x references (250,000 here).
    assert keys_read <= MAX_NODES


def test_each_merge_source_counts_against_the_budget() -> None:
    refs = ", ".join(["*e"] * (MAX_NODES + 1))
    _, _, path, message = problem(f"e: &e {{}}\nb: {{<<: [{refs}]}}\n".encode())
    assert (path, message) == (
        "b",
        "the document expands to more than 10,000 values (too many aliases?): refused",
    )


def test_merge_list_gives_precedence_to_earlier_sources() -> None:
    doc = parsed("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nm: {<<: [*a, *b, *a], z: 3}\n")
    assert doc.data["m"] == {"x": 1, "y": 2, "z": 3}


def test_deep_nesting_is_refused_not_a_crash() -> None:
    line, _, _, message = problem(b"a: " + b"[" * 500 + b"]" * 500 + b"\n")
    assert (line, message) == (1, "the document is nested more than 64 levels deep")


def test_file_over_one_mib_is_refused_before_parsing() -> None:
    data = b"a: [" + b"1, " * (MAX_FILE_BYTES // 3) + b"]"
    assert problem(data) == (
        None,
        None,
        "",
        f"file is too large: {len(data):,} bytes (bridge files are limited to 1 MiB)",
    )


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("spec", "sink", "headers", "X-Token")) == "spec.sink.headers.X-Token"
    assert format_path(("a", 0, "b", 12)) == "a[0].b[12]"
    assert format_path(("labels", "app.kubernetes.io/name")) == 'labels["app.kubernetes.io/name"]'
    assert format_path(("x", "")) == 'x[""]'
