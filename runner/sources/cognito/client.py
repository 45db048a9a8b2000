"""Reading Cognito user pools: shared boto3 clients, DescribeUserPool, and full ListUsers scans.

    CognitoClients          one per process: client cache, thread pool, request budgets
    └── CognitoPool         one per bridge: describe() and scan(segments=...)

Clients are built from a bridge's auth when first needed: static keys are resolved from
their `SecretRef`s at that moment (so a rotated secret is picked up by the next client a
bridge builds), an `assume_role_arn` is assumed through STS with botocore's refreshable
credentials (renewed before expiry, on the worker thread that needs them), and without
credentials boto3's default chain applies. Clients are shared by every bridge with the same
(account, region, credentials, role, endpoint); the credentials part of that key is an HMAC
of the resolved values under a per-process random key, so it changes when a secret rotates
and reveals nothing. A client stays cached while some `CognitoPool` uses it: when a pool
re-resolves rotated credentials, the client under the old key is closed and dropped unless
another pool still uses it. Without `endpoint`, `endpoint_url` stays unset so that boto3 applies
AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER itself; boto3 ignores the
shorter AWS_ENDPOINT_URL_COGNITO_IDP that DESIGN §2 names, so that one is applied here.

boto3 is blocking: every call runs in one bounded ThreadPoolExecutor, never on the event
loop. Each call first takes a token from its (account, region) bucket on the event loop;
boto3's own retries (standard mode, set explicitly) take theirs in the worker thread
through a `before-send` hook, since they count against the same AWS quota, and that hook
also paces every attempt on its actual send time (`TokenBucket.pace_blocking`).

Dates stay the epoch seconds (int or float) that Cognito's JSON carries: botocore's default
parser would make each a datetime with its own `dateutil.tz.tzlocal()`, about 8 µs and
500 bytes per date, two dates per user, and the first thing `runner.polling.diff` would do is turn
it back into a number. Only these clients parse that way; STS keeps botocore's default.

A scan reads every page (`Limit` 60) until a response carries no `PaginationToken`; short
and empty pages are normal. A rejected token restarts the scan (bounded), throttling and
5xx that outlast boto3's retries are retried on the same page after a back-off (bounded).
Whatever gives up makes the result `complete=False`, and nobody may derive deletions from
an incomplete scan. A segmented scan runs one such scan per `sub` prefix ("0".."f")
concurrently; every Cognito user has a `sub` (a lowercase UUID it assigns), which is what
makes the segments cover the pool. A reader cannot rely on that (`segments_cover`): the
poller checks a segmented scan against the subs it knows and rescans in one piece when a
known user could not have been listed, so that no user is ever taken for deleted.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
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
from botocore.utils import parse_timestamp

from runner import __version__
from runner._kits.backoff import equal_jitter
from runner._kits.wording import plural
from runner.errors import BridgeRunnerError, SecretError, SourceRejected, SourceUnavailable
from runner.model import AwsCredentials, CognitoSource
from runner.secrets.redaction import Redactor
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.botocore_logs import guard_botocore_logs
from runner.sources.cognito.budget import RequestBudgets, TokenBucket
from runner.sources.cognito.errors import THROTTLED_CODES, secret_error, translate_error

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

log = logging.getLogger(__name__)

LIST_USERS_LIMIT = 60  # the largest page ListUsers allows
SEGMENT_ALPHABET = "0123456789abcdef"  # `sub` is a lowercase UUID
MAX_SEGMENTS = 256
_SERVICE_EVENT_ID = "cognito-identity-provider"  # botocore's hyphenized service id
SHORT_ENDPOINT_ENV = "AWS_ENDPOINT_URL_COGNITO_IDP"
BOTO3_ENDPOINT_ENV = "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"
_TOKEN_REJECTED_REASONS = frozenset({"PaginationTokenRejected", "InvalidRequest"})

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


@dataclass(slots=True)
class ScanResult:
    """What one full scan read. `complete=False` means users may be missing: no deletions."""

    users: list[dict[str, Any]]  # raw UserType dicts (dates: epoch seconds), each Username once
    complete: bool
    pages: int
    throttles: int
    restarts: int
    duration: float  # seconds
    error: BridgeRunnerError | None = None  # why the scan is incomplete


def segments_cover(sub: str | None, segments: int) -> bool:
    """Whether a scan in `segments` parts can see a user with this `sub`.

    Real Cognito subs are lowercase UUIDs, but nothing guarantees it to a reader (an import,
    an emulator, a future format): a user outside every prefix is never listed by a
    segmented scan, and must not then be taken for deleted.
    """
    if segments == 1:
        return True
    if sub is None:
        return False
    width = len(segment_prefixes(segments)[0])
    return len(sub) >= width and all(ch in SEGMENT_ALPHABET for ch in sub[:width])


def segment_prefixes(segments: int) -> list[str]:
    """The `sub` prefixes that split a pool into `segments` disjoint parts (1, 16 or 256)."""
    if segments == 1:
        return [""]
    if segments == len(SEGMENT_ALPHABET):
        return list(SEGMENT_ALPHABET)
    if segments == len(SEGMENT_ALPHABET) ** 2:
        return [a + b for a in SEGMENT_ALPHABET for b in SEGMENT_ALPHABET]
    raise ValueError(f"segments must be 1, 16 or {MAX_SEGMENTS}, not {segments!r}")


# --- per-call context shared with botocore's hooks ----------------------------------------


@dataclass(slots=True)
class _CallContext:
    """What one boto3 call's hooks report back; set in the worker thread during the call."""

    bucket: TokenBucket
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
        context.bucket.acquire_blocking()
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


# --- credentials and the client cache ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ClientKey:
    account: str
    region: str
    credentials_id: str = field(repr=False)  # HMAC of the resolved values, or "default-chain"
    role_arn: str | None
    endpoint: str | None


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
        static = self._resolve_static(source.auth.credentials)
        key = _ClientKey(
            account=source.pool.account,
            region=source.pool.region,
            credentials_id="default-chain" if static is None else self._fingerprint(static),
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

    def _resolve_static(self, creds: AwsCredentials | None) -> tuple[str, str, str | None] | None:
        if creds is None:
            return None
        access_key_id = self.secrets.resolve(creds.access_key_id)
        secret_access_key = self.secrets.resolve(creds.secret_access_key)
        token = self.secrets.resolve(creds.session_token) if creds.session_token else None
        return access_key_id, secret_access_key, token

    def _fingerprint(self, values: tuple[str, str, str | None]) -> str:
        joined = "\0".join(v or "" for v in values).encode()
        return hmac.new(self._hmac_key, joined, hashlib.sha256).hexdigest()

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
        self, key: _ClientKey, static: tuple[str, str, str | None] | None
    ) -> CognitoIdentityProviderClient:
        session = botocore.session.Session()
        session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=_epoch_seconds_as_sent
        )
        credentials: Credentials | None = Credentials(*static) if static else None
        if key.role_arn:
            credentials = self._assumed_role_credentials(credentials, key)
        if credentials is not None:
            session.register_component(
                "credential_provider", CredentialResolver([_FixedCredentialProvider(credentials)])
            )
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

    def _assumed_role_credentials(self, source: Credentials | None, key: _ClientKey) -> Credentials:
        assert key.role_arn is not None
        # The default chain, resolved in a session of its own: the client's session must not
        # cache these source credentials as its own.
        source = source or botocore.session.Session().get_credentials()
        if source is None:
            raise NoCredentialsError()
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=functools.partial(
                botocore.session.Session().create_client,
                region_name=key.region,  # STS endpoint: AWS_ENDPOINT_URL(_STS) as boto3 does
                config=self._config(),
            ),
            source_credentials=source,
            role_arn=key.role_arn,
            extra_args={"RoleSessionName": self.settings.role_session_name},
        )
        # Fetched on first use and again before expiry, in the worker thread signing a call.
        return DeferredRefreshableCredentials(
            refresh_using=_registering(fetcher.fetch_credentials), method="assume-role"
        )


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


@dataclass(slots=True)
class _SegmentOutcome:
    users: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    throttles: int = 0
    restarts: int = 0
    error: BridgeRunnerError | None = None


class _TokenRejected(Exception):
    """The pagination token was refused (the next user was deleted, or it expired)."""

    def __init__(self, cause: BridgeRunnerError) -> None:
        super().__init__(str(cause))
        self.cause = cause


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

    async def describe(self) -> None:
        """Check that the pool exists and is readable with this bridge's credentials.

        Raises SourceRejected (PoolNotFound, AccessDenied, InvalidCredentials) or
        SourceUnavailable (Throttled, EndpointUnreachable, ServiceError).
        """
        await self._call("DescribeUserPool", {"UserPoolId": self.pool_id}, _SegmentOutcome())

    async def scan(self, *, segments: int = 1) -> ScanResult:
        """Read every user of the pool; never raises for Cognito failures (see `error`)."""
        prefixes = segment_prefixes(segments)
        started = time.monotonic()
        outcomes = [_SegmentOutcome() for _ in prefixes]
        async with asyncio.TaskGroup() as group:
            for prefix, outcome in zip(prefixes, outcomes, strict=True):
                group.create_task(self._scan_segment(prefix, outcome))
        users: dict[str, dict[str, Any]] = {}
        for outcome in outcomes:
            for user in outcome.users:
                users[user["Username"]] = user
        error = next((o.error for o in outcomes if o.error is not None), None)
        result = ScanResult(
            users=list(users.values()),
            complete=error is None,
            pages=sum(o.pages for o in outcomes),
            throttles=sum(o.throttles for o in outcomes),
            restarts=sum(o.restarts for o in outcomes),
            duration=time.monotonic() - started,
            error=error,
        )
        if error is not None:
            log.warning(
                "scan of %s incomplete after %s: %s",
                self.pool_id,
                plural(result.pages, "page"),
                error,
            )
        return result

    async def _scan_segment(self, prefix: str, outcome: _SegmentOutcome) -> None:
        base: dict[str, Any] = {"UserPoolId": self.pool_id, "Limit": LIST_USERS_LIMIT}
        if prefix:
            base["Filter"] = f'sub ^= "{prefix}"'
        while True:  # one pass per (re)start
            users: dict[str, dict[str, Any]] = {}
            token: str | None = None
            empty_pages = 0
            try:
                while True:
                    params = dict(base, PaginationToken=token) if token else base
                    page = await self._list_users_page(params, outcome)
                    outcome.pages += 1
                    batch: list[dict[str, Any]] = page.get("Users", [])
                    for user in batch:
                        users[user["Username"]] = user
                    token = page.get("PaginationToken") or None
                    if token is None:
                        outcome.users = list(users.values())
                        return
                    empty_pages = 0 if batch else empty_pages + 1
                    if empty_pages > self._settings.max_empty_pages:
                        raise SourceUnavailable(
                            f"ListUsers on pool {self.pool_id}: "
                            f"{plural(empty_pages, 'empty page')} in a row still carrying a "
                            "pagination token",
                            reason="ServiceError",
                        )
            except _TokenRejected as rejected:
                outcome.restarts += 1
                if outcome.restarts > self._settings.max_restarts:
                    outcome.users = list(users.values())
                    outcome.error = SourceUnavailable(
                        f"ListUsers on pool {self.pool_id}: pagination token rejected "
                        f"{plural(outcome.restarts, 'time')}; giving up this scan "
                        f"({rejected.cause})",
                        reason="PaginationTokenRejected",
                    )
                    return
                log.info("restarting scan of %s%s: %s", self.pool_id, _segment(prefix), rejected)
            except BridgeRunnerError as exc:
                outcome.users = list(users.values())
                outcome.error = exc
                return

    async def _list_users_page(
        self, params: dict[str, Any], outcome: _SegmentOutcome
    ) -> dict[str, Any]:
        """One page; re-asked after a back-off when throttling or 5xx outlast boto3's retries."""
        attempt = 0
        while True:
            try:
                return await self._call("ListUsers", params, outcome)
            except SourceRejected as exc:
                if "PaginationToken" in params and exc.reason in _TOKEN_REJECTED_REASONS:
                    raise _TokenRejected(exc) from None
                raise
            except SourceUnavailable as exc:
                # An endpoint that cannot be reached or does not answer already had boto3's
                # attempts and the call deadline; asking again would hold the scan (and the
                # bridge's Ready) for minutes. The next poll tries again.
                if attempt >= self._settings.page_retries or exc.reason == "EndpointUnreachable":
                    raise
                attempt += 1
                delay = self._backoff(attempt, exc.delay)
                log.info(
                    "ListUsers on %s: %s; asking again in %.1fs (%d/%d)",
                    self.pool_id,
                    exc.reason,
                    delay,
                    attempt,
                    self._settings.page_retries,
                )
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int, suggested: float | None) -> float:
        ceiling = min(
            self._settings.max_retry_backoff, self._settings.retry_backoff * 2 ** (attempt - 1)
        )
        # Jittered, so that concurrent segments do not ask again in lockstep.
        return equal_jitter(ceiling, floor=suggested or 0.0)

    async def _call(
        self, operation: str, params: Mapping[str, Any], outcome: _SegmentOutcome
    ) -> dict[str, Any]:
        what = f"{operation} on pool {self.pool_id}"
        client = await self._get_client(what)
        method: Callable[..., Any] = (
            client.list_users if operation == "ListUsers" else client.describe_user_pool
        )
        await self.bucket.acquire()
        context = _CallContext(self.bucket)
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


def _segment(prefix: str) -> str:
    return f" (segment sub ^= {prefix!r})" if prefix else ""
