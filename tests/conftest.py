"""Shared test setup. Peers (moto server, loopback sink, fault proxies) live in tests/peers/
as pytest plugins, so that each can be owned and grown on its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.peers.moto_server",
    "tests.peers.sink_server",
    "tests.peers.runner_process",
]

ROOT = Path(__file__).resolve().parent.parent
# ../shared/conformance relative to the project root (as laid out for sessions and CI).
CONFORMANCE = ROOT.parent / "shared" / "conformance"

# boto3 must never reach a real AWS endpoint or pick up a developer's credentials in tests.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-west-2")
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_COGNITO_IDP"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.fail(f"no conformance data at {CONFORMANCE}: tests expect ../shared beside the repo")
    return CONFORMANCE
