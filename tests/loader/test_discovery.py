"""Which files under a bridges directory are bridges (runner.loader.discovery), on real trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.errors import UsageError
from runner.loader.discovery import (
    discover_bridge_files,
    expand_paths,
    find_id_clashes,
    is_bridge_file_name,
)
from runner.model import bridge_id_for


def touch(path: Path, text: str = "kind: Bridge\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_finds_yaml_and_yml_recursively_in_sorted_order(tmp_path: Path) -> None:
    for name in ["z.yaml", "a.yml", "team-b/x.yaml", "team-a/deep/y.yaml", "team-a.yaml"]:
        touch(tmp_path / name)
    assert rel(discover_bridge_files(tmp_path), tmp_path) == [
        "a.yml",
        "team-a/deep/y.yaml",
        "team-a.yaml",
        "team-b/x.yaml",
        "z.yaml",
    ]


def test_skips_hidden_names_runner_files_and_other_extensions(tmp_path: Path) -> None:
    touch(tmp_path / "kept.yaml")
    for name in [
        ".hidden.yaml",
        ".git/config.yaml",
        "team/.drafts/wip.yaml",
        "kept.status.json",
        "kept.status.yaml",
        "other.status.yml",
        "README.md",
        "notes.yaml.bak",
        "upper.YAML",
        "schema.json",
    ]:
        touch(tmp_path / name)
    assert rel(discover_bridge_files(tmp_path), tmp_path) == ["kept.yaml"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.yaml", True),
        ("a.yml", True),
        (".a.yaml", False),
        ("a.status.yaml", False),
        ("a.status.json", False),
        ("a.json", False),
        ("status.yaml", True),
    ],
)
def test_is_bridge_file_name(name: str, expected: bool) -> None:
    assert is_bridge_file_name(name) is expected


def test_kubernetes_configmap_layout_yields_each_key_once(tmp_path: Path) -> None:
    # What the kubelet writes for a mounted ConfigMap: a timestamped folder, `..data` pointing
    # at it, and one top-level symlink per key through `..data`.
    touch(tmp_path / "..2024_05_01_10_00_00.123" / "signups.yaml")
    touch(tmp_path / "..2024_05_01_10_00_00.123" / "admins.yml")
    (tmp_path / "..data").symlink_to("..2024_05_01_10_00_00.123")
    (tmp_path / "signups.yaml").symlink_to("..data/signups.yaml")
    (tmp_path / "admins.yml").symlink_to("..data/admins.yml")
    found = discover_bridge_files(tmp_path)
    assert rel(found, tmp_path) == ["admins.yml", "signups.yaml"]
    assert [bridge_id_for(tmp_path, p) for p in found] == ["admins", "signups"]


def test_symlinked_root_is_walked_at_its_current_target_and_spelled_as_given(
    tmp_path: Path,
) -> None:
    # git-sync publishes each checkout by swapping a symlink to a new worktree.
    touch(tmp_path / "wt-1" / "team" / "old.yaml")
    touch(tmp_path / "wt-2" / "team" / "new.yaml")
    link = tmp_path / "bridges"
    link.symlink_to("wt-1")
    assert discover_bridge_files(link) == [link / "team" / "old.yaml"]

    swap = tmp_path / "bridges.tmp"
    swap.symlink_to("wt-2")
    os.replace(swap, link)
    found = discover_bridge_files(link)
    assert found == [link / "team" / "new.yaml"]
    assert bridge_id_for(link, found[0]) == "team/new"


def test_directory_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    touch(tmp_path / "team" / "a.yaml")
    (tmp_path / "team" / "back-to-root").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "team" / "self").symlink_to(".", target_is_directory=True)
    assert rel(discover_bridge_files(tmp_path), tmp_path) == ["team/a.yaml"]


def test_a_file_reached_by_two_paths_is_listed_once_under_the_first(tmp_path: Path) -> None:
    touch(tmp_path / "v2" / "a.yaml")
    (tmp_path / "current").symlink_to("v2", target_is_directory=True)
    (tmp_path / "v2" / "alias.yaml").symlink_to("a.yaml")
    # "current/..." sorts before "v2/...": the link's spelling wins, the rest are the same files.
    assert rel(discover_bridge_files(tmp_path), tmp_path) == ["current/a.yaml"]


def test_symlinks_leading_outside_the_root_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "foreign.yaml")
    root = tmp_path / "bridges"
    touch(root / "own.yaml")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "linked-file.yaml").symlink_to(outside / "foreign.yaml")
    assert rel(discover_bridge_files(root), root) == ["own.yaml"]


def test_broken_symlinks_and_special_files_are_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "ok.yaml")
    (tmp_path / "dangling.yaml").symlink_to("missing.yaml")
    (tmp_path / "dangling-dir").symlink_to("missing-dir", target_is_directory=True)
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "folder.yaml").mkdir()  # a folder with a bridge-like name is just a folder
    touch(tmp_path / "folder.yaml" / "inner.yaml")
    assert rel(discover_bridge_files(tmp_path), tmp_path) == ["folder.yaml/inner.yaml", "ok.yaml"]


def test_empty_directory_has_no_bridges(tmp_path: Path) -> None:
    assert discover_bridge_files(tmp_path) == []


def test_missing_root_or_file_root_raise_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        discover_bridge_files(tmp_path / "nope")
    with pytest.raises(NotADirectoryError):
        discover_bridge_files(touch(tmp_path / "a.yaml"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any directory")
def test_unlistable_subfolder_raises_instead_of_returning_a_partial_list(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    touch(locked / "a.yaml")
    locked.chmod(0)
    try:
        with pytest.raises(PermissionError):
            discover_bridge_files(tmp_path)
    finally:
        locked.chmod(0o755)


def test_expand_paths_pairs_files_with_their_root(tmp_path: Path) -> None:
    bridges = tmp_path / "bridges"
    a = touch(bridges / "team" / "a.yaml")
    b = touch(bridges / "b.yml")
    loose = touch(tmp_path / "elsewhere" / "loose.txt")  # a named file is checked whatever its name
    pairs = expand_paths([loose, bridges])
    assert pairs == [(loose, loose.parent), (b, bridges), (a, bridges)]
    assert [bridge_id_for(root, file) for file, root in pairs] == ["loose.txt", "b", "team/a"]


def test_expand_paths_keeps_a_file_once_with_the_first_argument_that_reached_it(
    tmp_path: Path,
) -> None:
    a = touch(tmp_path / "team" / "a.yaml")
    pairs = expand_paths([tmp_path, a, tmp_path / "team", tmp_path / "." / "team" / "a.yaml"])
    assert pairs == [(a, tmp_path)]


def test_expand_paths_rejects_missing_paths_and_special_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope\.yaml: no such file or directory$"):
        expand_paths([tmp_path / "nope.yaml"])
    (tmp_path / "dangling.yaml").symlink_to("missing.yaml")
    with pytest.raises(UsageError, match=r"dangling\.yaml: broken symbolic link$"):
        expand_paths([tmp_path / "dangling.yaml"])
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(UsageError, match=r"pipe\.yaml: not a regular file or a directory$"):
        expand_paths([tmp_path / "pipe.yaml"])


def test_find_id_clashes_reports_the_later_of_two_files_with_one_id(tmp_path: Path) -> None:
    files = [
        touch(tmp_path / "signups.yaml"),
        touch(tmp_path / "signups.yml"),
        touch(tmp_path / "team" / "signups.yaml"),
    ]
    assert find_id_clashes(files, tmp_path) == {files[1]: files[0]}
    assert find_id_clashes(files[:1] + files[2:], tmp_path) == {}


def test_not_recursive_lists_only_the_folder_itself_by_the_same_rules(tmp_path: Path) -> None:
    for name in ["b.yml", "a.yaml", ".hidden.yaml", "a.status.yaml", "team/c.yaml", "d.json"]:
        touch(tmp_path / name)
    assert rel(discover_bridge_files(tmp_path, recursive=False), tmp_path) == ["a.yaml", "b.yml"]


def test_a_named_file_brings_the_files_beside_it_that_share_its_id(tmp_path: Path) -> None:
    x_yaml = touch(tmp_path / "x.yaml")
    x_yml = touch(tmp_path / "x.yml")
    # Not bridge `x`, or not bridges at all: none of these comes along.
    for name in [".x.yml", "x.status.yaml", "x.json", "xy.yaml", "x.yaml.yml", "team/x.yaml"]:
        touch(tmp_path / name)
    # In the walk's order whichever is named, so the clash lands on the same file.
    assert expand_paths([x_yml]) == [(x_yaml, tmp_path), (x_yml, tmp_path)]
    assert expand_paths([x_yaml]) == [(x_yaml, tmp_path), (x_yml, tmp_path)]
    assert expand_paths([x_yml, x_yaml]) == [(x_yaml, tmp_path), (x_yml, tmp_path)]
    alone = touch(tmp_path / "alone.yml")
    assert expand_paths([alone]) == [(alone, tmp_path)]


def test_a_named_file_is_not_its_own_sibling_under_another_name(tmp_path: Path) -> None:
    target = touch(tmp_path / "x.yaml")
    link = tmp_path / "x.yml"
    link.symlink_to("x.yaml")  # the walk lists this file once, as x.yaml: no clash
    assert expand_paths([link]) == [(link, tmp_path)]
    assert expand_paths([target]) == [(target, tmp_path)]


def test_a_named_file_in_the_working_directory_brings_its_sibling_as_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path / "x.yaml")
    touch(tmp_path / "x.yml")
    monkeypatch.chdir(tmp_path)
    assert expand_paths([Path("x.yml")]) == [
        (Path("x.yaml"), Path(".")),
        (Path("x.yml"), Path(".")),
    ]
