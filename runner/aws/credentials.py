"""The AWS credentials a Cognito client signs with, and the fingerprint that keys the cache.

A bridge's static keys are resolved from their `SecretRef`s when a client is built, so a
rotated secret is picked up by the next client a bridge builds; the cache key holds only an
HMAC of the resolved values under a per-process random key, which changes when a secret
rotates and reveals nothing. An `assume_role_arn` is assumed through STS with botocore's
refreshable credentials (fetched on first use and renewed before expiry, on the worker thread
that signs a call), on top of the static keys or boto3's default chain; every temporary
credential fetched is registered with the `Redactor`. Without static keys or a role, boto3's
default chain applies and nothing here is involved.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import NoCredentialsError

from runner.model import AwsCredentials
from runner.secrets.redaction import Redactor
from runner.secrets.resolver import SecretResolver

# Access key id, secret access key, session token: resolved values, never logged.
StaticKeys = tuple[str, str, str | None]


def resolve_static(secrets: SecretResolver, creds: AwsCredentials | None) -> StaticKeys | None:
    """The resolved static keys, or None for boto3's default chain.
    Raises SecretError when a reference cannot be resolved."""
    if creds is None:
        return None
    access_key_id = secrets.resolve(creds.access_key_id)
    secret_access_key = secrets.resolve(creds.secret_access_key)
    token = secrets.resolve(creds.session_token) if creds.session_token else None
    return access_key_id, secret_access_key, token


def fingerprint(hmac_key: bytes, values: StaticKeys) -> str:
    """An HMAC of the resolved values: equal for equal keys, revealing nothing about them."""
    joined = "\0".join(v or "" for v in values).encode()
    return hmac.new(hmac_key, joined, hashlib.sha256).hexdigest()


def use_credentials(session: botocore.session.Session, credentials: Credentials) -> None:
    """Make `session` sign with `credentials` instead of looking for its default chain."""
    session.register_component(
        "credential_provider", CredentialResolver([_FixedCredentialProvider(credentials)])
    )


def assumed_role_credentials(
    source: Credentials | None,
    *,
    role_arn: str,
    region: str,
    config: Config,
    session_name: str,
) -> Credentials:
    """Refreshable credentials of `role_arn`, assumed with `source` (None: the default chain)."""
    # The default chain, resolved in a session of its own: the client's session must not
    # cache these source credentials as its own.
    source = source or botocore.session.Session().get_credentials()
    if source is None:
        raise NoCredentialsError()
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=functools.partial(
            botocore.session.Session().create_client,
            region_name=region,  # STS endpoint: AWS_ENDPOINT_URL(_STS) as boto3 does
            config=config,
        ),
        source_credentials=source,
        role_arn=role_arn,
        extra_args={"RoleSessionName": session_name},
    )
    # Fetched on first use and again before expiry, in the worker thread signing a call.
    return DeferredRefreshableCredentials(
        refresh_using=_registering(fetcher.fetch_credentials), method="assume-role"
    )


class _FixedCredentialProvider(CredentialProvider):
    """Hands botocore one credentials object (static or refreshable) instead of its chain."""

    METHOD = "bridge-runner"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def _registering(fetch: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Wrap an STS fetch so that every temporary credential is known to the Redactor."""

    def fetch_and_register() -> dict[str, Any]:
        fetched = fetch()
        for name in ("access_key", "secret_key", "token"):
            if fetched.get(name):
                Redactor.register(str(fetched[name]))
        return fetched

    return fetch_and_register
