"""The directory watcher on a real filesystem with real watchfiles: every kind of change a
GitOps deployment makes is seen (within a generous 10 s), and the runner's own files are not."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from watchfiles import Change

from runner.reconcile.watcher import ChangeFilter, DirectoryWatcher, watch_changes, watch_targets
from runner.status.writer import StatusWriter, status_path_for

SEEN_WITHIN = 10.0  # seconds: generous, CI machines are slow; never a performance claim
QUIET = 0.6  # seconds to let a change that must be ignored reach the watcher first

POLLING = [pytest.param(False, id="native"), pytest.param(True, id="polling")]


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    # watchfiles runs in anyio worker threads, which stop once the event loop's main task ends.
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
        assert not thread.is_alive(), f"thread left behind: {thread.name}"


async def next_batch_with(
    watcher: DirectoryWatcher, wanted: Callable[[set[Path]], bool]
) -> tuple[set[Path], list[set[Path]]]:
    """Batches until one satisfies `wanted` (fails after SEEN_WITHIN s). Returns it and all seen."""
    seen: list[set[Path]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SEEN_WITHIN
    while (left := deadline - loop.time()) > 0:
        batch = await watcher.next_batch(max_wait=left)
        if batch:
            seen.append(batch)
            if wanted(batch):
                return batch, seen
    pytest.fail(f"no matching change seen within {SEEN_WITHIN} s; batches seen: {seen}")


def contains(*paths: Path) -> Callable[[set[Path]], bool]:
    """Wanted: a batch naming any of `paths`. A new folder's first files can be created before
    inotify watches the folder; the folder's own change is the signal then, and is enough."""
    return lambda batch: any(path in batch for path in paths)


async def settled(watcher: DirectoryWatcher) -> None:
    """In polling mode, wait for the "echo" signal that follows arming: only after it can a test
    be sure its change lands in a later second than the first snapshot (whole-second mtimes)."""
    if watcher.polling:
        await next_batch_with(watcher, contains(watcher.root))


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- plain directories --------------------------------------------------------------------------


@pytest.mark.parametrize("force_polling", POLLING)
def test_in_place_edit(tmp_path: Path, force_polling: bool) -> None:
    bridge = write(tmp_path / "bridges" / "signups.yaml", "v1\n")

    async def scenario() -> None:
        async with DirectoryWatcher(tmp_path / "bridges", force_polling=force_polling) as watcher:
            await settled(watcher)
            with bridge.open("a") as handle:
                handle.write("v2\n")
            batch, _ = await next_batch_with(watcher, contains(bridge))
            assert batch == {bridge}

    run(scenario)


def test_polling_sees_a_second_write_within_the_same_second(tmp_path: Path) -> None:
    root = tmp_path / "bridges"
    bridge = write(root / "signups.yaml", "v1\n")

    async def scenario() -> None:
        async with DirectoryWatcher(root, force_polling=True, poll_delay_ms=50) as watcher:
            await settled(watcher)
            bridge.write_text("v2\n")
            await next_batch_with(watcher, contains(bridge))
            bridge.write_text("v3\n")  # often the same second: its mtime looks unchanged
            await next_batch_with(watcher, contains(bridge, root))

    run(scenario)


def test_editor_save_writes_a_temp_file_then_renames_it(tmp_path: Path) -> None:
    root = tmp_path / "bridges"
    bridge = write(root / "team-a" / "signups.yml", "v1\n")

    async def scenario() -> None:
        async with DirectoryWatcher(root) as watcher:
            temp = write(root / "team-a" / "signups.yml.tmp4913", "v2\n")
            os.replace(temp, bridge)
            _, seen = await next_batch_with(watcher, contains(bridge))
            assert all(p.suffix != ".tmp4913" for b in seen for p in b)

    run(scenario)


def test_added_deleted_and_moved_in_folders(tmp_path: Path) -> None:
    root = tmp_path / "bridges"
    old = write(root / "old.yaml", "v1\n")
    outside = write(tmp_path / "staging" / "team-b" / "b.yaml", "v1\n").parent

    async def scenario() -> None:
        async with DirectoryWatcher(root) as watcher:
            new = write(root / "team-a" / "new.yaml", "v1\n")
            await next_batch_with(watcher, contains(new, new.parent))
            old.unlink()
            await next_batch_with(watcher, contains(old))
            os.replace(outside, root / "team-b")  # a folder of bridges moved in at once
            await next_batch_with(watcher, lambda b: any(p.name == "team-b" for p in b))
            os.replace(root / "team-b", tmp_path / "team-b-gone")  # ... and out again
            await next_batch_with(watcher, lambda b: any(p.name == "team-b" for p in b))

    run(scenario)


@pytest.mark.parametrize("force_polling", POLLING)
def test_a_folder_with_a_suffix_moved_out_of_the_tree(tmp_path: Path, force_polling: bool) -> None:
    root = tmp_path / "bridges"
    folder = write(root / "team.v2" / "signups.yaml", "v1\n").parent

    async def scenario() -> None:
        async with DirectoryWatcher(root, force_polling=force_polling) as watcher:
            await settled(watcher)
            os.replace(folder, tmp_path / "team.v2-gone")  # its bridges must stop now
            await next_batch_with(watcher, contains(folder, folder / "signups.yaml"))

    run(scenario)


def test_the_runners_own_files_and_dot_files_never_signal(tmp_path: Path) -> None:
    root = tmp_path / "bridges"
    bridge = write(root / "signups.yaml", "v1\n")
    git_dir = root / ".git"
    git_dir.mkdir()

    async def scenario() -> None:
        async with DirectoryWatcher(root) as watcher:
            writer = StatusWriter()
            for i in range(3):  # each write is a dot temp file renamed to signups.status.json
                assert writer.write(bridge, {"apiVersion": "x", "n": i})
            write(git_dir / "index", "binary")
            write(root / ".signups.yaml.swp", "vim")
            write(root / "README.md", "docs")
            await asyncio.sleep(QUIET)
            # A real edit afterwards: the first batch we get must be about it alone.
            bridge.write_text("v2\n")
            _, seen = await next_batch_with(watcher, contains(bridge))
            assert seen == [{bridge}]
            assert status_path_for(bridge).exists()

    run(scenario)


def test_a_root_that_is_deleted_and_created_again(tmp_path: Path) -> None:
    root = tmp_path / "bridges"
    write(root / "a.yaml", "v1\n")

    async def scenario() -> None:
        async with DirectoryWatcher(root) as watcher:
            shutil.rmtree(root)
            await next_batch_with(watcher, lambda b: True)
            bridge = write(root / "b.yaml", "v1\n")
            await next_batch_with(watcher, lambda b: root in b or bridge in b)
            # Re-armed on the new folder: edits in it are seen.
            await asyncio.sleep(QUIET)
            bridge.write_text("v2\n")
            await next_batch_with(watcher, contains(bridge))

    run(scenario)


def test_a_root_that_appears_after_start(tmp_path: Path) -> None:
    root = tmp_path / "later"

    async def scenario() -> None:
        async with DirectoryWatcher(root) as watcher:
            write(root / "a.yaml", "v1\n")
            await next_batch_with(watcher, contains(root))
            bridge = write(root / "b.yaml", "v1\n")
            await next_batch_with(watcher, contains(bridge))

    run(scenario)


# --- git-sync: the root (or a folder above it) is a symlink re-pointed at a new worktree ---------


def git_sync_checkout(git_root: Path, sha: str, text: str) -> Path:
    worktree = git_root / ".worktrees" / sha
    write(worktree / "bridges" / "signups.yaml", text)
    write(worktree / ".git", f"gitdir: /git/.git/worktrees/{sha}\n")
    return worktree


def git_sync_swap(link: Path, target: str) -> None:
    """What git-sync does: a new symlink beside the old one, renamed over it atomically."""
    temp = link.with_name(link.name + ".tmp")
    temp.symlink_to(target)
    os.replace(temp, link)


@pytest.mark.parametrize("force_polling", POLLING)
@pytest.mark.parametrize("link_above_root", [False, True], ids=["root-is-link", "link-above"])
def test_git_sync_symlink_swap(tmp_path: Path, force_polling: bool, link_above_root: bool) -> None:
    git_root = tmp_path / "git"
    git_sync_checkout(git_root, "1" * 40, "v1\n")
    if link_above_root:  # --link=current, bridges at current/bridges
        link = git_root / "current"
        link.symlink_to(".worktrees/" + "1" * 40)
        root = link / "bridges"
        target = ".worktrees/{sha}"
    else:  # the link points straight at the bridges folder
        link = git_root / "bridges"
        link.symlink_to(".worktrees/" + "1" * 40 + "/bridges")
        root = link
        target = ".worktrees/{sha}/bridges"

    async def scenario() -> None:
        async with DirectoryWatcher(root, force_polling=force_polling) as watcher:
            await settled(watcher)
            git_sync_checkout(git_root, "2" * 40, "v2\n")
            git_sync_swap(link, target.format(sha="2" * 40))
            # Polling may report the swap only through the echo of the root a second later.
            await next_batch_with(watcher, contains(link, *([root] if force_polling else [])))
            shutil.rmtree(git_root / ".worktrees" / ("1" * 40))  # git-sync cleans up the old one
            # Edits inside the new worktree are seen too (the watch did not stay on the old one).
            # Polling: wait for a later second than the v2 file's, or its mtime looks unchanged.
            await asyncio.sleep(1.2 if force_polling else QUIET)
            await watcher.next_batch(max_wait=0)
            edited = git_root / ".worktrees" / ("2" * 40) / "bridges" / "signups.yaml"
            edited.write_text("v3\n")
            await next_batch_with(watcher, contains(edited, root / "signups.yaml"))

    run(scenario)


# --- Kubernetes ConfigMap: files are symlinks through `..data`, which is swapped -----------------


@pytest.mark.parametrize("force_polling", POLLING)
def test_configmap_data_swap(tmp_path: Path, force_polling: bool) -> None:
    root = tmp_path / "config"
    write(root / "..2025_01_01_00_00_00.1" / "signups.yaml", "v1\n")
    (root / "..data").symlink_to("..2025_01_01_00_00_00.1")
    (root / "signups.yaml").symlink_to("..data/signups.yaml")

    async def scenario() -> None:
        async with DirectoryWatcher(root, force_polling=force_polling) as watcher:
            await settled(watcher)
            # kubelet's atomic writer: new timestamped dir, ..data_tmp, rename, remove the old.
            write(root / "..2025_01_01_00_01_00.2" / "signups.yaml", "v2\n")
            (root / "..data_tmp").symlink_to("..2025_01_01_00_01_00.2")
            os.replace(root / "..data_tmp", root / "..data")
            shutil.rmtree(root / "..2025_01_01_00_00_00.1")
            await next_batch_with(watcher, contains(root / "..data"))
            assert (root / "signups.yaml").read_text() == "v2\n"

    run(scenario)


# --- the iterator form ---------------------------------------------------------------------------


def test_watch_changes_yields_armed_then_changes_then_resyncs_and_stops(tmp_path: Path) -> None:
    root = tmp_path / "bridges"
    bridge = write(root / "a.yaml", "v1\n")

    async def scenario() -> None:
        stop = asyncio.Event()
        items: list[set[Path]] = []
        async for batch in watch_changes(
            root, force_polling=False, debounce_ms=50, stop=stop, resync_interval=0.5
        ):
            items.append(batch)
            if len(items) == 1:
                bridge.write_text("v2\n")  # armed: this edit must not be missed
            elif bridge in batch:
                pass  # next: wait for a resync tick (an empty set)
            elif not batch and any(bridge in i for i in items):
                stop.set()
        assert items[0] == set()
        assert items[1] == {bridge}
        assert items[-1] == set()

    run(scenario)


def test_watch_changes_stops_promptly_when_asked(tmp_path: Path) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        seen = 0
        async for _ in watch_changes(tmp_path, force_polling=False, debounce_ms=50, stop=stop):
            seen += 1
            asyncio.get_running_loop().call_later(0.2, stop.set)
        assert seen == 1  # only the "armed" signal: nothing changed

    run(scenario)


# --- the filter alone ----------------------------------------------------------------------------


def test_change_filter_rules(tmp_path: Path) -> None:
    root = tmp_path / "bridges"
    (root / "team").mkdir(parents=True)
    targets = watch_targets(root)
    assert targets is not None and targets.paths == (root,)
    matters = ChangeFilter(targets).matters
    assert matters(Change.modified, root / "a.yaml")
    assert matters(Change.added, root / "team" / "b.yml")
    assert matters(Change.deleted, root / "team")
    assert matters(Change.added, root / "team")  # an existing folder
    assert matters(Change.deleted, root)
    assert matters(Change.added, root / "..data")
    assert not matters(Change.modified, root / "a.status.json")
    assert not matters(Change.added, root / ".a.status.json.x1y2.tmp")
    assert not matters(Change.modified, root / ".git" / "HEAD")
    assert not matters(Change.added, root / ".hidden" / "c.yaml")
    assert not matters(Change.modified, root / "README.md")
    assert not matters(Change.added, root / "notes.txt")
    assert matters(Change.deleted, root / "team.v2")  # maybe a folder of bridges, gone
    assert matters(Change.deleted, root / "notes.txt")  # it may have been one too
    assert not matters(Change.deleted, root / "signups.yml.tmp4913")  # an editor's temp file
    assert not matters(Change.deleted, root / "signups.yaml~")
    assert matters(Change.deleted, root / "team.tmpl")  # not a temp file
    assert not matters(Change.deleted, root / "a.status.json")
    assert not matters(Change.deleted, root / ".a.status.json.x1y2.tmp")
    assert not matters(Change.modified, tmp_path / "elsewhere.yaml")


def test_watch_targets_for_a_symlinked_root(tmp_path: Path) -> None:
    real = tmp_path / "git" / ".worktrees" / ("a" * 40)
    real.mkdir(parents=True)
    link = tmp_path / "git" / "link"
    link.symlink_to(real)
    targets = watch_targets(link)
    assert targets is not None
    assert targets.paths == (tmp_path / "git",)  # the link's folder, not the link's target
    assert targets.resolved_root == real
    assert link in targets.links
    assert watch_targets(tmp_path / "missing") is None
