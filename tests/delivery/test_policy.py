"""The retry policy (runner/delivery/policy.py): which class a status is, and the backoff waits
(steps, jitter, Retry-After, the cap) that delivery and the poller share."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import runner._kits.backoff as jitter_module
import runner.delivery.policy as policy_module
import runner.polling.worker as poller
from runner.delivery.policy import backoff_delay, classify_status, retry_delay
from runner.errors import SinkRejected, SinkUnavailable
from runner.model import Delivery
from tests.delivery.builders import SEED, within_backoff

# -- which class a status is ----------------------------------------------------------------


def test_classify_status() -> None:
    # The class is the decision: None accepted, SinkUnavailable retried, SinkRejected refused.
    assert [classify_status(c) for c in (200, 202, 204, 299)] == [None] * 4
    retried = [classify_status(c) for c in (404, 408, 409, 429, 500, 502, 599)]
    assert retried == [SinkUnavailable] * 7
    refused = [classify_status(c) for c in (301, 400, 401, 403, 410, 413, 422)]
    assert refused == [SinkRejected] * 7


# -- the pure backoff rules ---------------------------------------------------------------


def test_exponential_and_linear_backoff_are_capped() -> None:
    exponential = Delivery(backoff_policy="exponential", backoff_delay=0.5, max_backoff=3.0)
    assert [backoff_delay(exponential, n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delay(exponential, 100_000) == 3.0  # no float overflow
    linear = Delivery(backoff_policy="linear", backoff_delay=0.5, max_backoff=1.2)
    assert [backoff_delay(linear, n) for n in range(4)] == [0.5, 1.0, 1.2, 1.2]


def test_retry_after_lengthens_the_wait_up_to_max_backoff() -> None:
    policy = Delivery(backoff_delay=0.5, max_backoff=60.0)
    rng = random.Random(SEED)
    assert 0.25 <= retry_delay(policy, 0, None, rng) <= 0.5
    assert retry_delay(policy, 0, 3600.0, rng) == 60.0  # never beyond max_backoff
    # A Retry-After moves the jitter window (half a step wide) to start where it says: never
    # sooner than asked, and sinks that told every bridge the same time are not all retried
    # at that instant.
    for retry_after in (0.4, 30.0, 59.9):
        draws = [retry_delay(policy, 0, retry_after, rng) for _ in range(500)]
        assert retry_after <= min(draws) and max(draws) <= min(retry_after + 0.25, 60.0)
        assert len(set(draws)) > 50
    # A Retry-After before the window changes nothing.
    early = [retry_delay(policy, 3, 1.0, rng) for _ in range(500)]
    assert min(early) >= 2.0 and max(early) <= 4.0


@pytest.mark.parametrize("policy", ["exponential", "linear"])
def test_retry_delays_are_jittered_within_each_backoff_step(policy: Any) -> None:
    delivery = Delivery(backoff_policy=policy, backoff_delay=0.5, max_backoff=10.0)
    rng = random.Random(SEED)
    for retry_number in range(8):
        step = backoff_delay(delivery, retry_number)
        draws = [retry_delay(delivery, retry_number, None, rng) for _ in range(2000)]
        # Equal jitter: uniform over the upper half of the step, never above it.
        assert step / 2 <= min(draws) and max(draws) <= step
        assert min(draws) < step * 0.52 and max(draws) > step * 0.98  # the whole half is used
        assert statistics.fmean(draws) == pytest.approx(step * 0.75, rel=0.02)
        # Uniform over [step/2, step]: standard deviation step / (4 * sqrt(3)).
        assert statistics.pstdev(draws) == pytest.approx(step / (4 * 3**0.5), rel=0.1)
        # No lockstep: the draws fill the half evenly (tenths hold 10% each, give or take).
        tenths = [0] * 10
        for draw in draws:
            tenths[min(9, int((draw - step / 2) / (step / 20)))] += 1
        assert all(140 <= count <= 260 for count in tenths), tenths


@given(
    backoff=st.floats(0.001, 600.0),
    extra=st.floats(0.0, 3600.0),
    retry_number=st.integers(0, 10_000),
    retry_after=st.none() | st.floats(-10.0, 100_000.0),
    policy=st.sampled_from(["exponential", "linear"]),
    seed=st.integers(0, 2**32),
)
def test_a_jittered_retry_keeps_the_cap_and_the_retry_after_floor(
    backoff: float,
    extra: float,
    retry_number: int,
    retry_after: float | None,
    policy: Any,
    seed: int,
) -> None:
    delivery = Delivery(backoff_policy=policy, backoff_delay=backoff, max_backoff=backoff + extra)
    delay = retry_delay(delivery, retry_number, retry_after, random.Random(seed))
    step = backoff_delay(delivery, retry_number)
    assert step / 2 <= delay <= delivery.max_backoff
    if retry_after is None or retry_after <= step / 2:
        assert delay <= step
    else:
        floor = min(retry_after, delivery.max_backoff)
        assert floor <= delay <= floor + step / 2


def test_two_random_sources_do_not_retry_in_lockstep() -> None:
    # What two bridges (or two replicas) that failed at the same moment would wait.
    delivery = Delivery(backoff_delay=0.5, max_backoff=60.0)
    first = [retry_delay(delivery, n, None) for n in range(6)]
    second = [retry_delay(delivery, n, None) for n in range(6)]
    assert first != second
    assert within_backoff(first, [0.5, 1, 2, 4, 8, 16])
    assert within_backoff(second, [0.5, 1, 2, 4, 8, 16])


def test_the_poll_error_backoff_is_jittered_above_the_poll_interval() -> None:
    rng = random.Random(SEED)
    assert poller.next_poll_wait(30.0, 0, rng) == 30.0  # a healthy pool: the interval
    for failures in range(1, 12):
        step = min(30.0 * 2**failures, poller.MAX_ERROR_BACKOFF)
        draws = [poller.next_poll_wait(30.0, failures, rng) for _ in range(1000)]
        assert max(30.0, step / 2) <= min(draws) and max(draws) <= step
        assert len(set(draws)) > 500  # pollers of one broken pool do not retry together
    # An interval beyond the cap: the interval, never less.
    assert poller.next_poll_wait(3600.0, 5, rng) == 3600.0
    # The jitter is the deliverer's, shared.
    assert poller.equal_jitter is policy_module.equal_jitter is jitter_module.equal_jitter
