"""The conformance mechanism (tests/conformance.py, the `conformance` fixture) and the loopback
sink's validation: without ../shared/conformance the conformance tests are skipped with the
reason, or fail when BRIDGE_RUNNER_REQUIRE_CONFORMANCE=1; the sink holds every event to the
project's own schemas in every clone, and to the third-party ones where they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance import (
    CLOUDEVENTS_SCHEMA,
    DEFAULT_DIR,
    DIR_ENV,
    REQUIRE_ENV,
    SYNC_TRIGGER_SCHEMA,
    Conformance,
    load,
)
from tests.peers.sink_server import SinkServer, parse_request

ROOT = Path(__file__).resolve().parents[2]
# A test file with two conformance tests and four that need nothing beside the repository.
TARGET = "tests/loader/test_config_triggermesh.py"
STRUCTURED = {"content-type": "application/cloudevents+json"}
SYNC = "com.amazon.cognito-idp.sync_trigger"


def run_pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in (DIR_ENV, REQUIRE_ENV, "PYTEST_ADDOPTS")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", TARGET, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**clean, "TMPDIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_the_folder_conformance_tests_are_skipped_with_the_reason(tmp_path: Path) -> None:
    absent = tmp_path / "shared" / "conformance"

    result = run_pytest(tmp_path, **{DIR_ENV: str(absent)})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed, 2 skipped" in result.stdout
    assert "SKIPPED [2] tests/conftest.py:" in result.stdout
    assert f"no conformance data at {absent}" in result.stdout


def test_without_the_folder_they_fail_when_required(tmp_path: Path) -> None:
    absent = tmp_path / "shared" / "conformance"

    result = run_pytest(tmp_path, **{DIR_ENV: str(absent), REQUIRE_ENV: "1"})

    assert result.returncode == 1, result.stdout + result.stderr
    assert "4 passed, 2 errors" in result.stdout
    assert "SKIPPED" not in result.stdout
    assert f"{REQUIRE_ENV} is set, so they may not be skipped" in result.stdout


def test_with_the_folder_they_run_when_required(tmp_path: Path, conformance: Conformance) -> None:
    result = run_pytest(
        tmp_path,
        **{DIR_ENV: str(conformance.dir), REQUIRE_ENV: "1"},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout and "skipped" not in result.stdout


def test_ci_requires_the_conformance_tests_where_the_folder_is() -> None:
    script = (ROOT / ".ci" / "run").read_text("utf-8")
    assert f"export {REQUIRE_ENV}=1" in script
    # ... only where the folder is: the same path the tests look at.
    assert "../shared/conformance" in script
    assert ROOT.parent / "shared" / "conformance" == DEFAULT_DIR


# -- the sink validates every event -----------------------------------------------------------


def sync_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "id-1",
        "source": "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B",
        "type": SYNC,
        "subject": "us-west-2_fak3p001B",
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json",
        "changetype": "created",
        "data": {
            "Username": "u",
            "Attributes": [{"Name": "sub", "Value": "s"}],
            "UserCreateDate": "2024-05-01T12:00:00Z",
            "UserLastModifiedDate": "2024-05-01T12:00:00Z",
            "Enabled": True,
            "UserStatus": "CONFIRMED",
            "MFAOptions": [],
        },
    }
    event.update(changes)
    return event


def problems_of(event: dict[str, Any]) -> list[str]:
    return parse_request(STRUCTURED, json.dumps(event).encode()).problems


@pytest.fixture
def lone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As in a lone clone: no conformance folder."""
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "absent"))
    assert load() is None


def test_a_good_event_has_no_problems(lone: None) -> None:
    assert problems_of(sync_event()) == []


def test_without_conformance_files_the_sink_holds_data_to_the_projects_schemas(
    lone: None,
) -> None:
    data = {k: v for k, v in sync_event()["data"].items() if k != "Enabled"}

    assert problems_of(sync_event(data=data)) == [
        "sync_trigger data: 'Enabled' is a required property (at $)"
    ]
    assert problems_of(sync_event(type="com.amazon.cognito-idp.user_deleted")) == [
        "user_deleted data: 'sub' is a required property (at $)",
        "user_deleted data: Additional properties are not allowed ("
        "'Attributes', 'Enabled', 'MFAOptions', 'UserCreateDate', 'UserLastModifiedDate', "
        "'UserStatus' were unexpected) (at $)",
    ]


def test_without_conformance_files_the_sink_holds_envelopes_to_the_projects_schema(
    lone: None,
) -> None:
    assert problems_of(sync_event(team=1.5)) == [
        "cloudevent.json: 1.5 is not of type 'string', 'integer', 'boolean' (at $.team)"
    ]
    assert problems_of(sync_event(source="not a uri")) == [
        "cloudevent.json: 'not a uri' is not a 'uri-reference' (at $.source)"
    ]


def test_with_conformance_files_the_sink_holds_events_to_them_too(
    conformance: Conformance,
) -> None:
    data = {k: v for k, v in sync_event()["data"].items() if k != "Enabled"}

    found = problems_of(sync_event(data=data, source="not a uri"))

    assert found == [
        "cloudevent.json: 'not a uri' is not a 'uri-reference' (at $.source)",
        "sync_trigger data: 'Enabled' is a required property (at $)",
        f"{CLOUDEVENTS_SCHEMA}: 'not a uri' is not a 'uri-reference' (at $.source)",
        f"{SYNC_TRIGGER_SCHEMA}: 'Enabled' is a required property (at $)",
    ]


def test_the_sink_checks_binary_mode_requests_as_they_arrive(
    lone: None, sink_server: SinkServer
) -> None:
    data = {k: v for k, v in sync_event()["data"].items() if k != "MFAOptions"}
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "id-1",
        "ce-source": "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B",
        "ce-type": SYNC,
        "content-type": "application/json",
    }

    response = httpx.post(sink_server.url, headers=headers, content=json.dumps(data))

    assert response.status_code == 202
    assert sink_server.received[0].mode == "binary"
    assert sink_server.problems == ["sync_trigger data: 'MFAOptions' is a required property (at $)"]


def test_an_event_the_sdk_refuses_is_answered_400_and_recorded(
    lone: None, sink_server: SinkServer
) -> None:
    body = json.dumps(sync_event(subject="")).encode()

    response = httpx.post(sink_server.url, headers=STRUCTURED, content=body)

    assert response.status_code == 400
    assert sink_server.received[0].mode == "invalid"
    assert sink_server.problems[0].startswith("unparseable: CloudEventValidationError:")
