"""The JSON Schemas shipped inside the package (`runner/schemas/`; `schemas/` at the repo root).

One compiled `Draft202012Validator` per schema, built once and reused: `jsonschema.validate()`
re-checks the schema on every call and is ~40x slower (DESIGN §8).

The bridge schemas describe files as written, for editors: a string with a `${VAR}` reference is
accepted wherever a field has a fixed form (each such field is `anyOf` its form or
`#/$defs/variableReference`), since only loading knows the value. The loader validates the
document after substitution, against `substituted_validator(name)`: the same schema with those
alternatives taken out, so that a value which still looks like a reference after substitution
(`$${X}`, or a variable whose value is `${X}`) is held to the field's form.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

# Short names accepted by `bridge-runner schema NAME`, mapped to files under runner/schemas/.
SCHEMA_FILES: dict[str, str] = {
    "bridge": "bridge.schema.json",
    "triggermesh": "triggermesh.schema.json",
    "status": "status.schema.json",
    "cloudevent": "events/cloudevent.json",
    "sync_trigger": "events/com.amazon.cognito-idp.sync_trigger.json",
    "user_deleted": "events/com.amazon.cognito-idp.user_deleted.json",
}
# Event types are accepted by their full CloudEvents type too.
SCHEMA_ALIASES: dict[str, str] = {
    "com.amazon.cognito-idp.sync_trigger": "sync_trigger",
    "com.amazon.cognito-idp.user_deleted": "user_deleted",
}
# The definition that marks the "or a ${VAR} reference" alternatives of the bridge schemas.
VARIABLE_REFERENCE = "#/$defs/variableReference"
_VARIABLE_ALTERNATIVE = {"$ref": VARIABLE_REFERENCE}


def schema_names() -> list[str]:
    return sorted(SCHEMA_FILES)


def canonical_name(name: str) -> str:
    """The short schema name for `name` (a short name or an event type); KeyError if unknown."""
    name = SCHEMA_ALIASES.get(name, name)
    if name not in SCHEMA_FILES:
        raise KeyError(name)
    return name


def schema_text(name: str) -> str:
    """The schema file's text, as shipped."""
    rel = SCHEMA_FILES[canonical_name(name)]
    return resources.files("runner").joinpath("schemas", *rel.split("/")).read_text("utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text(name))
    return loaded


@cache
def validator(name: str) -> Draft202012Validator:
    """A compiled validator for the named schema, with format checking on."""
    schema = load_schema(canonical_name(name))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@cache
def substituted_validator(name: str) -> Draft202012Validator:
    """A compiled validator for documents whose `${VAR}` references were substituted: the named
    schema without its variable-reference alternatives (see the module doc)."""
    schema = without_variable_references(load_schema(canonical_name(name)))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def without_variable_references(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` where every `anyOf` alternative that is `VARIABLE_REFERENCE` is gone
    (a lone remaining alternative merged into its parent), as is the definition itself.

    Raises ValueError if the definition is referred to in any other way, or a merge would
    overwrite a keyword: the shipped schemas are tested not to do either.
    """
    result: dict[str, Any] = _strip(schema)
    defs = result.get("$defs")
    if isinstance(defs, dict):
        defs.pop(VARIABLE_REFERENCE.rsplit("/", 1)[1], None)
    if VARIABLE_REFERENCE in json.dumps(result):
        raise ValueError(f"{VARIABLE_REFERENCE} is used other than as an anyOf alternative")
    return result


def _strip(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _strip(value) for key, value in node.items()}
    alternatives = result.get("anyOf")
    if isinstance(alternatives, list) and _VARIABLE_ALTERNATIVE in alternatives:
        rest = [alt for alt in alternatives if alt != _VARIABLE_ALTERNATIVE]
        del result["anyOf"]
        if len(rest) == 1 and isinstance(rest[0], dict):
            clash = rest[0].keys() & result.keys()
            if clash:
                raise ValueError(f"merging an anyOf alternative would overwrite {sorted(clash)}")
            result.update(rest[0])
        elif rest:
            result["anyOf"] = rest
    return result
