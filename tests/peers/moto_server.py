"""moto's Cognito server on loopback, for tests that talk to Cognito over real HTTP.

Fixtures:
- `moto_server` (session): a `ThreadedMotoServer` on 127.0.0.1, an OS-chosen port;
  `.endpoint` is its URL.
- `cognito_admin` (session): a `CognitoAdmin` that creates, changes and deletes users over
  HTTP, and `seed_users()` that fills large pools through moto's in-process backend.
- `cognito_pool` (function): a factory creating a fresh pool (us-west-2) per call; the
  pools are deleted after the test, so tests never see each other's users.

The threaded server runs in this process, so the backend the HTTP API serves is the one
`moto.backends.get_backend("cognito-idp")` returns: seeding through it is ~100x faster
than AdminCreateUser over HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.backends import get_backend
from moto.cognitoidp.models import CognitoIdpUser
from moto.server import ThreadedMotoServer

from runner.model import CognitoSource, PoolArn

# The fault-injecting proxy sits in front of this server; registered from here so that
# tests/conftest.py needs to list only this plugin.
pytest_plugins = ["tests.peers.cognito_proxy"]

REGION = "us-west-2"
# moto accepts any credentials; these only have to look like credentials.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True, slots=True)
class MotoServer:
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A pool created for one test."""

    id: str
    arn: str
    account: str
    region: str
    name: str

    @property
    def pool_arn(self) -> PoolArn:
        return PoolArn(
            arn=self.arn, partition="aws", region=self.region, account=self.account, pool_id=self.id
        )

    def source(self, endpoint: str | None, **kwargs: Any) -> CognitoSource:
        """A `CognitoSource` for this pool (default-chain auth unless `auth=` is given)."""
        return CognitoSource(pool=self.pool_arn, endpoint=endpoint, **kwargs)


def admin_client(endpoint: str, region: str = REGION) -> Any:
    """A boto3 cognito-idp client for test set-up: dummy credentials, no retries."""
    return boto3.client(
        "cognito-idp",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        **DUMMY_CREDENTIALS,
    )


class CognitoAdmin:
    """Changes a moto pool the way an administrator would (over HTTP), plus fast seeding."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client = admin_client(endpoint)

    def close(self) -> None:
        self.client.close()

    def create_pool(self, name: str) -> PoolInfo:
        pool = self.client.create_user_pool(PoolName=name)["UserPool"]
        arn = pool["Arn"]
        account = arn.split(":")[4]
        return PoolInfo(id=pool["Id"], arn=arn, account=account, region=REGION, name=name)

    def delete_pool(self, pool_id: str) -> None:
        self.client.delete_user_pool(UserPoolId=pool_id)

    def create_user(
        self, pool_id: str, username: str, attributes: dict[str, str] | None = None
    ) -> dict[str, Any]:
        attrs = [{"Name": k, "Value": v} for k, v in (attributes or {}).items()]
        user: dict[str, Any] = self.client.admin_create_user(
            UserPoolId=pool_id, Username=username, UserAttributes=attrs, MessageAction="SUPPRESS"
        )["User"]
        return user

    def update_user(self, pool_id: str, username: str, attributes: dict[str, str]) -> None:
        self.client.admin_update_user_attributes(
            UserPoolId=pool_id,
            Username=username,
            UserAttributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
        )

    def disable_user(self, pool_id: str, username: str) -> None:
        self.client.admin_disable_user(UserPoolId=pool_id, Username=username)

    def enable_user(self, pool_id: str, username: str) -> None:
        self.client.admin_enable_user(UserPoolId=pool_id, Username=username)

    def delete_user(self, pool_id: str, username: str) -> None:
        self.client.admin_delete_user(UserPoolId=pool_id, Username=username)

    def seed_users(
        self, pool: PoolInfo, n: int, *, prefix: str = "user", start: int = 0
    ) -> list[str]:
        """Add `n` confirmed users straight into moto's backend; returns their usernames."""
        backend = get_backend("cognito-idp")[pool.account][pool.region]
        user_pool = backend.user_pools[pool.id]
        names = [f"{prefix}{i:06d}" for i in range(start, start + n)]
        for name in names:
            user = CognitoIdpUser(
                pool.id,
                name,
                None,
                "CONFIRMED",
                [{"Name": "email", "Value": f"{name}@example.com"}],
            )
            user_pool.users[name] = user
        return names


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    # werkzeug logs every request at INFO: noise in every captured log.
    werkzeug_log = logging.getLogger("werkzeug")
    previous_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(host, port)
    finally:
        server.stop()
        werkzeug_log.setLevel(previous_level)


@pytest.fixture(scope="session")
def cognito_admin(moto_server: MotoServer) -> Iterator[CognitoAdmin]:
    admin = CognitoAdmin(moto_server.endpoint)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def cognito_pool(cognito_admin: CognitoAdmin) -> Iterator[Callable[..., PoolInfo]]:
    """`cognito_pool(name=None) -> PoolInfo`: a fresh, empty pool, deleted after the test."""
    created: list[PoolInfo] = []

    def create(name: str | None = None) -> PoolInfo:
        pool = cognito_admin.create_pool(name or f"pool{len(created)}")
        created.append(pool)
        return pool

    yield create
    for pool in created:
        cognito_admin.delete_pool(pool.id)
