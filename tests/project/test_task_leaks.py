"""The task-leak guard (tests/task_leaks.py) fails a test that leaves a task running, and only
then: it is what keeps every other test honest about stopping what it starts."""

from __future__ import annotations

import pytest

_INNER = """
import asyncio
import threading

import pytest


async def _forever() -> None:
    await asyncio.sleep(3600)


def test_leaks() -> None:
    async def main() -> None:
        asyncio.create_task(_forever(), name="forgotten")
        await asyncio.sleep(0)

    asyncio.run(main())


def test_cleans_up() -> None:
    async def main() -> None:
        task = asyncio.create_task(_forever())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


@pytest.mark.leaves_tasks
def test_leaks_on_purpose() -> None:
    async def main() -> None:
        asyncio.create_task(_forever())
        await asyncio.sleep(0)

    asyncio.run(main())


def test_a_thread_loop_is_not_ours() -> None:
    async def main() -> None:
        asyncio.create_task(_forever())
        await asyncio.sleep(0)

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    thread.join()
"""


def test_a_test_leaving_a_task_fails_and_names_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    leaves_tasks: on purpose\n")
    pytester.makeconftest('pytest_plugins = ["tests.task_leaks"]\n')
    pytester.makepyfile(test_inner=_INNER)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    # test_leaks passes its call and errors at teardown: 4 calls passed, 1 teardown error.
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*", "*forgotten (_forever)*"])
