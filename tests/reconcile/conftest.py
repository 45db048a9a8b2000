"""The `setup` fixture of the in-process reconcile tests (see tests/reconcile/fakes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.state.outbox import Outbox
from tests.reconcile.fakes import FakeFactory, Setup


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    root = tmp_path / "bridges"
    root.mkdir()
    outbox = Outbox.open(tmp_path / "state")
    try:
        yield Setup(root, outbox, FakeFactory(), [])
    finally:
        outbox.close()
