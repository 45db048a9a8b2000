"""Which AWS sink failures are retried, refused or the sink's own fault, as for HTTP.

    request_failure(exc) -> SinkUnavailable | SinkRejected | SinkMisconfigured
    entry_failure(code, message, sender_fault=None) -> SinkUnavailable | SinkRejected

Retried (`SinkUnavailable`): throttling (`ThrottlingException`,
`ProvisionedThroughputExceededException`, `KMSThrottlingException`, ...), 5xx and internal
failures, connection errors and timeouts. Not the events' fault (`SinkMisconfigured`,
delivery backs off without spending the retry budget): no credentials, credentials AWS does
not recognise (expired, revoked: they may be rotated in), a secret that cannot be read.
Refused (`SinkRejected`: dead letter, or parked): everything else the service answered --
access denied, a missing queue, topic, bus or stream (`QueueDoesNotExist`,
`AWS.SimpleQueueService.NonExistentQueue`, `NotFound`, `ResourceNotFoundException`), a payload
over its size limit, an invalid entry.

The service's error code is the SinkReady reason (its last dotted part, letters and digits
only: `AWS.SimpleQueueService.NonExistentQueue` -> `NonExistentQueue`), and the error's
`body_excerpt` is `{"Code": ..., "Message": ...}` as the service answered, which a dead
letter carries in `knativeerrordata`; `knativeerrorcode` is the HTTP status when the whole
request failed. AWS messages pass through `scrub` first: some echo the signed request.
"""

from __future__ import annotations

import json
import re

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from runner.aws import error_codes as aws_codes
from runner.aws.botocore_logs import scrub
from runner.delivery.texts import exception_text
from runner.errors import SecretError, SinkMisconfigured, SinkRejected, SinkUnavailable

# Beside the codes every service shares: the streams' and keys' own throttling.
THROTTLED_CODES = aws_codes.THROTTLED_CODES | {
    "ProvisionedThroughputExceededException",
    "KMSThrottlingException",
    "KMS.ThrottlingException",
    "LimitExceededException",
}
SERVICE_ERROR_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalErrorException",
        "InternalServerError",
        "InternalServiceError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSInternalException",
        "KMS.KMSInternalException",
    }
)
INVALID_CREDENTIALS_CODES = aws_codes.INVALID_CREDENTIALS_CODES
_MAX_MESSAGE = 200


def reason_of(code: str) -> str:
    """A CamelCase SinkReady reason from a service's error code."""
    word = re.sub(r"[^A-Za-z0-9]", "", code.rsplit(".", 1)[-1])
    return word[:1].upper() + word[1:] if word else "SinkError"


def entry_failure(
    code: str, message: str, sender_fault: bool | None = None
) -> SinkUnavailable | SinkRejected:
    """One entry the service did not take: retried when throttled, an internal failure, or
    (SQS, SNS) not the sender's fault; refused otherwise."""
    text, excerpt = _described(code, message)
    retry = code in THROTTLED_CODES or code in SERVICE_ERROR_CODES or sender_fault is False
    if retry:
        return SinkUnavailable(text, reason=reason_of(code), body_excerpt=excerpt)
    return SinkRejected(text, reason=reason_of(code), body_excerpt=excerpt)


def request_failure(exc: BaseException) -> SinkUnavailable | SinkRejected | SinkMisconfigured:
    """A whole request that failed, classified (see the module doc)."""
    if isinstance(exc, ClientError):
        return _client_error(exc)
    if isinstance(exc, SecretError):  # its message names the reference, never a value
        return SinkMisconfigured(f"AWS sink credentials: {exc}", reason="SecretUnavailable")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return SinkMisconfigured(
            f"{type(exc).__name__}: no AWS credentials found for the sink", reason="NoCredentials"
        )
    if isinstance(exc, ParamValidationError):  # the runner built an entry the API refuses
        return SinkRejected(_text(exc), reason="InvalidRequest")
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | TimeoutError):
        return SinkUnavailable(_text(exc), reason="SinkTimeout")
    if isinstance(exc, EndpointConnectionError):
        return SinkUnavailable(_text(exc), reason="SinkUnreachable")
    return SinkUnavailable(_text(exc), reason="SinkError")


def _client_error(exc: ClientError) -> SinkUnavailable | SinkRejected | SinkMisconfigured:
    error = exc.response.get("Error") or {}
    code = str(error.get("Code") or "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    text, excerpt = _described(code, str(error.get("Message") or ""), status)
    reason = reason_of(code)
    if code in INVALID_CREDENTIALS_CODES:
        return SinkMisconfigured(text, reason=reason)
    if code in THROTTLED_CODES or code in SERVICE_ERROR_CODES or (status or 0) >= 500:
        return SinkUnavailable(text, reason=reason, status_code=status, body_excerpt=excerpt)
    if status == 429:
        return SinkUnavailable(text, reason=reason, status_code=status, body_excerpt=excerpt)
    return SinkRejected(text, reason=reason, status_code=status, body_excerpt=excerpt)


def _described(code: str, message: str, status: int | None = None) -> tuple[str, bytes]:
    """The secret-free text of a service error and its `{"Code", "Message"}` excerpt."""
    message = scrub(message)[:_MAX_MESSAGE]
    where = f"HTTP {status} " if status else ""
    text = f"{where}{code or 'error'}: {message}" if message else f"{where}{code or 'error'}"
    return text, json.dumps({"Code": code, "Message": message}).encode()


def _text(exc: BaseException) -> str:
    return scrub(exception_text(exc))
