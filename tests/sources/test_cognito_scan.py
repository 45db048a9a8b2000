"""The Cognito client against moto's server over HTTP, directly and through a fault proxy."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runner.errors import SourceRejected, SourceUnavailable
from runner.model import AwsAuth, AwsCredentials, CognitoSource, SecretRef
from runner.polling.diff import normalize_user, to_record
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.client import CognitoClients, CognitoPool, CognitoSettings
from runner.sources.cognito.scan import ScanResult
from tests.peers.cognito_proxy import CognitoProxy
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.ports import refused_port

ACCESS_KEY_ID = "AKIATESTKEYID0000042"
SECRET_ACCESS_KEY = "test-secret-access-key-do-not-log-0042"
SESSION_TOKEN = "test-session-token-do-not-log-0042"

# Quick bounds so that fault tests take a second or two, not a minute.
FAST = CognitoSettings(
    max_attempts=2,
    connect_timeout=1.0,
    read_timeout=5.0,
    page_retries=3,
    retry_backoff=0.01,
    max_retry_backoff=0.05,
    max_restarts=2,
)

STATIC_AUTH = AwsAuth(
    credentials=AwsCredentials(
        access_key_id=SecretRef("env", name="BRIDGE_VAR_TEST_AWS_KEY_ID"),
        secret_access_key=SecretRef("file", name="aws/secret-access-key"),
        session_token=SecretRef("secret", name="awscreds", key="token"),
    )
)


@pytest.fixture
def secrets(tmp_path: Path) -> SecretResolver:
    (tmp_path / "aws").mkdir()
    (tmp_path / "aws" / "secret-access-key").write_text(SECRET_ACCESS_KEY + "\n")
    (tmp_path / "awscreds").mkdir()
    (tmp_path / "awscreds" / "token").write_text(SESSION_TOKEN)
    return SecretResolver(tmp_path, env={"BRIDGE_VAR_TEST_AWS_KEY_ID": ACCESS_KEY_ID})


@pytest.fixture
def cognito_settings() -> CognitoSettings:
    return FAST


def source_for(pool: PoolInfo, endpoint: str | None, auth: AwsAuth = STATIC_AUTH) -> CognitoSource:
    return pool.source(endpoint, auth=auth)


def scan(clients: CognitoClients, source: CognitoSource, segments: int = 1) -> ScanResult:
    return asyncio.run(clients.pool(source).scan(segments=segments))


def usernames(result: ScanResult) -> list[str]:
    return sorted(u["Username"] for u in result.users)


@pytest.fixture
def pool_1000(cognito_pool: Callable[..., PoolInfo], cognito_admin: CognitoAdmin) -> PoolInfo:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 1000)
    return pool


# -- full scans ------------------------------------------------------------------------


def test_full_scan_reads_every_user_exactly_once(
    clients: CognitoClients, pool_1000: PoolInfo, moto_server: MotoServer
) -> None:
    result = scan(clients, source_for(pool_1000, moto_server.endpoint))
    assert result.complete and result.error is None
    assert result.pages == 17  # 16 full pages of 60 and one of 40
    assert usernames(result) == [f"user{i:06d}" for i in range(1000)]
    user = result.users[0]
    assert {"Username", "Attributes", "UserCreateDate", "UserLastModifiedDate"} <= set(user)
    assert any(a["Name"] == "sub" for a in user["Attributes"])
    assert result.restarts == 0 and result.throttles == 0


def test_segmented_scan_equals_sequential_scan(
    clients: CognitoClients, pool_1000: PoolInfo, moto_server: MotoServer
) -> None:
    source = source_for(pool_1000, moto_server.endpoint)
    sequential = scan(clients, source)
    segmented = scan(clients, source, segments=16)
    assert segmented.complete
    by_name = {u["Username"]: u for u in sequential.users}
    assert {u["Username"]: u for u in segmented.users} == by_name
    assert len(segmented.users) == 1000
    assert segmented.pages >= 16  # one scan per sub prefix, at least one page each


def test_dates_stay_epoch_seconds_and_mean_what_boto3_datetimes_mean(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    moto_server: MotoServer,
) -> None:
    pool = cognito_pool()
    for name in ("amy", "bob"):
        cognito_admin.create_user(pool.id, name, {"email": f"{name}@example.com"})
    cognito_admin.update_user(pool.id, "bob", {"name": "Bob"})

    ours = scan(clients, source_for(pool, moto_server.endpoint)).users
    # The same users through a plain boto3 client: botocore's default timestamp parser.
    plain = cognito_admin.client.list_users(UserPoolId=pool.id)["Users"]

    for user in ours:
        for date in ("UserCreateDate", "UserLastModifiedDate"):
            assert type(user[date]) in (int, float)
    assert all(isinstance(user["UserCreateDate"], datetime) for user in plain)  # not changed
    by_name = {user["Username"]: user for user in plain}
    assert sorted(by_name) == ["amy", "bob"]
    for user in ours:
        assert to_record(user) == to_record(by_name[user["Username"]])
        assert normalize_user(user) == normalize_user(by_name[user["Username"]])


def test_empty_pool_is_a_complete_scan(
    clients: CognitoClients, cognito_pool: Callable[..., PoolInfo], moto_server: MotoServer
) -> None:
    result = scan(clients, source_for(cognito_pool(), moto_server.endpoint), segments=16)
    assert result.complete and result.users == [] and result.pages == 16


def test_short_and_empty_pages_do_not_end_the_scan(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 100)
    cognito_proxy.page_limit = 7  # pages of 7 although 60 were asked for
    cognito_proxy.empty_page_next(3)  # and three empty pages that still carry a token
    result = scan(clients, source_for(pool, cognito_proxy.endpoint))
    assert result.complete
    assert usernames(result) == names
    assert result.pages == 15 + 3


def test_user_deleted_mid_scan_restarts_and_completes(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 150)
    deleted: list[str] = []

    def delete_next_user(operation: str, body: dict[str, Any]) -> None:
        # moto's token names the next user's id: deleting that user makes moto reject it.
        token = body.get("PaginationToken")
        if operation == "ListUsers" and token and not deleted:
            next_id = json.loads(base64.b64decode(token + "=="))["uniqueAttributes"]
            result = cognito_admin.client.list_users(
                UserPoolId=pool.id, Filter=f'sub = "{next_id}"'
            )
            name = result["Users"][0]["Username"]
            cognito_admin.delete_user(pool.id, name)
            deleted.append(name)

    cognito_proxy.before_forward = delete_next_user
    result = scan(clients, source_for(pool, cognito_proxy.endpoint))
    assert cognito_proxy.count("ListUsers") > 0
    assert len(deleted) == 1
    assert result.restarts == 1
    assert result.complete
    assert usernames(result) == sorted(set(names) - set(deleted))


def test_token_rejected_too_often_is_incomplete_never_complete(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 150)
    cognito_proxy.reject_token_next(100)
    result = scan(clients, source_for(pool, cognito_proxy.endpoint))
    assert not result.complete
    assert result.restarts == FAST.max_restarts + 1
    assert isinstance(result.error, SourceUnavailable)
    assert result.error.reason == "PaginationTokenRejected"
    assert len(result.users) == 60  # what the last pass read before its token was refused


def test_throttling_beyond_boto3_retries_is_retried_on_the_same_page(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 130)
    cognito_proxy.throttle_next(3)  # boto3 makes 2 attempts, then the scan asks again
    result = scan(clients, source_for(pool, cognito_proxy.endpoint))
    assert result.complete
    assert usernames(result) == names
    assert result.throttles == 3
    assert cognito_proxy.count("ListUsers", "TooManyRequestsException") == 3
    assert result.pages == 3


@pytest.mark.parametrize(
    ("inject", "reason"),
    [
        (lambda proxy: proxy.throttle_next(1000), "Throttled"),
        (
            lambda proxy: proxy.fail_next(1000, status=503, code="ServiceUnavailable"),
            "ServiceError",
        ),
        (lambda proxy: proxy.fail_next(1000, status=500), "ServiceError"),
    ],
    ids=["throttled", "503", "500"],
)
def test_persistent_faults_mid_scan_give_an_incomplete_scan(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
    inject: Callable[[CognitoProxy], None],
    reason: str,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 200)
    armed = threading.Event()

    def fail_after_first_page(operation: str, body: dict[str, Any]) -> None:
        if operation == "ListUsers" and not armed.is_set():
            armed.set()
            inject(cognito_proxy)

    cognito_proxy.before_forward = fail_after_first_page
    result = scan(clients, source_for(pool, cognito_proxy.endpoint))
    assert not result.complete
    assert isinstance(result.error, SourceUnavailable) and result.error.reason == reason
    assert result.pages == 1 and len(result.users) == 60
    # boto3's attempts times (1 + the scan's own re-asks) for the second page
    assert cognito_proxy.count("ListUsers") == 1 + FAST.max_attempts * (1 + FAST.page_retries)


def test_transient_5xx_is_survived(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
) -> None:
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 130)
    cognito_proxy.fail_next(3, status=500)
    cognito_proxy.drop_next(1)
    result = scan(clients, source_for(pool, cognito_proxy.endpoint), segments=16)
    assert result.complete
    assert usernames(result) == names


def test_a_page_whose_connections_all_drop_is_asked_again(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
) -> None:
    # Every boto3 attempt at the first page loses its connection mid-answer. The endpoint
    # was reached, so the page is asked again like a 5xx (with 16 segments, two 500s and a
    # drop on one request failed the scan now and then).
    pool = cognito_pool()
    names = cognito_admin.seed_users(pool, 70)
    cognito_proxy.drop_next(FAST.max_attempts)
    result = scan(clients, source_for(pool, cognito_proxy.endpoint))
    assert result.complete, result.error
    assert usernames(result) == names
    assert cognito_proxy.count("ListUsers") == FAST.max_attempts + 2


def test_segmented_scan_is_incomplete_if_any_segment_fails(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 300)
    # Every request of segment "a" fails (boto3's retries included); the others succeed.
    # Failing the segment itself, not "whatever comes next", keeps this independent of
    # which segments happen to finish first.
    cognito_proxy.error_next(
        1000,
        "InternalErrorException",
        status=500,
        operation="ListUsers",
        where=lambda body: body.get("Filter") == 'sub ^= "a"',
    )
    result = scan(clients, source_for(pool, cognito_proxy.endpoint), segments=16)
    assert cognito_proxy.count("ListUsers") > 16  # segment "a" was tried, and retried
    assert not result.complete and result.error is not None


# -- describe and its reasons -----------------------------------------------------------


def test_describe_succeeds_on_an_existing_pool(
    clients: CognitoClients, cognito_pool: Callable[..., PoolInfo], moto_server: MotoServer
) -> None:
    asyncio.run(clients.pool(source_for(cognito_pool(), moto_server.endpoint)).describe())


def test_describe_of_a_missing_pool_says_pool_not_found(
    clients: CognitoClients, cognito_pool: Callable[..., PoolInfo], moto_server: MotoServer
) -> None:
    real = cognito_pool()
    missing = PoolInfo("us-west-2_doesnotexist", real.arn, real.account, real.region, "gone")
    with pytest.raises(SourceRejected) as caught:
        asyncio.run(clients.pool(source_for(missing, moto_server.endpoint)).describe())
    assert caught.value.reason == "PoolNotFound"
    assert "us-west-2_doesnotexist" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        ("UnrecognizedClientException", SourceRejected, "InvalidCredentials"),
        ("InvalidSignatureException", SourceRejected, "InvalidCredentials"),
        ("ExpiredTokenException", SourceRejected, "InvalidCredentials"),
        ("AccessDeniedException", SourceRejected, "AccessDenied"),
        ("NotAuthorizedException", SourceRejected, "AccessDenied"),
        ("TooManyRequestsException", SourceUnavailable, "Throttled"),
        ("InternalErrorException", SourceUnavailable, "ServiceError"),
    ],
)
def test_describe_maps_aws_errors_to_reasons(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_proxy: CognitoProxy,
    code: str,
    kind: type[Exception],
    reason: str,
) -> None:
    status = 500 if code == "InternalErrorException" else 400
    cognito_proxy.error_next(10, code, "denied", status=status, operation="DescribeUserPool")
    with pytest.raises(kind) as caught:
        asyncio.run(clients.pool(source_for(cognito_pool(), cognito_proxy.endpoint)).describe())
    assert getattr(caught.value, "reason", None) == reason
    assert code in str(caught.value)


def test_describe_on_a_closed_port_says_endpoint_unreachable(
    clients: CognitoClients, cognito_pool: Callable[..., PoolInfo]
) -> None:
    with refused_port() as port, pytest.raises(SourceUnavailable) as caught:
        source = source_for(cognito_pool(), f"http://127.0.0.1:{port}")
        asyncio.run(clients.pool(source).describe())
    assert caught.value.reason == "EndpointUnreachable"


def test_unresolvable_credentials_are_reported_without_raising_from_scan(
    make_clients: Callable[..., CognitoClients],
    cognito_pool: Callable[..., PoolInfo],
    moto_server: MotoServer,
    tmp_path: Path,
) -> None:
    clients = make_clients(secrets=SecretResolver(tmp_path / "empty", env={}))
    source = source_for(cognito_pool(), moto_server.endpoint)
    result = scan(clients, source)
    assert not result.complete
    assert isinstance(result.error, SourceRejected)
    assert result.error.reason == "InvalidCredentials"
    assert "BRIDGE_VAR_TEST_AWS_KEY_ID" in str(result.error)  # names the reference, not a value
    with pytest.raises(SourceRejected):
        asyncio.run(clients.pool(source).describe())


# -- budget, clients and endpoints ----------------------------------------------------


def test_pools_of_one_account_share_one_bucket_and_every_request_takes_a_token(
    make_clients: Callable[..., CognitoClients],
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
) -> None:
    clients = make_clients(rate=5)
    first, second = cognito_pool(), cognito_pool()
    for pool in (first, second):
        cognito_admin.seed_users(pool, 250)  # 5 pages each
    pool_a = clients.pool(source_for(first, cognito_proxy.endpoint))
    pool_b = clients.pool(source_for(second, cognito_proxy.endpoint))
    other_region = clients.pool(
        CognitoSource(
            pool=first.pool_arn.__class__(
                arn=first.arn.replace("us-west-2", "eu-west-1"),
                partition="aws",
                region="eu-west-1",
                account=first.account,
                pool_id=first.id.replace("us-west-2", "eu-west-1"),
            )
        )
    )
    assert pool_a.bucket is pool_b.bucket
    assert other_region.bucket is not pool_a.bucket
    cognito_proxy.throttle_next(1)  # a boto3 retry must take a token too

    async def both() -> list[ScanResult]:
        return list(await asyncio.gather(pool_a.scan(), pool_b.scan()))

    results = asyncio.run(both())
    assert all(r.complete and len(r.users) == 250 for r in results)
    assert pool_a.bucket.stats().acquired == len(cognito_proxy.requests) == 11
    # Paced at 5/s, at most 5 requests fall in a one-second window (6 when one sits exactly
    # on the window's edge); unpaced, all 11 would arrive within a fraction of a second.
    assert cognito_proxy.observed_max_rate <= 6


def test_clients_are_shared_per_credentials_and_built_off_the_event_loop(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    moto_server: MotoServer,
    secrets: SecretResolver,
) -> None:
    first, second = cognito_pool(), cognito_pool()
    a = clients.client_for(source_for(first, moto_server.endpoint))
    assert clients.client_for(source_for(second, moto_server.endpoint)) is a
    other_endpoint = clients.client_for(source_for(first, moto_server.endpoint + "/"))
    assert other_endpoint is not a

    threads: list[str] = []
    a.meta.events.register(
        "before-send.cognito-identity-provider",
        lambda **_: threads.append(threading.current_thread().name),
    )
    result = scan(clients, source_for(first, moto_server.endpoint), segments=16)
    assert result.complete and len(threads) == 16
    assert all(name.startswith("cognito") for name in threads)

    # A rotated secret gives a new client: the cache key follows the values.
    secrets._env = {"BRIDGE_VAR_TEST_AWS_KEY_ID": "AKIAROTATEDKEY000001"}  # type: ignore[misc]
    assert clients.client_for(source_for(first, moto_server.endpoint)) is not a


def test_rotated_credentials_replace_the_cached_client_instead_of_adding_one(
    make_clients: Callable[..., CognitoClients],
    cognito_pool: Callable[..., PoolInfo],
    cognito_proxy: CognitoProxy,
    secrets: SecretResolver,
) -> None:
    env = {"BRIDGE_VAR_TEST_AWS_KEY_ID": ACCESS_KEY_ID}
    clients = make_clients(secrets=SecretResolver(secrets.secrets_dir, env=env))
    source = source_for(cognito_pool(), cognito_proxy.endpoint)
    rotating, sharing = clients.pool(source), clients.pool(source)
    asyncio.run(rotating.describe())
    asyncio.run(sharing.describe())
    assert clients.cached_clients == 1

    def rotate_and_describe(pool: CognitoPool, key_id: str) -> None:
        env["BRIDGE_VAR_TEST_AWS_KEY_ID"] = key_id
        # AWS refuses the old key; the pool then re-resolves its secrets on the next call.
        cognito_proxy.error_next(1, "UnrecognizedClientException", operation="DescribeUserPool")
        with pytest.raises(SourceRejected, match="not accepted"):
            asyncio.run(pool.describe())
        asyncio.run(pool.describe())
        assert f"Credential={key_id}/" in cognito_proxy.requests[-1].authorization

    for rotation in range(5):
        rotate_and_describe(rotating, f"AKIAROTATED{rotation:09d}")
    # The other pool still uses the first key's client; every intermediate one is gone.
    assert clients.cached_clients == 2
    asyncio.run(sharing.describe())
    assert f"Credential={ACCESS_KEY_ID}/" in cognito_proxy.requests[-1].authorization

    rotate_and_describe(sharing, "AKIAROTATED000000004")  # catches up with the same values
    assert clients.cached_clients == 1


@pytest.mark.parametrize(
    "variable",
    [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",  # boto3's service-specific name
        "AWS_ENDPOINT_URL_COGNITO_IDP",  # the name DESIGN §2 documents
    ],
)
def test_endpoint_comes_from_the_environment_when_the_bridge_sets_none(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 5)
    monkeypatch.setenv(variable, cognito_proxy.endpoint)
    result = scan(clients, source_for(pool, None))
    assert result.complete and len(result.users) == 5
    assert cognito_proxy.count("ListUsers") == 1


# -- secrets ----------------------------------------------------------------------------


def assert_no_secret_in(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"secret value {secret[:4]}... leaked"


def captured_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(str(record.exc_info[1]))
    return "\n".join(parts)


def test_static_credentials_reach_the_request_but_never_a_log_or_error(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_admin: CognitoAdmin,
    cognito_proxy: CognitoProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 70)
    source = source_for(pool, cognito_proxy.endpoint)
    # AWS sometimes echoes the canonical request (with the token) in an error message.
    cognito_proxy.error_next(
        1, "UnrecognizedClientException", f"bad token {SESSION_TOKEN}", operation="DescribeUserPool"
    )
    with pytest.raises(SourceRejected) as caught:
        asyncio.run(clients.pool(source).describe())
    cognito_proxy.throttle_next(2)
    result = scan(clients, source)

    assert result.complete and len(result.users) == 70
    seen = cognito_proxy.requests[-1]
    assert f"Credential={ACCESS_KEY_ID}/" in seen.authorization
    assert seen.security_token == SESSION_TOKEN
    assert any(r.name.startswith("botocore") for r in caplog.records)  # wire logs were on
    assert_no_secret_in(str(caught.value), ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)
    assert_no_secret_in(captured_text(caplog), ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)


@pytest.mark.parametrize("from_chain", [False, True], ids=["static-source", "default-chain"])
def test_assumed_role_credentials_are_used_and_never_logged(
    clients: CognitoClients,
    cognito_pool: Callable[..., PoolInfo],
    cognito_proxy: CognitoProxy,
    moto_server: MotoServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    from_chain: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.endpoint)  # STS answered by moto
    if from_chain:  # the role is assumed with the default chain's (environment) credentials
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    pool = cognito_pool()
    role = f"arn:aws:iam::{pool.account}:role/cognito-reader"
    credentials = None if from_chain else STATIC_AUTH.credentials
    auth = AwsAuth(credentials=credentials, assume_role_arn=role)
    result = scan(clients, source_for(pool, cognito_proxy.endpoint, auth=auth))
    assert result.complete

    seen = cognito_proxy.requests[-1]
    temporary_key = seen.authorization.split("Credential=", 1)[1].split("/", 1)[0]
    assert temporary_key != ACCESS_KEY_ID  # signed with the role's credentials
    assert seen.security_token and seen.security_token != SESSION_TOKEN
    assert any(r.name == "botocore.parsers" for r in caplog.records)  # STS body was logged
    assert_no_secret_in(
        captured_text(caplog), ACCESS_KEY_ID, SESSION_TOKEN, temporary_key, seen.security_token
    )
