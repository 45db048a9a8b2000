"""Status documents (render_status) against runner/schemas/status.schema.json, and the
StatusWriter on a real filesystem: atomic, on change only, rewritten when missing, removable,
and carrying on when a directory cannot be written."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.model import (
    EVENT_TYPE_DELETED,
    EVENT_TYPE_SYNC,
    Bridge,
    CognitoSource,
    PoolArn,
    Problem,
    Sink,
    Target,
)
from runner.schemas import load_schema, validator
from runner.secrets.redaction import Redactor
from runner.status.counters import SinkCounters, SourceCounters
from runner.status.document import ce_attributes_for
from runner.status.writer import StatusWriter, status_path_for
from tests.builders import render_status

ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
DIGEST_A = "a" * 64
DIGEST_B = "b" * 64
FILE_DIGEST = "f" * 64
REVISION = "0123456789abcdef0123456789abcdef01234567"
T0 = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
CE = [{"type": EVENT_TYPE_SYNC, "source": ARN}]
ERROR = Problem("signups.yaml", 7, 9, "spec.sink.uri", "must be an http(s) or file: URI")
WARNING = Problem(
    "signups.yaml", 3, 1, "spec.sink.headers.X", "plain-text value", severity="warning"
)


def render(**overrides: Any) -> dict[str, Any]:
    """A Ready, valid, running bridge unless `overrides` say otherwise."""
    args: dict[str, Any] = {
        "bridge_id": "team-a/signups",
        "file": "team-a/signups.yaml",
        "observed_digest": FILE_DIGEST,
        "applied_digest": DIGEST_A,
        "observed_revision": REVISION,
        "source_ready": (True, "Polling", "last scan succeeded"),
        "sink_ready": (True, "Delivering", "the sink accepts events"),
        "ce_attributes": CE,
        "now": T0,
    }
    args.update(overrides)
    document = render_status(**args)
    errors = sorted(validator("status").iter_errors(document), key=str)
    assert not errors, [e.message for e in errors]
    return document


def conditions(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in document["conditions"]}


def condition(document: dict[str, Any], kind: str) -> dict[str, str]:
    return next(c for c in document["conditions"] if c["type"] == kind)


# --- render_status ------------------------------------------------------------------------------


def test_a_running_valid_bridge_is_ready() -> None:
    doc = render()
    assert doc["apiVersion"] == "bridge-runner/v1alpha1" and doc["kind"] == "BridgeStatus"
    assert (doc["bridge"], doc["file"]) == ("team-a/signups", "team-a/signups.yaml")
    assert (doc["observedDigest"], doc["appliedDigest"]) == (FILE_DIGEST, DIGEST_A)
    assert doc["observedRevision"] == REVISION
    assert [c["type"] for c in doc["conditions"]] == ["Valid", "SourceReady", "SinkReady", "Ready"]
    assert conditions(doc) == {
        "Valid": ("True", "Validated"),
        "SourceReady": ("True", "Polling"),
        "SinkReady": ("True", "Delivering"),
        "Ready": ("True", "Ready"),
    }
    assert all(c["lastTransitionTime"] == "2025-01-02T03:04:05Z" for c in doc["conditions"])
    assert doc["updatedAt"] == "2025-01-02T03:04:05.678Z"
    assert doc["errors"] == [] and doc["ceAttributes"] == CE


def test_an_invalid_file_with_a_last_good_version_running() -> None:
    doc = render(problems=[WARNING, ERROR])
    valid = condition(doc, "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "ValidationFailed")
    assert valid["message"].startswith("line 7: must be an http(s) or file: URI [spec.sink.uri]")
    assert "last good version (aaaaaaaaaaaa) keeps running" in valid["message"]
    assert conditions(doc)["Ready"] == ("True", "LastGoodRunning")
    assert doc["appliedDigest"] == DIGEST_A
    assert doc["errors"] == [
        {
            "line": 3,
            "column": 1,
            "path": "spec.sink.headers.X",
            "message": "plain-text value",
            "severity": "warning",
        },
        {
            "line": 7,
            "column": 9,
            "path": "spec.sink.uri",
            "message": "must be an http(s) or file: URI",
            "severity": "error",
        },
    ]


def test_a_file_invalid_from_the_start_is_not_ready() -> None:
    unreadable = Problem("signups.yaml", None, None, "", "cannot read the file: permission denied")
    doc = render(
        problems=[unreadable, ERROR],
        applied_digest=None,
        observed_digest=None,
        source_ready=None,
        sink_ready=None,
        ce_attributes=[],
    )
    assert conditions(doc) == {
        "Valid": ("False", "ValidationFailed"),
        "SourceReady": ("Unknown", "NotRunning"),
        "SinkReady": ("Unknown", "NotRunning"),
        "Ready": ("False", "ValidationFailed"),
    }
    valid = condition(doc, "Valid")["message"]
    assert valid == (
        "cannot read the file: permission denied (and 1 more error); no version of this bridge runs"
    )
    assert doc["errors"][0]["line"] is None and doc["observedDigest"] is None


def test_warnings_alone_keep_the_file_valid() -> None:
    doc = render(problems=[WARNING])
    assert condition(doc, "Valid")["message"] == "the file is valid, with 1 warning"
    assert conditions(doc)["Ready"] == ("True", "Ready")


def test_a_suspended_bridge_is_validated_but_not_ready() -> None:
    doc = render(suspended=True, applied_digest=None, source_ready=None, sink_ready=None)
    assert conditions(doc) == {
        "Valid": ("True", "Validated"),
        "SourceReady": ("Unknown", "Suspended"),
        "SinkReady": ("Unknown", "Suspended"),
        "Ready": ("False", "Suspended"),
    }


def test_ready_takes_the_reason_of_the_first_failing_input() -> None:
    source_down = (False, "AccessDenied", "Cognito refused ListUsers")
    doc = render(source_ready=source_down, sink_ready=(None, "NoDeliveryYet", "nothing sent"))
    assert conditions(doc)["Ready"] == ("False", "AccessDenied")
    assert condition(doc, "Ready")["message"] == "SourceReady: Cognito refused ListUsers"

    doc = render(sink_ready=(False, "SinkRejected", "HTTP 400"))
    assert conditions(doc)["Ready"] == ("False", "SinkRejected")

    doc = render(sink_ready=(None, "NoDeliveryYet", "nothing sent yet"))
    assert conditions(doc)["Ready"] == ("Unknown", "NoDeliveryYet")

    doc = render(source_ready=None, sink_ready=None)  # started, nothing reported yet
    assert conditions(doc)["Ready"] == ("Unknown", "Starting")


def test_transition_times_change_only_when_the_status_changes() -> None:
    first = render()
    later = T0 + timedelta(minutes=5)
    same = render(
        previous=first, now=later, source_ready=(True, "PollingAgain", "still fine, new words")
    )
    assert all(c["lastTransitionTime"] == "2025-01-02T03:04:05Z" for c in same["conditions"])
    assert same["updatedAt"] == "2025-01-02T03:09:05.678Z"

    flipped = render(previous=same, now=later, sink_ready=(False, "SinkUnavailable", "HTTP 503"))
    times = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert times == {
        "Valid": "2025-01-02T03:04:05Z",
        "SourceReady": "2025-01-02T03:04:05Z",
        "SinkReady": "2025-01-02T03:09:05Z",
        "Ready": "2025-01-02T03:09:05Z",
    }
    # A malformed previous document is ignored, not trusted.
    odd = render(previous={"conditions": [{"type": "Valid"}, "junk"]}, now=later)
    assert condition(odd, "Valid")["lastTransitionTime"] == "2025-01-02T03:09:05Z"


def test_reasons_that_are_not_camel_case_are_converted() -> None:
    doc = render(
        source_ready=(False, "access denied", "no"), sink_ready=(False, "sink-unavailable", "x")
    )
    assert conditions(doc)["SourceReady"] == ("False", "AccessDenied")
    assert conditions(doc)["SinkReady"] == ("False", "SinkUnavailable")
    assert conditions(render(sink_ready=(None, "!!", "?")))["SinkReady"] == ("Unknown", "Unknown")


def test_counters_blocks_match_the_schema_exactly() -> None:
    schema = load_schema("status")
    assert set(SourceCounters().to_status()) == set(schema["properties"]["source"]["properties"])
    assert set(SinkCounters().to_status()) == set(schema["properties"]["sink"]["properties"])
    source = SourceCounters(
        last_poll_time=datetime(2025, 1, 2, 3, 4, 5),  # naive: taken as UTC
        last_successful_poll_time=T0,
        users_tracked=12,
        pages_read=3,
        scans=2,
        last_scan_duration=0.25,
        throttles=1,
        last_error=None,
    )
    sink = SinkCounters(
        delivered=5,
        pending=2,
        retried=1,
        dead_lettered=1,
        parked=1,
        emitted=9,
        last_delivery_time=T0.astimezone(),
        last_error="HTTP 503 Service Unavailable",
    )
    doc = render(source=source, sink=sink)
    assert doc["source"]["lastPollTime"] == "2025-01-02T03:04:05Z"
    assert doc["source"]["usersTracked"] == 12
    assert doc["sink"] == {
        "delivered": 5,
        "pending": 2,
        "retried": 1,
        "deadLettered": 1,
        "parked": 1,
        "emitted": 9,
        "lastDeliveryTime": "2025-01-02T03:04:05.678000Z",
        "lastError": "HTTP 503 Service Unavailable",
    }
    fresh = render(source=None, sink=None)
    assert fresh["source"]["scans"] == 0 and fresh["sink"]["lastDeliveryTime"] is None


def test_no_secret_value_reaches_a_status_document() -> None:
    secret = "tok-3f9a7c1e5b2d"
    Redactor.register(secret)
    doc = render(
        problems=[Problem("s.yaml", 1, 1, "spec", f"echoed {secret}")],
        source_ready=(False, "SourceRejected", f"denied for {secret}"),
        sink=SinkCounters(last_error=f"401 for Bearer {secret}"),
    )
    text = json.dumps(doc)
    assert secret not in text
    assert "***" in condition(doc, "SourceReady")["message"]


def test_the_schema_is_strict() -> None:
    check = validator("status")
    good = render()
    assert check.is_valid(good)
    bad_docs = [
        {**good, "extra": 1},
        {**good, "appliedDigest": "not-a-digest"},
        {**good, "observedRevision": "main"},
        {**good, "conditions": list(reversed(good["conditions"]))},
        {**good, "conditions": good["conditions"][:3]},
        {
            **good,
            "conditions": [*good["conditions"][:3], {**good["conditions"][3], "reason": "x y"}],
        },
        {**good, "source": {**good["source"], "last_poll_time": None}},
        {**good, "ceAttributes": [{"type": "other", "source": ARN}]},
        {**good, "updatedAt": "yesterday"},
    ]
    for bad in bad_docs:
        assert not check.is_valid(bad), bad


def test_ce_attributes_follow_emit_deletions() -> None:
    pool = PoolArn(ARN, "aws", "us-west-2", "043455440429", "us-west-2_fak3p001B")

    def bridge(emit: bool) -> Bridge:
        return Bridge(
            id="b",
            file=Path("/x/b.yaml"),
            name="b",
            source=CognitoSource(pool=pool, emit_deletions=emit),
            sink=Sink(target=Target("http://127.0.0.1:9/")),
        )

    assert ce_attributes_for(bridge(False)) == [{"type": EVENT_TYPE_SYNC, "source": ARN}]
    assert ce_attributes_for(bridge(True)) == [
        {"type": EVENT_TYPE_SYNC, "source": ARN},
        {"type": EVENT_TYPE_DELETED, "source": ARN},
    ]


# --- StatusWriter -------------------------------------------------------------------------------


def test_status_path_is_the_stem_plus_status_json() -> None:
    assert status_path_for(Path("/b/team-a/signups.yaml")) == Path("/b/team-a/signups.status.json")
    assert status_path_for(Path("x.yml")) == Path("x.status.json")


def test_writes_atomically_next_to_the_bridge_file(tmp_path: Path) -> None:
    bridge_file = tmp_path / "team-a" / "signups.yaml"
    bridge_file.parent.mkdir()
    bridge_file.write_text("kind: Bridge\n")
    writer = StatusWriter()
    doc = render()
    assert writer.write(bridge_file, doc) is True
    status = tmp_path / "team-a" / "signups.status.json"
    assert json.loads(status.read_text()) == doc
    assert validator("status").is_valid(json.loads(status.read_text()))
    assert sorted(p.name for p in status.parent.iterdir()) == [
        "signups.status.json",
        "signups.yaml",
    ]
    assert status.stat().st_mode & 0o777 == 0o644


def test_writes_only_when_the_content_changed(tmp_path: Path) -> None:
    bridge_file = tmp_path / "signups.yaml"
    writer = StatusWriter()
    status = status_path_for(bridge_file)
    assert writer.write(bridge_file, render())
    inode = status.stat().st_ino
    # Only updatedAt differs: no write, the file keeps its first updatedAt.
    later = render(previous=writer.previous(bridge_file), now=T0 + timedelta(seconds=30))
    assert writer.write(bridge_file, later) is False
    assert status.stat().st_ino == inode
    assert json.loads(status.read_text())["updatedAt"] == "2025-01-02T03:04:05.678Z"
    # A real change is written (a new file, renamed over the old one).
    changed = render(
        previous=writer.previous(bridge_file),
        applied_digest=DIGEST_B,
        now=T0 + timedelta(seconds=60),
    )
    assert writer.write(bridge_file, changed) is True
    assert status.stat().st_ino != inode
    assert json.loads(status.read_text())["appliedDigest"] == DIGEST_B


def test_rewrites_a_status_file_that_disappeared(tmp_path: Path) -> None:
    bridge_file = tmp_path / "signups.yaml"
    writer = StatusWriter()
    doc = render()
    assert writer.write(bridge_file, doc)
    status_path_for(bridge_file).unlink()  # as a git-sync swap to a fresh worktree does
    assert writer.write(bridge_file, doc) is True
    assert json.loads(status_path_for(bridge_file).read_text()) == doc


def test_remove_deletes_the_status_file(tmp_path: Path) -> None:
    bridge_file = tmp_path / "signups.yaml"
    writer = StatusWriter()
    writer.write(bridge_file, render())
    assert writer.remove(bridge_file) is True
    assert not status_path_for(bridge_file).exists()
    assert writer.remove(bridge_file) is False
    assert writer.previous(bridge_file) is None
    # After a removal the same content is written again (the cache was forgotten).
    assert writer.write(bridge_file, render()) is True


def test_previous_survives_a_restart(tmp_path: Path) -> None:
    bridge_file = tmp_path / "signups.yaml"
    first = render()
    StatusWriter().write(bridge_file, first)
    restarted = StatusWriter()
    previous = restarted.previous(bridge_file)
    assert previous == first
    again = render(previous=previous, now=T0 + timedelta(hours=1))
    assert condition(again, "Ready")["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    status_path_for(tmp_path / "junk.yaml").write_text("{not json")
    assert restarted.previous(tmp_path / "junk.yaml") is None


def test_an_unwritable_directory_is_logged_once_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Root ignores permission bits, so make the folder unwritable for everyone: a plain file
    # stands where the directory should be (any OSError takes the same path).
    blocker = tmp_path / "bridges"
    blocker.write_text("not a directory")
    bridge_file = blocker / "signups.yaml"
    writer = StatusWriter()
    with caplog.at_level(logging.WARNING, logger="runner.status.writer"):
        assert writer.write(bridge_file, render()) is False
        assert writer.write(bridge_file, render(applied_digest=DIGEST_B)) is False
        assert writer.remove(bridge_file) is False
    warnings = [r for r in caplog.records if r.name == "runner.status.writer"]
    assert len(warnings) == 1
    assert "cannot write status files in" in warnings[0].getMessage()
    # Once writable again, writing resumes.
    blocker.unlink()
    blocker.mkdir()
    assert writer.write(bridge_file, render()) is True
    assert sorted(p.name for p in blocker.iterdir()) == ["signups.status.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permission bits")
def test_a_read_only_directory_does_not_crash(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        assert StatusWriter().write(tmp_path / "signups.yaml", render()) is False
        assert list(tmp_path.iterdir()) == []
    finally:
        tmp_path.chmod(0o755)


def test_the_run_that_wrote_a_status_is_part_of_it_and_checked_by_the_schema() -> None:
    run = {"startedAt": "2025-01-02T03:04:05.678Z", "pid": 1, "host": "bridge-runner-0"}
    document = render(runner=run)
    assert document["runner"] == run
    assert "runner" not in render()  # optional: files of older runners still validate
    for broken in ({**run, "pid": 0}, {**run, "extra": 1}, {"pid": 1, "host": "h"}):
        assert not validator("status").is_valid({**document, "runner": broken}), broken
