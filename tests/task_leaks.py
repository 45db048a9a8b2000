"""A pytest plugin that fails any test whose event loop still has tasks running at the end.

`asyncio.run` cancels whatever its main coroutine left behind, silently: a worker that forgot
to stop a loop or a waiter passes every test and leaks in production. Every test here runs its
async code with `asyncio.run`, so the check sits where it ends: the plugin wraps the private
`asyncio.runners._cancel_all_tasks` (what `Runner.close` calls, CPython 3.11 to 3.13) and notes
the tasks still pending at that moment. Only loops of the main thread count: the loopback
peers run their own loops in threads and drop connections on shutdown by design.

A test that leaves tasks on purpose says so with `@pytest.mark.leaves_tasks`.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import threading
from collections.abc import Iterator
from typing import Any

import pytest

_ORIGINAL = asyncio.runners._cancel_all_tasks


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    where = getattr(coro, "__qualname__", None) or repr(coro)
    return f"{task.get_name()} ({where})"


@pytest.fixture(autouse=True)
def _no_task_left_behind(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    leaked: list[str] = []

    def noting(loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is threading.main_thread():
            leaked.extend(_describe(t) for t in asyncio.all_tasks(loop) if not t.done())
        _ORIGINAL(loop)

    monkeypatch.setattr(asyncio.runners, "_cancel_all_tasks", noting)
    yield
    if leaked and request.node.get_closest_marker("leaves_tasks") is None:
        pytest.fail(
            "asyncio.run ended with tasks still running (cancelled for you, silently): "
            + ", ".join(sorted(leaked)),
            pytrace=False,
        )
