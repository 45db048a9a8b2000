"""The runner record on a real filesystem: where it goes, what it holds, and that a directory
the runner cannot write is logged once and never fails the runner."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from runner.loader.discovery import discover_bridge_files
from runner.status.runrecord import RECORD_DIR, RunIdentity, RunRecordWriter, read_run_records


def test_one_record_per_shard_in_a_dot_folder_that_is_no_bridge(tmp_path: Path) -> None:
    run = RunIdentity.current()
    for shard in (None, "0/2", "1/2"):
        assert RunRecordWriter(tmp_path, shard=shard, run=run).beat("a" * 40)
    names = sorted(p.name for p in (tmp_path / RECORD_DIR).iterdir())
    assert names == ["runner-0-of-2.json", "runner-1-of-2.json", "runner.json"]
    assert discover_bridge_files(tmp_path) == []
    records = read_run_records(tmp_path)
    assert [r.shard for r in records] == ["0/2", "1/2", None]
    assert all(r.run == run and r.revision == "a" * 40 and r.stopped_at is None for r in records)

    assert RunRecordWriter(tmp_path, shard=None, run=run).stopped("b" * 40)
    doc = json.loads((tmp_path / RECORD_DIR / "runner.json").read_text())
    assert doc["stoppedAt"] is not None and doc["revision"] == "b" * 40
    assert doc["runner"] == {"startedAt": run.started_at, "pid": os.getpid(), "host": run.host}


def test_foreign_or_broken_records_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / RECORD_DIR
    folder.mkdir()
    (folder / "a.json").write_text("{not json")
    (folder / "b.json").write_text('{"kind": "Other"}')
    (folder / "c.json").write_text('{"kind": "RunnerRecord", "runner": {"pid": "1"}}')
    assert read_run_records(tmp_path) == []


def test_a_directory_it_cannot_write_in_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A file where the record folder goes: writing fails for any user, root included (as a
    # read-only mount does).
    (tmp_path / RECORD_DIR).write_text("not a folder")
    writer = RunRecordWriter(tmp_path, shard=None, run=RunIdentity.current())
    with caplog.at_level(logging.WARNING):
        assert not writer.beat(None)
        assert not writer.beat(None)
    assert sum("cannot write the runner record" in r.message for r in caplog.records) == 1
    assert read_run_records(tmp_path) == []
