"""Resolving secret references at run time, and keeping their values out of logs.

The loader only checks that a reference is well formed and stays inside --secrets-dir
(`secret_path_problem`); the value is read here, when a client or a sink needs it.
Every value resolved is registered with `Redactor`, whose logging filter replaces it
with `***` in any log record: a second line of defence behind "never format a secret".
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import ClassVar

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
            values = sorted(cls._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = self.redact(str(record.exc_info[1]))
            if exc_text != str(record.exc_info[1]):
                # Drop the traceback rather than print a secret inside it.
                record.msg = f"{record.msg} ({type(record.exc_info[1]).__name__}: {exc_text})"
                record.exc_info = None
        return True


class SecretResolver:
    """Reads secret values from the environment or from files under `secrets_dir`."""

    def __init__(
        self, secrets_dir: Path = DEFAULT_SECRETS_DIR, env: Mapping[str, str] | None = None
    ) -> None:
        self.secrets_dir = secrets_dir
        self._env = os.environ if env is None else env

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
            if ref.name not in self._env:
                raise SecretError(f"{ref.describe()} is not set")
            return self._env[ref.name]
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
