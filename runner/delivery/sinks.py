"""Picking a sink: the one interface the deliverer sends through, and the sender for a target.

    open_sender(target, ...) -> EventSender    by the target's kind: http(s), file:, an AWS
                                               ARN, nats://
    EventSender[M]              what each is: encode (to its own message type M), deliver
                                (raises, or reports the entries not taken), send (reports)

One module per kind of sink (`http_sink`, `file_sink`, `aws_sink`, `nats_sink`); they share
the encodings (`runner.delivery.encodings`), the failure classes and their policy
(`runner.delivery.policy`) and the secret-free texts (`runner.delivery.texts`), never each
other. A dead-letter sink gets Knative's form: binary mode, one event per POST, and never
the sink's custom headers (credentials for the sink are not for wherever dead letters go).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from runner import defaults
from runner.delivery.aws_sink import AwsSender
from runner.delivery.file_sink import FileSender
from runner.delivery.http_sink import HttpSender
from runner.delivery.nats_sink import NatsSender
from runner.delivery.policy import Delivered, SendOutcome
from runner.loader.nats_uri import is_nats_uri
from runner.model import OutboxEvent, Sink, Target
from runner.secrets.resolver import SecretResolver

M = TypeVar("M")


class EventSender(Protocol[M]):
    """A destination (the sink or the dead-letter sink) taking up to `capacity` events per send.

    `encode` is pure CPU work and thread-safe, so a caller may prepare the next request in a
    worker thread while this one is on the wire; what it makes (`M`: an `HTTPMessage`, a
    batch of AWS entries, ...) only its own `deliver` reads. `deliver` sends it, as often as
    needed (retries); it raises `SinkUnavailable`, `SinkRejected` or `SinkMisconfigured`
    when the sink took none of it, and returns a `PartialFailure` when it took only some
    (`runner.delivery.policy`); `send` does both and reports a failure as a `SendOutcome`
    instead of raising it.
    """

    @property
    def uri(self) -> str: ...

    @property
    def capacity(self) -> int: ...

    def encode(self, events: Sequence[OutboxEvent]) -> M:
        """The request for `events`; raises `ValueError` if one is not a valid CloudEvent."""
        ...

    async def deliver(self, message: M) -> Delivered: ...

    async def send(self, events: Sequence[OutboxEvent]) -> SendOutcome: ...


def open_sender(
    target: Target,
    *,
    http: httpx.AsyncClient,
    secrets: SecretResolver,
    state_dir: Path,
    sink: Sink | None = None,
    timeout: float = defaults.SINK_TIMEOUT,
) -> EventSender[Any]:
    """The sender for `target`: with `sink` (the bridge's own sink) its format, batch size
    and custom headers apply; without it (a dead-letter sink) events go one per request in
    binary mode, as Knative sends them, and the sink's headers are NOT sent — they are
    credentials for the sink, not for wherever dead letters go. An AWS target signs with
    its own `auth` (the sink's or the dead-letter sink's)."""
    if target.kind == "aws":
        return AwsSender(
            target,
            secrets=secrets,
            capacity=sink.max_batch_size if sink else 1,
            timeout=sink.timeout if sink else timeout,
        )
    if target.is_file:
        return FileSender(
            target,
            state_dir=state_dir,
            capacity=sink.max_batch_size if sink else defaults.MAX_BATCH_SIZE,
        )
    if is_nats_uri(target.uri):
        return NatsSender(
            target,
            secrets=secrets,
            auth=sink.nats_auth if sink else None,  # a dead-letter sink: its URI's server
            timeout=sink.timeout if sink else timeout,
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
        signing=sink.signing_secret,
        oauth2=sink.oauth2,
        tls=sink.tls,
    )
