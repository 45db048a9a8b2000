"""observed_revision against real git repositories (made with the git CLI) and a git-sync layout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runner.reconcile.gitrev import observed_revision
from tests.peers.git import git


def make_repo(path: Path, *init_args: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main", *init_args)
    return path


def commit(repo: Path, name: str = "bridges/a.yaml", text: str = "kind: Bridge\n") -> str:
    target = repo / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"change {name}")
    return git(repo, "rev-parse", "HEAD")


def test_a_checkout_on_a_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = commit(repo)
    assert observed_revision(repo / "bridges") == first
    assert observed_revision(repo) == first
    second = commit(repo, text="kind: Bridge  # v2\n")
    assert second != first
    assert observed_revision(repo / "bridges") == second


def test_packed_refs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    head = commit(repo)
    git(repo, "pack-refs", "--all", "--prune")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert observed_revision(repo / "bridges") == head


def test_a_detached_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = commit(repo)
    commit(repo, text="v2\n")
    git(repo, "checkout", "-q", "--detach", first)
    assert observed_revision(repo / "bridges") == first


def test_an_unborn_branch_and_a_plain_directory_have_no_revision(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "bridges").mkdir()
    assert observed_revision(repo / "bridges") is None
    plain = tmp_path / "plain" / "bridges"
    plain.mkdir(parents=True)
    assert observed_revision(plain) is None
    assert observed_revision(tmp_path / "does-not-exist") is None


def test_a_linked_worktree_reads_shared_refs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    main_head = commit(repo)
    git(repo, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"))
    assert (tmp_path / "wt" / ".git").is_file()
    assert observed_revision(tmp_path / "wt" / "bridges") == main_head
    feature_head = commit(tmp_path / "wt", text="feature\n")
    git(repo, "pack-refs", "--all", "--prune")
    assert observed_revision(tmp_path / "wt" / "bridges") == feature_head
    assert observed_revision(repo / "bridges") == main_head


def test_a_separate_git_dir(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "--separate-git-dir", str(tmp_path / "store.git"))
    head = commit(repo)
    assert (repo / ".git").read_text().startswith("gitdir:")
    assert observed_revision(repo / "bridges") == head


def test_a_sha256_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    try:
        make_repo(repo, "--object-format=sha256")
    except subprocess.CalledProcessError:
        pytest.skip("this git cannot make sha256 repositories")
    head = commit(repo)
    assert len(head) == 64
    assert observed_revision(repo / "bridges") == head


def test_a_git_sync_layout_with_real_worktrees(tmp_path: Path) -> None:
    """git-sync: <root>/.worktrees/<sha> checked out detached, <root>/<link> -> it, swapped."""
    upstream = make_repo(tmp_path / "upstream")
    first = commit(upstream)
    second = commit(upstream, text="v2\n")
    root = tmp_path / "git"
    git(tmp_path, "clone", "-q", "--no-checkout", str(upstream), str(root))
    link = root / "bridges-link"
    for sha in (first, second):
        git(root, "worktree", "add", "-q", "--detach", f".worktrees/{sha}", sha)
        (root / "tmp-link").symlink_to(f".worktrees/{sha}")
        os.replace(root / "tmp-link", link)
        assert observed_revision(link / "bridges") == sha
        assert observed_revision(link) == sha


def test_a_git_sync_worktree_whose_git_dir_is_not_visible(tmp_path: Path) -> None:
    """The runner's container mounts the volume elsewhere: the worktree's `gitdir:` path does not
    exist here, but the worktree's directory name is the commit."""
    sha = "3f786850e387550fdab836ed7e6dc881de23001b"
    root = tmp_path / "volume"
    make_repo(root)  # git-sync's own repository at the root: unborn here, never the answer
    worktree = root / ".worktrees" / sha
    (worktree / "bridges").mkdir(parents=True)
    (worktree / ".git").write_text(f"gitdir: /git/.git/worktrees/{sha}\n")
    (root / "link").symlink_to(f".worktrees/{sha}")
    assert observed_revision(root / "link" / "bridges") == sha


def test_an_unreadable_inner_repository_does_not_fall_through_to_an_outer_one(
    tmp_path: Path,
) -> None:
    outer = make_repo(tmp_path / "outer")
    commit(outer)
    inner = outer / "vendor" / "inner"
    (inner / "bridges").mkdir(parents=True)
    (inner / ".git").write_text("gitdir: /nowhere/at/all\n")
    assert observed_revision(inner / "bridges") is None


def test_hand_made_refs_are_read_without_git(tmp_path: Path) -> None:
    sha = "a" * 40
    git_dir = tmp_path / "repo" / ".git"
    (git_dir / "refs" / "heads").mkdir(parents=True)
    (git_dir / "HEAD").write_text("ref: refs/heads/alias\n")
    # A symbolic ref chain, then a packed ref with a peeled tag line and comments around it.
    (git_dir / "refs" / "heads" / "alias").write_text("ref: refs/heads/main\n")
    (git_dir / "packed-refs").write_text(
        f"# pack-refs with: peeled fully-peeled sorted\n{'b' * 40} refs/tags/v1\n^{'c' * 40}\n"
        f"{sha} refs/heads/main\n"
    )
    assert observed_revision(tmp_path / "repo") == sha
    # Refs that try to leave the git directory, loops and garbage are not followed.
    for head in ("ref: refs/../../../etc/hostname\n", "ref: HEAD\n", "not a ref\n", ""):
        (git_dir / "HEAD").write_text(head)
        assert observed_revision(tmp_path / "repo") is None
