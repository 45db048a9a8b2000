"""The NATS sink: publishes each event to a subject, acknowledged by JetStream when a stream
holds the subject, as core NATS otherwise; and says why a publish failed.

    NatsSender(target, secrets=, auth=, timeout=)
    sender.encode(events) -> NatsMessage            ValueError: not a valid CloudEvent
    await sender.deliver(message)                   returns once published (JetStream: once
                                                    the stream acknowledged it); raises
                                                    SinkUnavailable, SinkRejected or
                                                    SinkMisconfigured
    await sender.aclose() / await close_all()       end one sender's / every connection

The encoding is the CloudEvents NATS protocol binding in binary mode: the attributes as
`ce-*` headers, `content-type`, the data as the payload; plus `Nats-Msg-Id` = the event
id, so that JetStream drops a resend (after a crash, a lost acknowledgement) within its
duplicate window. One event per publish (capacity 1): `maxInFlight` gives concurrency.

Which mode: asked once per connection (`find_stream_name_by_subject`). A stream holding
the subject: JetStream, each publish waits for the stream's acknowledgement, so delivery
stays at least once. None (or a server without JetStream): core NATS, at most once: a
publish is "delivered" once the server has it (a flush), whether or not anyone listens.

Connections: one per sender, opened on the first publish and closed after `IDLE_CLOSE`
seconds without one (a bridge that stopped or restarted has no other way to close its
sender), or by `close_all()`, which `run` calls as it ends. nats-py's own reconnecting is
off: a lost connection fails the publish under way (retried with the bridge's backoff)
and the next publish connects again.

Secrets: the token, password and credentials are resolved per connection and never
leave nats-py; the sink URI holds none (the loader refuses `user:pass@`). What an error
says is built from class names and the server's error codes, masked for the secrets.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client, RawCredentials
from nats.js.client import JetStreamContext

from runner import defaults
from runner.delivery.encodings import encode_binary
from runner.delivery.policy import SendOutcome, report
from runner.delivery.texts import exception_text
from runner.errors import SecretError, SinkMisconfigured, SinkRejected, SinkUnavailable
from runner.loader.nats_uri import parse_nats_uri
from runner.model import NatsAuth, OutboxEvent, SecretRef, Target
from runner.secrets.resolver import SecretResolver

log = logging.getLogger(__name__)

# Seconds without a publish after which a sender closes its connection.
IDLE_CLOSE = 60.0
# JetStream API codes (the `code` of an error reply) that a later try may get past.
_RETRYABLE_API_CODES = frozenset({408, 429, 500, 503})

_OPEN: weakref.WeakSet[NatsSender] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class NatsMessage:
    """One publish: the headers (CloudEvents binding and `Nats-Msg-Id`) and the payload."""

    headers: dict[str, str]
    payload: bytes


def encode_nats(ev: OutboxEvent) -> NatsMessage:
    """The CloudEvents NATS binding in binary mode, with `Nats-Msg-Id` = the event id."""
    http = encode_binary(ev)
    headers = dict(http.headers)
    headers["Nats-Msg-Id"] = ev.event_id
    return NatsMessage(headers=headers, payload=http.body)


@dataclass(slots=True)
class _Connection:
    client: Client
    js: JetStreamContext
    stream: str | None  # the stream holding the subject; None: core NATS
    used: float  # loop time of the last publish


class NatsSender:
    """Publishes events to one NATS subject (see the module doc)."""

    def __init__(
        self,
        target: Target,
        *,
        secrets: SecretResolver,
        auth: NatsAuth | None = None,
        timeout: float = defaults.SINK_TIMEOUT,
    ) -> None:
        self._uri = target.uri
        self._server, self._subject = parse_nats_uri(target.uri)
        self._secrets = secrets
        self._auth = auth
        self._timeout = timeout
        self._conn: _Connection | None = None
        self._opening: asyncio.Lock | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._mask: list[str] = []  # the secret values of the connection, to mask
        self._violations = 0  # permissions violations the server reported
        self._denials: set[asyncio.Future[None]] = set()  # JetStream publishes waiting

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capacity(self) -> int:
        return 1

    @property
    def mode(self) -> str | None:
        """`jetstream`, `core`, or None before the first connection."""
        if self._conn is None:
            return None
        return "core" if self._conn.stream is None else "jetstream"

    @property
    def ready_text(self) -> str | None:
        """What SinkReady says once the sink took an event: which mode, and so which promise."""
        mode = self.mode
        if mode is None:
            return None
        if mode == "core":
            return "the sink accepts events (core NATS: at most once, no stream holds the subject)"
        return f"the sink accepts events (JetStream stream {self._conn and self._conn.stream})"

    def encode(self, events: Sequence[OutboxEvent]) -> NatsMessage:
        if len(events) != 1:
            raise ValueError("a NATS sink publishes exactly one event per message")
        return encode_nats(events[0])

    async def send(self, events: Sequence[OutboxEvent]) -> SendOutcome:
        return await report(self.deliver(self.encode(events)))

    async def deliver(self, message: NatsMessage) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                conn = await self._connection()
                await self._publish(conn, message)
        except (SinkUnavailable, SinkRejected, SinkMisconfigured):
            raise
        except (
            nats.errors.ConnectionClosedError,
            nats.errors.StaleConnectionError,
            nats.errors.OutboundBufferLimitError,
            nats.errors.NoServersError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.ConnectionDrainingError,
            OSError,
        ) as exc:
            await self._drop()
            raise SinkUnavailable(self._text(exc), reason="SinkUnreachable") from None
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            await self._drop()  # an answer may still come on it: start afresh
            raise SinkUnavailable(self._text(exc), reason="SinkTimeout") from None
        except nats.errors.NoRespondersError as exc:
            # JetStream mode: the stream is gone or not ready; asked again on a new connection.
            await self._drop()
            raise SinkUnavailable(self._text(exc), reason="SinkError") from None
        except nats.js.errors.APIError as exc:
            raise _api_failure(exc) from None
        except nats.errors.MaxPayloadError:
            raise SinkRejected(
                f"MaxPayloadError: the event ({len(message.payload)} bytes) is larger than the "
                "NATS server's max_payload",
                reason="EventTooLarge",
            ) from None
        except (nats.errors.BadSubjectError, nats.errors.BadHeaderError) as exc:
            raise SinkMisconfigured(self._text(exc), reason="InvalidSinkRequest") from None
        except nats.errors.Error as exc:
            await self._drop()
            raise SinkUnavailable(self._text(exc), reason="SinkError") from None

    async def _publish(self, conn: _Connection, message: NatsMessage) -> None:
        conn.used = asyncio.get_running_loop().time()
        if conn.stream is None:
            violations = self._violations
            await conn.client.publish(self._subject, message.payload, headers=message.headers)
            # The server answers a denied publish with an error before the PONG of a PING
            # sent after it; but nats-py writes a flush's PING ahead of the publishes it
            # still buffers, so only a second flush's PONG comes after that error.
            await conn.client.flush(timeout=max(1, int(self._timeout)))
            await conn.client.flush(timeout=max(1, int(self._timeout)))
            if self._violations > violations:
                raise self._denied()
            return
        # A copy: nats-py adds the expected-stream header to the dict it is given.
        publishing = asyncio.ensure_future(
            conn.js.publish(
                self._subject,
                message.payload,
                timeout=self._timeout,
                stream=conn.stream,
                headers=dict(message.headers),
            )
        )
        # A publish the server denies gets no answer: wait for the violation too.
        denied = asyncio.get_running_loop().create_future()
        self._denials.add(denied)
        try:
            await asyncio.wait({publishing, denied}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._denials.discard(denied)
            if not publishing.done():
                publishing.cancel()
                await asyncio.gather(publishing, return_exceptions=True)
        if denied.done():
            raise self._denied()
        ack = publishing.result()
        if ack.duplicate:
            log.debug(
                "nats sink: event %s was in stream %s already (dropped as a duplicate)",
                message.headers.get("Nats-Msg-Id"),
                conn.stream,
            )

    async def _connection(self) -> _Connection:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:  # requests in flight share one connection
            conn = self._conn
            if conn is not None and conn.client.is_connected:
                return conn
            await self._drop()
            self._conn = await self._open()
            _OPEN.add(self)
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.create_task(self._close_when_idle(), name="nats-idle")
            return self._conn

    async def _open(self) -> _Connection:
        options = await self._auth_options()
        client = Client()
        try:
            await client.connect(
                self._server,
                allow_reconnect=False,
                connect_timeout=max(1, int(self._timeout)),
                max_reconnect_attempts=0,
                error_cb=self._on_error,
                **options,
            )
        except BaseException as exc:
            await _close_quietly(client)  # nats-py leaves a refused connection's socket open
            if not isinstance(exc, nats.errors.Error):
                raise
            text = self._text(exc)
            if "authorization" in text.lower() or "authentication" in text.lower():
                raise SinkMisconfigured(
                    f"the NATS server refused the sink's credentials ({text})",
                    reason="SinkAuthFailed",
                ) from None
            raise SinkUnavailable(text, reason="SinkUnreachable") from None
        js = client.jetstream(timeout=self._timeout)
        try:
            stream: str | None = await js.find_stream_name_by_subject(self._subject)
        except (nats.js.errors.NotFoundError, nats.errors.NoRespondersError):
            stream = None  # no stream holds it, or no JetStream: core NATS
        except nats.js.errors.ServiceUnavailableError as exc:
            if exc.err_code is not None:  # JetStream is there, but not available now
                await client.close()
                raise
            stream = None  # a "no responders" status: this server has no JetStream
        except BaseException:
            await client.close()
            raise
        log.info(
            "nats sink %s: %s",
            self._subject,
            f"JetStream, stream {stream} (acknowledged)"
            if stream
            else "core NATS (no stream holds the subject: at most once)",
        )
        return _Connection(client, js, stream, asyncio.get_running_loop().time())

    async def _auth_options(self) -> dict[str, Any]:
        auth = self._auth
        self._mask = []  # this connection's values (errors after it closes still mask them)
        if auth is None:
            return {}
        options: dict[str, Any] = {}
        if auth.token is not None:
            options["token"] = await self._secret(auth.token, "token")
        if auth.user is not None:
            user = auth.user
            options["user"] = user if isinstance(user, str) else await self._secret(user, "user")
        if auth.password is not None:
            options["password"] = await self._secret(auth.password, "password")
        if auth.credentials is not None:
            creds = await self._secret(auth.credentials, "credentials")
            options["user_credentials"] = RawCredentials(creds)
        return options

    async def _secret(self, ref: SecretRef, what: str) -> str:
        try:
            value = await self._secrets.resolve_async(ref)
        except SecretError as exc:  # names the reference, never a value
            raise SinkMisconfigured(
                f"sink auth.{what}: {exc}", reason="SecretUnavailable"
            ) from None
        self._mask.append(value)
        return value

    async def _on_error(self, exc: Exception) -> None:
        """nats-py's asynchronous errors (its default prints them). A permissions violation
        is the only one a publish needs to know of: every other one ends the connection,
        which fails the publish under way."""
        log.debug("nats sink: %s", type(exc).__name__)
        if "permissions violation" in str(exc).lower():
            self._violations += 1
            for waiter in self._denials:
                if not waiter.done():
                    waiter.set_result(None)

    def _denied(self) -> SinkRejected:
        return SinkRejected(
            f"the NATS server denies this user publishing to {self._subject} "
            "(permissions violation)",
            reason="PermissionDenied",
        )

    def _text(self, exc: BaseException) -> str:
        return exception_text(exc, self._mask)

    async def _close_when_idle(self) -> None:
        while (conn := self._conn) is not None:
            idle = asyncio.get_running_loop().time() - conn.used
            if idle >= IDLE_CLOSE:
                await self._drop()
                return
            await asyncio.sleep(IDLE_CLOSE - idle)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close_quietly(conn.client)

    async def aclose(self) -> None:
        """Close the connection and stop the idle timer."""
        reaper, self._reaper = self._reaper, None
        if reaper is not None and reaper is not asyncio.current_task():
            reaper.cancel()
            await asyncio.gather(reaper, return_exceptions=True)
        await self._drop()
        _OPEN.discard(self)


async def close_all() -> None:
    """Close every NATS sender's connection in this process (the end of `run`)."""
    for sender in list(_OPEN):
        await sender.aclose()


async def _close_quietly(client: Client) -> None:
    transport = client._transport  # set even when the handshake failed
    try:
        if not client.is_closed:
            await client.close()
    except Exception as exc:  # closing a broken connection: nothing left to do
        log.debug("nats sink: closing: %s", type(exc).__name__)
    if transport is not None:
        transport.close()  # type: ignore[no-untyped-call]  # a second close is a no-op


def _api_failure(exc: nats.js.errors.APIError) -> SinkUnavailable | SinkRejected:
    """A JetStream API error reply: the server's `code`/`err_code`, retried when a later
    try may succeed (unavailable, timeout, throttled), a refusal otherwise."""
    description = exc.description or ""
    code = exc.err_code or exc.code
    text = f"JetStream error {exc.code}/{exc.err_code}: {description}".rstrip(": ")
    if exc.code in _RETRYABLE_API_CODES or isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return SinkUnavailable(text, reason="SinkError", status_code=code)
    return SinkRejected(
        text, reason="EventRefused", status_code=code, body_excerpt=description.encode()
    )
