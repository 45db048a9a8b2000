"""Which environment variables of the runner a bridge may read.

A bridge reads the environment through `${VAR}` / `${VAR:-default}` in its values and through
`{valueFromEnv: VAR}` secret references. The runner's environment also holds what bridges must
never see — its own AWS credentials, proxy passwords, tokens of the tools around it — and a
bridge author can send whatever a bridge reads to a sink they control. So the person who runs
the runner decides, not the person who writes bridges:

- `BRIDGE_VAR_*` is always readable: a variable becomes visible to bridges only when it is
  deliberately named so. Nothing else is readable by default, `AWS_*` included.
- `--allow-env PATTERN` (repeatable) or `BRIDGE_RUNNER_ALLOW_ENV` (comma-separated; the flags,
  when given, replace it) add exact names or shell-style globs (`SINK_*`, `POOL_ARN`),
  matched case-sensitively as POSIX names are.

Reading any other variable is an error that names the variable and the flag, never its value,
whether the variable is set or not (so an error never tells whether it exists), and even with
`${VAR:-default}`: silently taking the default would send events somewhere the operator did
not choose. The loader reports it as a located problem; `SecretResolver` refuses it again at
run time.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "ALLOW_ENV_FLAG",
    "ALLOW_ENV_VAR",
    "BRIDGE_VAR_PREFIX",
    "DEFAULT_ENV_POLICY",
    "EnvPolicy",
    "parse_allow_env",
]

BRIDGE_VAR_PREFIX = "BRIDGE_VAR_"
ALLOW_ENV_FLAG = "--allow-env"
ALLOW_ENV_VAR = "BRIDGE_RUNNER_ALLOW_ENV"
_ALWAYS_ALLOWED = f"{BRIDGE_VAR_PREFIX}*"
# A variable name, or a glob of one: name characters plus *, ?, and [...] classes.
_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!\-]+")
# The runner's own credentials: allowing one of these is worth a warning at start.
_CREDENTIAL_PREFIXES = ("AWS_",)


@dataclass(frozen=True, slots=True)
class EnvPolicy:
    """The variables bridges may read: `BRIDGE_VAR_*` plus `patterns` (names or globs)."""

    patterns: tuple[str, ...] = ()

    def allows(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.all_patterns)

    @property
    def all_patterns(self) -> tuple[str, ...]:
        return (_ALWAYS_ALLOWED, *(p for p in self.patterns if p != _ALWAYS_ALLOWED))

    def refusal(self, name: str) -> str:
        """Why `name` may not be read: the variable and the flag, never a value."""
        return (
            f"environment variable {name} is not allowed for bridges "
            f"(allowed: {', '.join(self.all_patterns)}); read {BRIDGE_VAR_PREFIX}{name} "
            f"instead, or have the runner allow it with {ALLOW_ENV_FLAG} {name} "
            f"(or {ALLOW_ENV_VAR}={name})"
        )

    def exposed_credentials(self, env: Mapping[str, str]) -> list[str]:
        """Names of the runner's own credential variables (`AWS_*`) that are set in `env` and
        that this policy lets bridges read: the operator allowed them, perhaps by a glob."""
        return sorted(
            name for name in env if name.startswith(_CREDENTIAL_PREFIXES) and self.allows(name)
        )


DEFAULT_ENV_POLICY = EnvPolicy()


def parse_allow_env(entries: Iterable[str], *, source: str) -> EnvPolicy:
    """The policy for `entries` (names or globs; blank ones skipped). Raises `ValueError`
    naming `source` and the entry's position, not its text, for one that is not a pattern."""
    patterns: list[str] = []
    for index, entry in enumerate(entries, start=1):
        text = entry.strip()
        if not text:
            continue
        if not _PATTERN.fullmatch(text):
            raise ValueError(
                f"{source}: entry {index} is not a variable name or a glob of one "
                "(letters, digits, _ and the glob characters * ? [ ] !)"
            )
        if text not in patterns:
            patterns.append(text)
    return EnvPolicy(tuple(patterns))
