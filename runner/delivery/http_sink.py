"""The HTTP sink: POSTs events in a CloudEvents content mode, and says why a POST failed.

    HttpSender(target, http=, secrets=, format=, max_batch_size=, headers=, timeout=)
    sender.encode(events) -> HTTPMessage        ValueError: not a valid CloudEvent
    await sender.deliver(message)               returns once the sink accepted (2xx); raises
                                                SinkUnavailable, SinkRejected or
                                                SinkMisconfigured (see runner.delivery.policy)
    await sender.send(events) -> SendOutcome    encode and deliver, the failure as a record

Every failure of one POST becomes one of those three classes: an exception of any other
kind would end the bridge's delivery task, not just this attempt.

Secrets: custom header values (plain or `SecretRef`) are resolved at send time and go only
into the request; what an error says is built as `runner.delivery.texts` describes, masked
for the request's own header values and the parts of the URI `safe_uri` leaves out.
Exceptions of httpx are never chained to ours (`from None`): their messages may quote a
header value.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import httpx
from cloudevents.core.bindings.http import HTTPMessage

from runner import defaults
from runner.delivery.encodings import encode_request
from runner.delivery.oauth2 import ClientCredentials
from runner.delivery.policy import SendOutcome, classify_status, report, status_reason
from runner.delivery.sink_tls import tls_client, tls_context
from runner.delivery.texts import ERROR_BODY_LIMIT, exception_text, masked, status_text, uri_secrets
from runner.delivery.webhook_signing import signature_headers, signing_key, webhook_id
from runner.errors import SecretError, SinkMisconfigured, SinkRejected, SinkUnavailable
from runner.model import (
    HeaderValue,
    OAuth2Client,
    OutboxEvent,
    SecretRef,
    SinkFormat,
    SinkTls,
    Target,
)
from runner.secrets.resolver import SecretResolver

WEBHOOK_ID = "webhook-id"

# A success body is read (so the connection can be reused) but never kept; past this size
# the connection is dropped instead of reading on.
DRAIN_LIMIT = 1 << 20

# RFC 9110 token characters for header names; values: visible ASCII, with spaces and tabs
# only inside (h11 refuses a value that starts or ends with one, quoting it in its error).
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?$")
# Error bodies are asked for unencoded: an excerpt must be readable, and maskable.
_ACCEPT_PLAIN = {"accept-encoding": "identity"}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), or None.

    Invalid values are ignored rather than trusted; a date in the past means "now" (0).
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _transport_reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "SinkTimeout"
    if isinstance(exc, httpx.ConnectError):
        return "SinkUnreachable"
    return "SinkError"


class HttpSender:
    """POSTs events to an http(s) sink in one of the three CloudEvents content modes.

    Uses the shared `httpx.AsyncClient` it is given. `timeout` bounds the whole exchange
    (connect, send, first byte and body), not just each phase as httpx's own timeout does.
    """

    def __init__(
        self,
        target: Target,
        *,
        http: httpx.AsyncClient,
        secrets: SecretResolver,
        format: SinkFormat = "binary",
        max_batch_size: int = defaults.MAX_BATCH_SIZE,
        headers: Mapping[str, HeaderValue] | None = None,
        timeout: float = defaults.SINK_TIMEOUT,
        signing: SecretRef | None = None,
        oauth2: OAuth2Client | None = None,
        tls: SinkTls | None = None,
    ) -> None:
        self._uri = target.uri
        self._http = http
        self._secrets = secrets
        self._format = format
        self._capacity = max(1, max_batch_size) if format == "batch" else 1
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._signing = signing
        self._tls = tls
        self._own_client: httpx.AsyncClient | None = None  # with `tls`: this sink's alone
        self.tokens = (
            ClientCredentials(oauth2, http=http, secrets=secrets, timeout=timeout)
            if oauth2
            else None
        )

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capacity(self) -> int:
        return self._capacity

    def encode(self, events: Sequence[OutboxEvent]) -> HTTPMessage:
        message = encode_request(self._format, events)
        if self._signing is not None:  # the id is the same for every attempt
            message = HTTPMessage({**message.headers, WEBHOOK_ID: webhook_id(events)}, message.body)
        return message

    async def custom_headers(self) -> dict[str, str]:
        """The sink's custom headers with secrets resolved; `SinkMisconfigured` if one
        cannot be sent."""
        resolved: dict[str, str] = {}
        for name, value in self._headers.items():
            if not _HEADER_NAME.match(name):
                raise SinkMisconfigured(
                    f"sink header name {name!r} is not a valid HTTP header name",
                    reason="InvalidSinkHeader",
                )
            try:
                text = await self._secrets.resolve_header(value)
            except SecretError as exc:  # its message names the reference, never a value
                raise SinkMisconfigured(
                    f"sink header {name}: {exc}", reason="SecretUnavailable"
                ) from None
            if not _HEADER_VALUE.match(text):
                # Never quote the value: it may be a secret.
                raise SinkMisconfigured(
                    f"sink header {name} has a value that is not printable ASCII",
                    reason="InvalidSinkHeader",
                )
            resolved[name] = text
        return resolved

    async def send(self, events: Sequence[OutboxEvent]) -> SendOutcome:
        return await report(self.deliver(self.encode(events)))

    async def deliver(self, message: HTTPMessage) -> None:
        custom = await self.custom_headers()  # resolved per request: secrets may be rotated
        custom.update(await self._auth_headers(message))
        headers = _merged_headers(message.headers, custom)
        # What an exception's text may quote and must not repeat: header values, and the
        # parts of the URI that `safe_uri` leaves out.
        mask = [*custom.values(), *uri_secrets(self._uri)]
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    await self._post(headers, message.body, mask)
                except SinkRejected as refused:
                    if refused.status_code != 401 or self.tokens is None:
                        raise
                    # The token may have been revoked before its expiry: once more, anew.
                    self.tokens.invalidate(custom["Authorization"].removeprefix("Bearer "))
                    custom.update(await self._auth_headers(message))
                    headers = _merged_headers(message.headers, custom)
                    await self._post(headers, message.body, [*mask, *custom.values()])
        except (SinkUnavailable, SinkRejected, SinkMisconfigured):
            raise  # what the sink answered, or what it cannot be sent with
        except httpx.LocalProtocolError as exc:
            # Our own request could not be written as HTTP: no retry will fix it. Its
            # message quotes the header refused, which may be a secret: not repeated.
            raise SinkMisconfigured(
                f"{type(exc).__name__}: the request to the sink is not valid HTTP "
                "(check the sink's custom headers)",
                reason="InvalidSinkRequest",
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            # The loader checks URIs; this is the last guard.
            raise SinkMisconfigured(exception_text(exc, mask), reason="InvalidSinkUri") from None
        except (httpx.TransportError, TimeoutError) as exc:
            raise SinkUnavailable(
                exception_text(exc, mask), reason=_transport_reason(exc)
            ) from None
        except Exception as exc:  # e.g. httpx.DecodingError: the sink's fault, or ours
            raise SinkUnavailable(exception_text(exc, mask), reason="SinkError") from None

    async def _auth_headers(self, message: HTTPMessage) -> dict[str, str]:
        """The OAuth2 bearer token and the Standard Webhooks signature, made per attempt."""
        added: dict[str, str] = {}
        if self.tokens is not None:
            added["Authorization"] = f"Bearer {await self.tokens.token()}"
        if self._signing is not None:
            try:
                secret = await self._secrets.resolve_async(self._signing)
                key = signing_key(secret)
            except SecretError as exc:  # names the reference, never a value
                raise SinkMisconfigured(
                    f"sink signing.secret: {exc}", reason="SecretUnavailable"
                ) from None
            except ValueError as exc:  # says what is wrong, quoting nothing of the secret
                raise SinkMisconfigured(
                    f"sink signing.secret: {exc}", reason="InvalidSigningSecret"
                ) from None
            message_id = message.headers.get(WEBHOOK_ID, "")
            added.update(signature_headers(key, message_id, message.body, time.time()))
        return added

    async def _client(self) -> httpx.AsyncClient:
        if self._tls is None:
            return self._http
        if self._own_client is None:
            self._own_client = tls_client(await tls_context(self._tls, self._secrets))
        return self._own_client

    async def _post(self, headers: Mapping[str, str], body: bytes, mask: Sequence[str]) -> None:
        http = await self._client()
        request = http.build_request(
            "POST", self._uri, headers=headers, content=body, timeout=self._timeout
        )
        response = await http.send(request, stream=True)
        try:
            code = response.status_code
            failure = classify_status(code)
            if failure is None:
                await _drain(response)
                return
            excerpt = await _read_excerpt(response, mask)
            text = status_text(code, response.reason_phrase)
            if failure is SinkUnavailable:
                raise SinkUnavailable(
                    text,
                    delay=parse_retry_after(response.headers.get("retry-after")),
                    reason=status_reason(code),
                    status_code=code,
                    body_excerpt=excerpt,
                )
            raise SinkRejected(
                text, reason=status_reason(code), status_code=code, body_excerpt=excerpt
            )
        finally:
            await response.aclose()


async def _drain(response: httpx.Response) -> None:
    """Read a success body to its end so the connection goes back to the pool."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > DRAIN_LIMIT:
            return  # closing mid-body drops the connection; cheaper than reading on


def _merged_headers(event_headers: Mapping[str, str], custom: Mapping[str, str]) -> dict[str, str]:
    """The request's headers: the CloudEvents ones win over a custom header of the same name
    (names compare case-insensitively), and error bodies are asked for unencoded unless the
    bridge says otherwise. A plain dict: building `httpx.Headers` per request cost ~10% of
    binary-mode throughput."""
    headers = dict(event_headers)
    taken = {name.lower() for name in headers}
    for name, value in custom.items():
        if name.lower() not in taken:
            headers[name] = value
            taken.add(name.lower())
    for name, value in _ACCEPT_PLAIN.items():
        if name not in taken:
            headers[name] = value
    return headers


async def _read_excerpt(response: httpx.Response, mask: Sequence[str] = ()) -> bytes:
    """The first `ERROR_BODY_LIMIT` bytes of an error body, with known secret values (and
    those in `mask`: the request's custom header values) masked.

    Read raw: decoding (gzip, ...) can fail on a broken body and can inflate a small one
    into a huge one. A body still encoded although plain was asked for is left out, as
    encoded bytes could be neither read nor masked.
    """
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        return b""
    buffer = bytearray()
    async for chunk in response.aiter_raw():
        buffer += chunk
        if len(buffer) >= ERROR_BODY_LIMIT:
            break
    excerpt = bytes(buffer[:ERROR_BODY_LIMIT])
    # A sink that echoes the request (Authorization included) must not carry it onwards.
    return masked(excerpt, mask)
