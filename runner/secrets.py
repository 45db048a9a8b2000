"""Resolving secret references at run time, and keeping their values out of logs.

The loader only checks that a reference is well formed and stays inside --secrets-dir
(`secret_path_problem`); the value is read here, when a client or a sink needs it.
Every value resolved is registered with `Redactor`, whose logging filter replaces it
with `***` in any log record: a second line of defence behind "never format a secret".
The loader registers the values it substituted for `${VAR}` too. `valueFromEnv` reads only
what the runner's `EnvPolicy` allows (`runner.envpolicy`): the loader refuses the others, and
this module refuses them again at run time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import ClassVar

from runner.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy
from runner.errors import SecretError
from runner.model import HeaderValue, SecretRef

DEFAULT_SECRETS_DIR = Path("/run/secrets")
_MIN_REDACTED_LEN = 4  # shorter values would redact ordinary words


def secret_path_problem(rel: str) -> str | None:
    """Why `rel` may not be used as a path under --secrets-dir, or None when it is fine."""
    if not rel:
        return "must not be empty"
    if rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        return f"must be a path relative to --secrets-dir, not the absolute path {rel!r}"
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        return f"must stay inside --secrets-dir: {rel!r} contains '..'"
    return None


def mask_values(text: str, values: Iterable[str]) -> str:
    """`text` with every one of `values` that is long enough to mask (4 characters: shorter
    ones would mask ordinary words) replaced by `***`, longest first so that a value holding
    another is masked whole."""
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= _MIN_REDACTED_LEN and value in text:
            text = text.replace(value, "***")
    return text


class Redactor(logging.Filter):
    """A logging filter that masks every secret value resolved in this process."""

    _values: ClassVar[set[str]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def register(cls, value: str) -> None:
        if len(value) >= _MIN_REDACTED_LEN:
            with cls._lock:
                cls._values.add(value)

    @classmethod
    def redact(cls, text: str) -> str:
        with cls._lock:
            values = list(cls._values)
        return mask_values(text, values)

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self.redact)
        return True


def redact_record(record: logging.LogRecord, redact: Callable[[str], str]) -> None:
    """Apply `redact` to everything of `record` that a formatter could print.

    The message is formatted here, once, and kept with `args=None`: text put back into
    `msg` next to the original args would be formatted again, and a `%` in it (or in a
    masked value) makes logging's error handler print the record's exception unmasked.
    A traceback holding a secret anywhere in its chain (causes and contexts included) is
    replaced by its redacted text in `exc_text`, which every `logging.Formatter` prints as
    is, and the exception itself is dropped from the record.
    """
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what the caller passed, masked
        message = f"{record.msg!s} {record.args!r}"
    record.msg, record.args = redact(message), None
    exc_text = record.exc_text  # set when an earlier handler's formatter already ran
    if not exc_text and record.exc_info and record.exc_info[1] is not None:
        exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
    if exc_text:
        redacted = redact(exc_text)
        if redacted != exc_text:
            record.exc_text, record.exc_info = redacted, None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_TRACEBACK_FORMATTER = logging.Formatter()


class SecretResolver:
    """Reads secret values from the environment (the variables `env_policy` allows) or
    from files under `secrets_dir`."""

    def __init__(
        self,
        secrets_dir: Path = DEFAULT_SECRETS_DIR,
        env: Mapping[str, str] | None = None,
        *,
        env_policy: EnvPolicy = DEFAULT_ENV_POLICY,
    ) -> None:
        self.secrets_dir = secrets_dir
        self._env = os.environ if env is None else env
        self._env_policy = env_policy

    def resolve(self, ref: SecretRef) -> str:
        value = self._read(ref)
        Redactor.register(value)
        return value

    def resolve_header(self, value: HeaderValue) -> str:
        return value if isinstance(value, str) else self.resolve(value)

    def _read(self, ref: SecretRef) -> str:
        if ref.source == "value":
            return ref.literal
        if ref.source == "env":
            # The loader refused this reference already; a bridge built some other way (or a
            # policy narrowed since) must not read the runner's own credentials either.
            if not self._env_policy.allows(ref.name):
                raise SecretError(self._env_policy.refusal(ref.name))
            if ref.name not in self._env:
                raise SecretError(f"{ref.describe()} is not set")
            value = self._env[ref.name]
            try:
                value.encode("utf-8")  # undecodable bytes come as lone surrogates
            except UnicodeEncodeError:
                raise SecretError(f"{ref.describe()} is not valid UTF-8") from None
            return value
        rel = ref.name if ref.source == "file" else f"{ref.name}/{ref.key}"
        problem = secret_path_problem(rel)
        if problem:
            raise SecretError(f"{ref.describe()}: {problem}")
        base = self.secrets_dir.resolve()
        path = (base / rel).resolve()
        if not path.is_relative_to(base):  # a symlink inside the secrets dir pointing out of it
            raise SecretError(f"{ref.describe()} resolves outside --secrets-dir")
        try:
            # Mounted Kubernetes secrets and most secret files end with a newline that is
            # not part of the value.
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise SecretError(f"{ref.describe()} not found under {self.secrets_dir}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"{ref.describe()} cannot be read: {type(exc).__name__}") from None
