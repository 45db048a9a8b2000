"""A page re-asked after throttling or 5xx (`runner.sources.cognito.scan`), without a Cognito:
a fake call stands in for the client, and the waits are recorded instead of slept."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from runner.errors import SourceUnavailable
from runner.sources.cognito.client import CognitoSettings
from runner.sources.cognito.scan import SegmentOutcome, scan_pool

SETTINGS = CognitoSettings(page_retries=4, retry_backoff=1.0, max_retry_backoff=3.0)


class FlakyListUsers:
    """Fails the first `failures` calls with `error`, then answers one page of one user."""

    def __init__(self, failures: int, error: SourceUnavailable) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(
        self, operation: str, params: Mapping[str, Any], outcome: SegmentOutcome
    ) -> dict[str, Any]:
        assert operation == "ListUsers"
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {"Users": [{"Username": "alice"}]}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", record)
    return recorded


def test_a_throttled_page_is_asked_again_after_a_doubling_jittered_wait(
    waits: list[float],
) -> None:
    call = FlakyListUsers(4, SourceUnavailable("throttled", reason="Throttled"))
    result = asyncio.run(scan_pool(call, "us-west-2_fak3p001B", SETTINGS))
    assert result.complete and [u["Username"] for u in result.users] == ["alice"]
    assert call.calls == 5
    # Steps 1, 2, then capped at 3: each wait in [step / 2, step] (equal jitter).
    steps = [1.0, 2.0, 3.0, 3.0]
    assert len(waits) == len(steps)
    for wait, step in zip(waits, steps, strict=True):
        assert step / 2 <= wait <= step


def test_a_suggested_delay_is_the_floor_of_the_wait(waits: list[float]) -> None:
    call = FlakyListUsers(1, SourceUnavailable("slow down", reason="Throttled", delay=5.0))
    asyncio.run(scan_pool(call, "us-west-2_fak3p001B", SETTINGS))
    assert len(waits) == 1 and 5.0 <= waits[0] <= 5.5


def test_a_page_is_given_up_after_its_retries_and_the_scan_is_incomplete(
    waits: list[float],
) -> None:
    call = FlakyListUsers(100, SourceUnavailable("throttled", reason="Throttled"))
    result = asyncio.run(scan_pool(call, "us-west-2_fak3p001B", SETTINGS))
    assert not result.complete and isinstance(result.error, SourceUnavailable)
    assert call.calls == 1 + SETTINGS.page_retries and len(waits) == SETTINGS.page_retries


def test_an_unreachable_endpoint_is_not_asked_again(waits: list[float]) -> None:
    call = FlakyListUsers(100, SourceUnavailable("no answer", reason="EndpointUnreachable"))
    result = asyncio.run(scan_pool(call, "us-west-2_fak3p001B", SETTINGS))
    assert not result.complete and call.calls == 1 and waits == []
