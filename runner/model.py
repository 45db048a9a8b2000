"""The typed, frozen model every part of bridge-runner shares.

The loader (`runner.loader.config`) turns a file into a `Bridge` with every default filled in
(the defaults themselves are `runner.defaults`), or into located `Problem`s. Nothing here does
I/O. Secret values never live in the model: a `SecretRef` says where the value comes from, and
`runner.secrets.resolver` resolves it at run time. A model can therefore be printed or logged
safely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from runner import defaults

API_VERSION = "bridge-runner/v1alpha1"
KIND_BRIDGE = "Bridge"
TRIGGERMESH_API_VERSION = "sources.triggermesh.io/v1alpha1"
TRIGGERMESH_KIND = "AWSCognitoUserPoolSource"

EVENT_TYPE_SYNC = "com.amazon.cognito-idp.sync_trigger"
EVENT_TYPE_DELETED = "com.amazon.cognito-idp.user_deleted"

# Attributes an extension from the bridge file (`ceOverrides.extensions`) may never replace:
# the CloudEvents 1.0 context attributes, the JSON format's members, and our own extension.
CHANGETYPE_EXTENSION = "changetype"
# What changed, on `updated` events; the user's `sub`, on every event (CloudEvents
# Partitioning): `spec.events`, issue 13.
CHANGEDATTRIBUTES_EXTENSION = "changedattributes"
PARTITIONKEY_EXTENSION = "partitionkey"
RESERVED_ATTRIBUTES = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
        CHANGETYPE_EXTENSION,
        CHANGEDATTRIBUTES_EXTENSION,
        PARTITIONKEY_EXTENSION,
    }
)

BRIDGE_SUFFIXES = (".yaml", ".yml")
STATUS_SUFFIX = ".status.json"
# The outbox's SQLite database in the state directory; SQLite adds `-wal`, `-shm` and
# `-journal` files beside it. A `file:` sink must never write to any of them.
STATE_FILE_NAME = "state.sqlite"

Severity = Literal["error", "warning"]
SinkFormat = Literal["binary", "structured", "batch"]
BackoffPolicy = Literal["exponential", "linear"]
InitialSync = Literal["baseline", "emit"]
ChangeType = Literal["created", "updated", "deleted"]
SecretSource = Literal["value", "env", "file", "secret"]


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only copy of `items`, for mapping fields of the frozen model."""
    return MappingProxyType(dict(items or {}))


def bridge_id_for(root: Path, path: Path) -> str:
    """A bridge's id: its path relative to the bridges directory, POSIX-style, without suffix."""
    text, base = str(path), str(root)
    if os.sep == "/" and base != "/" and text.startswith(base + "/"):
        # The usual spelling, `root / ...`: the same answer as below without pathlib, which
        # was most of the cost of re-reading a directory of thousands of unchanged files.
        rel = text[len(base) + 1 :]
        name = rel.rpartition("/")[2]
        dot = name.rfind(".")
        suffix = name[dot:] if 0 < dot < len(name) - 1 else ""
        return rel[: -len(suffix)] if suffix in BRIDGE_SUFFIXES else rel
    pure = PurePosixPath(path.relative_to(root).as_posix())
    return str(pure.with_suffix("")) if pure.suffix in BRIDGE_SUFFIXES else str(pure)


@dataclass(frozen=True, slots=True)
class Problem:
    """One located finding about a bridge file.

    `line` and `column` are 1-based (None when the finding has no position, e.g. an
    unreadable file). `path` is the dotted JSON path in the file's own terms
    (`spec.sink.uri`, `spec.arn` for TriggerMesh manifests, `spec.sink.headers.X-Token`,
    `spec.delivery.retry`, `metadata.labels` ...); "" means the whole document.
    """

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    severity: Severity = "error"

    def render(self) -> str:
        """`file:line:col: severity: message [path]` — the `check --format text` line."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        suffix = f" [{self.path}]" if self.path else ""
        return f"{where}: {self.severity}: {self.message}{suffix}"


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret value comes from; never the resolved value.

    source == "value":  `literal` holds the plain-text value written in the file (check warns);
    source == "env":    `name` is the environment variable;
    source == "file":   `name` is a path relative to --secrets-dir;
    source == "secret": `name`/`key` address `<secrets-dir>/<name>/<key>`.
    """

    source: SecretSource
    name: str = ""
    key: str = ""
    literal: str = field(default="", repr=False, compare=True)

    def describe(self) -> str:
        """A safe, human description of the reference (never the value)."""
        if self.source == "value":
            return "inline value"
        if self.source == "env":
            return f"environment variable {self.name}"
        if self.source == "file":
            return f"secrets file {self.name}"
        return f"secret {self.name}/{self.key}"

    def __repr__(self) -> str:
        return f"SecretRef({self.describe()})"


# A header value is either a plain string or a secret reference.
HeaderValue = str | SecretRef


@dataclass(frozen=True, slots=True)
class PoolArn:
    """A parsed Cognito user pool ARN.

    `arn:<partition>:cognito-idp:<region>:<account>:userpool/<region>_<id>`
    """

    arn: str
    partition: str
    region: str
    account: str
    pool_id: str


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key_id: SecretRef
    secret_access_key: SecretRef
    session_token: SecretRef | None = None


@dataclass(frozen=True, slots=True)
class AwsAuth:
    """None credentials means boto3's default chain; `assume_role_arn` is applied on top."""

    credentials: AwsCredentials | None = None
    assume_role_arn: str | None = None


@dataclass(frozen=True, slots=True)
class CognitoSource:
    pool: PoolArn
    auth: AwsAuth = AwsAuth()
    endpoint: str | None = None
    poll_interval: float = defaults.POLL_INTERVAL  # seconds
    initial_sync: InitialSync = defaults.INITIAL_SYNC
    emit_deletions: bool = defaults.EMIT_DELETIONS


AwsSinkService = Literal["sqs", "sns", "events", "kinesis"]


@dataclass(frozen=True, slots=True)
class SinkArn:
    """A parsed AWS sink ARN: an SQS queue, an SNS topic, an EventBridge bus, a Kinesis stream.

    `name` is the queue, topic, bus or stream name (without `event-bus/` or `stream/`).
    """

    arn: str
    partition: str
    service: AwsSinkService
    region: str
    account: str
    name: str

    @property
    def fifo(self) -> bool:
        """An SQS FIFO queue or SNS FIFO topic (its name ends in `.fifo`)."""
        return self.service in ("sqs", "sns") and self.name.endswith(".fifo")


@dataclass(frozen=True, slots=True)
class AwsTarget:
    """An AWS sink: its ARN, `endpoint` (None: boto3's AWS_ENDPOINT_URL* variables) and auth."""

    arn: SinkArn
    endpoint: str | None = None
    auth: AwsAuth = AwsAuth()


TargetKind = Literal["http", "file", "aws"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where events go: an http(s) URL, a JSON-lines file under the state directory, or an
    AWS service named by its ARN.

    For `file:` URIs, `file_path` is the path relative to --state-dir (validated not to
    leave it); for an ARN, `aws` holds it parsed, with its endpoint and auth; for http(s)
    both are None.
    """

    uri: str
    file_path: str | None = None
    aws: AwsTarget | None = None

    @property
    def is_file(self) -> bool:
        return self.file_path is not None

    @property
    def kind(self) -> TargetKind:
        if self.file_path is not None:
            return "file"
        return "aws" if self.aws is not None else "http"


@dataclass(frozen=True, slots=True)
class NatsAuth:
    """How a `nats://` sink signs in: one of a token, a user and password, or the content
    of a user credentials (`.creds`) file; every secret is a reference."""

    token: SecretRef | None = None
    user: HeaderValue | None = None
    password: SecretRef | None = None
    credentials: SecretRef | None = None


@dataclass(frozen=True, slots=True)
class OAuth2Client:
    """OAuth2 client credentials for an http(s) sink: a token from `token_url`, sent as
    `Authorization: Bearer`."""

    token_url: str
    client_id: HeaderValue
    client_secret: SecretRef
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SinkTls:
    """TLS of an https sink: a CA bundle to trust instead of the system's, and a client
    certificate and key (PEM) for mTLS."""

    ca_bundle: SecretRef | None = None
    client_certificate: SecretRef | None = None
    client_key: SecretRef | None = None


@dataclass(frozen=True, slots=True)
class Sink:
    target: Target
    format: SinkFormat = defaults.SINK_FORMAT
    max_batch_size: int = defaults.MAX_BATCH_SIZE
    headers: Mapping[str, HeaderValue] = field(default_factory=frozen_map)
    timeout: float = defaults.SINK_TIMEOUT  # seconds
    # Requests in flight at once; events of one user are still delivered in order.
    max_in_flight: int = defaults.MAX_IN_FLIGHT
    nats_auth: NatsAuth | None = None  # spec.sink.auth of a nats:// sink
    signing_secret: SecretRef | None = None  # Standard Webhooks signatures (http sinks)
    oauth2: OAuth2Client | None = None
    tls: SinkTls | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    retry: int | None = defaults.RETRY  # retries after the first attempt; None: until delivered
    backoff_policy: BackoffPolicy = defaults.BACKOFF_POLICY
    backoff_delay: float = defaults.BACKOFF_DELAY  # seconds
    max_backoff: float = defaults.MAX_BACKOFF  # seconds
    dead_letter: Target | None = None


@dataclass(frozen=True, slots=True)
class EventsSpec:
    """`spec.events`: which attributes `sync_trigger` data carries and which changes are sent.

    `include` (empty: every attribute) and `exclude` are `fnmatch` globs of attribute names;
    an attribute is visible when it matches `include` (or `include` is empty) and no
    `exclude` pattern. `change_types` are the change types sent, in canonical order
    (`emitDeletions: false` removes `deleted` from them: see `sends`)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    change_types: tuple[ChangeType, ...] = defaults.CHANGE_TYPES

    @property
    def filters_attributes(self) -> bool:
        return bool(self.include or self.exclude)


@dataclass(frozen=True, slots=True)
class Bridge:
    """One bridge, with every default filled in.

    `digest` is the sha256 of the *effective* spec (what the poller runs): a change to it
    restarts the bridge. `file_digest` is the sha256 of the file's bytes (observedDigest).
    `origin` tells which format the file was written in; error paths use that format's terms.
    """

    id: str
    file: Path
    name: str
    source: CognitoSource
    sink: Sink
    delivery: Delivery = Delivery()
    labels: Mapping[str, str] = field(default_factory=frozen_map)
    suspend: bool = defaults.SUSPEND
    ce_extensions: Mapping[str, str] = field(default_factory=frozen_map)
    events: EventsSpec = EventsSpec()
    origin: Literal["Bridge", "AWSCognitoUserPoolSource"] = "Bridge"
    digest: str = ""
    file_digest: str = ""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What loading one file gives: a bridge (when valid) and every problem found."""

    file: Path
    id: str
    bridge: Bridge | None
    problems: tuple[Problem, ...] = ()
    file_digest: str | None = None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def valid(self) -> bool:
        return self.bridge is not None and not self.errors


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One CloudEvent waiting in the outbox, as committed with its scan.

    `attributes` are the CloudEvents context attributes (specversion, id, source, type,
    subject, time as RFC 3339 string, datacontenttype, changetype and extensions), `data`
    the JSON payload. Build a fresh `cloudevents` event from copies of them for each send:
    the SDK writes into the dict it is given. `user_key` names the user the event is about
    (its username): events with the same key are delivered strictly in order.
    """

    seq: int
    bridge_id: str
    event_id: str
    attributes: Mapping[str, Any]
    data: Mapping[str, Any]
    attempts: int = 0
    user_key: str = ""


# -- what the durable layer stores, built by polling ------------------------------------------
# Here, below both, so that `runner.state` stores them without importing `runner.polling`.


class SnapshotEntry(NamedTuple):
    """What the snapshot remembers of a user between scans.

    `seen_gen` is the generation of the last scan that read the user (0: none that marked
    it) and `modified_us` its UserLastModifiedDate then (microseconds since the epoch; None
    when unknown): a streamed scan that meets a user twice keeps the copy modified last.
    A NamedTuple, not a dataclass: a scan reads one per user it meets, and a frozen
    dataclass costs three times as much to build."""

    fingerprint: str
    sub: str | None
    seen_gen: int = 0
    modified_us: int | None = None
    # Keyed digests of each part of the record (attribute name, or `@Enabled` ...) as JSON
    # text, parsed only for a user that changed (None: a row written before they were
    # kept); `resync`: `bridge-runner resync` asked for this user to be sent again.
    parts: str | None = None
    resync: bool = False


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event built from a change, not yet in the outbox.

    `attributes` hold every context attribute (including `id` == `event_id`, `time` as an
    RFC 3339 string) and extension; `data` is the JSON payload; `user_key` the username of
    the user it is about (see `OutboxEvent`).
    """

    event_id: str
    attributes: dict[str, Any]
    data: dict[str, Any]
    user_key: str = ""
