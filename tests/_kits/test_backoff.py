"""The one backoff step (runner/_kits/backoff.py); equal_jitter is tested with its callers."""

from __future__ import annotations

import math

import pytest

from runner._kits.backoff import backoff_step


def test_exponential_doubles_from_the_base_and_stops_at_the_cap() -> None:
    assert [backoff_step(1.5, n, cap=10) for n in range(5)] == [1.5, 3.0, 6.0, 10, 10]


def test_linear_adds_the_base_each_retry() -> None:
    assert [backoff_step(2, n, policy="linear", cap=7) for n in range(5)] == [2, 4, 6, 7, 7]


def test_huge_attempts_do_not_overflow() -> None:
    assert backoff_step(1, 10**6) == 2.0**64
    assert backoff_step(1, 10**6, cap=60) == 60
    assert backoff_step(1e300, 10**6) == math.inf  # overflows to inf, and inf is below no cap


def test_negative_attempts_count_as_the_first_retry() -> None:
    assert backoff_step(3, -2) == 3


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backoff policy"):
        backoff_step(1, 0, policy="fibonacci")
