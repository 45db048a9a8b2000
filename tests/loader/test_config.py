"""The loader on bridge-runner `Bridge` files: defaults, digests, and one fixture per bad-input
class under tests/fixtures/config/, each with its exact message, position and path."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from runner.loader.config import load_bridge, load_bytes
from runner.loader.digest import bridge_digest, effective_spec
from runner.model import SecretRef, Target
from tests.loader.conftest import ARN, FULL, MINIMAL, ROOT, findings, load_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"
SECRET_SHAPE = (
    "must be a secret value: exactly one of {valueFromEnv: NAME}, {valueFromFile: relative/path}, "
    "{valueFromSecret: {name: ..., key: ...}} or {value: ...}"
)
KINDS = (
    "expected apiVersion: bridge-runner/v1alpha1 with kind: Bridge, "
    "or apiVersion: sources.triggermesh.io/v1alpha1 with kind: AWSCognitoUserPoolSource"
)
CREDS = "spec.source.awsCognitoUserPool.auth.credentials"


def test_minimal_bridge_gets_every_default() -> None:
    result = load_text(MINIMAL, name="team/b.yaml")
    assert result.valid and result.problems == ()
    bridge = result.bridge
    assert bridge is not None
    assert (result.id, bridge.id, bridge.name, bridge.origin) == ("team/b", "team/b", "b", "Bridge")
    assert bridge.suspend is False and bridge.labels == {} and bridge.ce_extensions == {}
    source = bridge.source
    assert source.pool.pool_id == "us-west-2_fak3p001B" and source.pool.account == "043455440429"
    assert source.auth.credentials is None and source.auth.assume_role_arn is None
    assert (source.endpoint, source.poll_interval, source.initial_sync, source.emit_deletions) == (
        None,
        5.0,
        "baseline",
        True,
    )
    assert bridge.sink.target == Target("https://events.example.com/cognito")
    assert (bridge.sink.format, bridge.sink.max_batch_size, bridge.sink.timeout) == (
        "binary",
        100,
        10.0,
    )
    assert bridge.sink.headers == {}
    delivery = bridge.delivery
    assert (
        delivery.retry,
        delivery.backoff_policy,
        delivery.backoff_delay,
        delivery.max_backoff,
    ) == (
        None,
        "exponential",
        0.5,
        300.0,
    )
    assert delivery.dead_letter is None
    assert len(bridge.digest) == 64 and bridge.file_digest == result.file_digest


def test_full_bridge_maps_every_field() -> None:
    result = load_text(FULL)
    assert result.problems == ()
    bridge = result.bridge
    assert bridge is not None
    assert (bridge.name, dict(bridge.labels), bridge.suspend) == (
        "signups",
        {"team": "identity"},
        True,
    )
    credentials = bridge.source.auth.credentials
    assert credentials is not None
    assert credentials.access_key_id == SecretRef("env", name="BRIDGE_VAR_AWS_KEY_ID")
    assert credentials.secret_access_key == SecretRef(
        "secret", name="awscreds", key="aws_secret_access_key"
    )
    assert credentials.session_token == SecretRef("file", name="aws/session-token")
    assert bridge.source.auth.assume_role_arn == "arn:aws:iam::043455440429:role/cognito-reader"
    assert bridge.source.endpoint == "http://127.0.0.1:5000"
    assert (bridge.source.poll_interval, bridge.source.initial_sync) == (60.0, "emit")
    assert bridge.source.emit_deletions is False
    assert (bridge.sink.format, bridge.sink.max_batch_size, bridge.sink.timeout) == (
        "batch",
        250,
        5.0,
    )
    assert dict(bridge.sink.headers) == {
        "Authorization": SecretRef("env", name="BRIDGE_VAR_SINK_TOKEN"),
        "X-Team": "identity",
    }
    assert bridge.delivery.retry == 10 and bridge.delivery.backoff_policy == "linear"
    assert (bridge.delivery.backoff_delay, bridge.delivery.max_backoff) == (0.25, 3600.0)
    assert bridge.delivery.dead_letter == Target(
        "file:./dead-letter//signups.jsonl", file_path="dead-letter/signups.jsonl"
    )
    assert dict(bridge.ce_extensions) == {"team": "identity"}


def test_digest_follows_the_effective_spec_not_the_bytes() -> None:
    base = load_text(MINIMAL).bridge
    reformatted = load_text(MINIMAL.replace("  sink:\n", "  # a comment\n  sink:\n")).bridge
    explicit_defaults = load_text(MINIMAL + "    format: binary\n    timeout: 10s\n").bridge
    changed = load_text(MINIMAL + "    format: structured\n").bridge
    assert base and reformatted and explicit_defaults and changed
    assert base.file_digest != reformatted.file_digest
    assert base.digest == reformatted.digest == explicit_defaults.digest == bridge_digest(base)
    assert changed.digest != base.digest


def test_digest_and_repr_never_hold_an_inline_secret() -> None:
    text = FULL.replace("{valueFromEnv: BRIDGE_VAR_AWS_KEY_ID}", "{value: AKIAINLINESECRET}")
    first = load_text(text)
    second = load_text(text.replace("AKIAINLINESECRET", "AKIAOTHERSECRET"))
    assert first.bridge and second.bridge
    assert "AKIAINLINESECRET" not in repr(first.bridge)
    assert "AKIAINLINESECRET" not in repr(effective_spec(first.bridge))
    assert "AKIAINLINESECRET" not in " ".join(p.render() for p in first.problems)
    # Changing the value restarts the bridge all the same.
    assert first.bridge.digest != second.bridge.digest


def test_variables_are_expanded_from_env() -> None:
    text = MINIMAL.replace("https://events.example.com/cognito", "${BRIDGE_VAR_SINK_URL}") + (
        "    timeout: ${BRIDGE_VAR_TIMEOUT:-3s}\n"
        "    headers: {X-Literal: 'cost $${HOME} ${BRIDGE_VAR_CURRENCY:-EUR}'}\n"
    )
    result = load_text(text, env={"BRIDGE_VAR_SINK_URL": "file:events.jsonl"})
    assert result.problems == () and result.bridge is not None
    assert result.bridge.sink.target == Target("file:events.jsonl", file_path="events.jsonl")
    assert result.bridge.sink.timeout == 3.0
    assert result.bridge.sink.headers["X-Literal"] == "cost ${HOME} EUR"


def test_variables_default_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_VAR_TEST_SINK", "https://from-env.example.com/")
    text = MINIMAL.replace("https://events.example.com/cognito", "${BRIDGE_VAR_TEST_SINK}")
    result = load_bytes(text.encode(), path=ROOT / "b.yaml", root=ROOT)
    assert result.bridge is not None
    assert result.bridge.sink.target.uri == "https://from-env.example.com/"


def test_secret_value_taken_from_env_is_not_a_plain_text_warning() -> None:
    text = FULL.replace("{valueFromEnv: BRIDGE_VAR_AWS_KEY_ID}", "{value: '${BRIDGE_VAR_KEY}'}")
    result = load_text(text, env={"BRIDGE_VAR_KEY": "AKIAFROMENV"})
    assert result.valid and result.warnings == ()


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "syntax-error.yaml",
            [
                (
                    5,
                    1,
                    "",
                    "YAML syntax error: while parsing a flow mapping, did not find expected ',' or '}'",  # noqa: E501 - exact message
                    "error",
                )
            ],
        ),
        (
            "duplicate-key.yaml",
            [(10, 5, "spec.sink.uri", "duplicate key 'uri' (first defined on line 9)", "error")],
        ),
        (
            "not-a-mapping.yaml",
            [
                (
                    1,
                    1,
                    "",
                    "the top level must be a mapping (apiVersion, kind, metadata, spec), not a list",  # noqa: E501 - exact message
                    "error",
                )
            ],
        ),
        (
            "two-documents.yaml",
            [
                (
                    9,
                    1,
                    "",
                    "more than one YAML document ('---'): put each bridge in its own file",
                    "error",
                )
            ],
        ),
        (
            "alias-bomb.yaml",
            [
                (
                    5,
                    68,
                    "metadata.labels.e[0][2][0][4][8]",
                    "the document expands to more than 10,000 values (too many aliases?): refused",
                    "error",
                )
            ],
        ),
        (
            "non-string-key.yaml",
            [
                (
                    5,
                    5,
                    "metadata.labels",
                    "mapping key 'on' is read as a boolean, not a string: quote it",
                    "error",
                )
            ],
        ),
        ("unsupported-tag.yaml", [(3, 7, "spec", "unsupported YAML tag '!include'", "error")]),
        (
            "empty.yaml",
            [
                (
                    1,
                    1,
                    "",
                    "file is empty: expected a bridge (apiVersion, kind, metadata, spec)",
                    "error",
                )
            ],
        ),
        ("not-utf8.yaml", [(4, 12, "", "file is not UTF-8 text (invalid byte 0xe9)", "error")]),
        (
            "unknown-kind.yaml",
            [
                (
                    1,
                    13,
                    "apiVersion",
                    f"unknown apiVersion 'v1' with kind 'ConfigMap': {KINDS}",
                    "error",
                )
            ],
        ),
        (
            "unknown-field.yaml",
            [
                (
                    7,
                    7,
                    "spec.source.awsCognitoUserPool.pollIntervall",
                    "unknown field 'pollIntervall' (allowed: arn, auth, endpoint, pollInterval, "
                    "initialSync, emitDeletions)",
                    "error",
                ),
                (
                    10,
                    5,
                    "spec.sink.fromat",
                    "unknown field 'fromat' (allowed: uri, format, maxBatchSize, maxInFlight, "
                    "headers, timeout, endpoint, auth, signing, oauth2, tls)",
                    "error",
                ),
            ],
        ),
        (
            "missing-required.yaml",
            [
                (3, 1, "spec.sink", "missing required field 'sink'", "error"),
                (
                    5,
                    5,
                    "spec.source.awsCognitoUserPool.arn",
                    "missing required field 'arn'",
                    "error",
                ),
            ],
        ),
        (
            "schema-errors.yaml",
            [
                (
                    7,
                    22,
                    "spec.source.awsCognitoUserPool.emitDeletions",
                    "must be true or false, not a string",
                    "error",
                ),
                (10, 13, "spec.sink.format", "must be one of: binary, structured, batch", "error"),
                (11, 19, "spec.sink.maxBatchSize", "must be at least 1", "error"),
                (13, 12, "spec.delivery.retry", "must be an integer, not a string", "error"),
            ],
        ),
        (
            "bad-secret-object.yaml",
            [
                (9, 24, f"{CREDS}.accessKeyID", SECRET_SHAPE, "error"),
                (10, 28, f"{CREDS}.secretAccessKey", SECRET_SHAPE, "error"),
            ],
        ),
        (
            "bad-arn.yaml",
            [
                (
                    6,
                    12,
                    "spec.source.awsCognitoUserPool.arn",
                    "user pool id 'eu-west-1_fak3p001B' is in region 'eu-west-1' but the ARN says 'us-west-2'",  # noqa: E501 - exact message
                    "error",
                )
            ],
        ),
        (
            "bad-durations.yaml",
            [
                (
                    7,
                    21,
                    "spec.source.awsCognitoUserPool.pollInterval",
                    "must be at least 1s (got 500ms)",
                    "error",
                ),
                (
                    10,
                    14,
                    "spec.sink.timeout",
                    "must be a duration such as 500ms, 30s, 5m, 1h30m or PT30S",
                    "error",
                ),
                (
                    12,
                    19,
                    "spec.delivery.backoffDelay",
                    "ISO-8601 duration 'P1M' uses years or months, which have no fixed length: "
                    "use days (P30D) or hours instead",
                    "error",
                ),
            ],
        ),
        (
            "undefined-variable.yaml",
            [
                (
                    7,
                    17,
                    "spec.source.awsCognitoUserPool.endpoint",
                    "environment variable BRIDGE_VAR_COGNITO_ENDPOINT is not set and has no "
                    "default "
                    "(write ${BRIDGE_VAR_COGNITO_ENDPOINT:-default} to give one)",
                    "error",
                )
            ],
        ),
        (
            "secret-escapes.yaml",
            [
                (
                    9,
                    40,
                    f"{CREDS}.accessKeyID.valueFromFile",
                    "secret file path must be a path relative to --secrets-dir, not the absolute path "  # noqa: E501 - exact message
                    "'/etc/aws/key-id'",
                    "error",
                ),
                (
                    10,
                    44,
                    f"{CREDS}.secretAccessKey.valueFromFile",
                    "secret file path must stay inside --secrets-dir: '../aws/secret' contains '..'",  # noqa: E501 - exact message
                    "error",
                ),
                (
                    11,
                    50,
                    f"{CREDS}.sessionToken.valueFromSecret.name",
                    "must be a single path segment (no '/', '.' or '..'): the value is read from "
                    "<secrets-dir>/<name>/<key> (got 'aws/creds')",
                    "error",
                ),
            ],
        ),
        (
            "plain-secret-value.yaml",
            [
                (
                    10,
                    29,
                    f"{CREDS}.secretAccessKey.value",
                    "plain-text secret value: it is stored in git; prefer valueFromEnv, valueFromFile "  # noqa: E501 - exact message
                    "or valueFromSecret",
                    "warning",
                )
            ],
        ),
        (
            "bad-sink-uris.yaml",
            [
                (
                    8,
                    10,
                    "spec.sink.uri",
                    "unsupported scheme 'ftp': use http://, https://, nats://, file:path.jsonl "
                    "or an ARN",
                    "error",
                ),
                (
                    10,
                    27,
                    "spec.delivery.deadLetterSink.uri",
                    "a file: URI must stay inside the state directory: remove '..' "
                    "(like file:events/signups.jsonl)",
                    "error",
                ),
            ],
        ),
        (
            "batch-size-without-batch.yaml",
            [
                (
                    10,
                    5,
                    "spec.sink.maxBatchSize",
                    "maxBatchSize only applies to format: batch; it is ignored with format: structured",  # noqa: E501 - exact message
                    "warning",
                )
            ],
        ),
        (
            "bad-endpoint-and-role.yaml",
            [
                (
                    7,
                    17,
                    "spec.source.awsCognitoUserPool.endpoint",
                    "the endpoint must be an http:// or https:// URL",
                    "error",
                ),
                (
                    9,
                    24,
                    "spec.source.awsCognitoUserPool.auth.assumeIamRole",
                    "must be an IAM role ARN like arn:aws:iam::123456789012:role/name",
                    "error",
                ),
            ],
        ),
        (
            "bad-extensions-and-headers.yaml",
            [
                (
                    10,
                    7,
                    "spec.sink.headers.ce-type",
                    "header 'ce-type' is set by bridge-runner (it carries the CloudEvent); "
                    "use spec.ceOverrides.extensions for extension attributes",
                    "error",
                ),
                (
                    13,
                    7,
                    "spec.ceOverrides.extensions.type",
                    "'type' would replace an attribute that bridge-runner sets (reserved: "
                    "changedattributes, changetype, data, data_base64, datacontenttype, "
                    "dataschema, id, partitionkey, source, specversion, subject, time, type)",
                    "error",
                ),
                (
                    14,
                    7,
                    "spec.ceOverrides.extensions.Team",
                    "'Team' is not a CloudEvents attribute name: use lowercase letters a-z and "
                    "digits only",
                    "error",
                ),
            ],
        ),
    ],
)
def test_fixture_findings(fixture: str, expected: list[tuple[int, int, str, str, str]]) -> None:
    path = FIXTURES / fixture
    result = load_bridge(path, root=FIXTURES, env={}, display_path=f"bridges/{fixture}")
    assert findings(result) == expected
    assert all(p.file == f"bridges/{fixture}" for p in result.problems)
    assert result.id == fixture.removesuffix(".yaml")
    assert result.file_digest is not None and len(result.file_digest) == 64
    has_errors = any(severity == "error" for *_, severity in expected)
    assert result.valid is not has_errors
    assert (result.bridge is None) is has_errors


def test_every_fixture_is_covered() -> None:
    tested = set()
    for mark in test_fixture_findings.pytestmark:  # type: ignore[attr-defined]
        if mark.name == "parametrize":
            tested = {fixture for fixture, _ in mark.args[1]}
    assert tested == {p.name for p in FIXTURES.glob("*.yaml")}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    uri: https://user:pass@events.example.com/\n",
            "the URL must not hold credentials (user:password@): they would show in logs and "
            "status; send them in a header with a secret value instead",
        ),
        ("    uri: https:///x\n", "the URL needs a host, like https://events.example.com/cognito"),
        ("    uri: http://h:99999/\n", "is not a valid URI"),
        (
            "    uri: events.example.com\n",
            "must be an absolute http:// or https:// URL, nats://HOST:PORT/SUBJECT, "
            "file:relative/path.jsonl, or an SQS, SNS, EventBridge or Kinesis ARN",
        ),
        (
            "    uri: arn:aws:s3:::bucket\n",
            "ARN 'arn:aws:s3:::bucket' is for service 's3': a sink ARN names an SQS queue (sqs), "
            "an SNS topic (sns), an EventBridge event bus (events) or a Kinesis stream (kinesis)",
        ),
        (
            "    uri: arn:aws:sqs:moon-1:123456789012:q\n",
            "region 'moon-1' in ARN 'arn:aws:sqs:moon-1:123456789012:q' is not a region name "
            "like us-west-2",
        ),
        (
            "    uri: arn:aws:sns:us-east-1:1234:t\n",
            "account '1234' in ARN 'arn:aws:sns:us-east-1:1234:t' must be 12 digits",
        ),
        (
            "    uri: arn:aws-cn:sqs:us-east-1:123456789012:q\n",
            "region 'us-east-1' is not in partition 'aws-cn' "
            "(ARN 'arn:aws-cn:sqs:us-east-1:123456789012:q')",
        ),
        (
            "    uri: arn:aws:kinesis:us-east-1:123456789012:signups\n",
            "resource 'signups' in ARN 'arn:aws:kinesis:us-east-1:123456789012:signups' must be "
            "stream/<name> (letters, digits and the characters the service allows in a name)",
        ),
        (
            "    uri: arn:aws:events:us-east-1:123456789012:rule/r\n",
            "resource 'rule/r' in ARN 'arn:aws:events:us-east-1:123456789012:rule/r' must be "
            "event-bus/<name> (letters, digits and the characters the service allows in a name)",
        ),
        (
            "    uri: arn:aws:sqs:us-east-1:123456789012:a.b\n",
            "resource 'a.b' in ARN 'arn:aws:sqs:us-east-1:123456789012:a.b' must be <queue> "
            "(letters, digits and the characters the service allows in a name)",
        ),
        (
            "    uri: file:///var/events.jsonl\n",
            "a file: URI must be a path relative to the state directory, like "
            "file:events/signups.jsonl (not an absolute path)",
        ),
        (
            "    uri: 'file:events/'\n",
            "a file: URI needs a file name, like file:events/signups.jsonl",
        ),
        (
            "    uri: 'file:x.jsonl?a=1'\n",
            "a file: URI is a plain relative path, like file:events/signups.jsonl (no ? or #)",
        ),
    ],
)
def test_sink_uri_checks(extra: str, expected: str) -> None:
    text = MINIMAL.replace("    uri: https://events.example.com/cognito\n", extra)
    assert [(p.path, p.message) for p in load_text(text).problems] == [("spec.sink.uri", expected)]


STATE_DATABASE_MESSAGE = (
    "a file: URI must not name bridge-runner's state database (state.sqlite and its -wal, "
    "-shm, -journal files): writing events there would corrupt it; use another name, like "
    "file:events/signups.jsonl"
)


@pytest.mark.parametrize(
    "uri",
    [
        "file:state.sqlite",
        "file:state.sqlite-wal",
        "file:state.sqlite-shm",
        "file:state.sqlite-journal",
        "file:./state.sqlite",
        "file:.//state.sqlite-wal",
        "file:State.SQLite",
        "file:state.sqlite/events.jsonl",
    ],
)
def test_file_sinks_never_name_the_state_database(uri: str) -> None:
    sink = MINIMAL.replace("https://events.example.com/cognito", f"'{uri}'")
    dead_letter = MINIMAL + f"  delivery: {{deadLetterSink: {{uri: '{uri}'}}}}\n"
    assert [(p.path, p.message) for p in load_text(sink).problems] == [
        ("spec.sink.uri", STATE_DATABASE_MESSAGE)
    ]
    assert [(p.path, p.message) for p in load_text(dead_letter).problems] == [
        ("spec.delivery.deadLetterSink.uri", STATE_DATABASE_MESSAGE)
    ]


def test_file_sinks_may_live_beside_the_state_database() -> None:
    for uri in ("file:events/state.sqlite", "file:my-state.sqlite.jsonl"):
        result = load_text(MINIMAL.replace("https://events.example.com/cognito", f"'{uri}'"))
        assert result.problems == () and result.bridge is not None
        assert result.bridge.sink.target.file_path == uri.removeprefix("file:")


@pytest.mark.parametrize(
    "name",
    [
        "Content-Length",
        "Host",
        "transfer-encoding",
        "Connection",
        "KEEP-ALIVE",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Connection",
    ],
)
def test_transport_headers_are_refused_at_their_key(name: str) -> None:
    result = load_text(MINIMAL + f"    headers:\n      X-Team: identity\n      {name}: '1'\n")
    assert findings(result) == [
        (
            11,
            7,
            f"spec.sink.headers.{name}",
            f"header {name!r} is set by the HTTP client (it frames the request or controls "
            "the connection); remove it",
            "error",
        )
    ]
    assert result.bridge is None


def test_merge_key_bomb_is_a_problem_of_the_file() -> None:
    keys = ", ".join(f"k{i}: {i}" for i in range(200))
    refs = ", ".join(["*a"] * 100)
    text = MINIMAL + f"  x-defaults: &a {{{keys}}}\n  ceOverrides: {{<<: [{refs}]}}\n"
    assert [(p.path, p.message) for p in load_text(text).problems] == [
        (
            "spec.ceOverrides",
            "the document expands to more than 10,000 values (too many aliases?): refused",
        )
    ]


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        (
            "  delivery: {maxBackoff: 1s, backoffDelay: 2s}\n",
            "spec.delivery.maxBackoff",
            "must not be shorter than backoffDelay (2s)",
        ),
        (
            "  delivery: {backoffDelay: 0s}\n",
            "spec.delivery.backoffDelay",
            "must be longer than 0s (got 0s)",
        ),
        ("  delivery: {retry: -1}\n", "spec.delivery.retry", "must be at least 0"),
        (
            "  delivery: {backoffPolicy: random}\n",
            "spec.delivery.backoffPolicy",
            "must be one of: exponential, linear",
        ),
        (
            "    maxBatchSize: 10001\n    format: batch\n",
            "spec.sink.maxBatchSize",
            "must be at most 10000",
        ),
        (
            "    headers: {X-A: {valueFromEnv: 1BAD}}\n",
            "spec.sink.headers.X-A.valueFromEnv",
            "must be an environment variable name (letters, digits and _, not starting with a digit)",  # noqa: E501 - exact message
        ),
        (
            "    headers: {X-A: {}}\n",
            "spec.sink.headers.X-A",
            SECRET_SHAPE.replace("must be a secret value", "must be a string or a secret value"),
        ),
        (
            "    headers: {'Bad Name': x}\n",
            'spec.sink.headers["Bad Name"]',
            "'Bad Name' must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "    headers: {Authorization: Bearer abc}\n",
            "spec.sink.headers.Authorization",
            "plain-text secret value: it is stored in git; prefer valueFromEnv, valueFromFile or valueFromSecret",  # noqa: E501 - exact message
        ),
        (
            "  ceOverrides: {extensions: {averyveryverylongextensionname: x}}\n",
            "spec.ceOverrides.extensions.averyveryverylongextensionname",
            "extension name 'averyveryverylongextensionname' is longer than the 20 characters CloudEvents recommends",  # noqa: E501 - exact message
        ),
        (
            "  ceOverrides: {extensions: {n: 1}}\n",
            "spec.ceOverrides.extensions.n",
            "must be a string, not a number",
        ),
        ("  suspend: 'yes'\n", "spec.suspend", "must be true or false, not a string"),
        (
            "  sink2: {}\n",
            "spec.sink2",
            "unknown field 'sink2' (allowed: suspend, source, sink, delivery, ceOverrides, events)",
        ),
        (
            "    timeout: '${BRIDGE_VAR_T'\n",
            "spec.sink.timeout",
            "malformed variable reference: write ${NAME} or ${NAME:-default} (NAME: letters, digits and _), or $${ for a literal ${",  # noqa: E501 - exact message
        ),
    ],
)
def test_single_field_checks(extra: str, path: str, message: str) -> None:
    result = load_text(MINIMAL + extra)
    assert [(p.path, p.message) for p in result.problems] == [(path, message)]


def test_metadata_checks() -> None:
    text = (
        "apiVersion: bridge-runner/v1alpha1\nkind: Bridge\nmetadata:\n  name: ''\n  namespace: x\n"
    )
    result = load_text(text + MINIMAL.split("kind: Bridge\n", 1)[1])
    assert findings(result) == [
        (4, 9, "metadata.name", "must not be empty", "error"),
        (5, 3, "metadata.namespace", "unknown field 'namespace' (allowed: name, labels)", "error"),
    ]


@pytest.mark.parametrize(
    ("head", "line", "column", "path", "message"),
    [
        (
            "apiVersion: bridge-runner/v1alpha1\nkind: Brigde\n",
            2,
            7,
            "kind",
            f"unknown apiVersion 'bridge-runner/v1alpha1' with kind 'Brigde': {KINDS}",
        ),
        (
            "apiVersion: bridge-runner/v1\nkind: Bridge\n",
            1,
            13,
            "apiVersion",
            f"unknown apiVersion 'bridge-runner/v1' with kind 'Bridge': {KINDS}",
        ),
        (
            "kind: Bridge\n",
            1,
            1,
            "apiVersion",
            f"unknown apiVersion (missing) with kind 'Bridge': {KINDS}",
        ),
        ("name: x\n", 1, 1, "", f"missing apiVersion and kind: {KINDS}"),
    ],
)
def test_unknown_format(head: str, line: int, column: int, path: str, message: str) -> None:
    result = load_text(head)
    assert findings(result) == [(line, column, path, message, "error")]


def test_unreadable_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    result = load_bridge(tmp_path / "gone.yaml", root=tmp_path)
    assert result.bridge is None and result.file_digest is None and result.id == "gone"
    assert findings(result) == [
        (None, None, "", "cannot read the file: No such file or directory", "error")
    ]


def test_oversized_file_is_refused_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (1024 * 1024 + 1))
    result = load_bridge(path, root=tmp_path, display_path="big.yaml")
    assert findings(result) == [
        (
            None,
            None,
            "",
            "file is too large: 1,048,577 bytes (bridge files are limited to 1 MiB)",
            "error",
        )
    ]
    assert result.file_digest is not None and len(result.file_digest) == 64


def test_file_outside_root_falls_back_to_its_stem() -> None:
    result = load_bytes(MINIMAL.encode(), path=Path("/elsewhere/x.yml"), root=ROOT, env={})
    assert result.valid and result.id == "x"


def test_load_bridge_reads_the_file_and_uses_display_path(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    path = tmp_path / "team" / "signups.yml"
    path.write_text(textwrap.dedent(MINIMAL) + "  nope: 1\n")
    result = load_bridge(path, root=tmp_path, env=dict(os.environ), display_path="team/signups.yml")
    assert result.id == "team/signups"
    assert [p.render() for p in result.problems] == [
        "team/signups.yml:9:3: error: unknown field 'nope' (allowed: suspend, source, sink, "
        "delivery, ceOverrides, events) [spec.nope]"
    ]


@pytest.mark.parametrize(
    ("extra", "env", "path", "message"),
    [
        # The value a variable gives is held to the field's form, with the schema's message.
        (
            "    timeout: ${BRIDGE_VAR_T}\n",
            {"BRIDGE_VAR_T": "5 minutes"},
            "spec.sink.timeout",
            "must be a duration such as 500ms, 30s, 5m, 1h30m or PT30S",
        ),
        (
            "    format: ${BRIDGE_VAR_FORMAT:-json}\n",
            {},
            "spec.sink.format",
            "must be one of: binary, structured, batch",
        ),
        # Still a reference after substitution: not a way around the field's form.
        (
            "    timeout: $${BRIDGE_VAR_T}\n",
            {},
            "spec.sink.timeout",
            "must be a duration such as 500ms, 30s, 5m, 1h30m or PT30S",
        ),
        (
            "    format: ${BRIDGE_VAR_FORMAT}\n",
            {"BRIDGE_VAR_FORMAT": "${BRIDGE_VAR_OTHER}"},
            "spec.sink.format",
            "must be one of: binary, structured, batch",
        ),
        (
            "    headers: {X-A: {valueFromEnv: '${BRIDGE_VAR_NAME}'}}\n",
            {"BRIDGE_VAR_NAME": "${BRIDGE_VAR_X}"},
            "spec.sink.headers.X-A.valueFromEnv",
            "must be an environment variable name (letters, digits and _, not starting with a digit)",  # noqa: E501 - exact message
        ),
    ],
)
def test_values_from_variables_are_held_to_the_form_of_their_field(
    extra: str, env: dict[str, str], path: str, message: str
) -> None:
    result = load_text(MINIMAL + extra, env=env)
    assert [(p.path, p.message) for p in result.problems] == [(path, message)]


def test_variables_in_fields_of_a_fixed_form_give_the_values_of_the_environment() -> None:
    text = FULL.replace("pollInterval: 1m", "pollInterval: ${BRIDGE_VAR_POLL}").replace(
        "backoffPolicy: linear", "backoffPolicy: ${BRIDGE_VAR_POLICY:-exponential}"
    )
    bridge = load_text(text, env={"BRIDGE_VAR_POLL": "2m"}).bridge
    assert bridge is not None
    assert bridge.source.poll_interval == 120.0
    assert bridge.delivery.backoff_policy == "exponential"


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        (
            "      pollInterval: P${BRIDGE_VAR_V}M\n",
            "spec.source.awsCognitoUserPool.pollInterval",
            "must be a duration such as 500ms, 30s, 5m, 1h30m or PT30S",
        ),
        (
            "      pollInterval: ${BRIDGE_VAR_V}ms\n",
            "spec.source.awsCognitoUserPool.pollInterval",
            "must be at least 1s",
        ),
        (
            "      arn: ${BRIDGE_VAR_V}\n",
            "spec.source.awsCognitoUserPool.arn",
            "is not a user pool ARN: arn:<partition>:cognito-idp:<region>:<12-digit account>:"
            "userpool/<region>_<id>, with the pool id in the ARN's region",
        ),
        (
            "      auth: {credentials: {accessKeyID: {valueFromFile: '/${BRIDGE_VAR_V}'},"
            " secretAccessKey: {valueFromEnv: BRIDGE_VAR_K}}}\n",
            f"{CREDS}.accessKeyID.valueFromFile",
            "secret file path must be relative and stay inside --secrets-dir (no '..')",
        ),
        (
            "      auth: {credentials: {accessKeyID: "
            "{valueFromSecret: {name: 'a/${BRIDGE_VAR_V}', key: k}},"
            " secretAccessKey: {valueFromEnv: BRIDGE_VAR_K}}}\n",
            f"{CREDS}.accessKeyID.valueFromSecret.name",
            "must be a single path segment (no '/', '.' or '..'): the value is read from "
            "<secrets-dir>/<name>/<key>",
        ),
        (
            "      endpoint: http://127.0.0.1:5000\n  sink: {uri: 'x${BRIDGE_VAR_V}://h/'}\n",
            "spec.sink.uri",
            "unsupported scheme: use http://, https://, nats://, file:path.jsonl or an ARN",
        ),
    ],
)
def test_no_environment_value_is_shown_in_a_message(extra: str, path: str, message: str) -> None:
    # MINIMAL without its arn line (and, for the sink case, its sink): `extra` gives them.
    head, tail = MINIMAL.split(f"      arn: {ARN}\n")
    if "  sink:" in extra:
        tail = ""
    text = head + (extra if "arn:" in extra else f"      arn: {ARN}\n" + extra) + tail
    result = load_text(text, env={"BRIDGE_VAR_V": "432"})
    assert [(p.path, p.message) for p in result.problems] == [
        (path, f"{message} (the value comes from the environment and is not shown)")
    ]
    assert "432" not in " ".join(p.message for p in result.problems)
