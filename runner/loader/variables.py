"""`${VAR}` substitution in a bridge file, and what becomes of the values substituted.

`${VAR}` / `${VAR:-default}` are expanded in the string values of metadata.name,
metadata.labels and spec (`$${` writes a literal `${`), for the variables the runner's
`EnvPolicy` allows (`runner.secrets.envpolicy`); a variable it does not allow is refused
whether it is set or not. Once loading is done, every value substituted is registered with
the `Redactor`, so that logs and dead letters mask it like a secret value, and masked in the
file's own Problems.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from runner.loader.discovery import is_utf8
from runner.loader.document import BridgeDocument, DocPath
from runner.loader.yamlsafe import format_path
from runner.secrets.redaction import Redactor, mask_values

# (where, value) of one environment value substituted into the document.
Substitution = tuple[DocPath, str]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `$${` is a literal `${`; `${...}` a reference; a lone `${` with no closing brace is malformed.
_VARIABLE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_MALFORMED = (
    "malformed variable reference: write ${NAME} or ${NAME:-default} "
    "(NAME: letters, digits and _), or $${ for a literal ${"
)
# Fields whose valid values are public words or durations (`binary`, `30s`): a value from the
# environment that passed their check is not masked in logs, where it would only hide words.
_PUBLIC_FORM_FIELDS: frozenset[tuple[str | int, ...]] = frozenset(
    {
        ("spec", "sink", "format"),
        ("spec", "sink", "timeout"),
        ("spec", "delivery", "backoffPolicy"),
        ("spec", "delivery", "backoffDelay"),
        ("spec", "delivery", "maxBackoff"),
        ("spec", "source", "awsCognitoUserPool", "initialSync"),
        ("spec", "source", "awsCognitoUserPool", "pollInterval"),
    }
)


def expand_variables(document: BridgeDocument, env: Mapping[str, str]) -> list[Substitution]:
    """Expand every `${VAR}` of `document` in place; each failure is a located error.

    Returns the environment values substituted, for `mask_environment_values`.
    """
    expander = _Expander(document, env)
    data = document.data
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        if isinstance(metadata.get("name"), str):
            metadata["name"] = expander.expand(metadata["name"], ("metadata", "name"))
        if isinstance(metadata.get("labels"), dict):
            expander.expand_in(metadata["labels"], ("metadata", "labels"))
    if isinstance(data.get("spec"), dict | list):
        expander.expand_in(data["spec"], ("spec",))
    return expander.substituted


def mask_environment_values(document: BridgeDocument, substituted: list[Substitution]) -> None:
    """Register every value substituted from the environment with the `Redactor` (logs,
    dead letters and status texts then mask it as they mask secret values), and mask it
    in this file's Problems, which never quote it by design: a second line of defence.
    A value that passed the check of a field of public words or durations is left alone."""
    errors_at = {p.path for p in document.problems if p.severity == "error"}
    values = [
        value
        for where, value in substituted
        if where not in _PUBLIC_FORM_FIELDS or format_path(where) in errors_at
    ]
    if not values:
        return
    for value in values:
        Redactor.register(value)
    document.problems = [
        dataclasses.replace(p, message=mask_values(p.message, values)) for p in document.problems
    ]


class _Expander:
    """One document's expansion: the environment it reads and the values it substituted."""

    def __init__(self, document: BridgeDocument, env: Mapping[str, str]) -> None:
        self.document = document
        self.env = env
        self.substituted: list[Substitution] = []

    def expand_in(self, container: dict[str, Any] | list[Any], path: DocPath) -> None:
        items: Iterable[tuple[Any, Any]] = (
            container.items() if isinstance(container, dict) else enumerate(container)
        )
        for key, value in list(items):
            if isinstance(value, str):
                container[key] = self.expand(value, (*path, key))
            elif isinstance(value, dict | list):
                self.expand_in(value, (*path, key))

    def expand(self, text: str, path: DocPath) -> str:
        if "${" not in text:
            return text
        failures: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            value, failure = self._value_of(match.group("body"), path)
            if failure:
                failures.append(failure)
            return value

        expanded = _VARIABLE.sub(substitute, text)
        document = self.document
        for failure in failures:
            document.error(path, failure)
        if failures:
            document.reported.add(path)
            document.unexpandable.add(path)
        elif expanded != text.replace("$${", "${"):
            document.expanded.add(path)
        return expanded

    def _value_of(self, body: str | None, path: DocPath) -> tuple[str, str | None]:
        """What one `${body}` stands for, and why it cannot be expanded (None: it can)."""
        name, has_default, default = (body or "").partition(":-")
        if body is None or "${" in body or not _ENV_NAME.fullmatch(name):
            return "", _MALFORMED
        policy = self.document.env_policy
        if not policy.allows(name):
            # Refused whether it is set or not, default or not: the error must not tell
            # whether the runner has it, and a silent default would route events to
            # where the operator did not choose.
            return "", policy.refusal(name)
        if name in self.env:
            value = self.env[name]
            if not is_utf8(value):
                # os.environ keeps undecodable bytes as lone surrogates, which no file,
                # log or request can carry: a located error, never a crash of the pass.
                return (
                    "",
                    f"environment variable {name} is not valid UTF-8 (its value is not shown)",
                )
            self.substituted.append((path, value))
            return value, None
        if has_default:
            return default, None
        return "", (
            f"environment variable {name} is not set and has no default "
            f"(write ${{{name}:-default}} to give one)"
        )
