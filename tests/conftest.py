"""Shared test setup. Peers (moto server, loopback sink, fault proxies) live in tests/peers/
as pytest plugins, so that each can be owned and grown on its own.

`tests/task_leaks.py` fails any test that leaves an asyncio task running.

The `conformance` fixture gives the third-party reference files of `../shared/conformance/`
(tests/conformance.py): a test that takes it is marked `conformance`, and is skipped with the
reason where the folder is absent, or fails there when BRIDGE_RUNNER_REQUIRE_CONFORMANCE=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import conformance as _conformance

pytest_plugins = [
    "tests.peers.moto_server",
    "tests.peers.sink_server",
    "tests.peers.nats_server",
    "tests.peers.runner_process",
    "tests.task_leaks",
    "pytester",
]

ROOT = Path(__file__).resolve().parent.parent

# boto3 must never reach a real AWS endpoint or pick up a developer's credentials in tests.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-west-2")
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_COGNITO_IDP"):
    os.environ.pop(_var, None)


def _require_conformance() -> _conformance.Conformance:
    loaded = _conformance.load()
    if loaded is not None:
        return loaded
    reason = _conformance.missing_reason()
    if _conformance.required():
        pytest.fail(f"{reason}; {_conformance.REQUIRE_ENV} is set, so they may not be skipped")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def conformance() -> _conformance.Conformance:
    """The files of ../shared/conformance/: skip (or fail, when required) without them."""
    return _require_conformance()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One mechanism: taking the fixture is what marks a test (so `-m conformance` selects them).
    for item in items:
        if "conformance" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.conformance)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A test marked by hand, without the fixture, is held to the same rule.
    if item.get_closest_marker("conformance") is not None:
        _require_conformance()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    # Tests of hostile file names log names that are not UTF-8 (surrogate escapes). pytest-xdist
    # sends each report from its worker as UTF-8 and stops the whole run on such a character;
    # the captured text is only for people to read, so it is escaped visibly instead.
    report: pytest.TestReport = yield
    report.sections = [(title, _printable(text)) for title, text in report.sections]
    if isinstance(report.longrepr, str):
        report.longrepr = _printable(report.longrepr)
    return report


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
