"""The git commit a bridges directory was read at (`observedRevision`, DESIGN §4.4).

    observed_revision(bridges_dir) -> str | None

It runs on every reconcile, so it reads a few small files and never spawns git. Walking up
from the directory's resolved path, the nearest of these wins:

- a `.git` directory, or a `.git` file (`gitdir: <path>`, as in worktrees and submodules):
  HEAD, then the ref it names, loose (the worktree's own dir, then the common dir named by
  `commondir`) or in `packed-refs`;
- a directory named by a full commit hash: git-sync checks each commit out into
  `<root>/.worktrees/<sha>` and points its link at it, so the resolved path names the commit
  even when the worktree's `.git` file points at a path this container cannot see.

Anything unreadable or unexpected (an unborn branch, a reftable repository) gives None: the
revision is informative, never a reason to fail.
"""

from __future__ import annotations

import re
from pathlib import Path

_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # sha1, or sha256 repositories
_MAX_SYMREF_DEPTH = 5  # refs pointing at refs; git itself stops at a handful


def observed_revision(bridges_dir: Path) -> str | None:
    """The commit checked out at `bridges_dir`, or None when it is not known."""
    try:
        start = bridges_dir.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    for directory in (start, *start.parents):
        dot_git = directory / ".git"
        if dot_git.exists():
            commit = _head_commit(dot_git)
            if commit is not None:
                return commit
            # A repository we cannot read ends the walk: an outer repository is not ours.
            return directory.name if _COMMIT.match(directory.name) else None
        if _COMMIT.match(directory.name):
            return directory.name
    return None


def _head_commit(dot_git: Path) -> str | None:
    try:
        git_dir = _git_dir(dot_git)
        if git_dir is None:
            return None
        return _resolve_ref(git_dir, _common_dir(git_dir), "HEAD")
    except (OSError, UnicodeDecodeError):
        return None


def _git_dir(dot_git: Path) -> Path | None:
    """The git directory: `.git` itself, or where a `.git` file's `gitdir:` line points."""
    if dot_git.is_dir():
        return dot_git
    first_line = dot_git.read_text("utf-8").splitlines()[:1]
    if not first_line or not first_line[0].startswith("gitdir:"):
        return None
    target = Path(first_line[0].removeprefix("gitdir:").strip())
    git_dir = target if target.is_absolute() else dot_git.parent / target
    return git_dir if git_dir.is_dir() else None


def _common_dir(git_dir: Path) -> Path:
    """Where shared refs live: a linked worktree's `commondir` file names it."""
    try:
        common = (git_dir / "commondir").read_text("utf-8").strip()
    except FileNotFoundError:
        return git_dir
    path = Path(common)
    return path if path.is_absolute() else git_dir / path


def _resolve_ref(git_dir: Path, common_dir: Path, name: str) -> str | None:
    for _ in range(_MAX_SYMREF_DEPTH):
        value = _read_ref(git_dir, common_dir, name)
        if value is None:
            return None
        if value.startswith("ref:"):
            name = value.removeprefix("ref:").strip()
            continue
        return value if _COMMIT.match(value) else None
    return None


def _read_ref(git_dir: Path, common_dir: Path, name: str) -> str | None:
    """A ref's content: loose file (per-worktree first, then shared), then packed-refs."""
    if name != "HEAD" and (not name.startswith("refs/") or ".." in name.split("/")):
        return None  # a ref must name a file inside the git directory
    for base in dict.fromkeys((git_dir, common_dir)):
        try:
            return (base / name).read_text("utf-8").strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
    return _packed_ref(common_dir, name)


def _packed_ref(common_dir: Path, name: str) -> str | None:
    try:
        text = (common_dir / "packed-refs").read_text("utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith(("#", "^")):
            continue
        commit, _, ref = line.partition(" ")
        if ref.strip() == name:
            return commit.strip()
    return None
