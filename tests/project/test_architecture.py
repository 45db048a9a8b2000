"""The shape of runner/ that issue 10 set, held by CI: small units, and a README that names
every package. The import contract (layers, pure modules, independent sinks) is import-linter's,
run by `.ci/run` and the pre-commit config (`[tool.importlinter]` in pyproject.toml)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

RUNNER = ROOT / "runner"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 350

MODULES = sorted(RUNNER.rglob("*.py"))


def _units(tree: ast.AST) -> list[tuple[str, str, int, int]]:
    units = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            assert node.end_lineno is not None
            units.append((kind, node.name, node.lineno, node.end_lineno - node.lineno + 1))
    return units


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_function_or_class_is_over_full(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split the module"
    limits = {"function": MAX_FUNCTION_LINES, "class": MAX_CLASS_LINES}
    over = [
        f"{kind} {name} (line {start}): {length} lines, limit {limits[kind]}"
        for kind, name, start, length in _units(ast.parse(text))
        if length > limits[kind]
    ]
    assert not over, "; ".join(over)


def test_the_size_check_sees_an_over_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    units = _units(ast.parse(f"def long():\n{body}\n"))
    assert units == [("function", "long", 1, MAX_FUNCTION_LINES + 1)]


def test_the_readme_tree_names_every_package() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Development", 1)[1]
    packages = sorted(
        str(p.parent.relative_to(RUNNER)) for p in RUNNER.rglob("__init__.py") if p.parent != RUNNER
    )
    missing = [p for p in packages if not re.search(rf"\b{re.escape(p)}/", section)]
    assert not missing, f"README, Development, does not show {missing}"


_LINT_IMPORTS = shutil.which("lint-imports", path=str(ROOT / ".venv" / "bin")) or shutil.which(
    "lint-imports"
)


@pytest.mark.skipif(_LINT_IMPORTS is None, reason="lint-imports comes with the dev extra")
def test_the_import_contract_refuses_an_edge_up_the_layers(tmp_path: Path) -> None:
    # A copy of the package with one forbidden edge: the kits importing the CLI.
    shutil.copytree(RUNNER, tmp_path / "runner", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    kit = tmp_path / "runner" / "_kits" / "wording.py"
    kit.write_text(kit.read_text(encoding="utf-8") + "\nimport runner.cli.main  # noqa\n")
    assert _LINT_IMPORTS is not None
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [_LINT_IMPORTS, "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "runner._kits.wording -> runner.cli.main" in result.stdout
