"""`bridge-runner check PATH...`: validate bridge files offline and report every problem.

Each PATH is a bridge file (checked whatever its name) or a directory (its bridge files, found as
the runner finds them: `runner.loader.discovery`). A named file is checked together with the files
beside it that share its bridge id (`x.yaml` for `x.yml`), so that the pre-commit hook, which
names only the staged files, rejects a pair that checking the directory rejects. Every file
goes through the one loader (`runner.loader.config.load_bridge`), so `check` accepts exactly
what `run` accepts. Three output formats share one `CheckReport`: `text` (one `file:line:col:
severity: message [path]` line per problem, then a summary), `json` (a document for tools, shape in
the README) and `github` (workflow-command annotations). Exit codes: 0 every file valid, 1 any file
invalid (or, with `--strict`, any warning), 2 usage error (raised as `UsageError` and mapped by
`runner.cli.main`).

A directory without bridge files is not an error (exit 0, with a note on stderr): the runner
accepts an empty directory too, and a mistyped path is caught because it does not exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner._kits.wording import plural, printable
from runner.cli.exitcodes import EXIT_FAILED, EXIT_OK
from runner.cli.flags import (
    add_allow_env_flag,
    add_secrets_dir_flag,
    add_state_dir_flag,
    allowed_env,
)
from runner.errors import UsageError
from runner.loader.config import load_bridge
from runner.loader.discovery import discover_bridge_files, expand_paths, find_id_clashes, is_utf8
from runner.model import LoadResult, Problem
from runner.secrets.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy

FORMATS = ("text", "json", "github")
GITHUB_TITLE = "bridge-runner"


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The results of one `check` run, in the order the files were found."""

    results: tuple[LoadResult, ...]
    display_paths: tuple[str, ...]  # how each result's file is shown, parallel to `results`
    empty_dirs: tuple[str, ...] = ()  # directory arguments that held no bridge file
    strict: bool = False

    @property
    def valid_count(self) -> int:
        return sum(1 for result in self.results if result.valid)

    @property
    def invalid_count(self) -> int:
        return len(self.results) - self.valid_count

    @property
    def error_count(self) -> int:
        return sum(len(result.errors) for result in self.results)

    @property
    def warning_count(self) -> int:
        return sum(len(result.warnings) for result in self.results)

    @property
    def passed(self) -> bool:
        return self.invalid_count == 0 and not (self.strict and self.warning_count)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_FAILED


def check_paths(
    paths: Sequence[Path],
    *,
    secrets_dir: Path,
    strict: bool = False,
    env: Mapping[str, str] | None = None,
    env_policy: EnvPolicy = DEFAULT_ENV_POLICY,
    cwd: Path | None = None,
) -> CheckReport:
    """Load every bridge file that `paths` name. Raises `UsageError` for a path that is missing."""
    if not paths:
        raise UsageError("no paths to check: name bridge files or directories")
    pairs = expand_paths(paths)
    base = Path.cwd() if cwd is None else cwd
    displays = tuple(display_path(file, base) for file, _ in pairs)
    results = [
        load_bridge(
            file,
            root=root,
            secrets_dir=secrets_dir,
            env=env,
            env_policy=env_policy,
            display_path=shown,
        )
        for (file, root), shown in zip(pairs, displays, strict=True)
    ]
    _add_id_clashes(results, pairs, displays)
    return CheckReport(
        results=tuple(results),
        display_paths=displays,
        empty_dirs=_empty_dirs(paths, pairs),
        strict=strict,
    )


def display_path(path: Path, cwd: Path) -> str:
    """`path` as a person (and GitHub) wants to read it: relative to `cwd` when it lies below.

    Purely lexical (no symlink resolution): the names shown are the names the user typed.
    """
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()


def _add_id_clashes(
    results: list[LoadResult], pairs: Sequence[tuple[Path, Path]], displays: Sequence[str]
) -> None:
    shown = {file: text for (file, _), text in zip(pairs, displays, strict=True)}
    files_by_root: dict[Path, list[Path]] = {}
    for file, root in pairs:
        files_by_root.setdefault(root, []).append(file)
    clashes: dict[Path, Path] = {}
    for root, files in files_by_root.items():
        clashes.update(find_id_clashes(files, root))
    for index, (file, _) in enumerate(pairs):
        if file in clashes:
            result = results[index]
            problem = Problem(
                file=shown[file],
                line=None,
                column=None,
                path="",
                message=(
                    f"bridge id {result.id!r} is already used by {shown[clashes[file]]}: "
                    "rename or remove one of the two files"
                ),
            )
            results[index] = dataclasses.replace(result, problems=(*result.problems, problem))


def _empty_dirs(paths: Sequence[Path], pairs: Sequence[tuple[Path, Path]]) -> tuple[str, ...]:
    roots = {root for _, root in pairs}
    # A directory whose files were all listed under an earlier argument is not empty: only
    # walk again (rarely) to tell the two apart.
    return tuple(
        path.as_posix()
        for path in paths
        if path.is_dir() and path not in roots and not discover_bridge_files(path)
    )


# ---- rendering ---------------------------------------------------------------------------


def summary_line(report: CheckReport) -> str:
    """`3 files checked: 2 valid, 1 invalid (2 errors, 1 warning)`."""
    line = (
        f"{plural(len(report.results), 'file')} checked: {report.valid_count} valid, "
        f"{report.invalid_count} invalid ({plural(report.error_count, 'error')}, "
        f"{plural(report.warning_count, 'warning')})"
    )
    if report.strict and report.warning_count:
        line += "; warnings fail the check (--strict)"
    return line


def render_text(report: CheckReport, *, quiet: bool = False) -> str:
    # One line per problem, whatever a file name or a quoted value holds (`wording.printable`).
    lines = [printable(p.render()) for result in report.results for p in result.problems]
    if not quiet:
        lines.append(summary_line(report))
    return "".join(line + "\n" for line in lines)


def render_github(report: CheckReport, *, quiet: bool = False) -> str:
    """GitHub Actions workflow commands: one `::error` / `::warning` annotation per problem."""
    lines = [github_annotation(p) for result in report.results for p in result.problems]
    if not quiet:
        lines.append(summary_line(report))
    return "".join(line + "\n" for line in lines)


def github_annotation(problem: Problem) -> str:
    """`::error file=F,line=L,col=C,title=bridge-runner::message [path]`, escaped for GitHub."""
    properties = [f"file={_escape_property(problem.file)}"]
    if problem.line is not None:
        properties.append(f"line={problem.line}")
        if problem.column is not None:
            properties.append(f"col={problem.column}")
    properties.append(f"title={_escape_property(GITHUB_TITLE)}")
    message = problem.message + (f" [{problem.path}]" if problem.path else "")
    return f"::{problem.severity} {','.join(properties)}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    # The rules of @actions/core (toCommandValue / escapeData): '%' first, then line breaks
    # (shown as such in the annotation); then the rule of the text output for what GitHub
    # leaves alone (other controls, bytes of a name that is not UTF-8).
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return printable(escaped)


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_json(report: CheckReport) -> str:
    document = {
        "files": [
            _file_entry(result, shown)
            for result, shown in zip(report.results, report.display_paths, strict=True)
        ],
        "summary": {
            "files": len(report.results),
            "valid": report.valid_count,
            "invalid": report.invalid_count,
            "errors": report.error_count,
            "warnings": report.warning_count,
            "strict": report.strict,
            "passed": report.passed,
        },
    }
    return json.dumps(document, indent=2) + "\n"


def _file_entry(result: LoadResult, shown: str) -> dict[str, Any]:
    return {
        # JSON holds a newline, not a byte that is not UTF-8: such a name is shown escaped.
        "file": shown if is_utf8(shown) else printable(shown),
        "id": result.id if is_utf8(result.id) else printable(result.id),
        "valid": result.valid,
        "digest": result.file_digest,
        "errors": [_problem_entry(p) for p in result.errors],
        "warnings": [_problem_entry(p) for p in result.warnings],
    }


def _problem_entry(problem: Problem) -> dict[str, Any]:
    return {
        "line": problem.line,
        "column": problem.column,
        "path": problem.path,
        "message": problem.message,
    }


# ---- the command -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="bridge files, or directories searched recursively for *.yaml / *.yml",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default): one line per problem and a summary; json: one document for "
        "tools; github: GitHub Actions annotations and the summary",
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail (exit 1) on warnings as well as errors"
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print problems only: no summary line and no notes (no effect on --format json)",
    )
    add_secrets_dir_flag(parser)
    add_state_dir_flag(parser)
    add_allow_env_flag(parser)


def run(args: argparse.Namespace) -> int:
    # --state-dir is accepted so that check and run take the same flags; file: sink paths are
    # checked to stay inside it without touching it, so its value does not change the result.
    report = check_paths(
        args.paths,
        secrets_dir=args.secrets_dir,
        strict=args.strict,
        env_policy=allowed_env(args),
    )
    if not args.quiet:
        for directory in report.empty_dirs:
            print(
                f"note: no bridge files (*.yaml, *.yml) in {printable(directory)}",
                file=sys.stderr,
            )
    if args.format == "json":
        output = render_json(report)
    elif args.format == "github":
        output = render_github(report, quiet=args.quiet)
    else:
        output = render_text(report, quiet=args.quiet)
    sys.stdout.write(output)
    sys.stdout.flush()
    return report.exit_code
