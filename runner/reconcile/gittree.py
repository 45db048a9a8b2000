"""What `status --for-revision` asks git: a commit's bridge files, and who descends from whom.

    GitRepo.open(directory)        None when no `git` binary is on PATH
    repo.toplevel_prefix()         DIR's path inside its repository (`bridges/`), or raises
    repo.resolve(prefix)           the full commit id, None when the repository does not know it
    repo.files_at(commit)          {relative path: bytes} of the files below DIR at that commit
    repo.exists_at(commit, path)   whether a file below DIR exists at that commit
    repo.is_ancestor(a, b)         True / False, or None when it cannot be told

Unlike `runner.reconcile.gitrev` (on every reconcile, reads files, never spawns git), this spawns
the `git` binary: it serves only the `status` command, never the runner's hot path. Read-only:
plumbing commands (`rev-parse`, `ls-tree`, `cat-file`, `merge-base`) that run no hooks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

_TIMEOUT = 30.0  # seconds: a local repository answers in milliseconds


class GitError(Exception):
    """git could not answer (not a repository, refused it, ...): the message is git's own."""


class GitRepo:
    def __init__(self, git: str, directory: Path) -> None:
        self._git = git
        self.directory = directory
        self._prefix: str | None = None
        self._shallow: bool | None = None

    @classmethod
    def open(cls, directory: Path) -> GitRepo | None:
        git = shutil.which("git")
        return cls(git, directory) if git else None

    def _run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        # No pager, no prompts, C locale for stable messages; nothing of the caller's terminal.
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_PAGER": "cat"}
        try:
            return subprocess.run(
                [self._git, "-C", str(self.directory), *args],
                input=stdin,
                capture_output=True,
                env=env,
                timeout=_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"git {args[0]}: {exc}") from None

    @staticmethod
    def _message(done: subprocess.CompletedProcess[bytes]) -> str:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[0] if lines else f"git exited with {done.returncode}"

    def toplevel_prefix(self) -> str:
        """DIR's path relative to the top of its working tree, `""` or ending in `/`.

        Raises GitError when DIR is not in a git working tree (or git refuses it)."""
        if self._prefix is None:
            done = self._run("rev-parse", "--show-prefix")
            if done.returncode != 0:
                raise GitError(self._message(done))
            self._prefix = done.stdout.decode("utf-8", "surrogateescape").strip()
        return self._prefix

    def resolve(self, prefix: str) -> str | None:
        """The full id of the commit `prefix` names, None when the repository does not have it.

        Raises GitError when the prefix is ambiguous or git cannot answer."""
        done = self._run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", prefix + "^{commit}"
        )
        if done.returncode == 0:
            return done.stdout.decode().strip()
        if self._message(done).startswith("error: short object ID") or b"ambiguous" in done.stderr:
            raise GitError(f"{prefix} is ambiguous in this repository: give more characters")
        return None

    def files_at(self, commit: str) -> dict[str, bytes]:
        """The files below DIR at `commit`: {path relative to DIR (POSIX): content}.

        Symbolic links and submodules are left out: a bridge is a file in the tree."""
        prefix = self.toplevel_prefix()
        tree = f"{commit}:{prefix}" if prefix else f"{commit}^{{tree}}"
        listing = self._run("ls-tree", "-r", "-z", "--full-tree", tree)
        if listing.returncode != 0:
            # DIR does not exist at that commit: it has no files there.
            return {}
        entries: list[tuple[str, str]] = []
        for item in listing.stdout.split(b"\0"):
            if not item:
                continue
            meta, _, name = item.partition(b"\t")
            mode, kind, oid = meta.decode().split(" ")
            if kind == "blob" and mode in {"100644", "100755"}:
                entries.append((name.decode("utf-8", "surrogateescape"), oid))
        return dict(zip((n for n, _ in entries), self._blobs([o for _, o in entries]), strict=True))

    def _blobs(self, oids: Sequence[str]) -> list[bytes]:
        if not oids:
            return []
        done = self._run("cat-file", "--batch", stdin=("\n".join(oids) + "\n").encode())
        if done.returncode != 0:
            raise GitError(self._message(done))
        out, blobs, at = done.stdout, [], 0
        for _ in oids:
            header_end = out.index(b"\n", at)
            header = out[at:header_end].split(b" ")
            if len(header) != 3:
                raise GitError(f"git cat-file: unexpected answer {header!r}")
            size = int(header[2])
            start = header_end + 1
            blobs.append(out[start : start + size])
            at = start + size + 1  # the content is followed by a newline
        return blobs

    def exists_at(self, commit: str, path: str) -> bool:
        done = self._run("cat-file", "-e", f"{commit}:{self.toplevel_prefix()}{path}")
        return done.returncode == 0

    def is_shallow(self) -> bool:
        if self._shallow is None:
            done = self._run("rev-parse", "--is-shallow-repository")
            self._shallow = done.returncode == 0 and done.stdout.strip() == b"true"
        return self._shallow

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        """Whether `descendant` descends from `ancestor` (a commit descends from itself).

        None when it cannot be told: one of them is not in the repository, or the history
        between them is cut off (a shallow clone) so that "no" might be wrong."""
        if self.resolve(ancestor) is None or self.resolve(descendant) is None:
            return None
        done = self._run("merge-base", "--is-ancestor", ancestor, descendant)
        if done.returncode == 0:
            return True
        if done.returncode == 1:
            return None if self.is_shallow() else False
        return None
