"""One bridge file while it is being checked: its parsed data, typed reads of it, and every
located `Problem` found so far, with what is known about each value (the schema reported it,
it came from the environment, its `${VAR}` failed).

Every step of the loader (`runner.loader.variables`, `runner.loader.schema_messages`,
`runner.loader.semantics`, the two formats) reads and reports through one `BridgeDocument`,
so that a value is reported once, at its own line and column, and a value from the
environment is never quoted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.loader.yamlsafe import ParsedDocument, format_path
from runner.model import Problem, Severity
from runner.secrets.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy

DocPath = tuple[str | int, ...]


class BridgeDocument:
    """A parsed bridge document and the Problems found in it, located at the offending node.

    Typed reads return None (or the caller's default) when a value is absent or of the wrong
    type: the schema reports that, once.
    """

    def __init__(
        self, doc: ParsedDocument, display: str, env_policy: EnvPolicy = DEFAULT_ENV_POLICY
    ) -> None:
        self.doc = doc
        self.data = doc.data
        self.display = display
        # Which environment variables `${VAR}` and `valueFromEnv` may read.
        self.env_policy = env_policy
        self.problems: list[Problem] = []
        self.has_errors = False
        # Values the schema already reported: no second, semantic finding on them.
        self.reported: set[DocPath] = set()
        # Strings that came (partly) from the environment rather than from the file.
        self.expanded: set[DocPath] = set()
        # Strings whose ${...} failed: the schema would only repeat that they are wrong.
        self.unexpandable: set[DocPath] = set()
        self._seen: set[tuple[DocPath, str]] = set()

    # -- reporting ---------------------------------------------------------------------------

    def _add(self, path: DocPath, message: str, severity: Severity, *, at_key: bool) -> None:
        if (path, message) in self._seen:
            return
        self._seen.add((path, message))
        line, column = self.doc.locate_key(path) if at_key else self.doc.locate(path)
        self.problems.append(
            Problem(self.display, line, column, format_path(path), message, severity)
        )
        if severity == "error":
            self.has_errors = True

    def error(self, path: DocPath, message: str, *, at_key: bool = False) -> None:
        self._add(path, message, "error", at_key=at_key)

    def warn(self, path: DocPath, message: str, *, at_key: bool = False) -> None:
        self._add(path, message, "warning", at_key=at_key)

    def value_error(self, path: DocPath, message: str, *, without_value: str) -> None:
        """An error about the value at `path`. `message` may quote the value, unless it came
        from the environment: then `without_value` is said instead (no environment value is
        ever shown, not even in part)."""
        if path in self.expanded:
            message = f"{without_value} (the value comes from the environment and is not shown)"
        self.error(path, message)

    def already_reported(self, path: DocPath) -> bool:
        return any(path[:end] in self.reported for end in range(len(path) + 1))

    # -- typed reads (None when absent or of the wrong type: the schema reported it) ---------

    def get(self, path: DocPath) -> Any:
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def string(self, path: DocPath) -> str | None:
        value = self.get(path)
        return value if isinstance(value, str) and not self.already_reported(path) else None

    def mapping(self, path: DocPath) -> dict[str, Any]:
        value = self.get(path)
        return value if isinstance(value, dict) else {}

    def boolean(self, path: DocPath, default: bool) -> bool:
        value = self.get(path)
        return value if isinstance(value, bool) else default

    # -- metadata, the same in both formats --------------------------------------------------

    def labels(self) -> dict[str, str]:
        labels = self.mapping(("metadata", "labels"))
        return {k: v for k, v in labels.items() if isinstance(v, str)}

    def name(self, path: Path) -> str:
        """metadata.name, else the file's name without its extension."""
        return self.string(("metadata", "name")) or path.stem
