"""JSON Schema validation of a bridge document, every error worded for people.

An unknown field is reported at its key with the fields allowed there, a missing one at its
parent with its name; a field whose schema carries `errorMessage` / `patternErrorMessage`
shows the message an editor shows (yaml-language-server reads them); anything else gets a
plain sentence per keyword. No message quotes the offending value: it could be a secret.
"""

from __future__ import annotations

from typing import Any, cast

from jsonschema import Draft202012Validator, ValidationError

from runner._kits.wording import plural
from runner.loader.document import BridgeDocument, DocPath

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


def report_schema_errors(document: BridgeDocument, validator: Draft202012Validator) -> None:
    """Validate `document` and report each error at its node; remember the values reported,
    so that no semantic check repeats a finding on them."""
    for error in validator.iter_errors(document.data):
        _report(document, error)


def _report(document: BridgeDocument, error: ValidationError) -> None:
    path: DocPath = tuple(error.absolute_path)
    if path in document.unexpandable:
        return
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if keyword == "additionalProperties" and isinstance(instance, dict):
        allowed = list(schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                where = (*path, key)
                document.reported.add(where)
                listing = ", ".join(allowed) if allowed else "none"
                document.error(where, f"unknown field {key!r} (allowed: {listing})", at_key=True)
        return
    if keyword == "required" and isinstance(instance, dict):
        for name in cast(list[str], error.validator_value):
            if name not in instance:
                document.reported.add((*path, name))
                document.error((*path, name), f"missing required field {name!r}")
        return
    message = _editor_message(error) or _schema_message(error)
    if "propertyNames" in error.relative_schema_path:
        where = (*path, str(instance))
        document.reported.add(where)
        document.error(where, f"{str(instance)!r} {message}", at_key=True)
        return
    document.reported.add(path)
    document.error(path, message)


def _editor_message(error: ValidationError) -> str | None:
    """The schema's own message for `error`, read as yaml-language-server reads it: a failed
    `pattern` shows `patternErrorMessage` (else `errorMessage`), a failed `not` the
    `errorMessage` of the schema it negates, anything else the failing schema's `errorMessage`."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "pattern":
        candidates = [schema.get("patternErrorMessage"), schema.get("errorMessage")]
    elif error.validator == "not":
        negated = error.validator_value
        candidates = [negated.get("errorMessage") if isinstance(negated, dict) else None]
    else:
        candidates = [schema.get("errorMessage")]
    return next((text for text in candidates if isinstance(text, str)), None)


def _schema_message(error: ValidationError) -> str:
    """A message for people; never quotes the offending value (it could be a secret)."""
    keyword = error.validator
    value: Any = error.validator_value
    if keyword == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        names = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in wanted)
        return f"must be {names}, not {_describe(error.instance)}"
    if keyword == "enum":
        return f"must be one of: {', '.join(str(v) for v in value)}"
    if keyword == "const":
        return f"must be {value}"
    if keyword == "minimum":
        return f"must be at least {value}"
    if keyword == "maximum":
        return f"must be at most {value}"
    if keyword == "minLength":
        if value == 1:
            return "must not be empty"
        return f"must be at least {plural(value, 'character')} long"
    if keyword == "maxLength":
        return f"must be at most {plural(value, 'character')} long"
    if keyword == "pattern":
        return f"does not have the expected form (pattern {value})"
    if keyword in ("minProperties", "maxProperties"):
        bound = "at least" if keyword == "minProperties" else "at most"
        return f"must have {bound} {plural(value, 'field')}"
    return f"is not valid ({keyword})"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return "empty" if value is None else type(value).__name__
