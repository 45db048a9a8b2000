"""Fixtures of the delivery tests: the real outbox, a harness builder over it, and the echoing
sink peer (`tests/peers/echo_sink.py`, which the root conftest does not load)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.model import Target
from runner.state.outbox import Outbox
from tests.delivery.builders import Harness, make_bridge
from tests.peers.echo_sink import echo_sink_factory

__all__ = ["echo_sink_factory", "make_harness", "outbox"]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox.open(tmp_path / "state") as box:
        yield box


@pytest.fixture
def make_harness(outbox: Outbox, tmp_path: Path) -> Callable[..., Harness]:
    def make(target: Target, env: dict[str, str] | None = None, **options: Any) -> Harness:
        return Harness(make_bridge(target, **options), outbox, tmp_path / "state", env or {})

    return make
