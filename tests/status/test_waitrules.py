"""The rules of `status --wait` (runner.status.waitrules), without git or files: a status
document rendered in memory, and an Ancestry that answers as told."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runner.model import Problem
from runner.status.reader import StatusView
from runner.status.waitrules import TERMINAL_REASONS, judge, terminal_failure
from tests.builders import render_status

WANT = "a" * 64
OTHER = "b" * 64
AWAITED = "1" * 40
LATER = "2" * 40
UP = (True, "Polling", "1 user tracked")
DELIVERING = (True, "Delivering", "ok")


class Told:
    """An Ancestry with fixed answers."""

    def __init__(self, descends: bool | None, precedes: bool | None = False) -> None:
        self._descends, self._precedes = descends, precedes

    def descends(self, at: str) -> tuple[bool | None, str]:
        return self._descends, "" if self._descends is not None else "fetch it"

    def precedes(self, at: str) -> tuple[bool | None, str]:
        return self._precedes, ""


def view(**overrides: Any) -> StatusView:
    args: dict[str, Any] = {
        "bridge_id": "b",
        "file": "b.yaml",
        "observed_digest": WANT,
        "applied_digest": WANT,
        "observed_revision": AWAITED,
        "source_ready": UP,
        "sink_ready": DELIVERING,
        "now": datetime(2025, 1, 2, tzinfo=UTC),
    }
    args.update(overrides)
    return StatusView.of(render_status(**args))


def verdict(status: StatusView | str, *, awaited: str | None = AWAITED, **kw: Any) -> Any:
    ancestry = kw.pop("ancestry", Told(True))
    return judge(
        file="b.yaml",
        want=WANT,
        view=status,
        stale=kw.pop("stale", None),
        awaited=awaited,
        ancestry=ancestry,
    )


def test_done_when_the_awaited_version_runs_and_is_ready() -> None:
    assert verdict(view()).kind == "done"
    # The runner read another (invalid) version since, but the awaited one still runs.
    assert verdict(view(observed_digest=OTHER, problems=[_error()])).kind == "done"


def test_waiting_while_not_ready_stale_missing_or_another_version_runs() -> None:
    starting = verdict(view(source_ready=None, sink_ready=None))
    assert (starting.kind, starting.why) == (
        "waiting",
        "Starting: SourceReady: the poller has not reported yet",
    )
    assert verdict(view(applied_digest=OTHER)).why == "another version of the file still runs"
    assert verdict(view(), stale="its runner is gone").why == (
        "its status is stale: its runner is gone"
    )
    assert verdict("NoStatus").why == "no status file yet"
    assert verdict("InvalidStatus").why == "its status file is invalid"
    on_disk = verdict(view(observed_digest=OTHER, applied_digest=OTHER), awaited=None)
    assert on_disk.why == "its status does not describe the current file yet"


def _error() -> Problem:
    return Problem("b.yaml", 3, 5, "spec.sink.uri", "must be a URI")


def test_an_invalid_awaited_version_fails_with_located_errors() -> None:
    failed = verdict(view(problems=[_error()], applied_digest=None))
    assert failed.kind == "failed"
    assert failed.why == f"the file is invalid at {AWAITED[:12]}"
    assert failed.details == ("b.yaml:3:5: must be a URI [spec.sink.uri]",)


def test_terminal_reasons_fail_and_others_wait() -> None:
    denied = view(source_ready=(False, "AccessDenied", "not allowed"))
    assert terminal_failure(denied) is not None
    assert verdict(denied).kind == "failed"
    assert verdict(denied).why == f"SourceReady AccessDenied at {AWAITED[:12]}: not allowed"
    throttled = view(source_ready=(False, "Throttled", "slow down"))
    assert terminal_failure(throttled) is None
    assert verdict(throttled).kind == "waiting"
    assert "Throttled" not in TERMINAL_REASONS["SourceReady"]
    suspended = verdict(view(suspended=True, applied_digest=None))
    assert (suspended.kind, suspended.why.split(" ")[:2]) == ("failed", ["Ready", "Suspended"])


def test_a_later_version_supersedes_the_awaited_one_when_git_says_it_descends() -> None:
    later = view(observed_digest=OTHER, applied_digest=OTHER, observed_revision=LATER)
    done = verdict(later, ancestry=Told(True))
    assert (done.kind, done.why) == ("done", f"superseded by {LATER[:12]}")
    unknown = verdict(later, ancestry=Told(None))
    assert unknown.kind == "waiting" and unknown.why.endswith(": fetch it")
    before = verdict(later, ancestry=Told(False, precedes=True))
    assert before.why == f"the runner is at {LATER[:12]}, before {AWAITED[:12]}: not applied yet"
    aside = verdict(later, ancestry=Told(False, precedes=False))
    assert aside.why.endswith(f"which does not descend from {AWAITED[:12]}")
    invalid_later = view(
        observed_digest=OTHER, applied_digest=None, observed_revision=LATER, problems=[_error()]
    )
    assert verdict(invalid_later).kind == "failed"
