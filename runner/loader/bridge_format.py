"""bridge-runner's own format, `apiVersion: bridge-runner/v1alpha1`, `kind: Bridge`: a checked
document becomes a `Bridge` with every default (`runner.defaults`) filled in (DESIGN §2)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from runner import defaults
from runner._kits.durations import format_duration
from runner.loader import http_auth_format, semantics
from runner.loader.document import BridgeDocument, DocPath
from runner.loader.events_spec import events_spec
from runner.loader.nats_format import nats_auth
from runner.model import (
    AwsAuth,
    BackoffPolicy,
    Bridge,
    CognitoSource,
    Delivery,
    InitialSync,
    Sink,
    SinkFormat,
    frozen_map,
)

_POOL: DocPath = ("spec", "source", "awsCognitoUserPool")
_SINK: DocPath = ("spec", "sink")
_DELIVERY: DocPath = ("spec", "delivery")
_EXTENSIONS: DocPath = ("spec", "ceOverrides", "extensions")


def build_bridge(doc: BridgeDocument, bridge_id: str, path: Path) -> Bridge | None:
    """The `Bridge` the document describes, or None when it has errors (they are reported)."""
    source = _source(doc)
    sink = _sink(doc)
    delivery = _delivery(doc)
    extensions = semantics.extensions(doc, _EXTENSIONS)
    semantics.warn_percent_encoded(
        doc,
        _EXTENSIONS,
        extensions,
        sink_binary=sink is not None and sink.format == "binary" and sink.target.kind == "http",
        dead_letter_binary=delivery is not None
        and delivery.dead_letter is not None
        and delivery.dead_letter.kind == "http",
    )
    events = events_spec(
        doc,
        emit_deletions=doc.boolean((*_POOL, "emitDeletions"), defaults.EMIT_DELETIONS),
    )
    if doc.has_errors or source is None or sink is None or delivery is None:
        return None
    return Bridge(
        id=bridge_id,
        file=path,
        name=doc.name(path),
        source=source,
        sink=sink,
        delivery=delivery,
        labels=frozen_map(doc.labels()),
        suspend=doc.boolean(("spec", "suspend"), defaults.SUSPEND),
        ce_extensions=frozen_map(extensions),
        events=events,
        origin="Bridge",
    )


def _source(doc: BridgeDocument) -> CognitoSource | None:
    pool = semantics.pool_arn(doc, (*_POOL, "arn"))
    auth = AwsAuth(
        credentials=semantics.credentials(doc, (*_POOL, "auth", "credentials")),
        assume_role_arn=semantics.role_arn(doc, (*_POOL, "auth", "assumeIamRole")),
    )
    endpoint = semantics.http_url(doc, (*_POOL, "endpoint"), what="the endpoint")
    poll_interval = semantics.duration(
        doc, (*_POOL, "pollInterval"), defaults.POLL_INTERVAL, minimum=1.0
    )
    initial_sync = doc.get((*_POOL, "initialSync")) or defaults.INITIAL_SYNC
    emit_deletions = doc.boolean((*_POOL, "emitDeletions"), defaults.EMIT_DELETIONS)
    if pool is None:
        return None
    return CognitoSource(
        pool=pool,
        auth=auth,
        endpoint=endpoint,
        poll_interval=poll_interval,
        initial_sync=cast(InitialSync, initial_sync),
        emit_deletions=emit_deletions,
    )


def _sink(doc: BridgeDocument) -> Sink | None:
    target = semantics.target(doc, (*_SINK, "uri"))
    sink_format = doc.get((*_SINK, "format")) or defaults.SINK_FORMAT
    max_batch = doc.get((*_SINK, "maxBatchSize"))
    if target is not None and target.aws is not None:
        _check_aws_sink(doc, sink_format)
    elif (
        max_batch is not None
        and sink_format != "batch"
        and not doc.already_reported((*_SINK, "format"))
    ):
        doc.warn(
            (*_SINK, "maxBatchSize"),
            f"maxBatchSize only applies to format: batch; it is ignored with format: {sink_format}",
            at_key=True,
        )
    headers = semantics.headers(doc, (*_SINK, "headers"))
    timeout = semantics.duration(doc, (*_SINK, "timeout"), defaults.SINK_TIMEOUT)
    in_flight = doc.get((*_SINK, "maxInFlight"))
    auth = nats_auth(doc, (*_SINK, "auth"), target)
    signing = http_auth_format.signing_secret(doc, (*_SINK, "signing"), target)
    oauth2 = http_auth_format.oauth2(doc, (*_SINK, "oauth2"), target, headers)
    tls = http_auth_format.tls(doc, (*_SINK, "tls"), target)
    if target is None:
        return None
    return Sink(
        target=target,
        format=cast(SinkFormat, sink_format),
        max_batch_size=max_batch if isinstance(max_batch, int) else defaults.MAX_BATCH_SIZE,
        headers=frozen_map(headers),
        timeout=timeout,
        max_in_flight=in_flight if isinstance(in_flight, int) else defaults.MAX_IN_FLIGHT,
        nats_auth=auth,
        signing_secret=signing,
        oauth2=oauth2,
        tls=tls,
    )


def _check_aws_sink(doc: BridgeDocument, sink_format: object) -> None:
    """An AWS sink carries structured CloudEvents in its own entries (SQS, SNS and Kinesis
    have no CloudEvents binding; EventBridge's Detail is the JSON): no HTTP content mode,
    no HTTP headers."""
    given = doc.get((*_SINK, "format"))
    if (
        given is not None
        and sink_format != "structured"
        and not doc.already_reported((*_SINK, "format"))
    ):
        doc.error(
            (*_SINK, "format"),
            f"an AWS sink sends each event as a structured CloudEvent (JSON) in its own entry, "
            f"batched as the service batches (maxBatchSize caps it): leave format out or set "
            f"it to structured, not {sink_format}",
        )
    if doc.get((*_SINK, "headers")) is not None:
        doc.error(
            (*_SINK, "headers"),
            "headers apply to http(s) sinks only: an AWS sink signs its requests with "
            "spec.sink.auth",
            at_key=True,
        )


def _delivery(doc: BridgeDocument) -> Delivery | None:
    retry = doc.get((*_DELIVERY, "retry"))
    backoff_delay = semantics.duration(doc, (*_DELIVERY, "backoffDelay"), defaults.BACKOFF_DELAY)
    max_backoff = semantics.duration(doc, (*_DELIVERY, "maxBackoff"), defaults.MAX_BACKOFF)
    if max_backoff < backoff_delay and not doc.already_reported((*_DELIVERY, "maxBackoff")):
        doc.error(
            (*_DELIVERY, "maxBackoff"),
            f"must not be shorter than backoffDelay ({format_duration(backoff_delay)})",
        )
    dead_letter_path = (*_DELIVERY, "deadLetterSink", "uri")
    dead_letter = semantics.target(doc, dead_letter_path)
    if doc.get(dead_letter_path) is not None and dead_letter is None:
        return None
    policy = doc.get((*_DELIVERY, "backoffPolicy")) or defaults.BACKOFF_POLICY
    return Delivery(
        retry=retry if isinstance(retry, int) and not isinstance(retry, bool) else defaults.RETRY,
        backoff_policy=cast(BackoffPolicy, policy),
        backoff_delay=backoff_delay,
        max_backoff=max_backoff,
        dead_letter=dead_letter,
    )
