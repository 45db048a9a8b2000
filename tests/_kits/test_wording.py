"""runner._kits.wording: counts with their noun, as every message words them."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest

from runner._kits.wording import plural


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "0 changes"),
        (1, "1 change"),
        (2, "2 changes"),
        (-1, "-1 changes"),
        (1000, "1000 changes"),
    ],
)
def test_the_noun_is_plural_unless_the_count_is_one(count: int, expected: str) -> None:
    assert plural(count, "change") == expected


def test_an_irregular_plural_is_given_by_the_caller() -> None:
    assert plural(1, "retry", "retries") == "1 retry"
    assert plural(3, "retry", "retries") == "3 retries"
    assert plural(0, "empty page") == "0 empty pages"


RUNNER = Path(__file__).resolve().parents[2] / "runner"
# Nouns that messages count. A count placed before one by hand reads "1 changes" for 1.
COUNTED = (
    "attempts|bridges|changes|characters|errors|events|fields|files|pages|paths|requests|"
    "restarts|retries|rows|scans|segments|throttles|times|users|warnings"
)
_PERCENT_COUNT = re.compile(rf"%[ds] (?:[a-z]+ )?(?:{COUNTED})\b")
_AFTER_VALUE = re.compile(rf"^ (?:[a-z]+ )?(?:{COUNTED})\b")
_MAYBE_PLURAL = re.compile(r"[a-z](?<!http)\(s\)")  # "bridge(s)"; not "http(s)"


def _is_constant(node: ast.expr) -> bool:
    """A fixed count (`{MAX_DEPTH} levels`): worded once, by whoever wrote it."""
    return isinstance(node, ast.Name) and node.id.lstrip("_").isupper()


def _docstrings(tree: ast.Module) -> set[int]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    owners = [tree, *(node for node in ast.walk(tree) if isinstance(node, kinds))]
    return {
        id(owner.body[0].value)
        for owner in owners
        if owner.body
        and isinstance(owner.body[0], ast.Expr)
        and isinstance(owner.body[0].value, ast.Constant)
    }


def _hand_worded_counts(source: str) -> list[str]:
    """Messages in `source` that put a count before a plural noun by hand (docstrings aside)."""
    found = []
    tree = ast.parse(source)
    prose = _docstrings(tree)
    for node in ast.walk(tree):
        if id(node) in prose:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _PERCENT_COUNT.search(node.value) or _MAYBE_PLURAL.search(node.value):
                found.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.JoinedStr):
            for before, after in itertools.pairwise(node.values):
                if (
                    isinstance(before, ast.FormattedValue)
                    and not _is_constant(before.value)
                    and isinstance(after, ast.Constant)
                    and _AFTER_VALUE.search(str(after.value))
                ):
                    found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_guard_finds_counts_worded_by_hand() -> None:
    assert len(_hand_worded_counts('log.info("%d changes, %d new events", a, b)')) == 1
    assert len(_hand_worded_counts('f"gave up after {n} retries"')) == 1
    assert len(_hand_worded_counts('f"{n} empty pages"')) == 1
    assert len(_hand_worded_counts('log.info("stopping %d bridge(s)", n)')) == 1
    assert _hand_worded_counts("f\"{plural(n, 'change')} committed, polling every %d ms\"") == []
    assert _hand_worded_counts('f"longer than {_MAX_LENGTH} characters"') == []
    assert _hand_worded_counts('def f():\n    """Sends the event(s) refused."""') == []


def test_no_message_in_the_runner_words_a_count_by_hand() -> None:
    found = {
        str(path.relative_to(RUNNER)): hits
        for path in sorted(RUNNER.rglob("*.py"))
        if (hits := _hand_worded_counts(path.read_text("utf-8")))
    }
    assert found == {}, "use runner._kits.wording.plural for these"
