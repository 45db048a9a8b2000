"""`bridge-runner status DIR`: what the status files beside the bridges say.

A table (or JSON) of every bridge's readiness. Read-only: it never talks to Cognito or the
sink. `--wait` blocks until every bridge is done, fails at once when one never will be, or
gives up after `--timeout` (exit 1 either way, saying why), printing progress to stderr.

What is awaited: the bridge files as on disk, or with `--for-revision A` the files commit A
declared — DIR itself when DIR is a checkout at A, else A's tree read from DIR's repository
with git (`runner.reconcile.gittree`). For each of those files (sha256 `want`), its status file:

- never counts while stale: its run is not the live run of a runner record
  (`runner.status.runrecord`: a runner that died or restarted);
- done when `appliedDigest == want` and Ready is True, whichever commit the status reports
  (a commit that changed no bridge leaves them all done);
- fails at once when it read `want` and found it invalid (Valid False: its located errors are
  printed as `file:line:column: message`), or names a terminal reason (`TERMINAL_REASONS`);
- superseded: when it describes another version of the file, read at a commit R that
  descends from A (`git merge-base --is-ancestor A R`), the bridge is judged at R's version
  instead — done when that is Ready, failed when that is invalid or terminal — and reported
  "superseded by R". When git cannot tell (R or A not in the repository, a shallow clone),
  it keeps waiting and says what to fetch. A bridge file A declares that R removed is done
  ("removed by R") once the runner record says the runner is at R.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from runner._kits.durations import duration_argument
from runner._kits.safefile import FileTooLarge, NotRegularFile, open_regular, read_regular
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
from runner.schemas import validator
from runner.status.runrecord import RunIdentity, RunRecord, liveness_of, read_run_records
from runner.status.writer import MAX_STATUS_BYTES, status_path_for

POLL_SECONDS = 1.0
PROGRESS_SECONDS = 5.0  # progress on stderr: on change, else this often

# Reasons that no amount of waiting fixes without a change somewhere (a commit, the pool,
# IAM, the sink): the wait fails at once when the version awaited reports one. Kept short on
# purpose: a reason that can heal by itself (throttling, 5xx, an unreachable endpoint,
# credentials or secrets that may still be mounted or rotated) is not terminal.
TERMINAL_REASONS: Mapping[str, frozenset[str]] = {
    "SourceReady": frozenset({"PoolNotFound", "AccessDenied"}),
    "SinkReady": frozenset(
        {"EventRefused", "InvalidSinkUri", "FileSinkOutsideStateDir", "FileSinkIsStateDatabase"}
    ),
    "Ready": frozenset({"Suspended"}),
}

_REVISION = re.compile(r"^[0-9a-f]{7,64}$")
_NOTHING = (None, None, None, None, False)  # last poll, delivered, pending, revision, current


def parse_revision(text: str) -> str:
    """`--for-revision`: a commit id or a prefix of at least 7 hex digits, any case."""
    revision = text.strip().lower()
    if not _REVISION.match(revision):
        raise UsageError(
            f"--for-revision {text!r}: give a commit id, or a prefix of at least 7 hex characters"
        )
    return revision


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR", help="the bridges directory")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait until every bridge is Ready (exit 1 on timeout, or at once on a bridge "
        "that cannot become Ready)",
    )
    parser.add_argument(
        "--for-revision",
        metavar="SHA",
        help="with --wait: wait for the bridge files of this git commit (at least 7 hex "
        "characters); bridges a later commit changed are judged at their newer version",
    )
    parser.add_argument(
        "--shard",
        type=Shard.parse,
        metavar="I/N",
        help="only the bridges of shard I of N (what `run --shard I/N` writes statuses for)",
    )
    parser.add_argument(
        "--timeout",
        type=duration_argument,
        default=120.0,
        metavar="DURATION",
        help="with --wait: give up after this long (default: 2m)",
    )


# -- what the status files say -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    bridge: str
    ready: str  # True / False / Unknown
    valid: str  # the Valid condition's status
    reason: str
    message: str
    last_poll: str | None
    delivered: int | None
    pending: int | None
    revision: str | None
    current: bool  # the status describes the file as it is on disk now
    stale: str | None = None  # why the status no longer describes a live runner, if it does not


@dataclass(frozen=True, slots=True)
class Located:
    line: int | None
    column: int | None
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class StatusView:
    """A status file, read and checked against its schema."""

    doc: Mapping[str, Any]

    def condition(self, kind: str) -> Mapping[str, Any]:
        found = next((c for c in self.doc["conditions"] if c["type"] == kind), None)
        return found or {"status": "Unknown", "reason": "Unknown", "message": ""}

    @property
    def observed(self) -> str | None:
        value: str | None = self.doc["observedDigest"]
        return value

    @property
    def applied(self) -> str | None:
        value: str | None = self.doc["appliedDigest"]
        return value

    @property
    def revision(self) -> str | None:
        value: str | None = self.doc["observedRevision"]
        return value

    @property
    def run(self) -> RunIdentity | None:
        return RunIdentity.from_status(self.doc.get("runner"))

    def ready(self) -> bool:
        return bool(self.condition("Ready")["status"] == "True")

    def errors(self) -> list[Located]:
        return [
            Located(e["line"], e["column"], e["path"], e["message"])
            for e in self.doc["errors"]
            if e["severity"] == "error"
        ]

    def terminal(self) -> tuple[str, str] | None:
        """(condition, reason) of a terminal failure the status names, or None."""
        for kind, reasons in TERMINAL_REASONS.items():
            cond = self.condition(kind)
            if cond["status"] == "False" and cond["reason"] in reasons:
                return kind, str(cond["reason"])
        return None

    def why_not_ready(self) -> str:
        ready = self.condition("Ready")
        return f"{ready['reason']}: {ready['message']}" if ready["message"] else ready["reason"]


def read_status(status_file: Path) -> StatusView | str:
    """The status file, or why there is none to use (a reason word: NoStatus, InvalidStatus)."""
    try:
        # Never through a link, never a FIFO or device, never unbounded (`runner._kits.safefile`):
        # the runner writes status files as regular files, so anything else is not one.
        doc: Any = json.loads(read_regular(status_file, limit=MAX_STATUS_BYTES))
    except (NotRegularFile, FileTooLarge, ValueError):
        return "InvalidStatus"
    except OSError as exc:
        return "InvalidStatus" if exc.errno == errno.ELOOP else "NoStatus"
    # Status files are read, not trusted: a hand-edited or foreign file is reported, and
    # never crashes `status` (or keeps `--wait` from waiting for a good one).
    if not validator("status").is_valid(doc):
        return "InvalidStatus"
    return StatusView(doc)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    """The digest the runner reports as `observedDigest`, read as the runner reads a bridge."""
    digest = hashlib.sha256()
    with open_regular(path, follow_symlinks=True) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_rows(root: Path, shard: Shard | None = None, *, now: datetime | None = None) -> list[Row]:
    """The table: every bridge file on disk and what its status says."""
    records = read_run_records(root)
    moment = now or datetime.now(UTC)
    rows = []
    for path in discover_bridge_files(root):
        bridge_id = bridge_id_for(root, path)
        if shard is None or shard.owns(bridge_id):
            rows.append(_row(bridge_id, path, records, moment))
    return rows


def _row(bridge_id: str, path: Path, records: Sequence[RunRecord], now: datetime) -> Row:
    if not is_utf8(bridge_id):
        shown = printable(bridge_id)
        return Row(shown, "False", "False", "InvalidFileName", NOT_UTF8_NAME, *_NOTHING)
    try:
        digest: str | None = _file_sha256(path)
    except OSError:
        digest = None
    view = read_status(status_path_for(path))
    if isinstance(view, str):
        message = "no status file yet" if view == "NoStatus" else "not a status file"
        return Row(bridge_id, "Unknown", "Unknown", view, message, None, None, None, None, False)
    ready, valid = view.condition("Ready"), view.condition("Valid")
    source, sink = view.doc["source"], view.doc["sink"]
    stale = liveness_of(view.run, records, now)
    return Row(
        bridge=bridge_id,
        # A stale status says nothing about now: shown as Unknown, with why.
        ready="Unknown" if stale else str(ready["status"]),
        valid=str(valid["status"]),
        reason="Stale" if stale else str(ready["reason"]),
        message=stale or str(ready["message"]),
        last_poll=source.get("lastSuccessfulPollTime") or source.get("lastPollTime"),
        delivered=sink.get("delivered"),
        pending=sink.get("pending"),
        revision=view.revision,
        current=digest is not None and view.observed == digest,
        stale=stale,
    )


# -- what is awaited -----------------------------------------------------------------------


@dataclass
class Target:
    """The bridge files awaited: {path relative to DIR: sha256}, and where they came from."""

    files: dict[str, str]
    commit: str | None  # the awaited commit, full when known
    source: str  # for messages: "DIR as on disk" / "commit abc1234 in DIR's repository"
    repo: GitRepo | None = None
    notes: list[str] = field(default_factory=list)


def _short(commit: str) -> str:
    return commit[:12]


def _disk_files(root: Path) -> dict[str, str]:
    files = {}
    for path in discover_bridge_files(root):
        try:
            files[path.relative_to(root).as_posix()] = _file_sha256(path)
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
        checkout = f"{root} (a checkout at {_short(at)})"
        return Target(_disk_files(root), at, checkout, GitRepo.open(root))
    repo = GitRepo.open(root)
    if repo is None:
        target = Target(_disk_files(root), None, f"{root} as on disk")
        where = f"at {_short(at)}" if at else "whose commit is not known"
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
            + (f" (it is at {_short(at)})" if at else "")
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
            return f"cannot read the files of {_short(commit)}: {exc}"
        files = {path: _sha256(data) for path, data in blobs.items() if _is_bridge_path(path)}
        if trees is not None:
            trees[commit] = files
    return Target(files, commit, f"commit {_short(commit)} in the repository of {root}", repo)


# -- judging one bridge --------------------------------------------------------------------

Kind = Literal["done", "waiting", "failed"]


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    why: str  # one line: why it is not done yet / why it failed / a note on how it is done
    details: tuple[str, ...] = ()  # located errors, `file:line:column: message [path]`


class Ancestry(Protocol):
    """How a commit R the runner read relates to the awaited commit A, as git tells it:
    True / False, or None with a hint on what to fetch."""

    def descends(self, at: str) -> tuple[bool | None, str]:
        """Whether R descends from A."""
        ...

    def precedes(self, at: str) -> tuple[bool | None, str]:
        """Whether A descends from R (the runner has not reached A yet)."""
        ...


def _located(file: str, errors: Sequence[Located]) -> tuple[str, ...]:
    out = []
    for e in errors:
        where = file
        if e.line is not None:
            where += f":{e.line}" + (f":{e.column}" if e.column is not None else "")
        at = f" [{e.path}]" if e.path else ""
        out.append(f"{where}: {e.message}{at}")
    return tuple(out)


def _judge_version(view: StatusView, file: str, label: str) -> Verdict | None:
    """The verdict on the version a status read, when it is final: invalid or terminal."""
    valid = view.condition("Valid")
    if valid["status"] == "False":
        return Verdict(
            "failed",
            f"the file is invalid {label}",
            _located(file, view.errors()) or (f"{file}: {valid['message']}",),
        )
    terminal = view.terminal()
    if terminal is not None and (view.applied == view.observed or terminal[1] == "Suspended"):
        cond = view.condition(terminal[0])
        return Verdict("failed", f"{terminal[0]} {terminal[1]} {label}: {cond['message']}")
    return None


def judge(
    *,
    file: str,
    want: str,
    view: StatusView | str,
    stale: str | None,
    awaited: str | None,
    ancestry: Ancestry,
) -> Verdict:
    """Whether one bridge is done for the wait (pure, given what git answers)."""
    if isinstance(view, str):
        return Verdict(
            "waiting", "no status file yet" if view == "NoStatus" else "its status file is invalid"
        )
    if stale:
        return Verdict("waiting", f"its status is stale: {stale}")
    label = f"at {_short(awaited)}" if awaited else "on disk"
    if view.observed == want:
        final = _judge_version(view, file, label)
        if final is not None:
            return final
        if view.ready() and view.applied == want:
            return Verdict("done", "")
        if view.ready():
            return Verdict("waiting", "another version of the file still runs")
        return Verdict("waiting", view.why_not_ready())
    if view.applied == want and view.ready():
        # What was awaited runs, although the runner read another version since (one that
        # is invalid: its last good version is the one awaited).
        return Verdict("done", "")
    if awaited is None:
        return Verdict("waiting", "its status does not describe the current file yet")
    at = view.revision
    if at is None:
        return Verdict("waiting", "its status describes another version of the file")
    if at.startswith(awaited):
        return Verdict("waiting", f"its status at {_short(at)} describes another version")
    descends, hint = ancestry.descends(at)
    if descends is None:
        return Verdict(
            "waiting",
            f"the runner read another version at {_short(at)}; cannot tell whether "
            f"{_short(at)} descends from {_short(awaited)}: {hint}",
        )
    if not descends:
        older, _ = ancestry.precedes(at)
        if older:
            return Verdict(
                "waiting",
                f"the runner is at {_short(at)}, before {_short(awaited)}: not applied yet",
            )
        return Verdict(
            "waiting",
            f"the runner is at {_short(at)}, which does not descend from {_short(awaited)}",
        )
    superseded = f"superseded by {_short(at)}"
    final = _judge_version(view, file, f"at {_short(at)} ({superseded})")
    if final is not None:
        return final
    if view.ready() and view.applied == view.observed:
        return Verdict("done", superseded)
    return Verdict("waiting", f"{superseded}, not Ready there yet: {view.why_not_ready()}")


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
                f"{_short(missing)} is not in the repository of {self._root}: "
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
                verdicts[bridge_id] = Verdict("done", f"removed by {_short(removed)}")
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


def run(args: argparse.Namespace) -> int:
    root: Path = args.directory
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    revision = parse_revision(args.for_revision) if args.for_revision else None
    if revision and not args.wait:
        raise UsageError("--for-revision goes with --wait")
    if not args.wait:
        _print(read_rows(root, args.shard), args.format)
        return EXIT_OK
    return _wait(root, revision, args)


def _wait(root: Path, revision: str | None, args: argparse.Namespace) -> int:
    started = time.monotonic()
    deadline = started + args.timeout
    progress = _Progress(args.timeout)
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
            outcome = one_round(root, revision, args.shard, target, known)
            failed = {b: v for b, v in outcome.verdicts.items() if v.kind == "failed"}
            if failed:
                _print(read_rows(root, args.shard), args.format)
                _report_failed(failed, target)
                return EXIT_FAILED
            blocked = {b: v.why for b, v in outcome.verdicts.items() if v.kind == "waiting"}
            if not blocked:
                _print(read_rows(root, args.shard), args.format)
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
    _print(read_rows(root, args.shard), args.format)
    print(f"timed out after {args.timeout:g}s; not ready:", file=sys.stderr)
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


def render_table(rows: list[Row]) -> str:
    header = ("BRIDGE", "READY", "REASON", "LAST POLL", "DELIVERED", "PENDING")
    body = [
        (
            printable(r.bridge),
            r.ready,
            r.reason,
            r.last_poll or "-",
            "-" if r.delivered is None else str(r.delivered),
            "-" if r.pending is None else str(r.pending),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    return "\n".join(lines)


def _print(rows: list[Row], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps({"bridges": [asdict(r) for r in rows]}, indent=2))
    else:
        print(render_table(rows) if rows else "no bridges found")
        stale = [r for r in rows if r.stale]
        if stale:
            print(f"\n{len(stale)} stale: {stale[0].stale}", file=sys.stderr)
