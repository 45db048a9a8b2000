"""The JSON Schemas shipped inside the package (`runner/schemas/`; `schemas/` at the repo root).

One compiled `Draft202012Validator` per schema, built once and reused: `jsonschema.validate()`
re-checks the schema on every call and is ~40x slower (DESIGN §8).
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
    "sync_trigger": "events/com.amazon.cognito-idp.sync_trigger.json",
    "user_deleted": "events/com.amazon.cognito-idp.user_deleted.json",
}
# Event types are accepted by their full CloudEvents type too.
SCHEMA_ALIASES: dict[str, str] = {
    "com.amazon.cognito-idp.sync_trigger": "sync_trigger",
    "com.amazon.cognito-idp.user_deleted": "user_deleted",
}


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
