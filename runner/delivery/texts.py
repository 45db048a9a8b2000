"""What delivery says about a sink and a failed send, with no secret in it.

    safe_uri(uri)                       a sink URI without user-info, query or fragment
    uri_secrets(uri)                    the parts `safe_uri` leaves out, to mask
    status_text(code, reason_phrase)    `HTTP 503 Service Unavailable`
    exception_text(exc, mask)           `ConnectError: [Errno 111] Connection refused`
    masked(data, mask)                  bytes with every known secret value masked
    knative_error_extensions(uri, outcome)   what a dead-lettered event carries

Outcome texts are built from status codes, reason phrases and exception class names;
reason phrases, error excerpts and exception messages pass through `Redactor.redact` (every
secret and environment value known) and are masked for the request's own header values, as
a second line of defence: a sink may echo the request, and a transport library may quote a
header it refused. A sink URI is shown as `safe_uri` gives it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from urllib.parse import urlsplit, urlunsplit

from runner.delivery.policy import SendOutcome
from runner.secrets.redaction import Redactor, mask_values

# Knative attaches at most this much of the sink's response to a dead-lettered event.
ERROR_BODY_LIMIT = 1024


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


def masked(data: bytes, mask: Sequence[str] = ()) -> bytes:
    """`data` with known secret values, and the values in `mask`, masked."""
    # surrogateescape keeps bytes that are not UTF-8 (or a character cut at the limit)
    # exactly as they were while the secrets around them are masked.
    text = data.decode("utf-8", errors="surrogateescape")
    return mask_values(Redactor.redact(text), mask).encode("utf-8", errors="surrogateescape")


def knative_error_extensions(dest_uri: str, outcome: SendOutcome) -> dict[str, str]:
    """The extensions Knative adds to a dead-lettered event: which destination failed, its
    status code, and the start of its response body (base64) or the error text."""
    extensions = {"knativeerrordest": safe_uri(dest_uri)}
    if outcome.status_code is not None:
        extensions["knativeerrorcode"] = str(outcome.status_code)
    # Masked again here, whatever built the outcome: a secret or environment value the sink
    # echoed (in its body, its reason phrase, an exception text) goes no further.
    payload = masked(outcome.body_excerpt) or Redactor.redact(outcome.error).encode("utf-8")
    if payload:
        extensions["knativeerrordata"] = base64.b64encode(payload[:ERROR_BODY_LIMIT]).decode()
    return extensions
