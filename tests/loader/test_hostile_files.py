"""Hostile or odd files in a bridges directory, reader by reader (issue 9; the runner as a
process: tests/process/test_hostile_files_process.py).

A read that would block on a FIFO runs in a thread here: if it is still blocked after a while,
the test opens the FIFO's other end (which lets it go, so no thread is left behind) and fails.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from runner._kits.safefile import FileTooLarge, NotRegularFile, read_regular
from runner._kits.wording import printable
from runner.cli.check import check_paths, github_annotation, render_json, render_text
from runner.cli.status import read_rows
from runner.cli.status_wait import one_round, resolve_target
from runner.loader.config import load_bridge
from runner.model import Problem
from runner.status.reader import read_status
from runner.status.runrecord import RunIdentity, RunRecordWriter, read_run_records
from runner.status.writer import StatusWriter
from tests.builders import render_status

T = TypeVar("T")

GOOD = (
    "apiVersion: bridge-runner/v1alpha1\n"
    "kind: Bridge\n"
    "spec:\n"
    "  source:\n"
    "    awsCognitoUserPool:\n"
    "      arn: arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B\n"
    "  sink:\n"
    "    uri: https://events.example.com/cognito\n"
)
HANG = 10.0  # seconds a read that never blocks is given before it counts as blocked


def _without_blocking(call: Callable[[], T], fifo: Path) -> T:
    """`call()`'s result; fails the test if it blocks on `fifo` (releasing it first)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    if thread.is_alive():
        # The reader waits in open(): a writer end lets it in, and closing it gives EOF.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(HANG)
        pytest.fail(f"blocked on the FIFO {fifo}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _document(bridge_id: str = "b") -> dict[str, Any]:
    return render_status(
        bridge_id=bridge_id,
        file=f"{bridge_id}.yaml",
        observed_digest=None,
        applied_digest=None,
        observed_revision=None,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


# -- runner._kits.safefile ----------------------------------------------------------------------


def test_read_regular_refuses_fifos_devices_links_and_oversized_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match=r"not a regular file \(a FIFO\)"):
        _without_blocking(lambda: read_regular(fifo, limit=100, follow_symlinks=True), fifo)
    with pytest.raises(NotRegularFile, match=r"not a regular file \(a device\)"):
        read_regular(Path("/dev/zero"), limit=100, follow_symlinks=True)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "regular")
    (tmp_path / "regular").write_bytes(b"12345")
    with pytest.raises(OSError, match="is a symbolic link"):
        read_regular(link, limit=100)
    assert read_regular(link, limit=100, follow_symlinks=True) == b"12345"
    with pytest.raises(FileTooLarge, match="too large"):
        read_regular(tmp_path / "regular", limit=4)
    # A size of 0 (as /proc files say) does not lift the cap: what is read counts.
    with pytest.raises(FileTooLarge):
        read_regular(Path("/proc/self/status"), limit=16, follow_symlinks=True)


# -- status files --------------------------------------------------------------------------


def test_status_writer_does_not_read_a_status_link_to_a_fifo_and_replaces_it(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "elsewhere.fifo"
    os.mkfifo(fifo)
    bridge = tmp_path / "b.yaml"
    status = tmp_path / "b.status.json"
    status.symlink_to(fifo)
    writer = StatusWriter()
    assert _without_blocking(lambda: writer.previous(bridge), fifo) is None
    assert _without_blocking(lambda: writer.write(bridge, _document()), fifo)
    assert stat.S_ISREG(os.lstat(status).st_mode)  # the link itself was replaced
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(status.read_text())["bridge"] == "b"


def test_status_writer_does_not_read_dev_zero_through_a_link(tmp_path: Path) -> None:
    bridge = tmp_path / "b.yaml"
    (tmp_path / "b.status.json").symlink_to("/dev/zero")
    writer = StatusWriter()
    assert writer.previous(bridge) is None
    assert writer.write(bridge, _document())
    assert stat.S_ISREG(os.lstat(tmp_path / "b.status.json").st_mode)


def test_status_writer_never_writes_through_a_link_to_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "outside.json"
    target.write_text('{"kept": true}')
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    (bridges / "b.status.json").symlink_to(target)
    writer = StatusWriter()
    # Not taken as the previous document either: it is not the runner's.
    assert writer.previous(bridges / "b.yaml") is None
    assert writer.write(bridges / "b.yaml", _document())
    assert target.read_text() == '{"kept": true}'
    assert not (bridges / "b.status.json").is_symlink()


def test_a_link_put_in_place_of_a_written_status_file_is_replaced_on_the_next_write(
    tmp_path: Path,
) -> None:
    bridge, status = tmp_path / "b.yaml", tmp_path / "b.status.json"
    writer = StatusWriter()
    assert writer.write(bridge, _document())
    status.unlink()
    os.mkfifo(tmp_path / "fifo")
    status.symlink_to(tmp_path / "fifo")  # a git-sync swap brought a committed link
    assert writer.write(bridge, _document())  # same content, but not the file written
    assert stat.S_ISREG(os.lstat(status).st_mode)
    assert not writer.write(bridge, _document())  # and only once


def test_status_command_reads_no_status_through_a_link(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "a.status.json").symlink_to(fifo)
    (tmp_path / "b.yaml").write_text(GOOD)
    (tmp_path / "b.status.json").symlink_to("/dev/zero")
    assert _without_blocking(lambda: read_status(tmp_path / "a.status.json"), fifo) == (
        "InvalidStatus"
    )
    rows = _without_blocking(lambda: read_rows(tmp_path), fifo)
    assert [(r.bridge, r.reason) for r in rows] == [("a", "InvalidStatus"), ("b", "InvalidStatus")]


def test_status_command_never_blocks_on_a_bridge_file_that_is_a_fifo(tmp_path: Path) -> None:
    # Listed as a regular file, then swapped: what `status` meets when it reads the digest.
    fifo = tmp_path / "a.yaml"
    os.mkfifo(fifo)
    from runner.cli import status as status_cmd

    assert _without_blocking(lambda: status_cmd._row("a", fifo, [], datetime.now(UTC)), fifo)


# -- runner records ------------------------------------------------------------------------


def test_runner_records_are_not_read_through_links_or_from_fifos(tmp_path: Path) -> None:
    folder = tmp_path / ".bridge-runner"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (folder / "runner.json").symlink_to(fifo)
    (folder / "runner-0-of-2.json").symlink_to("/dev/zero")
    os.mkfifo(folder / "runner-1-of-2.json")
    assert _without_blocking(lambda: read_run_records(tmp_path), fifo) == []


def test_a_linked_record_folder_is_not_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    (bridges / ".bridge-runner").symlink_to(outside, target_is_directory=True)
    writer = RunRecordWriter(bridges, shard=None, run=RunIdentity.current())
    assert writer.beat(None) is False
    assert list(outside.iterdir()) == []


# -- bridge files --------------------------------------------------------------------------


def test_loading_a_bridge_file_that_became_a_fifo_is_a_located_error(tmp_path: Path) -> None:
    fifo = tmp_path / "b.yaml"
    os.mkfifo(fifo)
    result = _without_blocking(
        lambda: load_bridge(fifo, root=tmp_path, display_path="b.yaml"), fifo
    )
    assert not result.valid
    assert [p.render() for p in result.problems] == [
        "b.yaml: error: cannot read the file: not a regular file (a FIFO)"
    ]


def test_loading_a_bridge_link_to_a_device_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").symlink_to("/dev/zero")
    result = load_bridge(tmp_path / "b.yaml", root=tmp_path, display_path="b.yaml")
    assert [p.message for p in result.problems] == [
        "cannot read the file: not a regular file (a device)"
    ]


def _bad_name(folder: Path) -> Path:
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), b"bad\xff.yaml")))
    path.write_text(GOOD)
    return path


def test_a_bridge_file_name_that_is_not_utf8_is_an_error_shown_escaped(tmp_path: Path) -> None:
    _bad_name(tmp_path)
    (tmp_path / "good.yaml").write_text(GOOD)
    report = check_paths([tmp_path], secrets_dir=tmp_path / "secrets", cwd=tmp_path)
    assert [r.valid for r in report.results] == [False, True]
    text = render_text(report)
    assert text.startswith("bad\\xff.yaml: error: the file name is not valid UTF-8: ")
    text.encode("utf-8")  # nothing that is not UTF-8 left
    document = json.loads(render_json(report))
    assert [f["file"] for f in document["files"]] == ["bad\\xff.yaml", "good.yaml"]
    assert document["files"][0]["id"] == "bad\\xff"


def _check(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "check", *args],
        cwd=cwd,
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8:surrogateescape"])
def test_check_reports_a_name_that_is_not_utf8_without_raw_bytes(
    tmp_path: Path, encoding: str
) -> None:
    _bad_name(tmp_path)
    (tmp_path / "good.yaml").write_text(GOOD)
    for fmt in ("text", "github", "json"):
        done = _check(".", "--format", fmt, cwd=tmp_path, PYTHONIOENCODING=encoding)
        assert done.returncode == 1, done.stderr  # invalid, not an internal error (3)
        assert b"\xff" not in done.stdout
        if fmt == "json":
            assert json.loads(done.stdout)["files"][0]["file"] == "bad\\xff.yaml"
        else:
            assert b"bad\\xff.yaml" in done.stdout
            assert b"1 invalid" in done.stdout


def test_a_newline_in_a_file_name_does_not_forge_check_lines(tmp_path: Path) -> None:
    odd = tmp_path / "x\ny.yaml"
    odd.write_text("apiVersion: nope\n")
    esc = tmp_path / "e\x1b[2Kz\u2028.yaml"
    esc.write_text("apiVersion: nope\n")
    report = check_paths([tmp_path], secrets_dir=tmp_path / "s", cwd=tmp_path)
    lines = render_text(report).splitlines()
    assert len(lines) == 3  # two problems and the summary
    assert lines[0].startswith("e\\x1b[2Kz\\u2028.yaml:1:")
    assert lines[1].startswith("x\\ny.yaml:1:")
    problem = Problem("x\ny\x1b.yaml", 1, 2, "", "bad\x07 value\nsecond")
    annotation = github_annotation(problem)
    assert annotation == (
        "::error file=x%0Ay\\x1b.yaml,line=1,col=2,title=bridge-runner::bad\\x07 value%0Asecond"
    )


# -- the escaping rule -------------------------------------------------------------------


def test_printable_escapes_what_breaks_a_line_and_keeps_the_rest() -> None:
    assert printable("team-a/signups.yaml") == "team-a/signups.yaml"
    assert printable("café 中文 .yaml") == "café 中文 .yaml"
    assert printable("a\r\n\t\x00\x7f\x85") == "a\\r\\n\\t\\x00\\x7f\\x85"
    assert printable("bad\udcff\udc80") == "bad\\xff\\x80"
    assert printable("x\u2028y\u2029\u202e") == "x\\u2028y\\u2029\\u202e"


def test_status_names_a_file_name_that_is_not_utf8_and_the_wait_fails_on_it(
    tmp_path: Path,
) -> None:
    from runner.cli import status as status_cmd

    _bad_name(tmp_path)
    rows = read_rows(tmp_path)
    assert [(r.bridge, r.ready, r.reason) for r in rows] == [
        ("bad\\xff", "False", "InvalidFileName")
    ]
    assert "bad\\xff" in status_cmd.render_table(rows)
    target = resolve_target(tmp_path, None)
    assert not isinstance(target, str)
    verdicts = one_round(tmp_path, None, None, target).verdicts
    # It can never become Ready: the wait fails at once instead of timing out.
    assert [v.kind for v in verdicts.values()] == ["failed"]
    assert "not valid UTF-8" in next(iter(verdicts.values())).why
