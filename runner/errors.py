"""The one exception tree of bridge-runner.

    BridgeRunnerError                 root: everything we raise on purpose
    ├── UsageError                    bad command line (CLI exit code 2)
    ├── ConfigError                   a bridge file is invalid; carries located `Problem`s
    ├── SecretError                   a secret reference cannot be resolved at run time
    ├── StateError                    the SQLite state cannot be opened or is corrupt
    ├── TemporaryError(delay=None)    worth retrying (throttling, 5xx, network); `delay` in s
    │   ├── SourceUnavailable         Cognito unreachable / throttled / 5xx
    │   └── SinkUnavailable           sink unreachable / retryable HTTP status
    └── PermanentError                retrying will not help (4xx, access denied, no such pool)
        ├── SourceRejected            Cognito said no: pool not found, access denied, bad creds
        └── SinkRejected              sink refused the event for good (non-retryable status)

The class decides whether to retry (kopf's TemporaryError / PermanentError habit).
Every message is written for a person and never contains a secret value: code that
formats a message from user input must not interpolate resolved secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.model import Problem


class BridgeRunnerError(Exception):
    """Root of every error bridge-runner raises on purpose."""


class UsageError(BridgeRunnerError):
    """The command line was wrong; the CLI exits with code 2."""


class ConfigError(BridgeRunnerError):
    """A bridge file is invalid. `problems` holds every located error found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0].render() if self.problems else "invalid bridge"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class SecretError(BridgeRunnerError):
    """A secret reference could not be resolved. The message names the reference, never a value."""


class StateError(BridgeRunnerError):
    """The state store (SQLite) could not be used."""


class TemporaryError(BridgeRunnerError):
    """A failure worth retrying. `delay` is a server-suggested wait in seconds (Retry-After)."""

    def __init__(self, message: str, *, delay: float | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.delay = delay
        self.reason = reason


class PermanentError(BridgeRunnerError):
    """A failure that retrying will not fix."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class SourceUnavailable(TemporaryError):
    """Cognito could not be reached, throttled us, or answered 5xx."""


class SinkUnavailable(TemporaryError):
    """The sink could not be reached or answered a retryable status."""

    def __init__(
        self,
        message: str,
        *,
        delay: float | None = None,
        reason: str = "",
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, delay=delay, reason=reason)
        self.status_code = status_code


class SourceRejected(PermanentError):
    """Cognito refused: the pool does not exist, access is denied, or credentials are invalid."""


class SinkRejected(PermanentError):
    """The sink refused the event with a status that is not retried (most 4xx)."""

    def __init__(self, message: str, *, reason: str = "", status_code: int | None = None) -> None:
        super().__init__(message, reason=reason)
        self.status_code = status_code
