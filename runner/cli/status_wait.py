"""`status --wait`: what is awaited, and the waiting loop (the rules are
`runner.status.waitrules`).

What is awaited: the bridge files as on disk, or with `--for-revision A` the files commit A
declared — DIR itself when DIR is a checkout at A, else A's tree read from DIR's repository
with git (`runner.reconcile.gittree`). Each round reads every awaited file's status and the
runner records, and judges each bridge (`judge`): the wait ends when all are done, fails at
once when one never will be, or gives up at the deadline, printing progress to stderr on
change and every PROGRESS_SECONDS. A bridge file A declares that a later commit R removed is
done ("removed by R") once the runner record says the runner is at R.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from runner._kits.safefile import open_regular
from runner._kits.wording import printable
from runner.cli.exitcodes import EXIT_FAILED, EXIT_OK
from runner.errors import UsageError
from runner.loader.discovery import (
    NOT_UTF8_NAME,
    discover_bridge_files,
    is_bridge_file_name,
    is_utf8,
)
from runner.model import bridge_id_for
from runner.reconcile.gitrev import observed_revision
from runner.reconcile.gittree import GitError, GitRepo
from runner.reconcile.plan import Shard
from runner.status.reader import StatusView, read_status
from runner.status.runrecord import RunRecord, liveness_of, read_run_records
from runner.status.waitrules import Verdict, judge, short_commit
from runner.status.writer import status_path_for

POLL_SECONDS = 1.0
PROGRESS_SECONDS = 5.0  # progress on stderr: on change, else this often


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The digest the runner reports as `observedDigest`, read as the runner reads a bridge."""
    digest = hashlib.sha256()
    with open_regular(path, follow_symlinks=True) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- what is awaited -----------------------------------------------------------------------


@dataclass
class Target:
    """The bridge files awaited: {path relative to DIR: sha256}, and where they came from."""

    files: dict[str, str]
    commit: str | None  # the awaited commit, full when known
    source: str  # for messages: "DIR as on disk" / "commit abc1234 in DIR's repository"
    repo: GitRepo | None = None
    notes: list[str] = field(default_factory=list)


def _disk_files(root: Path) -> dict[str, str]:
    files = {}
    for path in discover_bridge_files(root):
        try:
            files[path.relative_to(root).as_posix()] = file_sha256(path)
        except OSError:
            continue  # removed while read: the next round sees it
    return files


def _is_bridge_path(relative: str) -> bool:
    parts = PurePosixPath(relative).parts
    return is_bridge_file_name(parts[-1]) and not any(p.startswith(".") for p in parts)


def resolve_target(
    root: Path, revision: str | None, trees: dict[str, dict[str, str]] | None = None
) -> Target | str:
    """What to wait for, or (a string) why it cannot be known yet. UsageError when DIR is no
    checkout of the revision and has no repository to read it from. `trees` caches the
    files of commits already read (a commit's tree never changes)."""
    if revision is None:
        return Target(_disk_files(root), None, f"{root} as on disk")
    at = observed_revision(root)
    if at is not None and at.startswith(revision):
        # git still tells whether a status written at a later commit descends from it.
        checkout = f"{root} (a checkout at {short_commit(at)})"
        return Target(_disk_files(root), at, checkout, GitRepo.open(root))
    repo = GitRepo.open(root)
    if repo is None:
        target = Target(_disk_files(root), None, f"{root} as on disk")
        where = f"at {short_commit(at)}" if at else "whose commit is not known"
        target.notes.append(
            f"no git binary here: waiting for the bridge files in {root} as they are on disk "
            f"({where}), not those of {revision}"
        )
        return target
    try:
        repo.toplevel_prefix()
        commit = repo.resolve(revision)
    except GitError as exc:
        raise UsageError(
            f"{root} is not a checkout of {revision}"
            + (f" (it is at {short_commit(at)})" if at else "")
            + f", and its repository cannot be read: {exc}. Run status in a checkout of "
            f"{revision} with the status files copied into it (docs/ci.md)"
        ) from None
    if commit is None:
        return (
            f"commit {revision} is not in the repository of {root} (yet): fetch it "
            f"(git -C {root} fetch origin), or run status in a checkout of it"
        )
    files = trees.get(commit) if trees is not None else None
    if files is None:
        try:
            blobs = repo.files_at(commit)
        except GitError as exc:
            return f"cannot read the files of {short_commit(commit)}: {exc}"
        files = {path: _sha256(data) for path, data in blobs.items() if _is_bridge_path(path)}
        if trees is not None:
            trees[commit] = files
    return Target(files, commit, f"commit {short_commit(commit)} in the repository of {root}", repo)


class GitAncestry:
    """`Ancestry` from DIR's repository (definite answers cached)."""

    def __init__(
        self,
        repo: GitRepo | None,
        awaited: str,
        root: Path,
        known: dict[tuple[str, str], bool] | None = None,
    ) -> None:
        self._repo = repo
        self._awaited = awaited
        self._root = root
        # (ancestor, descendant) -> answer; shared across rounds by the wait.
        self._known = {} if known is None else known

    def _ask(self, ancestor: str, descendant: str) -> tuple[bool | None, str]:
        if self._repo is None:
            return None, "no git binary here"
        key = (ancestor, descendant)
        if key in self._known:
            return self._known[key], ""
        try:
            answer = self._repo.is_ancestor(ancestor, descendant)
        except GitError as exc:
            return None, str(exc)
        if answer is None:
            if self._repo.is_shallow():
                return None, f"the clone is shallow: git -C {self._root} fetch --unshallow origin"
            missing = descendant if self._safe_resolve(descendant) is None else ancestor
            return None, (
                f"{short_commit(missing)} is not in the repository of {self._root}: "
                f"git -C {self._root} fetch origin (a clone with its full history: "
                "actions/checkout's fetch-depth: 0)"
            )
        self._known[key] = answer  # only a definite answer is kept: a fetch may come
        return answer, ""

    def _safe_resolve(self, commit: str) -> str | None:
        try:
            return self._repo.resolve(commit) if self._repo else None
        except GitError:
            return None

    def descends(self, at: str) -> tuple[bool | None, str]:
        return self._ask(self._awaited, at)

    def precedes(self, at: str) -> tuple[bool | None, str]:
        return self._ask(at, self._awaited)


# -- the wait ------------------------------------------------------------------------------


@dataclass
class Round:
    verdicts: dict[str, Verdict]  # bridge id -> verdict
    pending: str | None = None  # the target itself is not known yet (why)
    notes: list[str] = field(default_factory=list)


def _removed_by_runner(
    target: Target, relative: str, records: Sequence[RunRecord], root: Path
) -> str | None:
    """The commit (descending from the awaited one) the runner is at, which has no such
    file: the bridge was removed after the awaited commit. None when not so, or not known."""
    if target.repo is None or target.commit is None:
        return None
    for record in records:
        at = record.revision
        if at is None or at == target.commit:
            continue
        try:
            if target.repo.is_ancestor(target.commit, at) and not target.repo.exists_at(
                at, relative
            ):
                return at
        except GitError:
            continue
    return None


def one_round(
    root: Path,
    revision: str | None,
    shard: Shard | None,
    target: Target,
    known: dict[tuple[str, str], bool] | None = None,
) -> Round:
    records = read_run_records(root)
    now = datetime.now(UTC)
    ancestry = GitAncestry(target.repo, target.commit or revision or "", root, known)
    verdicts: dict[str, Verdict] = {}
    for relative, want in sorted(target.files.items()):
        path = root / relative
        bridge_id = bridge_id_for(root, path)
        if shard is not None and not shard.owns(bridge_id):
            continue
        if not is_utf8(relative):
            verdicts[bridge_id] = Verdict("failed", f"its name is not valid UTF-8: {NOT_UTF8_NAME}")
            continue
        view = read_status(status_path_for(path))
        if view == "NoStatus" and target.commit is not None:
            removed = _removed_by_runner(target, relative, records, root)
            if removed is not None:
                verdicts[bridge_id] = Verdict("done", f"removed by {short_commit(removed)}")
                continue
        stale = liveness_of(view.run, records, now) if isinstance(view, StatusView) else None
        verdicts[bridge_id] = judge(
            file=str(path),
            want=want,
            view=view,
            stale=stale,
            awaited=target.commit or revision,
            ancestry=ancestry,
        )
    return Round(verdicts)


def wait(
    root: Path,
    revision: str | None,
    *,
    shard: Shard | None,
    timeout: float,
    show_table: Callable[[], None],
) -> int:
    """Wait for every awaited bridge to be done: the exit code, after `show_table()` and why."""
    started = time.monotonic()
    deadline = started + timeout
    progress = _Progress(timeout)
    noted: set[str] = set()
    trees: dict[str, dict[str, str]] = {}
    known: dict[tuple[str, str], bool] = {}
    while True:
        target = resolve_target(root, revision, trees)
        if isinstance(target, str):
            blocked: dict[str, str] = {"(revision)": target}
            outcome: Round | None = None
        else:
            for note in target.notes:
                if note not in noted:
                    noted.add(note)
                    print(f"note: {note}", file=sys.stderr)
            outcome = one_round(root, revision, shard, target, known)
            failed = {b: v for b, v in outcome.verdicts.items() if v.kind == "failed"}
            if failed:
                show_table()
                _report_failed(failed, target)
                return EXIT_FAILED
            blocked = {b: v.why for b, v in outcome.verdicts.items() if v.kind == "waiting"}
            if not blocked:
                show_table()
                for bridge_id, verdict in sorted(outcome.verdicts.items()):
                    if verdict.why:
                        print(printable(f"{bridge_id}: {verdict.why}"), file=sys.stderr)
                if not outcome.verdicts:
                    print("no bridges found", file=sys.stderr)
                return EXIT_OK
        now = time.monotonic()
        if now >= deadline:
            break
        progress.maybe_print(blocked, now - started, total=len(outcome.verdicts) if outcome else 0)
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - now)))
    show_table()
    print(f"timed out after {timeout:g}s; not ready:", file=sys.stderr)
    for bridge_id, why in sorted(blocked.items()):
        print(printable(f"  {bridge_id}: {why}"), file=sys.stderr)
    return EXIT_FAILED


def _report_failed(failed: Mapping[str, Verdict], target: Target) -> None:
    print(f"failed: waiting for {target.source} cannot succeed:", file=sys.stderr)
    for bridge_id, verdict in sorted(failed.items()):
        print(printable(f"  {bridge_id}: {verdict.why}"), file=sys.stderr)
        for line in verdict.details:
            print(printable(f"    {line}"), file=sys.stderr)


class _Progress:
    """Progress on stderr while waiting: when what blocks changes, else every few seconds."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._last: dict[str, str] | None = None
        self._printed_at = 0.0

    def maybe_print(self, blocked: Mapping[str, str], elapsed: float, *, total: int) -> None:
        # "Changed" is about which bridges block and their first word (the reason), not the
        # whole message: counters and retry delays in messages change on every round.
        summary = {bridge: why.split(":")[0] for bridge, why in blocked.items()}
        if summary == self._last and elapsed - self._printed_at < PROGRESS_SECONDS:
            return
        self._last, self._printed_at = summary, elapsed
        of = f" of {total}" if total else ""
        print(
            f"waiting ({elapsed:.0f}s of {self._timeout:g}s): {len(blocked)}{of} not Ready yet",
            file=sys.stderr,
        )
        for bridge_id, why in sorted(blocked.items()):
            print(printable(f"  {bridge_id}: {why}"), file=sys.stderr)
        sys.stderr.flush()
