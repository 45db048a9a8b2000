"""Turning outbox events into what goes over the wire, and sending it to one sink.

Owns the CloudEvents encodings (HTTP binary, structured, batch; JSON lines for `file:`
sinks), the sink's custom headers, and the translation of whatever the sink did into a
`SendOutcome`. Retry policy, ordering and bookkeeping belong to `runner.delivery.deliverer`; this
module only sends once and says what happened.

    to_cloudevent(OutboxEvent) -> CloudEvent          fresh copies every time (the SDK
                                                      writes into the dict it is given)
    to_structured_json(OutboxEvent) -> bytes          one event in the JSON format
    open_sender(target, ...) -> HttpSender | FileSender
    sender.encode(events) -> HTTPMessage              ValueError: not a valid CloudEvent
    sender.send(events) -> SendOutcome                accepted / retryable / refused /
                                                      misconfigured, never raises for a
                                                      sink fault

Formats: `binary` carries one event per POST (the SDK's HTTP binding; ce-* header values
percent-encoded as the binding requires); `structured` one event per POST in the JSON
format; `batch` a JSON array of such events; `file:` sinks append the JSON format as JSON
lines, fsync'd before success, confined to the state directory and kept off the runner's
own SQLite files (both re-checked with symlinks resolved on every write), a torn last line
from a crash fenced off by a newline.

The JSON format is written without the SDK when it can be: an event read from the outbox
holds its attributes and data as the JSON text they were stored as (`StoredJson`), and
when those attributes already are a valid CloudEvent as they stand (the checks of the
SDK's constructor, plus a `time` in RFC 3339 form and a JSON `datacontenttype`) the event
is that text with `"data":<stored data>` added. This is the batch mode's hot path:
building and encoding SDK events measured ~15 us/event, the splice ~5 (mostly parsing the
attributes to check them; the data is never parsed). Anything else (an event built in
memory, an unusual time) goes through the SDK, which also rejects what is not a valid
event.
A dead-letter sink gets Knative's form: binary mode, one event per POST, and never the
sink's custom headers (credentials for the sink are not for wherever dead letters go).

Secrets: custom header values (plain or `SecretRef`) are resolved at send time and go
only into the request. Outcome texts are built from status codes, reason phrases and
exception class names; reason phrases, error excerpts and exception messages pass through
`Redactor.redact` (every secret and environment value known) and are masked for the
request's own header values, as a second line of defence: a sink may echo the request,
and a transport library may quote a header it refused. A sink URI is shown as `safe_uri`
gives it, without user-info, query string or fragment.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
from cloudevents.core.bindings.http import HTTPMessage, to_binary_event, to_structured_event
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent

from runner.errors import SecretError
from runner.model import STATE_FILE_NAME, HeaderValue, OutboxEvent, Sink, SinkFormat, Target
from runner.secrets.redaction import Redactor, mask_values
from runner.secrets.resolver import SecretResolver
from runner.state.storedjson import StoredJson

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
# Knative attaches at most this much of the sink's response to a dead-lettered event.
ERROR_BODY_LIMIT = 1024
# A success body is read (so the connection can be reused) but never kept; past this size
# the connection is dropped instead of reading on.
DRAIN_LIMIT = 1 << 20

# Knative's retryable statuses (DESIGN §4.2); every other non-2xx status is a refusal.
RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})

OutcomeKind = Literal["accepted", "retryable", "refused", "misconfigured"]

# RFC 9110 token characters for header names; values: visible ASCII, with spaces and tabs
# only inside (h11 refuses a value that starts or ends with one, quoting it in its error).
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?$")
# Error bodies are asked for unencoded: an excerpt must be readable, and maskable.
_ACCEPT_PLAIN = {"accept-encoding": "identity"}

# What an event's attributes must be for their stored JSON to be sent as is (see the
# module doc). The SDK requires the first three and `specversion` "1.0"; its optional
# attributes must be non-empty strings; extension names are lowercase letters and digits
# and never "data". `time` must already be RFC 3339 with an offset (the SDK would
# normalize other forms), and `datacontenttype` JSON (the SDK would send the data as a
# quoted string otherwise). Extension values: JSON's CloudEvents types.
_REQUIRED_NAMES = frozenset({"specversion", "id", "source", "type"})
_NON_EMPTY_STRINGS = frozenset({"id", "source", "type", "subject", "dataschema"})
_EXTENSION_NAME = re.compile(r"[a-z0-9]+")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_JSON_CONTENT_TYPE = re.compile(r"(application|text)/([a-zA-Z0-9\-.]+\+)?json(;.*)?")


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one send did. `error` is secret-free text for counters, logs and status.

    `reason` is a CamelCase word for the SinkReady condition; `retry_after` is the delay the
    sink asked for (seconds, already parsed); `body_excerpt` is the start of an error
    response (for `knativeerrordata`), with every known secret value masked.
    """

    kind: OutcomeKind
    status_code: int | None = None
    error: str = ""
    reason: str = ""
    retry_after: float | None = None
    body_excerpt: bytes = b""

    @property
    def accepted(self) -> bool:
        return self.kind == "accepted"


ACCEPTED = SendOutcome("accepted", reason="Delivered")


class EventSender(Protocol):
    """A destination (the sink or the dead-letter sink) taking up to `capacity` events per send.

    `encode` is pure CPU work and thread-safe, so a caller may prepare the next request in a
    worker thread while this one is on the wire; `send_encoded` sends what it made, as
    often as needed (retries); `send` does both.
    """

    @property
    def uri(self) -> str: ...

    @property
    def capacity(self) -> int: ...

    def encode(self, events: Sequence[OutboxEvent]) -> HTTPMessage:
        """The request for `events`; raises `ValueError` if one is not a valid CloudEvent."""
        ...

    async def send_encoded(self, message: HTTPMessage) -> SendOutcome: ...

    async def send(self, events: Sequence[OutboxEvent]) -> SendOutcome: ...


def to_cloudevent(ev: OutboxEvent, extensions: Mapping[str, str] | None = None) -> CloudEvent:
    """A new SDK event from an outbox event, plus `extensions` (e.g. Knative's error ones).

    Builds fresh dicts: the SDK constructor writes `id`/`time` into the mapping it gets, and
    the outbox's mappings are shared and read-only. Raises `ValueError` when the stored
    attributes are not a valid event.
    """
    attributes: dict[str, Any] = dict(ev.attributes)
    raw_time = attributes.get("time")
    if isinstance(raw_time, str):
        attributes["time"] = parse_event_time(raw_time)
    if extensions:
        attributes.update(extensions)
    try:
        return CloudEvent(attributes, dict(ev.data))
    except BaseCloudEventException as exc:  # not a ValueError itself
        raise ValueError(str(exc)) from exc


def parse_event_time(text: str) -> datetime:
    """An RFC 3339 string as the timezone-aware datetime the SDK requires (UTC if none given)."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_structured_json(ev: OutboxEvent) -> bytes:
    """The event in the CloudEvents JSON format (one line: JSON text has no raw newline).

    Spliced from the stored text when that is a valid event as it stands, else written by
    the SDK (see the module doc). Raises `ValueError` when it is not a valid CloudEvent.
    """
    attributes, data = ev.attributes, ev.data
    if (
        isinstance(attributes, StoredJson)
        and isinstance(data, StoredJson)
        and data.text.startswith("{")
        and sendable_as_stored(attributes)
    ):
        # `{...attributes...}` + `"data":{...}`: the attributes text of a valid event is a
        # non-empty JSON object, so it ends in "}" and needs a comma before `data`.
        return f'{attributes.text.rstrip()[:-1]},"data":{data.text}}}'.encode()
    return to_structured_event(to_cloudevent(ev)).body


def sendable_as_stored(attributes: Mapping[str, Any]) -> bool:
    """Whether `attributes` are a valid CloudEvent exactly as they stand in JSON: what the
    SDK's constructor checks, with `time` already RFC 3339 and a JSON `datacontenttype`."""
    # One pass over items() (a dict view, even for StoredJson): this runs for every event.
    if not attributes.keys() >= _REQUIRED_NAMES:
        return False
    for name, value in attributes.items():
        if name in _NON_EMPTY_STRINGS:
            if type(value) is not str or not value:
                return False
        elif name == "specversion":
            if value != "1.0":
                return False
        elif name == "time":
            if type(value) is not str or not _is_rfc3339(value):
                return False
        elif name == "datacontenttype":
            if type(value) is not str or not _JSON_CONTENT_TYPE.fullmatch(value):
                return False
        elif not _is_extension(name, value):
            return False
    return True


def _is_extension(name: str, value: object) -> bool:
    # JSON's CloudEvents types: string, integer, boolean (a bool is an int).
    return name != "data" and bool(_EXTENSION_NAME.fullmatch(name)) and isinstance(value, str | int)


def _is_rfc3339(text: str) -> bool:
    if not _RFC3339.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)  # the regex lets 2024-13-45T25:61:61Z through
    except ValueError:
        return False
    return True


def encode_binary(ev: OutboxEvent) -> HTTPMessage:
    """Binary content mode: attributes as percent-encoded `ce-*` headers, data as the body."""
    return to_binary_event(to_cloudevent(ev))


def encode_structured(ev: OutboxEvent) -> HTTPMessage:
    """Structured content mode: the whole event as `application/cloudevents+json`."""
    return HTTPMessage(
        headers={"content-type": STRUCTURED_CONTENT_TYPE}, body=to_structured_json(ev)
    )


def encode_batch(events: Sequence[OutboxEvent]) -> HTTPMessage:
    """Batched content mode: a JSON array of structured events."""
    body = b"[" + b",".join([to_structured_json(ev) for ev in events]) + b"]"
    return HTTPMessage(headers={"content-type": BATCH_CONTENT_TYPE}, body=body)


def encode_request(format: SinkFormat, events: Sequence[OutboxEvent]) -> HTTPMessage:
    """The request body and CloudEvents headers for `events` in content mode `format`;
    raises `ValueError` when one of them is not a valid CloudEvent."""
    if format == "batch":
        return encode_batch(events)
    if len(events) != 1:
        raise ValueError(f"{format} mode sends exactly one event per request")
    if format == "structured":
        return encode_structured(events[0])
    return encode_binary(events[0])


def encode_json_lines(events: Sequence[OutboxEvent]) -> bytes:
    """One structured event per line (JSON text never contains a raw newline)."""
    return b"".join([to_structured_json(ev) + b"\n" for ev in events])


def safe_uri(uri: str) -> str:
    """`uri` without user-info, query string and fragment (`https://u:p@host/x?token=t` ->
    `https://host/x`), for logs, status texts and `knativeerrordest`: a password or a token
    in a URI (query strings often carry one) must not travel into them or to a dead-letter
    sink. A URI that cannot even be split is not shown at all."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return "(an invalid URI)"
    if "@" not in parts.netloc and not parts.query and not parts.fragment:
        return uri  # as written: urlunsplit would rewrite `file:x` as `file:///x`
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))


def uri_secrets(uri: str) -> list[str]:
    """The parts of `uri` that `safe_uri` leaves out (user-info, query, fragment), to mask
    wherever a library quotes the whole URI."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return [uri]
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    return [text for text in (userinfo, parts.query, parts.fragment) if text]


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


def classify_status(status_code: int) -> OutcomeKind:
    """Knative's rule: 2xx accepted; 404, 408, 409, 429, 5xx retried; anything else refused."""
    if 200 <= status_code < 300:
        return "accepted"
    if status_code in RETRYABLE_STATUSES or status_code >= 500:
        return "retryable"
    return "refused"


def status_text(status_code: int, reason_phrase: str = "") -> str:
    """`HTTP 503 Service Unavailable` — the status line, never the body. The reason phrase
    is the sink's text, and one that echoes the request must not carry a secret onwards."""
    phrase = Redactor.redact(reason_phrase)
    if not phrase:
        try:
            phrase = HTTPStatus(status_code).phrase
        except ValueError:
            phrase = ""
    return f"HTTP {status_code} {phrase}".rstrip()


def exception_text(exc: BaseException, mask: Iterable[str] = ()) -> str:
    """`ConnectError: [Errno 111] Connection refused`, with known secret values masked,
    and also the values in `mask` (e.g. plain header values, which are never registered)."""
    message = mask_values(Redactor.redact(str(exc)), mask)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _status_reason(status_code: int) -> str:
    if status_code == 429:
        return "SinkThrottled"
    if classify_status(status_code) == "retryable":
        return "SinkError"
    return "EventRefused"


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
        max_batch_size: int = 100,
        headers: Mapping[str, HeaderValue] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._uri = target.uri
        self._http = http
        self._secrets = secrets
        self._format = format
        self._capacity = max(1, max_batch_size) if format == "batch" else 1
        self._headers = dict(headers or {})
        self._timeout = timeout

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capacity(self) -> int:
        return self._capacity

    def encode(self, events: Sequence[OutboxEvent]) -> HTTPMessage:
        return encode_request(self._format, events)

    async def custom_headers(self) -> dict[str, str] | SendOutcome:
        """The sink's custom headers with secrets resolved, or a `misconfigured` outcome."""
        resolved: dict[str, str] = {}
        for name, value in self._headers.items():
            if not _HEADER_NAME.match(name):
                return SendOutcome(
                    "misconfigured",
                    error=f"sink header name {name!r} is not a valid HTTP header name",
                    reason="InvalidSinkHeader",
                )
            try:
                text = await self._secrets.resolve_header(value)
            except SecretError as exc:  # its message names the reference, never a value
                return SendOutcome(
                    "misconfigured",
                    error=f"sink header {name}: {exc}",
                    reason="SecretUnavailable",
                )
            if not _HEADER_VALUE.match(text):
                # Never quote the value: it may be a secret.
                return SendOutcome(
                    "misconfigured",
                    error=f"sink header {name} has a value that is not printable ASCII",
                    reason="InvalidSinkHeader",
                )
            resolved[name] = text
        return resolved

    async def send(self, events: Sequence[OutboxEvent]) -> SendOutcome:
        return await self.send_encoded(self.encode(events))

    async def send_encoded(self, message: HTTPMessage) -> SendOutcome:
        custom = await self.custom_headers()  # resolved per request: secrets may be rotated
        if isinstance(custom, SendOutcome):
            return custom
        headers = _merged_headers(message.headers, custom)
        # What an exception's text may quote and must not repeat: header values, and the
        # parts of the URI that `safe_uri` leaves out.
        mask = [*custom.values(), *uri_secrets(self._uri)]
        # Every failure of this one send is an outcome: an exception would end the
        # bridge's delivery task, not just this attempt.
        try:
            async with asyncio.timeout(self._timeout):
                return await self._post(headers, message.body, mask)
        except httpx.LocalProtocolError as exc:
            # Our own request could not be written as HTTP: no retry will fix it. Its
            # message quotes the header refused, which may be a secret: not repeated.
            return SendOutcome(
                "misconfigured",
                error=f"{type(exc).__name__}: the request to the sink is not valid HTTP "
                "(check the sink's custom headers)",
                reason="InvalidSinkRequest",
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            # The loader checks URIs; this is the last guard.
            return SendOutcome(
                "misconfigured",
                error=exception_text(exc, mask),
                reason="InvalidSinkUri",
            )
        except (httpx.TransportError, TimeoutError) as exc:
            return SendOutcome(
                "retryable",
                error=exception_text(exc, mask),
                reason=_transport_reason(exc),
            )
        except Exception as exc:  # e.g. httpx.DecodingError: the sink's fault, or ours
            return SendOutcome("retryable", error=exception_text(exc, mask), reason="SinkError")

    async def _post(
        self, headers: Mapping[str, str], body: bytes, mask: Sequence[str]
    ) -> SendOutcome:
        request = self._http.build_request(
            "POST", self._uri, headers=headers, content=body, timeout=self._timeout
        )
        response = await self._http.send(request, stream=True)
        try:
            kind = classify_status(response.status_code)
            if kind == "accepted":
                await _drain(response)
                return ACCEPTED
            excerpt = await _read_excerpt(response, mask)
            return SendOutcome(
                kind,
                status_code=response.status_code,
                error=status_text(response.status_code, response.reason_phrase),
                reason=_status_reason(response.status_code),
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                body_excerpt=excerpt,
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
    return _masked(excerpt, mask)


def _masked(data: bytes, mask: Sequence[str] = ()) -> bytes:
    # surrogateescape keeps bytes that are not UTF-8 (or a character cut at the limit)
    # exactly as they were while the secrets around them are masked.
    text = data.decode("utf-8", errors="surrogateescape")
    return mask_values(Redactor.redact(text), mask).encode("utf-8", errors="surrogateescape")


class FileSender:
    """Appends structured events as JSON lines to `<state_dir>/<file_path>`.

    Success is reported only after flush + fsync. The path is re-checked against the
    state directory on every send (after resolving symlinks), because the loader's check
    cannot see a symlink created later. I/O runs in a worker thread.
    """

    def __init__(self, target: Target, *, state_dir: Path, capacity: int = 100) -> None:
        if target.file_path is None:
            raise ValueError(f"{target.uri} is not a file: sink")
        self._uri = target.uri
        self._state_dir = state_dir
        self._file_path = target.file_path
        self._capacity = max(1, capacity)

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capacity(self) -> int:
        return self._capacity

    def checked_path(self) -> Path | SendOutcome:
        """The file to append to, symlinks resolved, or a `misconfigured` outcome when that
        leaves the state directory or is the runner's own database."""
        base = self._state_dir.resolve()
        path = (base / self._file_path).resolve()
        if not path.is_relative_to(base) or path == base:
            return SendOutcome(
                "misconfigured",
                error=f"{self._uri} resolves outside the state directory",
                reason="FileSinkOutsideStateDir",
            )
        # Compared after resolving, so a symlink to the database is caught too. A prefix,
        # case-insensitive, as the loader checks it: `-wal`, `-shm`, `-journal` and any
        # other file SQLite names after the database, on case-insensitive file systems too.
        if path.parent == base and path.name.lower().startswith(STATE_FILE_NAME):
            return SendOutcome(
                "misconfigured",
                error=f"{self._uri} resolves to the runner's state database ({path.name})",
                reason="FileSinkIsStateDatabase",
            )
        return path

    def encode(self, events: Sequence[OutboxEvent]) -> HTTPMessage:
        return HTTPMessage(headers={}, body=encode_json_lines(events))

    async def send(self, events: Sequence[OutboxEvent]) -> SendOutcome:
        return await self.send_encoded(self.encode(events))

    async def send_encoded(self, message: HTTPMessage) -> SendOutcome:
        try:
            return await asyncio.to_thread(self._append, message.body)
        except OSError as exc:
            # Disk full, permissions, a read-only mount: an operator can fix these, so the
            # events stay pending and the write is retried like a 5xx.
            return SendOutcome("retryable", error=exception_text(exc), reason="SinkWriteFailed")

    def _append(self, lines: bytes) -> SendOutcome:
        path = self.checked_path()
        if isinstance(path, SendOutcome):
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Re-check after mkdir: a directory swapped for a symlink in between must not win.
        again = self.checked_path()
        if isinstance(again, SendOutcome):
            return again
        if again != path:
            return SendOutcome(
                "misconfigured",
                error=f"{self._uri} resolved elsewhere after its directory was created",
                reason="FileSinkOutsideStateDir",
            )
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o640)
        try:
            size = os.fstat(fd).st_size
            # A previous write cut short (crash, disk full) may have left half a line:
            # start on a fresh line so that the torn one does not swallow this event.
            if size and os.pread(fd, 1, size - 1) != b"\n":
                lines = b"\n" + lines
            view = memoryview(lines)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        return ACCEPTED


def open_sender(
    target: Target,
    *,
    http: httpx.AsyncClient,
    secrets: SecretResolver,
    state_dir: Path,
    sink: Sink | None = None,
    timeout: float = 10.0,
) -> HttpSender | FileSender:
    """The sender for `target`: with `sink` (the bridge's own sink) its format, batch size
    and custom headers apply; without it (a dead-letter sink) events go one per request in
    binary mode, as Knative sends them, and the sink's headers are NOT sent — they are
    credentials for the sink, not for wherever dead letters go."""
    if target.is_file:
        return FileSender(
            target, state_dir=state_dir, capacity=sink.max_batch_size if sink else 100
        )
    if sink is None:
        return HttpSender(target, http=http, secrets=secrets, format="binary", timeout=timeout)
    return HttpSender(
        target,
        http=http,
        secrets=secrets,
        format=sink.format,
        max_batch_size=sink.max_batch_size,
        headers=sink.headers,
        timeout=sink.timeout,
    )


def knative_error_extensions(dest_uri: str, outcome: SendOutcome) -> dict[str, str]:
    """The extensions Knative adds to a dead-lettered event: which destination failed, its
    status code, and the start of its response body (base64) or the error text."""
    extensions = {"knativeerrordest": safe_uri(dest_uri)}
    if outcome.status_code is not None:
        extensions["knativeerrorcode"] = str(outcome.status_code)
    # Masked again here, whatever built the outcome: a secret or environment value the sink
    # echoed (in its body, its reason phrase, an exception text) goes no further.
    payload = _masked(outcome.body_excerpt) or Redactor.redact(outcome.error).encode("utf-8")
    if payload:
        extensions["knativeerrordata"] = base64.b64encode(payload[:ERROR_BODY_LIMIT]).decode()
    return extensions
