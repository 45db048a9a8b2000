"""`bridge-runner schema NAME` prints the shipped schemas; an unknown name is a usage error."""

from __future__ import annotations

import json

import pytest

from runner import schemas
from runner.cli import main


def test_schema_bridge_prints_the_shipped_bridge_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "bridge"]) == 0
    out = capsys.readouterr().out
    assert out == schemas.schema_text("bridge").rstrip("\n") + "\n"
    document = json.loads(out)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["properties"]["kind"] == {"description": "Always Bridge.", "const": "Bridge"}


# Every name must print a JSON Schema. The status and event-data schemas are written by other
# parts of the work: until their files land, those cases fail with FileNotFoundError, on purpose.
@pytest.mark.parametrize("name", schemas.schema_names() + sorted(schemas.SCHEMA_ALIASES))
def test_every_schema_name_prints_a_valid_json_schema(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", name]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    schemas.validator(name).check_schema(document)


def test_event_type_alias_prints_the_same_schema_as_its_short_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "com.amazon.cognito-idp.user_deleted"]) == 0
    by_type = capsys.readouterr().out
    assert main(["schema", "user_deleted"]) == 0
    assert capsys.readouterr().out == by_type


def test_unknown_schema_exits_2_and_lists_the_known_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "brigde"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "bridge-runner: error: unknown schema 'brigde'; known schemas: "
        "bridge, status, sync_trigger, triggermesh, user_deleted (or an event type: "
        "com.amazon.cognito-idp.sync_trigger, com.amazon.cognito-idp.user_deleted)\n"
    )


def test_schema_without_a_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 2
    assert "the following arguments are required: NAME" in capsys.readouterr().err
