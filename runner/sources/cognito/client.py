"""Reading Cognito user pools: shared boto3 clients, and one handle per pool.

    CognitoClients          one per process: client cache, thread pool, request budgets
    └── CognitoPool         one per bridge: describe() and scan(segments=...)

Clients are built from a bridge's auth when first needed (`runner.aws.credentials`:
static keys resolved at that moment, an assumed role refreshed by botocore, else boto3's
default chain). Clients are shared by every bridge with the same (account, region,
credentials, role, endpoint); the credentials part of that key is an HMAC of the resolved
values, so it changes when a secret rotates and reveals nothing. A client stays cached while
some `CognitoPool` uses it: when a pool re-resolves rotated credentials, the client under the
old key is closed and dropped unless another pool still uses it. Without `endpoint`,
`endpoint_url` stays unset so that boto3 applies AWS_ENDPOINT_URL /
AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER itself; boto3 ignores the shorter
AWS_ENDPOINT_URL_COGNITO_IDP that DESIGN §2 names, so that one is applied here.

boto3 is blocking: every call runs in one bounded ThreadPoolExecutor, never on the event
loop. Each call first takes a token from its (account, region) bucket on the event loop;
boto3's own retries (standard mode, set explicitly) take theirs in the worker thread
through a `before-send` hook, since they count against the same AWS quota, and that hook
also paces every attempt on its actual send time (`TokenBucket.pace_blocking`). Both draw
on the pool's own share of the bucket (its lane, keyed by the pool id).

Dates stay the epoch seconds (int or float) that Cognito's JSON carries: botocore's default
parser would make each a datetime with its own `dateutil.tz.tzlocal()`, about 8 µs and
500 bytes per date, two dates per user, and the first thing `runner.polling.diff` would do is turn
it back into a number. Only these clients parse that way; STS keeps botocore's default.

What a full scan reads, page by page and segment by segment, is `runner.sources.cognito.scan`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import parse_timestamp

from runner import __version__
from runner.aws.botocore_logs import guard_botocore_logs
from runner.aws.credentials import (
    StaticKeys,
    assumed_role_credentials,
    fingerprint,
    resolve_static,
    use_credentials,
)
from runner.errors import SecretError, SourceRejected, SourceUnavailable
from runner.model import CognitoSource
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import RequestBudgets, TokenBucket
from runner.sources.cognito.errors import THROTTLED_CODES, secret_error, translate_error
from runner.sources.cognito.scan import (
    SEGMENT_ALPHABET,
    PageConsumer,
    ScanResult,
    SegmentOutcome,
    scan_pool,
)

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

log = logging.getLogger(__name__)

_SERVICE_EVENT_ID = "cognito-identity-provider"  # botocore's hyphenized service id
SHORT_ENDPOINT_ENV = "AWS_ENDPOINT_URL_COGNITO_IDP"
BOTO3_ENDPOINT_ENV = "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CognitoSettings:
    """Timeouts and bounds for Cognito calls and scans (defaults suit production)."""

    max_attempts: int = 3  # boto3 standard mode: total attempts per call
    connect_timeout: float = 5.0
    # A ListUsers page of 60 users is answered in well under a second; an endpoint silent for
    # this long is not going to answer.
    read_timeout: float = 15.0
    # One call, boto3's attempts included (5 + 3 x 15 s at most), is abandoned after this
    # long, so that a Cognito endpoint that accepts connections and never answers turns
    # SourceReady False within about a minute instead of leaving the bridge Ready.
    call_deadline: float = 50.0
    page_retries: int = 5  # re-asks for one page after boto3 gave up (throttled, 5xx)
    retry_backoff: float = 1.0  # first back-off before re-asking; doubles, with jitter
    max_retry_backoff: float = 20.0
    max_restarts: int = 3  # rejected pagination tokens tolerated per segment and scan
    max_empty_pages: int = 50  # consecutive empty pages with a token before giving up
    role_session_name: str = "bridge-runner"


# --- per-call context shared with botocore's hooks ----------------------------------------


@dataclass(slots=True)
class _CallContext:
    """What one boto3 call's hooks report back; set in the worker thread during the call."""

    bucket: TokenBucket
    budget_key: str  # whose share of the bucket the call draws on: its pool's
    throttles: int = 0
    retries: int = 0


_current_call = threading.local()


def _invoke(context: _CallContext, call: Callable[[], T]) -> T:
    """Run one boto3 call in a worker thread with `context` visible to the hooks."""
    _current_call.context = context
    try:
        return call()
    finally:
        _current_call.context = None


def _pace_send(request: Any, **_: Any) -> None:
    """before-send hook, run in the worker thread right before each attempt goes out.

    A retry is a request against the quota too, so it takes its own token (the first
    attempt took one on the event loop). Every attempt is then paced on actual send time,
    so that calls started late by a busy loop or thread pool do not leave in a bunch.
    """
    context: _CallContext | None = getattr(_current_call, "context", None)
    if context is None:
        return
    attempt = (getattr(request, "context", None) or {}).get("retries", {}).get("attempt", 1)
    if attempt > 1:
        context.retries += 1
        context.bucket.acquire_blocking(context.budget_key)
    context.bucket.pace_blocking()


def _count_throttle(response: Any = None, **_: Any) -> None:
    """needs-retry hook (called after every attempt): count each throttled answer."""
    context: _CallContext | None = getattr(_current_call, "context", None)
    if context is None or response is None:
        return
    http_response, parsed = response
    code = (parsed or {}).get("Error", {}).get("Code", "")
    if code in THROTTLED_CODES or getattr(http_response, "status_code", 0) == 429:
        context.throttles += 1


# --- the client cache ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ClientKey:
    account: str
    region: str
    credentials_id: str = field(repr=False)  # HMAC of the resolved values, or "default-chain"
    role_arn: str | None
    endpoint: str | None


class CognitoClients:
    """Shared by all bridges: boto3 clients by (account, region, credentials, role, endpoint),
    the thread pool every boto3 call runs in, and the request budgets. `close()` shuts both."""

    def __init__(
        self,
        secrets: SecretResolver,
        budgets: RequestBudgets,
        *,
        max_workers: int = 8,
        settings: CognitoSettings | None = None,
    ) -> None:
        self.secrets = secrets
        self.budgets = budgets
        self.settings = settings or CognitoSettings()
        self.max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="cognito")
        self._clients: dict[_ClientKey, CognitoIdentityProviderClient] = {}
        # Which key each live pool uses; a pool that is dropped leaves it by itself.
        self._users: weakref.WeakKeyDictionary[CognitoPool, _ClientKey] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._hmac_key = os.urandom(32)
        self._closed = False
        guard_botocore_logs()

    def pool(self, source: CognitoSource) -> CognitoPool:
        return CognitoPool(self, source)

    def close(self) -> None:
        """Wait for calls in flight, stop the thread pool and close every client's connections."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            self._users.clear()
        for client in clients:
            client.close()

    async def run(self, call: Callable[[], T]) -> T:
        """Run a blocking call in the shared thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    @property
    def cached_clients(self) -> int:
        """How many boto3 clients are cached (one per distinct key some pool uses)."""
        with self._lock:
            return len(self._clients)

    def client_for(
        self, source: CognitoSource, *, user: CognitoPool | None = None
    ) -> CognitoIdentityProviderClient:
        """The (cached) client for `source`. Blocking: call it through `run()`.

        With `user`, the pool is recorded as using this client, and every cached client
        that no live pool uses any more (the one under a rotated secret's old values, say)
        is closed and dropped. Nothing keeps a client fetched without `user` cached: the
        next such sweep may close it.
        Raises SecretError when a credential reference cannot be resolved.
        """
        static = resolve_static(self.secrets, source.auth.credentials)
        credentials_id = "default-chain" if static is None else fingerprint(self._hmac_key, static)
        key = _ClientKey(
            account=source.pool.account,
            region=source.pool.region,
            credentials_id=credentials_id,
            role_arn=source.auth.assume_role_arn,
            endpoint=source.endpoint or _endpoint_from_short_env_name(),
        )
        with self._lock:
            if self._closed:
                raise RuntimeError("CognitoClients is closed")
            client = self._clients.get(key)
            if client is None:
                client = self._create_client(key, static)
                self._clients[key] = client
            unused: list[CognitoIdentityProviderClient] = []
            if user is not None:
                self._users[user] = key
                in_use = set(self._users.values())
                unused = [self._clients.pop(k) for k in list(self._clients) if k not in in_use]
        # Outside the lock: closing only drops pooled connections (a request still in
        # flight on one finishes, then its connection is closed instead of reused).
        for stale in unused:
            stale.close()
        return client

    def _config(self) -> Config:
        return Config(
            retries={"mode": "standard", "total_max_attempts": self.settings.max_attempts},
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            # Every worker thread (and so every segment in flight) may be in a call on the
            # same client at once.
            max_pool_connections=max(self.max_workers, len(SEGMENT_ALPHABET)),
            user_agent_extra=f"bridge-runner/{__version__}",
        )

    def _create_client(
        self, key: _ClientKey, static: StaticKeys | None
    ) -> CognitoIdentityProviderClient:
        session = botocore.session.Session()
        session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=_epoch_seconds_as_sent
        )
        credentials: Credentials | None = Credentials(*static) if static else None
        if key.role_arn:
            credentials = assumed_role_credentials(
                credentials,
                role_arn=key.role_arn,
                region=key.region,
                config=self._config(),
                session_name=self.settings.role_session_name,
            )
        if credentials is not None:
            use_credentials(session, credentials)
        client = boto3.session.Session(botocore_session=session).client(
            "cognito-idp",
            region_name=key.region,
            endpoint_url=key.endpoint,  # None: boto3 applies its AWS_ENDPOINT_URL variables
            config=self._config(),
        )
        client.meta.events.register(f"before-send.{_SERVICE_EVENT_ID}", _pace_send)
        client.meta.events.register(f"needs-retry.{_SERVICE_EVENT_ID}", _count_throttle)
        guard_botocore_logs()  # botocore imports some of its modules (and loggers) lazily
        return client


def _epoch_seconds_as_sent(value: Any) -> Any:
    """botocore timestamp parser: JSON epoch numbers are kept as sent (see the module
    docstring); anything else (no JSON API of Cognito sends it) is parsed as botocore would."""
    if type(value) is int or type(value) is float:
        return value
    return parse_timestamp(value)


def _endpoint_from_short_env_name() -> str | None:
    """`AWS_ENDPOINT_URL_COGNITO_IDP`, the name DESIGN §2 documents, when boto3's own is unset.

    boto3 derives the service-specific variable from the service id "Cognito Identity
    Provider" (AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER) and ignores the short name; when
    neither is set, boto3 still applies AWS_ENDPOINT_URL and the shared config itself.
    """
    if os.environ.get(BOTO3_ENDPOINT_ENV):
        return None
    return os.environ.get(SHORT_ENDPOINT_ENV) or None


# --- one pool ---------------------------------------------------------------------------


class CognitoPool:
    """One user pool, read through the shared clients, thread pool and request budget."""

    def __init__(self, clients: CognitoClients, source: CognitoSource) -> None:
        self.source = source
        self.bucket = clients.budgets.for_account(source.pool.account, source.pool.region)
        self._clients = clients
        self._settings = clients.settings
        self._client: CognitoIdentityProviderClient | None = None

    @property
    def pool_id(self) -> str:
        return self.source.pool.pool_id

    def __repr__(self) -> str:
        return f"CognitoPool({self.source.pool.arn})"

    async def describe(self) -> int | None:
        """Check that the pool exists and is readable with this bridge's credentials, and
        return its `EstimatedNumberOfUsers` (None when the answer has none), which sizes the
        first scan before any has counted the users.

        Raises SourceRejected (PoolNotFound, AccessDenied, InvalidCredentials) or
        SourceUnavailable (Throttled, EndpointUnreachable, ServiceError).
        """
        answer = await self._call(
            "DescribeUserPool", {"UserPoolId": self.pool_id}, SegmentOutcome()
        )
        estimate = (answer.get("UserPool") or {}).get("EstimatedNumberOfUsers")
        return estimate if isinstance(estimate, int) and not isinstance(estimate, bool) else None

    async def scan(self, *, segments: int = 1, on_page: PageConsumer | None = None) -> ScanResult:
        """Read every user of the pool (`runner.sources.cognito.scan.scan_pool`, streamed to
        `on_page` when given); never raises for Cognito failures (see `error`)."""
        return await scan_pool(
            self._call, self.pool_id, self._settings, segments=segments, on_page=on_page
        )

    async def _call(
        self, operation: str, params: Mapping[str, Any], outcome: SegmentOutcome
    ) -> dict[str, Any]:
        what = f"{operation} on pool {self.pool_id}"
        client = await self._get_client(what)
        method: Callable[..., Any] = (
            client.list_users if operation == "ListUsers" else client.describe_user_pool
        )
        # The pool's own lane of the bucket: pools of one (account, region) take turns.
        await self.bucket.acquire(self.pool_id)
        context = _CallContext(self.bucket, self.pool_id)
        deadline = self._settings.call_deadline
        try:
            # The worker thread cannot be interrupted, but its read timeout ends it; the
            # deadline ends the wait for it here, whatever boto3's retries still intend.
            async with asyncio.timeout(deadline):
                response: dict[str, Any] = await self._clients.run(
                    functools.partial(_invoke, context, functools.partial(method, **params))
                )
            return response
        except TimeoutError:
            raise SourceUnavailable(
                f"{what}: no answer within {deadline:g}s", reason="EndpointUnreachable"
            ) from None
        except Exception as exc:
            translated = translate_error(exc, what=what)
            if translated is None:
                raise
            if isinstance(translated, SourceRejected) and translated.reason == "InvalidCredentials":
                self._client = None  # re-resolve the secrets next time: they may have rotated
            raise translated from None
        finally:
            outcome.throttles += context.throttles

    async def _get_client(self, what: str) -> CognitoIdentityProviderClient:
        if self._client is None:
            try:
                self._client = await self._clients.run(
                    functools.partial(self._clients.client_for, self.source, user=self)
                )
            except SecretError as exc:
                raise secret_error(exc, what=what) from None
            except Exception as exc:
                translated = translate_error(exc, what=what)
                if translated is None:
                    raise
                raise translated from None
        return self._client
