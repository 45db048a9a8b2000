"""`bridge-runner schema NAME` prints the shipped schemas; an unknown name is a usage error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from runner import schemas
from runner.cli.main import main


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
        "bridge, cloudevent, status, sync_trigger, triggermesh, user_deleted (or an event type: "
        "com.amazon.cognito-idp.sync_trigger, com.amazon.cognito-idp.user_deleted)\n"
    )


def test_schema_without_a_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 2
    assert "the following arguments are required: NAME" in capsys.readouterr().err


# Draft 2020-12's keywords (core, applicator, unevaluated, validation, meta-data, format and
# content vocabularies) and the two annotations editors read: a validator that refuses unknown
# keywords (ajv in strict mode) needs only these two declared.
DRAFT_2020_12_KEYWORDS = frozenset(
    {
        *("$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary"),
        *("$comment", "$defs", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"),
        *("dependentSchemas", "prefixItems", "items", "contains", "properties"),
        *("patternProperties", "additionalProperties", "propertyNames", "unevaluatedItems"),
        *("unevaluatedProperties", "type", "const", "enum", "multipleOf", "maximum"),
        *("exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength"),
        *("pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains"),
        *("maxProperties", "minProperties", "required", "dependentRequired", "title"),
        *("description", "default", "deprecated", "readOnly", "writeOnly", "examples"),
        *("format", "contentEncoding", "contentMediaType", "contentSchema"),
    }
)
EDITOR_KEYWORDS = frozenset({"patternErrorMessage", "errorMessage"})
_SCHEMA_MAPS = ("$defs", "properties", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("not", "if", "then", "else", "items", "contains", "additionalProperties")
_SCHEMA_VALUES += ("propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema")


def _subschemas(schema: object) -> Iterator[dict[str, Any]]:
    """`schema` and every schema inside it (not the data in const, enum, default, ...)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for keyword, value in schema.items():
        if keyword in _SCHEMA_MAPS and isinstance(value, dict):
            for sub in value.values():
                yield from _subschemas(sub)
        elif keyword in _SCHEMA_LISTS and isinstance(value, list):
            for sub in value:
                yield from _subschemas(sub)
        elif keyword in _SCHEMA_VALUES:
            yield from _subschemas(value)


def _keywords(schema: object) -> set[str]:
    return {keyword for node in _subschemas(schema) for keyword in node}


@pytest.mark.parametrize("name", ["bridge", "triggermesh"])
def test_bridge_schemas_use_only_standard_keywords_and_the_editor_messages(name: str) -> None:
    schema = schemas.load_schema(name)
    assert _keywords(schema) - DRAFT_2020_12_KEYWORDS == EDITOR_KEYWORDS
    # Every pattern an editor can report carries its message for people (the reference
    # pattern is always a second alternative: editors report the first, the field's own).
    for node in _subschemas(schema):
        if "pattern" in node and node is not schema["$defs"]["variableReference"]:
            assert "patternErrorMessage" in node, node["pattern"]


@pytest.mark.parametrize("name", ["bridge", "triggermesh"])
def test_the_loader_schema_is_the_shipped_one_without_variable_alternatives(name: str) -> None:
    shipped = schemas.load_schema(name)
    substituted = schemas.substituted_validator(name).schema
    assert schemas.VARIABLE_REFERENCE not in json.dumps(substituted)
    assert "variableReference" not in substituted["$defs"]
    # Taking the alternatives out only narrows: every other keyword is still there.
    assert _keywords(shipped) - {"anyOf"} <= _keywords(substituted)
    duration = substituted["$defs"].get("duration")
    if duration is not None:
        assert "anyOf" not in duration and duration["pattern"].startswith("^((")


def test_stripping_refuses_a_variable_reference_it_cannot_take_out() -> None:
    ref = {"$ref": schemas.VARIABLE_REFERENCE}
    with pytest.raises(ValueError, match="other than as an anyOf alternative"):
        schemas.without_variable_references({"properties": {"a": ref}, "$defs": {}})
    with pytest.raises(ValueError, match="would overwrite"):
        schemas.without_variable_references(
            {"type": "string", "anyOf": [{"type": "integer"}, ref], "$defs": {}}
        )
    assert schemas.without_variable_references(
        {"anyOf": [{"enum": ["a"]}, {"const": "b"}, ref], "$defs": {"variableReference": {}}}
    ) == {"anyOf": [{"enum": ["a"]}, {"const": "b"}], "$defs": {}}
