"""Resolving secret references at run time.

The loader only checks that a reference is well formed and stays inside --secrets-dir
(`secret_path_problem`); the value is read here, when a client or a sink needs it.
Every value resolved is registered with `Redactor` (`runner.secrets.redaction`), which
masks it in every log record. `valueFromEnv` reads only what the runner's `EnvPolicy` allows
(`runner.secrets.envpolicy`): the loader refuses the others, and this module refuses them
again at run time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from runner._kits.safefile import read_regular
from runner.errors import SecretError
from runner.model import HeaderValue, SecretRef
from runner.secrets.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy
from runner.secrets.redaction import Redactor

DEFAULT_SECRETS_DIR = Path("/run/secrets")
# A secret is a key, a token, a password: far below this. The cap keeps a file swapped for
# something huge (a link to /dev/zero) from filling memory.
MAX_SECRET_BYTES = 64 * 1024
# A secret file that has not been read after this long is on a stalled mount.
SECRET_READ_TIMEOUT = 5.0


def secret_path_problem(rel: str) -> str | None:
    """Why `rel` may not be used as a path under --secrets-dir, or None when it is fine."""
    if not rel:
        return "must not be empty"
    if rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        return f"must be a path relative to --secrets-dir, not the absolute path {rel!r}"
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        return f"must stay inside --secrets-dir: {rel!r} contains '..'"
    return None


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
        self._reads: dict[SecretRef, asyncio.Future[str]] = {}  # file reads in flight

    def resolve(self, ref: SecretRef) -> str:
        value = self._read(ref)
        Redactor.register(value)
        return value

    async def resolve_async(self, ref: SecretRef, *, give_up_after: float | None = None) -> str:
        """`resolve`, for code on the event loop: a file is read on a worker thread and given
        up after `give_up_after` seconds (default SECRET_READ_TIMEOUT): a stalled secrets
        mount must not freeze every bridge.
        While a read of one file hangs, later calls wait for that read rather than start
        another thread behind it, so a stalled mount holds one thread per secret, not one
        per request."""
        if ref.source in ("value", "env"):
            return self.resolve(ref)  # no I/O
        loop = asyncio.get_running_loop()
        pending = self._reads.get(ref)
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = asyncio.ensure_future(asyncio.to_thread(self.resolve, ref))
            self._reads[ref] = pending
        limit = SECRET_READ_TIMEOUT if give_up_after is None else give_up_after
        try:
            return await asyncio.wait_for(asyncio.shield(pending), limit)
        except TimeoutError:
            raise SecretError(
                f"{ref.describe()} could not be read within {limit:g}s "
                "(is the secrets mount stalled?)"
            ) from None

    async def resolve_header(self, value: HeaderValue) -> str:
        return value if isinstance(value, str) else await self.resolve_async(value)

    def _read(self, ref: SecretRef) -> str:
        if ref.source == "value":
            return ref.literal
        if ref.source == "env":
            return self._read_env(ref)
        return self._read_file(ref)

    def _read_env(self, ref: SecretRef) -> str:
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

    def _read_file(self, ref: SecretRef) -> str:
        rel = ref.name if ref.source == "file" else f"{ref.name}/{ref.key}"
        problem = secret_path_problem(rel)
        if problem:
            raise SecretError(f"{ref.describe()}: {problem}")
        base = self.secrets_dir.resolve()
        path = (base / rel).resolve()
        if not path.is_relative_to(base):  # a symlink inside the secrets dir pointing out of it
            raise SecretError(f"{ref.describe()} resolves outside --secrets-dir")
        try:
            # Regular files only, opened without blocking and read up to a cap: a secret
            # swapped for a FIFO or a link to /dev/zero is an error, not a hang or a heap.
            # Links are followed (a Kubernetes secret mount is made of them); the check above
            # keeps them inside --secrets-dir.
            data = read_regular(path, limit=MAX_SECRET_BYTES, follow_symlinks=True)
        except FileNotFoundError:
            raise SecretError(f"{ref.describe()} not found under {self.secrets_dir}") from None
        except OSError as exc:
            # strerror says what is wrong ("Permission denied", "not a regular file (a FIFO)",
            # "file is too large ..."); the exception's text would also name the path.
            why = exc.strerror or type(exc).__name__
            raise SecretError(f"{ref.describe()} cannot be read: {why}") from None
        try:
            # Mounted Kubernetes secrets and most secret files end with a newline that is
            # not part of the value.
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretError(f"{ref.describe()} cannot be read: not valid UTF-8") from None
