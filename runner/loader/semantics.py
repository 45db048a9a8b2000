"""The checks a JSON Schema cannot express, each reading one field of a `BridgeDocument`
into its model value or reporting why it cannot (DESIGN §2).

- the user pool ARN's parts and their agreement, an IAM role ARN;
- durations: their form, a minimum, above 0s;
- URLs: http(s) with a host and no user:password@, `file:` paths inside the state directory
  and away from its database;
- secret references: an environment variable the policy allows, files confined to
  --secrets-dir; a plain-text secret in git is a warning;
- headers bridge-runner or the HTTP client sets, extension names longer than CloudEvents
  recommends, extension values that binary mode would percent-encode.

A value the schema already reported is skipped (the typed reads return None for it), and a
value from the environment is never quoted (`BridgeDocument.value_error`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from runner import defaults
from runner._kits.durations import format_duration, parse_duration
from runner.loader.arn import IAM_ROLE_ARN, parse_pool_arn, parse_sink_arn
from runner.loader.document import BridgeDocument, DocPath
from runner.loader.nats_uri import is_nats_uri, nats_target
from runner.model import (
    STATE_FILE_NAME,
    AwsAuth,
    AwsCredentials,
    AwsTarget,
    HeaderValue,
    PoolArn,
    SecretRef,
    Target,
)
from runner.secrets.resolver import secret_path_problem

_EXTENSION_NAME_RECOMMENDED_MAX = 20
# Headers that carry the CloudEvent itself: set by the sink code, never by the user.
_RESERVED_HEADER_PREFIXES = ("ce-", "content-type")
# Headers that frame the HTTP message or govern one connection (hop-by-hop): the HTTP client
# sets them, and a second value from the bridge file makes the request fail when sent.
_TRANSPORT_HEADERS = frozenset(
    {
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
    }
)
# Plain-text values under these names are credentials written into git.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key"})
_PLAIN_TEXT_VALUE_WARNING = (
    "plain-text secret value: it is stored in git; "
    "prefer valueFromEnv, valueFromFile or valueFromSecret"
)
_NOT_A_POOL_ARN = (
    "is not a user pool ARN: arn:<partition>:cognito-idp:<region>:<12-digit account>:"
    "userpool/<region>_<id>, with the pool id in the ARN's region"
)
_NOT_A_SINK_ARN = (
    "is not a sink ARN: arn:<partition>:<sqs|sns>:<region>:<12-digit account>:<name>, "
    "...:events:...:event-bus/<name> or ...:kinesis:...:stream/<name>"
)
_NOT_A_DURATION = "must be a duration such as 500ms, 30s, 5m, 1h30m or PT30S"
_NOT_ONE_SEGMENT = (
    "must be a single path segment (no '/', '.' or '..'): the value is "
    "read from <secrets-dir>/<name>/<key>"
)

# -- ARNs and durations ---------------------------------------------------------------------


def pool_arn(doc: BridgeDocument, path: DocPath) -> PoolArn | None:
    text = doc.string(path)
    if text is None:
        return None
    try:
        return parse_pool_arn(text)
    except ValueError as exc:
        doc.value_error(path, str(exc), without_value=_NOT_A_POOL_ARN)
        return None


def role_arn(doc: BridgeDocument, path: DocPath) -> str | None:
    text = doc.string(path)
    if text is not None and not IAM_ROLE_ARN.fullmatch(text):
        doc.error(path, "must be an IAM role ARN like arn:aws:iam::123456789012:role/name")
        return None
    return text


def duration(doc: BridgeDocument, path: DocPath, default: float, *, minimum: float = 0.0) -> float:
    """Seconds; `default` when absent or not a duration. Without a `minimum`, above 0s."""
    text = doc.string(path)
    if text is None:
        return default
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        doc.value_error(path, str(exc), without_value=_NOT_A_DURATION)
        return default
    if seconds < minimum or (minimum == 0.0 and seconds == 0.0):
        bound = f"at least {format_duration(minimum)}" if minimum else "longer than 0s"
        doc.value_error(path, f"must be {bound} (got {text})", without_value=f"must be {bound}")
    return seconds


# -- secret references ----------------------------------------------------------------------


def secret(doc: BridgeDocument, path: DocPath) -> SecretRef | None:
    obj = doc.get(path)
    if not isinstance(obj, dict) or len(obj) != 1 or doc.already_reported(path):
        return None
    ((source, value),) = obj.items()
    where = (*path, source)
    if source == "value" and isinstance(value, str):
        if where not in doc.expanded:
            doc.warn(where, _PLAIN_TEXT_VALUE_WARNING, at_key=True)
        return SecretRef("value", literal=value)
    if source == "valueFromEnv" and isinstance(value, str):
        return _env_secret(doc, where, value)
    if source == "valueFromFile" and isinstance(value, str):
        problem = secret_path_problem(value)
        if problem:
            doc.value_error(
                where,
                f"secret file path {problem}",
                without_value="secret file path must be relative and stay inside "
                "--secrets-dir (no '..')",
            )
            return None
        return SecretRef("file", name=PurePosixPath(value).as_posix())
    if source == "valueFromSecret" and isinstance(value, dict):
        return _mounted_secret(doc, where, value)
    return None


def _env_secret(doc: BridgeDocument, where: DocPath, name: str) -> SecretRef | None:
    if doc.already_reported(where):
        return None
    policy = doc.env_policy
    if not policy.allows(name):
        doc.value_error(
            where,
            policy.refusal(name),
            without_value="names an environment variable that is not allowed for "
            f"bridges (allowed: {', '.join(policy.all_patterns)}; see --allow-env)",
        )
        return None
    return SecretRef("env", name=name)


def _mounted_secret(
    doc: BridgeDocument, where: DocPath, value: Mapping[str, object]
) -> SecretRef | None:
    name, key = value.get("name"), value.get("key")
    if not isinstance(name, str) or not isinstance(key, str):
        return None
    ok = True
    for part, text in (("name", name), ("key", key)):
        if "/" in text or "\\" in text or text in (".", ".."):
            ok = False
            doc.value_error(
                (*where, part), f"{_NOT_ONE_SEGMENT} (got {text!r})", without_value=_NOT_ONE_SEGMENT
            )
    return SecretRef("secret", name=name, key=key) if ok else None


def credentials(doc: BridgeDocument, path: DocPath) -> AwsCredentials | None:
    if not doc.mapping(path):
        return None
    access = secret(doc, (*path, "accessKeyID"))
    secret_key = secret(doc, (*path, "secretAccessKey"))
    token = secret(doc, (*path, "sessionToken")) if "sessionToken" in doc.mapping(path) else None
    if access is None or secret_key is None:
        return None
    return AwsCredentials(access, secret_key, token)


# -- URLs and targets -----------------------------------------------------------------------


def http_url(doc: BridgeDocument, path: DocPath, *, what: str) -> str | None:
    """An http(s) URL with a host and no user:password@ (it would show in logs)."""
    text = doc.string(path)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        doc.error(path, f"{what} is not a valid URL")
        return None
    if parts.scheme.lower() not in ("http", "https"):
        doc.error(path, f"{what} must be an http:// or https:// URL")
        return None
    return _checked_http(doc, path, parts.hostname, parts.username, parts.password, text, what)


def _checked_http(
    doc: BridgeDocument,
    path: DocPath,
    host: str | None,
    username: str | None,
    password: str | None,
    text: str,
    what: str,
) -> str | None:
    if not host:
        doc.error(path, f"{what} needs a host, like https://events.example.com/cognito")
        return None
    if username is not None or password is not None:
        doc.error(
            path,
            f"{what} must not hold credentials (user:password@): they would show in logs "
            "and status; send them in a header with a secret value instead",
        )
        return None
    return text


def target(doc: BridgeDocument, path: DocPath) -> Target | None:
    """A sink or dead-letter URI: http(s) URL, file:relative/path below the state dir, or an
    AWS sink ARN (with the `endpoint` and `auth` beside the URI)."""
    text = doc.string(path)
    aws_fields = [name for name in ("endpoint", "auth") if doc.get((*path[:-1], name)) is not None]
    if text is not None and text.startswith("arn:"):
        return _aws_target(doc, path, text)
    for name in aws_fields:
        if name == "auth" and text is not None and is_nats_uri(text):
            continue  # a NATS sink's own auth (runner.loader.nats_format)
        doc.error(
            (*path[:-1], name),
            "applies to AWS sinks only (a uri that is an ARN)"
            if name == "endpoint"
            else "applies to AWS sinks (a uri that is an ARN) and nats:// sinks only",
            at_key=True,
        )
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        doc.error(path, "is not a valid URI")
        return None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        url = _checked_http(
            doc, path, parts.hostname, parts.username, parts.password, text, "the URL"
        )
        return Target(url) if url else None
    if scheme == "file":
        return _file_target(doc, path, text)
    if scheme == "nats":
        return nats_target(doc, path, text)
    if not scheme:
        doc.error(
            path,
            "must be an absolute http:// or https:// URL, nats://HOST:PORT/SUBJECT, "
            "file:relative/path.jsonl, or an SQS, SNS, EventBridge or Kinesis ARN",
        )
    else:
        doc.value_error(
            path,
            f"unsupported scheme {scheme!r}: use http://, https://, nats://, file:path.jsonl "
            "or an ARN",
            without_value="unsupported scheme: use http://, https://, nats://, file:path.jsonl "
            "or an ARN",
        )
    return None


def _aws_target(doc: BridgeDocument, path: DocPath, text: str) -> Target | None:
    """An SQS, SNS, EventBridge or Kinesis ARN, with `endpoint` and `auth` beside it."""
    where = path[:-1]
    endpoint = http_url(doc, (*where, "endpoint"), what="the endpoint")
    auth = AwsAuth(
        credentials=credentials(doc, (*where, "auth", "credentials")),
        assume_role_arn=role_arn(doc, (*where, "auth", "assumeIamRole")),
    )
    try:
        arn = parse_sink_arn(text)
    except ValueError as exc:
        doc.value_error(path, str(exc), without_value=_NOT_A_SINK_ARN)
        return None
    return Target(text, aws=AwsTarget(arn=arn, endpoint=endpoint, auth=auth))


def _file_target(doc: BridgeDocument, path: DocPath, text: str) -> Target | None:
    rel = text[len("file:") :]
    example = "like file:events/signups.jsonl"
    if rel.startswith("/") or re.match(r"[A-Za-z]:", rel):
        doc.error(
            path,
            f"a file: URI must be a path relative to the state directory, {example} "
            "(not an absolute path)",
        )
        return None
    if "?" in rel or "#" in rel:
        doc.error(path, f"a file: URI is a plain relative path, {example} (no ? or #)")
        return None
    parts = PurePosixPath(rel.replace("\\", "/"))
    if ".." in parts.parts:
        doc.error(
            path, f"a file: URI must stay inside the state directory: remove '..' ({example})"
        )
        return None
    if not rel or str(parts) == "." or rel.endswith("/"):
        doc.error(path, f"a file: URI needs a file name, {example}")
        return None
    # The outbox database lives in the state directory too: appending JSON lines to it
    # (or to its -wal/-shm/-journal files) would corrupt it and lose every pending event.
    if parts.parts[0].lower().startswith(STATE_FILE_NAME):
        doc.error(
            path,
            f"a file: URI must not name bridge-runner's state database ({STATE_FILE_NAME} "
            f"and its -wal, -shm, -journal files): writing events there would corrupt it; "
            f"use another name, {example}",
        )
        return None
    return Target(text, file_path=parts.as_posix())


# -- what each request carries: headers and extension attributes ---------------------------


def headers(doc: BridgeDocument, path: DocPath) -> dict[str, HeaderValue]:
    result: dict[str, HeaderValue] = {}
    for name, value in doc.mapping(path).items():
        where = (*path, name)
        if name.lower().startswith(_RESERVED_HEADER_PREFIXES):
            doc.error(
                where,
                f"header {name!r} is set by bridge-runner (it carries the CloudEvent); "
                "use spec.ceOverrides.extensions for extension attributes",
                at_key=True,
            )
        elif name.lower() in _TRANSPORT_HEADERS:
            doc.error(
                where,
                f"header {name!r} is set by the HTTP client (it frames the request or "
                "controls the connection); remove it",
                at_key=True,
            )
        elif isinstance(value, str):
            if name.lower() in _CREDENTIAL_HEADERS and where not in doc.expanded:
                doc.warn(where, _PLAIN_TEXT_VALUE_WARNING)
            result[name] = value
        else:
            ref = secret(doc, where)
            if ref is not None:
                result[name] = ref
    return result


def extensions(doc: BridgeDocument, path: DocPath) -> dict[str, str]:
    """The extension attributes. Their names are checked by the schema (`propertyNames`:
    the CloudEvents form, and none of `RESERVED_ATTRIBUTES`); only the length CloudEvents
    recommends is left to check here."""
    result: dict[str, str] = {}
    for name, value in doc.mapping(path).items():
        where = (*path, name)
        if doc.already_reported(where):
            continue
        if len(name) > _EXTENSION_NAME_RECOMMENDED_MAX:
            doc.warn(
                where,
                f"extension name {name!r} is longer than the "
                f"{_EXTENSION_NAME_RECOMMENDED_MAX} characters CloudEvents recommends",
                at_key=True,
            )
        if isinstance(value, str):
            result[name] = value
    return result


def warn_percent_encoded(
    doc: BridgeDocument,
    path: DocPath,
    extensions: Mapping[str, str],
    *,
    sink_binary: bool,
    dead_letter_binary: bool,
) -> None:
    """Warn about extension values that HTTP binary mode would percent-encode.

    Binary mode carries each attribute in a `ce-` header, percent-encoding (CloudEvents
    HTTP binding, 3.1.3.2) space, `"`, `%` and every character outside printable ASCII;
    the JS, Go and Java SDKs hand such values on undecoded (cloudevents/spec#1397).
    Dead letters are always sent in binary mode.
    """
    if not (sink_binary or dead_letter_binary):
        return
    if sink_binary:
        mode = f"binary mode (spec.sink.format, default {defaults.SINK_FORMAT})"
        advice = "use format: structured or batch, whose JSON carries the value as it is"
    else:
        mode = "binary mode, which dead letters are sent in"
        advice = "use a file: deadLetterSink, which stores the value as it is"
    for name, value in extensions.items():
        encoded = percent_encoded_characters(value)
        if not encoded:
            continue
        value_path = (*path, name)
        if value_path in doc.expanded:
            # A value from the environment is not quoted, not even in part.
            found = "characters outside printable ASCII, or space, '\"' or '%'"
        else:
            found = ", ".join(_describe_character(c) for c in encoded)
        doc.warn(
            value_path,
            f"would be percent-encoded in its ce-{name} header in {mode}: it has {found}, "
            "and receivers built on the CloudEvents JS, Go or Java SDK do not decode it "
            f"(cloudevents/spec#1397); {advice}, or keep to printable ASCII without "
            "space, '\"' and '%'",
        )


def percent_encoded_characters(value: str) -> list[str]:
    """The distinct characters of `value` that the CloudEvents HTTP binding (3.1.3.2) has
    percent-encoded in a `ce-` header, in order of appearance: space, `"`, `%`, and anything
    outside printable ASCII (U+0021-U+007E)."""
    found = dict.fromkeys(c for c in value if not "!" <= c <= "~" or c in '"%')
    return list(found)


def _describe_character(char: str) -> str:
    if char == " ":
        return "space"
    if char.isprintable():
        return f"{char!r} (U+{ord(char):04X})"
    return f"U+{ord(char):04X}"
