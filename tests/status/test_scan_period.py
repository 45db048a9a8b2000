"""The achieved scan period and whether it keeps up with pollInterval: the source counters'
bookkeeping (`scan_started` / `scan_completed`, on a clock given by hand), and how the status
document shows it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runner.schemas import validator
from runner.status.counters import SourceCounters, scan_period_tolerance
from tests.builders import render_status


def scans(counters: SourceCounters, interval: float, *polls: tuple[float, float | None]) -> None:
    """Polls as (start, end) in monotonic seconds; an end of None is a poll that failed."""
    for start, end in polls:
        counters.scan_started(start)
        if end is not None:
            counters.scan_completed(end, interval)


def test_nothing_is_known_before_a_scan_completes() -> None:
    counters = SourceCounters()
    counters.scan_started(0.0)
    assert (counters.scan_period, counters.keeping_up, counters.falling_behind()) == (
        None,
        None,
        None,
    )


def test_the_period_is_the_time_between_the_starts_of_consecutive_complete_scans() -> None:
    counters = SourceCounters()
    scans(counters, 5.0, (0.0, 0.4))
    assert counters.scan_period is None  # one scan: no period yet
    assert counters.keeping_up is True  # but a 0.4 s scan fits a 5 s interval
    scans(counters, 5.0, (5.02, 5.5), (10.03, 10.4))
    assert counters.scan_period == pytest.approx(5.01)
    assert counters.keeping_up is True
    assert counters.poll_interval == 5.0
    assert counters.falling_behind() is None


def test_scans_that_outlast_the_interval_do_not_keep_up_and_say_so() -> None:
    counters = SourceCounters()
    # Polls start back to back: each scan took 12 s where 5 s was asked for.
    scans(counters, 5.0, (0.0, 12.0), (12.0, 24.1), (24.1, 36.0))
    assert counters.scan_period == pytest.approx(12.1)
    assert counters.keeping_up is False
    assert counters.falling_behind() == (
        "complete scans start 12.1s apart, longer than pollInterval 5s: the request budget "
        "(--aws-rps) does not keep up with this pool"
    )


def test_a_first_scan_longer_than_the_interval_is_reported_at_once() -> None:
    # A large pool's first scan takes minutes: waiting for a second one to say so would hide
    # it for as long again.
    counters = SourceCounters()
    scans(counters, 5.0, (0.0, 40.0))
    assert counters.scan_period is None
    assert counters.keeping_up is False
    assert counters.falling_behind() == (
        "the last scan took 40.0s, longer than pollInterval 5s: the request budget "
        "(--aws-rps) does not keep up with this pool"
    )


def test_a_failed_poll_between_two_scans_is_no_period() -> None:
    counters = SourceCounters()
    # 0: complete; 5: fails, then a backoff; 25: complete. 25 s is the failure's doing.
    scans(counters, 5.0, (0.0, 0.5), (5.0, None), (25.0, 25.5))
    assert counters.scan_period is None
    assert counters.keeping_up is True
    scans(counters, 5.0, (30.0, 30.5))
    assert counters.scan_period == pytest.approx(5.0)


def test_the_verdict_can_come_back_once_scans_fit_again() -> None:
    counters = SourceCounters()
    scans(counters, 5.0, (0.0, 9.0), (9.0, 10.0))
    assert counters.keeping_up is False  # 9 s apart
    scans(counters, 5.0, (14.0, 14.5))
    assert counters.scan_period == pytest.approx(5.0)
    assert counters.keeping_up is True


@pytest.mark.parametrize(
    ("interval", "period", "keeps_up"),
    [
        (5.0, 5.5, True),  # the 0.5 s floor: a loop that woke a sleeper late
        (5.0, 5.6, False),
        (1.0, 1.5, True),
        (60.0, 66.0, True),  # 10 % of a long interval
        (60.0, 66.5, False),
    ],
)
def test_the_tolerance_is_a_tenth_of_the_interval_and_at_least_half_a_second(
    interval: float, period: float, keeps_up: bool
) -> None:
    assert scan_period_tolerance(interval) == max(0.5, interval / 10)
    counters = SourceCounters()
    scans(counters, interval, (0.0, 0.1), (period, period + 0.1))
    assert counters.keeping_up is keeps_up


def test_the_status_document_shows_the_period_and_the_verdict() -> None:
    counters = SourceCounters(users_tracked=3000, scans=2)
    scans(counters, 5.0, (0.0, 12.0), (12.0034567, 24.0))
    document = render_status(
        bridge_id="big",
        file="big.yaml",
        observed_digest="f" * 64,
        applied_digest="a" * 64,
        observed_revision=None,
        source=counters,
        source_ready=(True, "Polling", f"3,000 users tracked; {counters.falling_behind()}"),
        sink_ready=(True, "Delivering", "ok"),
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert not list(validator("status").iter_errors(document))
    source = document["source"]
    assert (source["scanPeriodSeconds"], source["pollIntervalSeconds"], source["keepingUp"]) == (
        12.003,
        5.0,
        False,
    )
    # Late is not wrong: the bridge stays Ready, and its SourceReady says why it is late.
    ready = {c["type"]: c for c in document["conditions"]}
    assert ready["Ready"]["status"] == "True"
    assert "longer than pollInterval 5s" in ready["SourceReady"]["message"]


def test_a_fresh_bridge_shows_nulls_that_the_schema_accepts() -> None:
    document = render_status(
        bridge_id="new",
        file="new.yaml",
        observed_digest="f" * 64,
        applied_digest="a" * 64,
        observed_revision=None,
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert not list(validator("status").iter_errors(document))
    source = document["source"]
    assert [source[k] for k in ("scanPeriodSeconds", "pollIntervalSeconds", "keepingUp")] == [
        None,
        None,
        None,
    ]
