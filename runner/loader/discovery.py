"""Finding bridge files: which files under a bridges directory are bridges (DESIGN §2).

`discover_bridge_files(root)` is what the runner and `check DIR` both use:

- `*.yaml` / `*.yml` files at any depth, in sorted order;
- names starting with `.` are skipped, files and folders alike. That also skips `.git` and the
  Kubernetes ConfigMap internals (`..data`, `..2024_01_01_...`), while the top-level symlinks
  into them (`signups.yaml -> ..data/signups.yaml`) are followed like any file;
- the runner's own status files are never bridges (`*.status.json` is not YAML anyway;
  `*.status.yaml` / `*.status.yml` are skipped too);
- symlinks, to files or folders, are followed only when they resolve inside the root: a bridge
  directory is self-contained, and this also keeps a link to a parent from looping. A file reached
  by two paths is listed once, under the first path in sorted order (two bridges for one file
  would poll the same pool twice);
- broken symlinks and anything that is not a regular file (a FIFO would block the reader) are
  skipped. A file swapped for one after the listing is caught by the reader
  (`runner._kits.safefile`), which never blocks on it;
- a name that is not UTF-8 is listed like any other, so that `check` and `status` report it,
  but the runner does not run it (`is_utf8`, `NOT_UTF8_NAME`).

`expand_paths` turns command-line arguments into files to check: a directory contributes its
bridge files, and a named file brings along the files beside it that would share its bridge id
(`x.yaml` beside `x.yml`), so that checking only the staged files of a commit still finds a clash
with a file already committed.

`root` itself may be a symlink (git-sync publishes each checkout by swapping one): it is resolved
once, so one call walks one version of the tree, and the paths returned are spelled under `root`
as given, so ids and status-file locations stay stable across swaps.

An error while listing a directory propagates (`OSError`): a partial listing would look like
deleted bridges and make the runner stop them, so the caller should rather retry later.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from runner.errors import UsageError
from runner.model import BRIDGE_SUFFIXES, bridge_id_for

# Why a bridge file whose path below the root is not UTF-8 does not run (see `is_utf8`).
NOT_UTF8_NAME = (
    "the runner ignores this file and writes no status file for it (its bridge id and status "
    "file name would not be UTF-8 either); rename it"
)

# Status files the runner might write in YAML form some day; never bridges.
_RUNNER_OWN_SUFFIXES = (".status.yaml", ".status.yml")


def is_bridge_file_name(name: str) -> bool:
    """Whether a file called `name` would be read as a bridge (its folders aside)."""
    return (
        not name.startswith(".")
        and name.endswith(BRIDGE_SUFFIXES)
        and not name.endswith(_RUNNER_OWN_SUFFIXES)
    )


def is_utf8(name: str) -> bool:
    """Whether `name` (a file name, or an environment value, as Python decodes them) was valid
    UTF-8 as bytes.

    Python shows an undecodable byte as a lone surrogate, which no UTF-8 text (a status file, a
    log line, a metric label, the state database) can hold.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def discover_bridge_files(root: Path, *, recursive: bool = True) -> list[Path]:
    """Every bridge file below `root`, sorted, spelled under `root` as given.

    With `recursive=False`, only the files directly in `root`, chosen by the same rules.

    Raises `OSError` (`FileNotFoundError`, `NotADirectoryError`, `PermissionError`) when `root`
    or a folder below it cannot be listed.
    """
    real_root = root.resolve(strict=True)
    if not real_root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    found: list[Path] = []
    _walk(
        root,
        real_root,
        real_root,
        visited_dirs={real_root},
        seen_files=set(),
        found=found,
        recursive=recursive,
    )
    return found


def _walk(
    shown_dir: Path,
    real_dir: Path,
    real_root: Path,
    *,
    visited_dirs: set[Path],
    seen_files: set[Path],
    found: list[Path],
    recursive: bool,
) -> None:
    # Depth-first over names sorted at every level yields paths already in sorted order.
    with os.scandir(real_dir) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        is_dir = entry.is_dir()  # follows symlinks; False for broken ones
        if is_dir and not recursive:
            continue
        if not is_dir and not (entry.is_file() and is_bridge_file_name(entry.name)):
            continue
        if entry.is_symlink():
            real = Path(os.path.realpath(entry.path))
            if not real.is_relative_to(real_root):
                continue
        else:  # inside `real_dir`, itself inside the root: no need to ask pathlib
            real = real_dir / entry.name
        if is_dir:
            if real not in visited_dirs:
                visited_dirs.add(real)
                _walk(
                    shown_dir / entry.name,
                    real,
                    real_root,
                    visited_dirs=visited_dirs,
                    seen_files=seen_files,
                    found=found,
                    recursive=recursive,
                )
        elif real not in seen_files:
            seen_files.add(real)
            found.append(shown_dir / entry.name)


def expand_paths(paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(file, root) pairs for command-line arguments that name files or directories.

    A directory contributes its bridge files (see `discover_bridge_files`) with itself as root.
    A file is taken as named, whatever its name, with its parent as root (so its id is its
    stem), together with the bridge files beside it that have the same id (`x.yaml` for a named
    `x.yml`): the runner reads those as well, and only the pair shows the clash that
    `find_id_clashes` reports. The named file and those siblings come in the order the walk
    lists them, so the clash is reported on the same file as when checking the directory.
    A file named twice, directly or through several arguments, is kept once, with the first
    argument that reached it. Raises `UsageError` for a path that does not exist or is neither
    a regular file nor a directory, and `OSError` when a folder cannot be listed.
    """
    pairs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    # One directory lists each file once already, and so does one file with its siblings:
    # resolving every path is only needed to find the same file reached by several arguments.
    needs_dedupe = len(paths) > 1
    listings: dict[Path, dict[str, list[Path]]] = {}
    for path in paths:
        if path.is_dir():
            candidates: Iterable[tuple[Path, Path]] = (
                (file, path) for file in discover_bridge_files(path)
            )
        elif path.is_file():
            candidates = [(file, path.parent) for file in _with_same_id_siblings(path, listings)]
        elif path.is_symlink() and not path.exists():
            raise UsageError(f"{path}: broken symbolic link")
        elif path.exists():
            raise UsageError(f"{path}: not a regular file or a directory")
        else:
            raise UsageError(f"{path}: no such file or directory")
        for file, root in candidates:
            if needs_dedupe:
                real = file.resolve()
                if real in seen:
                    continue
                seen.add(real)
            pairs.append((file, root))
    return pairs


def _with_same_id_siblings(file: Path, listings: dict[Path, dict[str, list[Path]]]) -> list[Path]:
    """`file` and the bridge files in its folder that have its id, in the walk's order.

    `listings` caches each folder's bridge files by id: a commit may name many files of one
    folder.
    """
    folder = file.parent
    by_id = listings.get(folder)
    if by_id is None:
        by_id = {}
        for sibling in discover_bridge_files(folder, recursive=False):
            by_id.setdefault(bridge_id_for(folder, sibling), []).append(sibling)
        listings[folder] = by_id
    same_id = by_id.get(bridge_id_for(folder, file), [])
    if not same_id:
        return [file]
    # The walk may list the named file itself, or the same file under another name (a link
    # beside its target): either is the named file, not a sibling.
    real = file.resolve()
    siblings = [sibling for sibling in same_id if sibling.resolve() != real]
    return sorted([file, *siblings], key=lambda path: path.name)


def find_id_clashes(files: Iterable[Path], root: Path) -> dict[Path, Path]:
    """Files whose bridge id is already taken by an earlier file under the same root.

    Only `x.yaml` beside `x.yml` can clash: both would be bridge `x` and write `x.status.json`.
    Maps each later file to the first file that has its id.
    """
    first_by_id: dict[str, Path] = {}
    clashes: dict[Path, Path] = {}
    for file in files:
        bridge_id = bridge_id_for(root, file)
        first = first_by_id.setdefault(bridge_id, file)
        if first is not file:
            clashes[file] = first
    return clashes
