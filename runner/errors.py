"""The one exception tree of bridge-runner.

    BridgeRunnerError                 root: everything we raise on purpose
    ├── UsageError                    bad command line (CLI exit code 2)
    ├── SecretError                   a secret reference cannot be resolved at run time
    ├── StateError                    the SQLite state cannot be opened or is corrupt
    ├── TemporaryError(delay=None)    worth retrying (throttling, 5xx, network); `delay` in s
    │   ├── SourceUnavailable         Cognito unreachable / throttled / 5xx
    │   └── SinkUnavailable           sink unreachable, timed out, retryable status, write
    │                                 failed: the event is retried, spending its retry budget
    └── PermanentError                retrying will not help (4xx, access denied, no such pool)
        ├── SourceRejected            Cognito said no: pool not found, access denied, bad creds
        ├── SinkRejected              sink refused the event for good (non-retryable status):
        │                             the event is dead-lettered, or parked without a dead letter
        └── SinkMisconfigured         the sink cannot be used as configured (invalid header or
                                      URI, unresolvable header secret, `file:` sink outside the
                                      state dir): nothing was sent, so the event is not blamed;
                                      delivery waits for the operator and spends no retry budget

The class decides whether to retry (kopf's TemporaryError / PermanentError habit): the
poller catches the inner nodes, the deliverer the three sink leaves, and only `runner.cli`
turns what reaches it into an exit code. A bridge file that is invalid is not an exception:
the loader returns located `Problem`s, and `check` and the status files show them.
Every message is written for a person and never contains a secret value: code that
formats a message from user input must not interpolate resolved secrets.
"""

from __future__ import annotations


class BridgeRunnerError(Exception):
    """Root of every error bridge-runner raises on purpose."""


class UsageError(BridgeRunnerError):
    """The command line was wrong; the CLI exits with code 2."""


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
    """The sink could not be reached, timed out, answered a retryable status (404, 408, 409,
    429, 5xx), or a `file:` sink could not be written. `body_excerpt` is the start of the
    sink's error response, secrets masked (for Knative's `knativeerrordata`)."""

    def __init__(
        self,
        message: str,
        *,
        delay: float | None = None,
        reason: str = "",
        status_code: int | None = None,
        body_excerpt: bytes = b"",
    ) -> None:
        super().__init__(message, delay=delay, reason=reason)
        self.status_code = status_code
        self.body_excerpt = body_excerpt


class SourceRejected(PermanentError):
    """Cognito refused: the pool does not exist, access is denied, or credentials are invalid."""


class SinkRejected(PermanentError):
    """The sink refused the event with a status that is not retried (most 4xx).
    `body_excerpt` as for `SinkUnavailable`."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        status_code: int | None = None,
        body_excerpt: bytes = b"",
    ) -> None:
        super().__init__(message, reason=reason)
        self.status_code = status_code
        self.body_excerpt = body_excerpt


class SinkMisconfigured(PermanentError):
    """The sink cannot be used as the bridge configures it, whatever the event: nothing was
    sent. Retrying the same request will not help until an operator fixes the sink (a
    secret, a header, a symlink), which the deliverer waits for."""
