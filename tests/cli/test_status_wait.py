"""`status --wait [--for-revision SHA]` over real git repositories (the git CLI) and status
files rendered as the runner renders them, with a runner record of this (live) process.

The process-level cases (a real runner against moto, SIGKILLed) are in
tests/process/test_status_wait_process.py; these cover the rules one by one."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.cli.main import main
from runner.model import Problem
from runner.schemas import validator
from runner.status.runrecord import (
    RECORD_DIR,
    STALE_AFTER,
    RunIdentity,
    RunRecordWriter,
    render_record,
)
from runner.status.writer import status_path_for
from tests.builders import render_status
from tests.peers.git import git

ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"


def bridge(interval: str = "30s") -> str:
    return (
        "apiVersion: bridge-runner/v1alpha1\n"
        "kind: Bridge\n"
        "spec:\n"
        "  source:\n"
        "    awsCognitoUserPool:\n"
        f"      arn: {ARN}\n"
        f"      pollInterval: {interval}\n"
        "  sink:\n"
        "    uri: https://events.example.com/cognito\n"
    )


def commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text("*.status.json\n.bridge-runner/\n")
    return path


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


RUN = RunIdentity.current()  # this test process: alive for as long as the test runs


def write_status(
    bridges: Path,
    name: str,
    *,
    text: str,
    revision: str | None,
    applied: str | None = "same",
    problems: tuple[Problem, ...] = (),
    source_ready: tuple[bool | None, str, str] = (True, "Polling", "1 users tracked"),
    sink_ready: tuple[bool | None, str, str] = (True, "Idle", "nothing to deliver yet"),
    run: RunIdentity | None = RUN,
) -> dict[str, Any]:
    """The status the runner writes for `name` having read `text` at `revision`."""
    observed = digest(text)
    doc = render_status(
        bridge_id=name.rsplit(".", 1)[0],
        file=name,
        observed_digest=observed,
        applied_digest=observed if applied == "same" else applied,
        observed_revision=revision,
        problems=problems,
        source_ready=source_ready,
        sink_ready=sink_ready,
        ce_attributes=[{"type": "com.amazon.cognito-idp.sync_trigger", "source": ARN}],
        runner=run.to_status() if run else None,
        now=datetime.now(UTC),
    )
    assert validator("status").is_valid(doc)
    status_path_for(bridges / name).write_text(json.dumps(doc))
    return doc


def write_record(bridges: Path, revision: str | None = None, run: RunIdentity = RUN) -> None:
    assert RunRecordWriter(bridges, shard=None, run=run).beat(revision)


def wait(
    capsys: pytest.CaptureFixture[str], bridges: Path, *args: str, timeout: str = "2s"
) -> tuple[int, str, str]:
    code = main(["status", str(bridges), "--wait", "--timeout", timeout, *args])
    out, err = capsys.readouterr()
    return code, out, err


# -- revision prefixes -------------------------------------------------------------------


def test_revision_prefixes_need_seven_hex_characters_and_ignore_case(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = commit(repo, {"ok.yaml": bridge()})
    write_status(repo, "ok.yaml", text=bridge(), revision=a)
    write_record(repo, a)
    for bad in (a[:6], "xyz1234", a + "0" * 30):
        code, _, err = wait(capsys, repo, "--for-revision", bad)
        assert code == 2, bad
        assert "at least 7 hex characters" in err
    for good in (a[:7].upper(), a.upper(), a[:12]):
        code, out, err = wait(capsys, repo, "--for-revision", good)
        assert code == 0, err
        assert "ok" in out and "True" in out


# -- superseding commits -------------------------------------------------------------------


def test_a_docs_only_commit_after_the_awaited_one_does_not_hold_the_wait(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = commit(repo, {"ok.yaml": bridge()})
    b = commit(repo, {"docs/README.md": "docs\n"})
    write_status(repo, "ok.yaml", text=bridge(), revision=b)
    write_record(repo, b)
    # DIR is at B: A's files are read from git, and ok.yaml is what A declared.
    code, _, err = wait(capsys, repo, "--for-revision", a[:7], timeout="1m")
    assert code == 0, err


def test_a_bridge_changed_after_the_awaited_commit_is_judged_at_its_newer_version(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = commit(repo, {"ok.yaml": bridge("30s"), "other.yaml": bridge("45s")})
    b = commit(repo, {"ok.yaml": bridge("60s")})
    write_status(repo, "other.yaml", text=bridge("45s"), revision=b)
    write_record(repo, b)

    # B's version is not Ready yet: the wait for A waits for it, saying so.
    write_status(
        repo, "ok.yaml", text=bridge("60s"), revision=b, applied=None,
        source_ready=(None, "Starting", "the poller has not reported yet"),
    )  # fmt: skip
    code, _, err = wait(capsys, repo, "--for-revision", a)
    assert code == 1
    assert f"ok: superseded by {b[:12]}, not Ready there yet" in err

    write_status(repo, "ok.yaml", text=bridge("60s"), revision=b)
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="1m")
    assert code == 0, err
    assert f"ok: superseded by {b[:12]}" in err
    assert "other:" not in err  # unchanged since A: simply done

    # B's version invalid: that fails the wait at once too (it cannot get Ready without
    # another commit), naming B's error.
    error = Problem("ok.yaml", 7, 21, "spec.source.awsCognitoUserPool.pollInterval", "bad")
    write_status(
        repo, "ok.yaml", text=bridge("60s"), revision=b, applied=digest(bridge("30s")),
        problems=(error,),
    )  # fmt: skip
    # ...but the version running is A's (its last good one) and Ready: A's wait is done.
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="1m")
    assert code == 0, err
    write_status(repo, "ok.yaml", text=bridge("60s"), revision=b, applied=None, problems=(error,))
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="1m")
    assert code == 1 and "timed out" not in err
    assert f"superseded by {b[:12]}" in err
    assert f"{repo / 'ok.yaml'}:7:21: bad [spec.source.awsCognitoUserPool.pollInterval]" in err


def test_a_later_commit_git_does_not_know_keeps_the_wait_and_says_what_to_fetch(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CI flow: a clone at A, the status files copied from a runner that is at B."""
    a = commit(repo, {"ok.yaml": bridge("30s")})
    ci = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(repo), str(ci))
    b = commit(repo, {"ok.yaml": bridge("60s")})
    write_status(ci, "ok.yaml", text=bridge("60s"), revision=b)
    write_record(ci, b)
    code, _, err = wait(capsys, ci, "--for-revision", a)
    assert code == 1
    assert f"cannot tell whether {b[:12]} descends from {a[:12]}" in err
    assert "fetch origin" in err

    git(ci, "fetch", "-q", "origin")
    code, _, err = wait(capsys, ci, "--for-revision", a, timeout="1m")
    assert code == 0, err
    assert f"superseded by {b[:12]}" in err


def test_a_runner_still_before_the_awaited_commit_is_waited_for(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = commit(repo, {"ok.yaml": bridge("30s")})
    a = commit(repo, {"ok.yaml": bridge("60s")})
    write_status(repo, "ok.yaml", text=bridge("30s"), revision=before)
    write_record(repo, before)
    code, _, err = wait(capsys, repo, "--for-revision", a)
    assert code == 1
    assert f"ok: the runner is at {before[:12]}, before {a[:12]}" in err


def test_a_commit_that_does_not_descend_from_the_awaited_one_never_counts(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = commit(repo, {"ok.yaml": bridge("30s")})
    a = commit(repo, {"ok.yaml": bridge("60s")})
    git(repo, "checkout", "-q", "-b", "other", base)
    forced = commit(repo, {"ok.yaml": bridge("90s")})  # e.g. a force-push replaced A
    write_status(repo, "ok.yaml", text=bridge("90s"), revision=forced)
    write_record(repo, forced)
    code, _, err = wait(capsys, repo, "--for-revision", a)
    assert code == 1
    assert f"which does not descend from {a[:12]}" in err


def test_a_bridge_removed_after_the_awaited_commit_is_done(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = commit(repo, {"ok.yaml": bridge(), "gone.yaml": bridge("45s")})
    b = commit(repo, {"gone.yaml": None})
    write_status(repo, "ok.yaml", text=bridge(), revision=b)
    code, _, err = wait(capsys, repo, "--for-revision", a)
    assert code == 1  # the runner record does not say yet where the runner is
    assert "gone: no status file yet" in err
    write_record(repo, b)
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="1m")
    assert code == 0, err
    assert f"gone: removed by {b[:12]}" in err


def test_a_commit_unknown_to_the_repository_is_waited_for_and_a_plain_folder_is_an_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = commit(repo, {"ok.yaml": bridge()})
    write_status(repo, "ok.yaml", text=bridge(), revision=a)
    write_record(repo, a)
    code, _, err = wait(capsys, repo, "--for-revision", "abcdef0123")
    assert code == 1
    assert "commit abcdef0123 is not in the repository" in err

    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    code, _, err = wait(capsys, plain, "--for-revision", a)
    assert code == 2
    assert "is not a checkout of" in err and "docs/ci.md" in err


def test_without_git_the_files_on_disk_are_awaited_and_it_says_so(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = commit(repo, {"ok.yaml": bridge()})
    b = commit(repo, {"docs/x.md": "x\n"})
    write_status(repo, "ok.yaml", text=bridge(), revision=b)
    write_record(repo, b)
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="1m")
    assert code == 0, err
    assert "no git binary here" in err and "as they are on disk" in err


# -- failing fast ----------------------------------------------------------------------------


def test_an_invalid_bridge_at_the_awaited_revision_fails_at_once_with_file_and_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = commit(repo, {"ok.yaml": bridge(), "bad.yaml": bridge()})
    a = commit(repo, {"bad.yaml": bridge("often")})
    write_status(repo, "ok.yaml", text=bridge(), revision=a)
    errors = (
        Problem("bad.yaml", 7, 21, "spec.source.awsCognitoUserPool.pollInterval", "not a duration"),
        Problem("bad.yaml", 9, 10, "spec.sink.uri", "second error"),
    )
    write_status(
        repo, "bad.yaml", text=bridge("often"), revision=a, applied=digest(bridge()),
        problems=errors,
    )  # fmt: skip
    write_record(repo, a)
    started = time.monotonic()
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="10m")
    assert code == 1
    assert time.monotonic() - started < 300  # long before the 10 minutes: it did not wait
    assert "timed out" not in err
    assert "bad: the file is invalid" in err
    assert f"{repo / 'bad.yaml'}:7:21: not a duration [spec.source" in err
    assert f"{repo / 'bad.yaml'}:9:10: second error [spec.sink.uri]" in err
    assert "ok:" not in err
    assert good  # the last good version (Ready) is not what A asked for


@pytest.mark.parametrize(
    ("source_ready", "sink_ready", "terminal"),
    [
        ((False, "PoolNotFound", "the pool does not exist"), (None, "NoDeliveryYet", ""), True),
        ((False, "AccessDenied", "access denied"), (None, "NoDeliveryYet", ""), True),
        ((True, "Polling", "1 users"), (False, "EventRefused", "HTTP 403 Forbidden"), True),
        ((False, "EndpointUnreachable", "connection refused"), (None, "NoDeliveryYet", ""), False),
        ((False, "Throttled", "throttled"), (None, "NoDeliveryYet", ""), False),
        ((False, "InvalidCredentials", "not accepted"), (None, "NoDeliveryYet", ""), False),
        ((True, "Polling", "1 users"), (False, "SinkUnreachable", "refused"), False),
    ],
)
def test_terminal_reasons_fail_at_once_and_others_wait(
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    source_ready: tuple[bool, str, str],
    sink_ready: tuple[bool | None, str, str],
    terminal: bool,
) -> None:
    a = commit(repo, {"ok.yaml": bridge()})
    write_status(
        repo, "ok.yaml", text=bridge(), revision=a, source_ready=source_ready,
        sink_ready=sink_ready,
    )  # fmt: skip
    write_record(repo, a)
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="10m" if terminal else "1s")
    assert code == 1
    failing = source_ready if source_ready[0] is False else sink_ready
    if terminal:
        assert "timed out" not in err
        kind = "SourceReady" if failing is source_ready else "SinkReady"
        assert f"ok: {kind} {failing[1]}" in err
    else:
        assert "timed out after 1s" in err and f"ok: {failing[1]}" in err


def test_a_suspended_bridge_fails_the_wait_at_once(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = bridge().replace("spec:\n", "spec:\n  suspend: true\n")
    a = commit(repo, {"ok.yaml": text})
    doc = render_status(
        bridge_id="ok", file="ok.yaml", observed_digest=digest(text), applied_digest=None,
        observed_revision=a, suspended=True, runner=RUN.to_status(), now=datetime.now(UTC),
    )  # fmt: skip
    status_path_for(repo / "ok.yaml").write_text(json.dumps(doc))
    write_record(repo, a)
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="10m")
    assert code == 1 and "timed out" not in err
    assert "ok: Ready Suspended" in err


# -- stale statuses ------------------------------------------------------------------------


def test_statuses_of_a_runner_that_is_gone_never_count(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = commit(repo, {"ok.yaml": bridge()})
    bridges = repo

    def waits_because(expected: str) -> None:
        code, _, err = wait(capsys, bridges, "--for-revision", a, timeout="1s")
        assert code == 1, err
        assert expected in err
        # Without --wait the table shows it as not known, and why.
        assert main(["status", str(bridges), "--format", "json"]) == 0
        [row] = json.loads(capsys.readouterr().out)["bridges"]
        assert (row["ready"], row["reason"]) == ("Unknown", "Stale")
        assert expected in row["stale"]

    # Written by a runner that does not record its run, or without a runner record.
    write_status(bridges, "ok.yaml", text=bridge(), revision=a, run=None)
    write_record(bridges, a)
    waits_because("does not say which run of the runner wrote it")
    write_status(bridges, "ok.yaml", text=bridge(), revision=a)
    shutil.rmtree(bridges / RECORD_DIR)
    waits_because(f"no runner record in {RECORD_DIR}/")

    # The runner restarted since (the record names another run).
    write_record(bridges, a, run=replace(RUN, started_at="2020-01-01T00:00:00.000Z"))
    waits_because("written by an earlier run")

    # Stopped on purpose.
    assert RunRecordWriter(bridges, shard=None, run=RUN).stopped(a)
    waits_because("stopped at")

    # No heartbeat for longer than STALE_AFTER (a runner on another host that died).
    old = datetime.now(UTC) - timedelta(seconds=STALE_AFTER + 5)
    record = render_record(RUN, shard=None, now=old, revision=a)
    (bridges / RECORD_DIR / "runner.json").write_text(json.dumps(record))
    waits_because("has not been heard from since")

    # A process that has ended, on this host.
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = replace(RUN, pid=dead.pid)
    write_status(bridges, "ok.yaml", text=bridge(), revision=a, run=gone)
    write_record(bridges, a, run=gone)
    waits_because("is not running any more")

    # And the live run counts.
    write_status(bridges, "ok.yaml", text=bridge(), revision=a)
    write_record(bridges, a)
    code, _, err = wait(capsys, bridges, "--for-revision", a, timeout="1m")
    assert code == 0, err


def test_waiting_prints_progress_naming_the_bridges_and_why(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = commit(repo, {"ok.yaml": bridge(), "slow.yaml": bridge("45s")})
    write_status(repo, "ok.yaml", text=bridge(), revision=a)
    write_status(
        repo, "slow.yaml", text=bridge("45s"), revision=a,
        source_ready=(None, "NotPolledYet", "the pool has not been polled yet"),
    )  # fmt: skip
    write_record(repo, a)
    code, _, err = wait(capsys, repo, "--for-revision", a, timeout="3s")
    assert code == 1
    progress = [line for line in err.splitlines() if line.startswith("waiting (")]
    assert progress and "1 of 2 not Ready yet" in progress[0]
    assert "  slow: NotPolledYet: SourceReady: the pool has not been polled yet" in err
    # Every 5 s when nothing changes (and on change): a 3 s wait prints it once.
    assert len(progress) == 1
