"""Full ListUsers scans of one user pool, in one piece or in `sub`-prefix segments.

A scan either streams (`on_page`: each page's users are handed on as they arrive and not
kept, so memory is one page per segment whatever the pool's size) or collects every user
into `ScanResult.users` (tools and tests that want the pool in hand). A streaming consumer
may be handed a user more than once in one scan: a restarted segment reads its pages again,
and ListUsers is eventually consistent.

A scan reads every page (`Limit` 60) until a response carries no `PaginationToken`; short
and empty pages are normal. A rejected token restarts the scan (bounded), throttling and
5xx that outlast boto3's retries are retried on the same page after a jittered back-off
(bounded). Whatever gives up makes the result `complete=False`, and nobody may derive
deletions from an incomplete scan. A segmented scan runs one such scan per `sub` prefix
("0".."f") concurrently; every Cognito user has a `sub` (a lowercase UUID it assigns), which
is what makes the segments cover the pool. A reader cannot rely on that (`segments_cover`):
the poller checks a segmented scan against the subs it knows and rescans in one piece when a
known user could not have been listed, so that no user is ever taken for deleted.

The calls themselves (client, request budget, deadline, error mapping) are
`runner.sources.cognito.client`'s: a scan is given one call function.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from runner._kits.backoff import backoff_step, equal_jitter
from runner._kits.wording import plural
from runner.errors import BridgeRunnerError, SourceRejected, SourceUnavailable

if TYPE_CHECKING:
    from runner.sources.cognito.client import CognitoSettings

log = logging.getLogger(__name__)

LIST_USERS_LIMIT = 60  # the largest page ListUsers allows
SEGMENT_ALPHABET = "0123456789abcdef"  # `sub` is a lowercase UUID
MAX_SEGMENTS = 256
_TOKEN_REJECTED_REASONS = frozenset({"PaginationTokenRejected", "InvalidRequest"})


# Takes one page's users (raw UserType dicts) as the scan reads them.
PageConsumer = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass(slots=True)
class ScanResult:
    """What one full scan read. `complete=False` means users may be missing: no deletions."""

    # Raw UserType dicts (dates: epoch seconds), each Username once; empty when streamed.
    users: list[dict[str, Any]]
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


@dataclass(slots=True)
class SegmentOutcome:
    """What one segment's scan (or one lone call) read and went through."""

    users: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    throttles: int = 0
    restarts: int = 0
    error: BridgeRunnerError | None = None


class CognitoCall(Protocol):
    """One Cognito call; adds the throttled answers it met to `outcome.throttles`.
    Raises SourceRejected or SourceUnavailable."""

    async def __call__(
        self, operation: str, params: Mapping[str, Any], outcome: SegmentOutcome
    ) -> dict[str, Any]: ...


async def scan_pool(
    call: CognitoCall,
    pool_id: str,
    settings: CognitoSettings,
    *,
    segments: int = 1,
    on_page: PageConsumer | None = None,
) -> ScanResult:
    """Read every user of the pool; never raises for Cognito failures (see `error`).

    With `on_page`, each page's users go to it as they are read (awaited before the segment
    asks for its next page, which bounds memory) and `ScanResult.users` stays empty; a
    `BridgeRunnerError` it raises ends that segment like a failed call: the scan is
    incomplete."""
    return await _PoolScan(call, pool_id, settings, on_page).scan(segments)


class _TokenRejected(Exception):
    """The pagination token was refused (the next user was deleted, or it expired)."""

    def __init__(self, cause: BridgeRunnerError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _PoolScan:
    def __init__(
        self,
        call: CognitoCall,
        pool_id: str,
        settings: CognitoSettings,
        on_page: PageConsumer | None,
    ) -> None:
        self._call = call
        self.pool_id = pool_id
        self._settings = settings
        self._on_page = on_page

    async def scan(self, segments: int) -> ScanResult:
        prefixes = segment_prefixes(segments)
        started = time.monotonic()
        outcomes = [SegmentOutcome() for _ in prefixes]
        try:
            async with asyncio.TaskGroup() as group:
                for prefix, outcome in zip(prefixes, outcomes, strict=True):
                    group.create_task(self._scan_segment(prefix, outcome))
        except BaseExceptionGroup as failed:
            # Only what is no `BridgeRunnerError` gets here (a bug, or a consumer's crash):
            # raise it as itself, not wrapped, so that it reads as it would from one segment.
            if len(failed.exceptions) == 1:
                raise failed.exceptions[0] from None
            raise
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

    async def _scan_segment(self, prefix: str, outcome: SegmentOutcome) -> None:
        base: dict[str, Any] = {"UserPoolId": self.pool_id, "Limit": LIST_USERS_LIMIT}
        if prefix:
            base["Filter"] = f'sub ^= "{prefix}"'
        while True:  # one pass per (re)start
            users: dict[str, dict[str, Any]] = {}
            try:
                await self._read_pages(base, users, outcome)
                outcome.users = list(users.values())
                return
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

    async def _read_pages(
        self, base: dict[str, Any], users: dict[str, dict[str, Any]], outcome: SegmentOutcome
    ) -> None:
        """One pass over the pages of a segment, into `users`, until no token is left."""
        token: str | None = None
        empty_pages = 0
        while True:
            params = dict(base, PaginationToken=token) if token else base
            page = await self._list_users_page(params, outcome)
            outcome.pages += 1
            batch: list[dict[str, Any]] = page.get("Users", [])
            if self._on_page is not None:
                if batch:
                    await self._on_page(batch)
            else:
                for user in batch:
                    users[user["Username"]] = user
            token = page.get("PaginationToken") or None
            if token is None:
                return
            empty_pages = 0 if batch else empty_pages + 1
            if empty_pages > self._settings.max_empty_pages:
                raise SourceUnavailable(
                    f"ListUsers on pool {self.pool_id}: "
                    f"{plural(empty_pages, 'empty page')} in a row still carrying a "
                    "pagination token",
                    reason="ServiceError",
                )

    async def _list_users_page(
        self, params: dict[str, Any], outcome: SegmentOutcome
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
                delay = self._backoff(attempt, exc.delay)
                attempt += 1
                log.info(
                    "ListUsers on %s: %s; asking again in %.1fs (%d/%d)",
                    self.pool_id,
                    exc.reason,
                    delay,
                    attempt,
                    self._settings.page_retries,
                )
                # Nothing to wake it early: a stop cancels the scan's task instead.
                await asyncio.sleep(delay)

    def _backoff(self, retry: int, suggested: float | None) -> float:
        """The wait before re-ask number `retry` (0: the first), no sooner than `suggested`
        (a Retry-After); jittered, so that concurrent segments do not ask again in lockstep."""
        step = backoff_step(
            self._settings.retry_backoff, retry, cap=self._settings.max_retry_backoff
        )
        return equal_jitter(step, floor=suggested or 0.0)


def _segment(prefix: str) -> str:
    return f" (segment sub ^= {prefix!r})" if prefix else ""
