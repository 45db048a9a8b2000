"""Turning boto3/botocore failures into bridge-runner's errors, with a stable `reason`.

`SourceRejected` (permanent) reasons: PoolNotFound, AccessDenied, InvalidCredentials,
InvalidRequest, RequestRejected. `SourceUnavailable` (temporary) reasons: Throttled,
ServiceError, EndpointUnreachable. The reason becomes the SourceReady condition's reason.

Messages quote AWS's own error message only after `scrub()`: some AWS errors echo the
canonical request, and with it the session token.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSOError,
    TokenRetrievalError,
)

from runner.aws import error_codes as aws_codes
from runner.aws.botocore_logs import scrub
from runner.errors import BridgeRunnerError, SecretError, SourceRejected, SourceUnavailable

THROTTLED_CODES = aws_codes.THROTTLED_CODES
INVALID_CREDENTIALS_CODES = aws_codes.INVALID_CREDENTIALS_CODES
ACCESS_DENIED_CODES = frozenset(
    {"AccessDeniedException", "AccessDenied", "NotAuthorizedException", "UnauthorizedOperation"}
)
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException"})
SERVICE_ERROR_CODES = frozenset(
    {
        "InternalErrorException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceException",
    }
)
# moto says InvalidToken; Cognito answers InvalidParameterException to a token it no
# longer accepts (the scan only reads it as such when the request carried a token).
TOKEN_REJECTED_CODES = frozenset({"InvalidToken", "InvalidTokenException"})
INVALID_PARAMETER_CODE = "InvalidParameterException"

_MAX_AWS_MESSAGE = 200


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _aws_message(exc: ClientError) -> str:
    message = scrub(str(exc.response.get("Error", {}).get("Message", "") or ""))
    if len(message) > _MAX_AWS_MESSAGE:
        message = message[:_MAX_AWS_MESSAGE] + "..."
    return f": {message}" if message else ""


def translate_error(exc: BaseException, *, what: str) -> BridgeRunnerError | None:
    """The bridge-runner error for an AWS SDK failure, or None when `exc` is not one.

    `what` names the call for the message, e.g. "ListUsers on pool us-west-2_abc".
    """
    if isinstance(exc, BridgeRunnerError):
        return exc
    if isinstance(exc, ClientError):
        return _translate_client_error(exc, what)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return SourceRejected(
            f"{what}: no usable AWS credentials ({type(exc).__name__})",
            reason="InvalidCredentials",
        )
    if isinstance(exc, (CredentialRetrievalError, TokenRetrievalError, SSOError)):
        return SourceRejected(
            f"{what}: AWS credentials could not be obtained ({type(exc).__name__})",
            reason="InvalidCredentials",
        )
    if isinstance(exc, ReadTimeoutError):
        return SourceUnavailable(
            f"{what}: the endpoint did not answer in time", reason="EndpointUnreachable"
        )
    if isinstance(exc, ConnectionClosedError):
        # The endpoint was reached and dropped the connection mid-answer, as a restarting
        # or overloaded server does: a failure of the service, asked again like a 5xx, not
        # an endpoint that cannot be reached.
        return SourceUnavailable(f"{what}: {scrub(str(exc))}", reason="ServiceError")
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        # botocore's text names the URL and the socket error, never a header.
        return SourceUnavailable(f"{what}: {scrub(str(exc))}", reason="EndpointUnreachable")
    if isinstance(exc, ParamValidationError):
        return SourceRejected(f"{what}: {scrub(str(exc))}", reason="InvalidRequest")
    if isinstance(exc, BotoCoreError):
        return SourceUnavailable(f"{what}: {type(exc).__name__}", reason="ServiceError")
    return None


def _translate_client_error(exc: ClientError, what: str) -> BridgeRunnerError:
    code = error_code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if exc.operation_name == "AssumeRole":
        what = f"{what}: assuming the IAM role failed"
    detail = f"{code or f'HTTP {status}'}{_aws_message(exc)}"
    if code in NOT_FOUND_CODES and exc.operation_name != "AssumeRole":
        return SourceRejected(
            f"{what}: the user pool does not exist ({detail})", reason="PoolNotFound"
        )
    if code in ACCESS_DENIED_CODES:
        return SourceRejected(f"{what}: access denied ({detail})", reason="AccessDenied")
    if code in INVALID_CREDENTIALS_CODES:
        return SourceRejected(
            f"{what}: the AWS credentials were not accepted ({detail})", reason="InvalidCredentials"
        )
    if code in THROTTLED_CODES or status == 429:
        return SourceUnavailable(f"{what}: throttled ({detail})", reason="Throttled")
    if code in SERVICE_ERROR_CODES or status >= 500:
        return SourceUnavailable(f"{what}: service error ({detail})", reason="ServiceError")
    if code == INVALID_PARAMETER_CODE or code in TOKEN_REJECTED_CODES:
        return SourceRejected(f"{what}: request rejected ({detail})", reason="InvalidRequest")
    return SourceRejected(f"{what}: request rejected ({detail})", reason="RequestRejected")


def secret_error(exc: SecretError, *, what: str) -> SourceRejected:
    """A credential reference that cannot be resolved makes the source unusable as configured."""
    return SourceRejected(f"{what}: credentials unavailable: {exc}", reason="InvalidCredentials")
