"""Counters count their own changes: what lets the reconciler render only the bridges that moved."""

from __future__ import annotations

import copy

from runner.status.counters import SinkCounters, SourceCounters


def test_every_assignment_moves_the_version_and_tells_the_listener() -> None:
    source, sink = SourceCounters(), SinkCounters()
    told: list[str] = []
    source.listen(lambda: told.append("source"))
    sink.listen(lambda: told.append("sink"))
    before = source.version, sink.version
    source.pages_read += 2
    source.scan_started(1.0)  # a method's assignments count too
    sink.delivered += 1
    assert source.version == before[0] + 2
    assert sink.version == before[1] + 1
    assert told == ["source", "source", "sink"]
    source.listen(None)
    source.scans += 1
    assert told == ["source", "source", "sink"]
    assert source.version == before[0] + 3


def test_a_copy_for_the_metrics_tells_no_one() -> None:
    source = SourceCounters(pages_read=4)
    told: list[int] = []
    source.listen(lambda: told.append(1))
    snapshot = copy.copy(source)
    assert snapshot.pages_read == 4 and snapshot.version == source.version
    assert told == []
