"""TriggerMesh AWSCognitoUserPoolSource manifests: mapped onto the Bridge model with
TriggerMesh's defaults, errors in the manifest's own paths; the conformance sample as is
(rejected, sink.ref) and with sink.uri (accepted)."""

from __future__ import annotations

from runner.loader.config import load_bridge
from runner.model import SecretRef, Target
from tests.conformance import TRIGGERMESH_SAMPLE as SAMPLE
from tests.conformance import Conformance
from tests.loader.conftest import findings, load_text

SINK_REF = """  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: default
"""
REF_MESSAGE = (
    "Kubernetes object references cannot be resolved outside Kubernetes; replace "
    "spec.sink.ref with spec.sink.uri: http://<the broker or service URL>"
)
HEAD = """apiVersion: sources.triggermesh.io/v1alpha1
kind: AWSCognitoUserPoolSource
metadata:
  name: users
  namespace: identity
  labels: {team: identity}
  annotations: {note: x}
  uid: '1234'
"""


def test_conformance_sample_as_is_is_rejected_at_sink_ref(conformance: Conformance) -> None:
    path = conformance.path(SAMPLE)
    result = load_bridge(path, root=conformance.dir, env={}, display_path=SAMPLE)
    assert result.bridge is None
    assert findings(result) == [(41, 5, "spec.sink.ref", REF_MESSAGE, "error")]


def test_conformance_sample_with_sink_uri_is_accepted(conformance: Conformance) -> None:
    text = conformance.path(SAMPLE).read_text()
    assert SINK_REF in text
    swapped = text.replace(
        SINK_REF, "  sink:\n    uri: http://broker-ingress.knative-eventing.svc/default\n"
    )
    result = load_text(swapped, name="tm.yaml")
    assert result.valid and result.problems == ()
    bridge = result.bridge
    assert bridge is not None
    assert (bridge.origin, bridge.name, bridge.id) == ("AWSCognitoUserPoolSource", "sample", "tm")
    assert (
        bridge.source.pool.arn
        == "arn:aws:cognito-idp:us-west-2:123456789012:userpool/us-west-2_abcdefghi"
    )
    credentials = bridge.source.auth.credentials
    assert credentials is not None
    assert credentials.access_key_id == SecretRef(
        "secret", name="awscreds", key="aws_access_key_id"
    )
    assert credentials.secret_access_key == SecretRef(
        "secret", name="awscreds", key="aws_secret_access_key"
    )
    assert credentials.session_token is None
    # TriggerMesh's defaults, not the Bridge kind's.
    assert bridge.source.emit_deletions is False
    assert (bridge.source.initial_sync, bridge.source.poll_interval) == ("baseline", 30.0)
    assert bridge.sink.format == "binary"
    assert bridge.sink.target == Target("http://broker-ingress.knative-eventing.svc/default")
    assert len(bridge.digest) == 64


def test_metadata_and_ignored_parts() -> None:
    text = (
        HEAD
        + """spec:
  arn: arn:aws:cognito-idp:eu-west-1:043455440429:userpool/eu-west-1_abc
  auth:
    credentials:
      accessKeyID: {value: AKIAEXAMPLE}
      secretAccessKey: {valueFromSecret: {name: aws, key: secret}}
      sessionToken: {valueFromSecret: {name: aws, key: token}}
      assumeIamRole: arn:aws:iam::043455440429:role/reader
    iam: {roleArn: 'arn:aws:iam::043455440429:role/irsa'}
  sink:
    uri: file:events/users.jsonl
  adapterOverrides:
    resources: {limits: {memory: 64Mi}}
status:
  sinkUri: http://old
"""
    )
    result = load_text(text)
    assert result.valid
    assert findings(result) == [
        (
            13,
            21,
            "spec.auth.credentials.accessKeyID.value",
            "plain-text secret value: it is stored in git; prefer valueFromEnv, valueFromFile "
            "or valueFromSecret",
            "warning",
        ),
        (
            17,
            5,
            "spec.auth.iam",
            "ignored by bridge-runner: spec.auth.iam (IAM roles for service accounts configure "
            "the TriggerMesh adapter's pod); bridge-runner uses its own AWS identity (boto3's "
            "default chain, web identity / IRSA included) or spec.auth.credentials",
            "warning",
        ),
        (
            20,
            3,
            "spec.adapterOverrides",
            "ignored by bridge-runner: spec.adapterOverrides configure the TriggerMesh adapter's "
            "Kubernetes pod, which bridge-runner does not use",
            "warning",
        ),
    ]
    bridge = result.bridge
    assert bridge is not None
    assert (bridge.name, dict(bridge.labels)) == ("users", {"team": "identity"})
    assert bridge.source.auth.assume_role_arn == "arn:aws:iam::043455440429:role/reader"
    assert bridge.sink.target.file_path == "events/users.jsonl"
    assert "AKIAEXAMPLE" not in repr(bridge)


def test_errors_use_the_manifest_paths() -> None:
    text = (
        HEAD
        + """spec:
  arn: arn:aws:cognito-idp:us-west-2:043455440429:userpool/us_west_2_abc
  auth:
    credentials:
      accessKeyID: {valueFromEnv: AWS_ACCESS_KEY_ID}
      secretAccessKey: {valueFromSecret: {name: aws}}
  sink: {}
  extra: 1
"""
    )
    assert findings(load_text(text)) == [
        (
            10,
            8,
            "spec.arn",
            "user pool id 'us_west_2_abc' in ARN "
            "'arn:aws:cognito-idp:us-west-2:043455440429:userpool/us_west_2_abc' must look like "
            "us-west-2_<letters and digits>",
            "error",
        ),
        (
            13,
            21,
            "spec.auth.credentials.accessKeyID.valueFromEnv",
            "unknown field 'valueFromEnv' (allowed: value, valueFromSecret)",
            "error",
        ),
        (
            14,
            25,
            "spec.auth.credentials.secretAccessKey.valueFromSecret.key",
            "missing required field 'key'",
            "error",
        ),
        (15, 3, "spec.sink.uri", "missing required field 'uri'", "error"),
        (
            16,
            3,
            "spec.extra",
            "unknown field 'extra' (allowed: arn, auth, sink, adapterOverrides)",
            "error",
        ),
    ]


def test_missing_arn_and_sink() -> None:
    result = load_text(HEAD + "spec: {}\n")
    assert findings(result) == [
        (9, 1, "spec.arn", "missing required field 'arn'", "error"),
        (9, 1, "spec.sink", "missing required field 'sink'", "error"),
    ]


def test_file_sink_never_names_the_state_database() -> None:
    arn = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
    result = load_text(HEAD + f"spec:\n  arn: {arn}\n  sink: {{uri: 'file:state.sqlite-wal'}}\n")
    assert result.bridge is None
    assert findings(result) == [
        (
            11,
            15,
            "spec.sink.uri",
            "a file: URI must not name bridge-runner's state database (state.sqlite and its "
            "-wal, -shm, -journal files): writing events there would corrupt it; use another "
            "name, like file:events/signups.jsonl",
            "error",
        )
    ]
