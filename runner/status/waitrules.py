"""The rules of `status --wait`: whether one bridge is done, still waiting, or failed (pure).

    judge(file=, want=, view=, stale=, awaited=, ancestry=) -> Verdict
    TERMINAL_REASONS                 reasons no amount of waiting fixes
    Ancestry                         how git relates two commits (given, so tests need no git)

For a bridge file whose content the wait wants (sha256 `want`), its status (`StatusView`):

- never counts while stale: its run is not the live run of a runner record;
- done when `appliedDigest == want` and Ready is True, whichever commit the status reports;
- fails at once when it read `want` and found it invalid (Valid False: its located errors as
  `file:line:column: message`), or names a terminal reason (`TERMINAL_REASONS`);
- superseded: when it describes another version of the file, read at a commit R that
  descends from the awaited commit A, the bridge is judged at R's version instead — done when
  that is Ready, failed when that is invalid or terminal — and reported "superseded by R".
  When git cannot tell, it keeps waiting and says what to fetch.

Reading the files, git and the waiting loop are `runner.cli.status_wait`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from runner.status.reader import Located, StatusView
from runner.status.readiness import SUSPENDED_REASON, Condition

# Reasons that no amount of waiting fixes without a change somewhere (a commit, the pool,
# IAM, the sink): the wait fails at once when the version awaited reports one. Kept short on
# purpose: a reason that can heal by itself (throttling, 5xx, an unreachable endpoint,
# credentials or secrets that may still be mounted or rotated) is not terminal.
TERMINAL_REASONS: Mapping[str, frozenset[str]] = {
    "SourceReady": frozenset({"PoolNotFound", "AccessDenied"}),
    "SinkReady": frozenset(
        {"EventRefused", "InvalidSinkUri", "FileSinkOutsideStateDir", "FileSinkIsStateDatabase"}
    ),
    "Ready": frozenset({SUSPENDED_REASON}),
}

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


def short_commit(commit: str) -> str:
    return commit[:12]


def terminal_failure(view: StatusView) -> Condition | None:
    """The condition that names a terminal failure, or None."""
    for kind, reasons in TERMINAL_REASONS.items():
        condition = view.condition(kind)
        if condition.status == "False" and condition.reason in reasons:
            return condition
    return None


def located(file: str, errors: Sequence[Located]) -> tuple[str, ...]:
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
    if valid.status == "False":
        return Verdict(
            "failed",
            f"the file is invalid {label}",
            located(file, view.errors()) or (f"{file}: {valid.message}",),
        )
    terminal = terminal_failure(view)
    if terminal is not None and (
        view.applied == view.observed or terminal.reason == SUSPENDED_REASON
    ):
        return Verdict("failed", f"{terminal.type} {terminal.reason} {label}: {terminal.message}")
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
    label = f"at {short_commit(awaited)}" if awaited else "on disk"
    ready = view.readiness.ready
    if view.observed == want:
        final = _judge_version(view, file, label)
        if final is not None:
            return final
        if ready and view.applied == want:
            return Verdict("done", "")
        if ready:
            return Verdict("waiting", "another version of the file still runs")
        return Verdict("waiting", view.readiness.why_not)
    if view.applied == want and ready:
        # What was awaited runs, although the runner read another version since (one that
        # is invalid: its last good version is the one awaited).
        return Verdict("done", "")
    if awaited is None:
        return Verdict("waiting", "its status does not describe the current file yet")
    return _judge_elsewhere(view, file, awaited, ancestry)


def _judge_elsewhere(view: StatusView, file: str, awaited: str, ancestry: Ancestry) -> Verdict:
    """A status that describes another version of the file, read at another commit."""
    at = view.revision
    if at is None:
        return Verdict("waiting", "its status describes another version of the file")
    if at.startswith(awaited):
        return Verdict("waiting", f"its status at {short_commit(at)} describes another version")
    descends, hint = ancestry.descends(at)
    if descends is None:
        return Verdict(
            "waiting",
            f"the runner read another version at {short_commit(at)}; cannot tell whether "
            f"{short_commit(at)} descends from {short_commit(awaited)}: {hint}",
        )
    if not descends:
        older, _ = ancestry.precedes(at)
        if older:
            return Verdict(
                "waiting",
                f"the runner is at {short_commit(at)}, before {short_commit(awaited)}: "
                "not applied yet",
            )
        return Verdict(
            "waiting",
            f"the runner is at {short_commit(at)}, which does not descend from "
            f"{short_commit(awaited)}",
        )
    superseded = f"superseded by {short_commit(at)}"
    final = _judge_version(view, file, f"at {short_commit(at)} ({superseded})")
    if final is not None:
        return final
    if view.readiness.ready and view.applied == view.observed:
        return Verdict("done", superseded)
    return Verdict("waiting", f"{superseded}, not Ready there yet: {view.readiness.why_not}")
