"""TriggerMesh's format, `apiVersion: sources.triggermesh.io/v1alpha1`,
`kind: AWSCognitoUserPoolSource`: a checked manifest becomes a `Bridge` that behaves as
TriggerMesh's source did (DESIGN §2.1). What only Kubernetes can use (the adapter's IAM
settings, `adapterOverrides`) is ignored with a warning; a `sink.ref` is an error."""

from __future__ import annotations

from pathlib import Path

from runner import defaults
from runner.loader import semantics
from runner.loader.document import BridgeDocument, DocPath
from runner.model import AwsAuth, Bridge, CognitoSource, Sink, frozen_map

_AUTH: DocPath = ("spec", "auth")
_SINK: DocPath = ("spec", "sink")
_IGNORED_AUTH_FIELDS = (
    ("iam", "IAM roles for service accounts configure the TriggerMesh adapter's pod"),
    ("iamRole", "the deprecated IRSA role of the TriggerMesh adapter's pod"),
)


def build_triggermesh(doc: BridgeDocument, bridge_id: str, path: Path) -> Bridge | None:
    """The `Bridge` the manifest describes, or None when it has errors (they are reported)."""
    pool = semantics.pool_arn(doc, ("spec", "arn"))
    credentials_path: DocPath = (*_AUTH, "credentials")
    auth = AwsAuth(
        credentials=semantics.credentials(doc, credentials_path),
        assume_role_arn=semantics.role_arn(doc, (*credentials_path, "assumeIamRole")),
    )
    _warn_ignored(doc)
    target = None
    sink = doc.mapping(_SINK)
    if "ref" in sink:
        doc.error(
            (*_SINK, "ref"),
            "Kubernetes object references cannot be resolved outside Kubernetes; replace "
            "spec.sink.ref with spec.sink.uri: http://<the broker or service URL>",
            at_key=True,
        )
    elif "uri" not in sink and isinstance(doc.get(_SINK), dict):
        doc.error((*_SINK, "uri"), "missing required field 'uri'")
    else:
        target = semantics.target(doc, (*_SINK, "uri"))

    if doc.has_errors or pool is None or target is None:
        return None
    # TriggerMesh's behaviour (DESIGN §2.1): baseline, no deletion events, binary mode.
    return Bridge(
        id=bridge_id,
        file=path,
        name=doc.name(path),
        source=CognitoSource(
            pool=pool,
            auth=auth,
            poll_interval=defaults.TRIGGERMESH_POLL_INTERVAL,
            initial_sync=defaults.TRIGGERMESH_INITIAL_SYNC,
            emit_deletions=defaults.TRIGGERMESH_EMIT_DELETIONS,
        ),
        sink=Sink(target=target, format=defaults.TRIGGERMESH_SINK_FORMAT),
        labels=frozen_map(doc.labels()),
        origin="AWSCognitoUserPoolSource",
    )


def _warn_ignored(doc: BridgeDocument) -> None:
    for ignored, what in _IGNORED_AUTH_FIELDS:
        if ignored in doc.mapping(_AUTH):
            doc.warn(
                (*_AUTH, ignored),
                f"ignored by bridge-runner: spec.auth.{ignored} ({what}); bridge-runner "
                "uses its own AWS identity (boto3's default chain, web identity / IRSA "
                "included) or spec.auth.credentials",
                at_key=True,
            )
    if "adapterOverrides" in doc.mapping(("spec",)):
        doc.warn(
            ("spec", "adapterOverrides"),
            "ignored by bridge-runner: spec.adapterOverrides configure the TriggerMesh "
            "adapter's Kubernetes pod, which bridge-runner does not use",
            at_key=True,
        )
