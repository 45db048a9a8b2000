"""HTTP sink authentication against loopback peers: Standard Webhooks signatures (checked by
the official library's verifier), OAuth2 client credentials (a loopback token endpoint), and
a custom CA with a client certificate (a loopback TLS sink that requires one)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from standardwebhooks.webhooks import Webhook

from runner.delivery import sink_tls
from runner.delivery.http_sink import HttpSender
from runner.delivery.policy import SendOutcome
from runner.model import OAuth2Client, OutboxEvent, SecretRef, SinkFormat, SinkTls, Target
from runner.secrets.resolver import SecretResolver
from tests.delivery.builders import make_bridge, user_events
from tests.peers.sink_server import Reply, SinkServer

SIGNING_SECRET = "whsec_" + base64.b64encode(b"a-signing-key-of-the-tests-32byt").decode()
CLIENT_SECRET = "cl1ent-s3cret-0f-the-tests"


def _events(count: int) -> list[OutboxEvent]:
    return [
        OutboxEvent(
            seq=n + 1,
            bridge_id="b",
            event_id=new.event_id,
            attributes=new.attributes,
            data=new.data,
            user_key=new.user_key,
        )
        for n, new in enumerate(user_events(make_bridge(Target("https://x/")), count))
    ]


def _send(sender: HttpSender, batches: list[list[OutboxEvent]]) -> list[SendOutcome]:
    async def main() -> list[SendOutcome]:
        try:
            return [await sender.send(batch) for batch in batches]
        finally:
            await sender._http.aclose()
            await sink_tls.close_all()

    return asyncio.run(main())


def _sender(url: str, env: dict[str, str] | None = None, **options: Any) -> HttpSender:
    return HttpSender(
        Target(url), http=httpx.AsyncClient(), secrets=SecretResolver(env=env or {}), **options
    )


# -- Standard Webhooks ----------------------------------------------------------------------


@pytest.mark.parametrize(("format", "per_request"), [("binary", 1), ("batch", 3)])
def test_signed_requests_pass_the_official_verifier(
    sink_server: SinkServer, format: SinkFormat, per_request: int
) -> None:
    env = {"BRIDGE_VAR_SIGNING": SIGNING_SECRET}
    sender = _sender(
        sink_server.url,
        env,
        format=format,
        max_batch_size=3,
        signing=SecretRef("env", name="BRIDGE_VAR_SIGNING"),
    )
    events = _events(per_request)
    outcomes = _send(sender, [events, events])  # the same request twice: a retry
    assert all(outcome.accepted for outcome in outcomes), outcomes

    first, again = sink_server.received
    verifier = Webhook(SIGNING_SECRET)
    for request in (first, again):
        verifier.verify(request.body, request.headers)  # raises if the signature is wrong
    # The id is the event's (one per batch), and the same for the retry.
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    if per_request == 1:
        assert first.headers["webhook-id"] == events[0].event_id
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + base64.b64encode(b"another-key").decode()).verify(
            first.body, first.headers
        )


def test_a_signing_secret_that_is_not_base64_is_misconfigured_and_not_quoted(
    sink_server: SinkServer,
) -> None:
    bad = "whsec_not*base64*at*all"
    sender = _sender(
        sink_server.url,
        {"BRIDGE_VAR_SIGNING": bad},
        signing=SecretRef("env", name="BRIDGE_VAR_SIGNING"),
    )
    (outcome,) = _send(sender, [_events(1)])
    assert outcome.kind == "misconfigured"
    assert outcome.reason == "InvalidSigningSecret"
    assert "not*base64" not in outcome.error
    assert sink_server.received == []


# -- OAuth2 client credentials --------------------------------------------------------------


def _token_reply(token: str, expires_in: int = 3600) -> Reply:
    body = json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": expires_in})
    return Reply(200, headers={"content-type": "application/json"}, body=body.encode())


def _oauth_sender(sink: SinkServer, tokens: SinkServer) -> HttpSender:
    return _sender(
        sink.url,
        {"BRIDGE_VAR_CLIENT_SECRET": CLIENT_SECRET},
        oauth2=OAuth2Client(
            token_url=tokens.url,
            client_id="bridge-runner",
            client_secret=SecretRef("env", name="BRIDGE_VAR_CLIENT_SECRET"),
            scopes=("events:write", "events:read"),
        ),
    )


def test_a_token_is_fetched_once_sent_as_bearer_and_refreshed_before_expiry(
    sink_server_factory: Callable[[], SinkServer],
) -> None:
    sink, tokens = sink_server_factory(), sink_server_factory()
    tokens.script(_token_reply("t0ken-1", expires_in=100), _token_reply("t0ken-2"))
    sender = _oauth_sender(sink, tokens)
    assert sender.tokens is not None
    now = [1000.0]
    sender.tokens._clock = lambda: now[0]

    async def main() -> list[SendOutcome]:
        try:
            outcomes = [await sender.send(_events(1)) for _ in range(3)]
            now[0] += 95  # within the refresh margin (a tenth of 100 s) of the expiry
            outcomes.append(await sender.send(_events(1)))
            return outcomes
        finally:
            await sender._http.aclose()

    assert all(outcome.accepted for outcome in asyncio.run(main()))
    assert [r.headers["authorization"] for r in sink.received] == [
        *["Bearer t0ken-1"] * 3,
        "Bearer t0ken-2",
    ]
    grant = tokens.received[0]
    assert grant.body == b"grant_type=client_credentials&scope=events%3Aread+events%3Awrite" or (
        grant.body == b"grant_type=client_credentials&scope=events%3Awrite+events%3Aread"
    )
    expected = base64.b64encode(f"bridge-runner:{CLIENT_SECRET}".encode()).decode()
    assert grant.headers["authorization"] == f"Basic {expected}"


def test_a_401_from_the_sink_fetches_a_new_token_once(
    sink_server_factory: Callable[[], SinkServer],
) -> None:
    sink, tokens = sink_server_factory(), sink_server_factory()
    tokens.script(_token_reply("revoked"), _token_reply("fresh"))
    sink.script(Reply(401))
    (outcome,) = _send(_oauth_sender(sink, tokens), [_events(1)])
    assert outcome.accepted, outcome
    assert [r.headers["authorization"] for r in sink.received] == [
        "Bearer revoked",
        "Bearer fresh",
    ]


@pytest.mark.parametrize(
    ("reply", "kind", "reason"),
    [
        (Reply(503), "retryable", "TokenEndpointUnavailable"),
        (
            Reply(401, body=b'{"error": "invalid_client"}'),
            "misconfigured",
            "TokenRequestRefused",
        ),
    ],
)
def test_token_endpoint_failures(
    sink_server_factory: Callable[[], SinkServer], reply: Reply, kind: str, reason: str
) -> None:
    sink, tokens = sink_server_factory(), sink_server_factory()
    tokens.script(reply)
    (outcome,) = _send(_oauth_sender(sink, tokens), [_events(1)])
    assert (outcome.kind, outcome.reason) == (kind, reason)
    assert CLIENT_SECRET not in outcome.error
    assert sink.received == []
    if kind == "misconfigured":
        assert "invalid_client" in outcome.error


# -- a custom CA and a client certificate (mTLS) --------------------------------------------


@pytest.fixture(scope="module")
def pki() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def mtls_sink(pki: trustme.CA) -> Iterator[SinkServer]:
    """A loopback sink over TLS with a certificate of the test CA, that requires a client
    certificate of that CA."""
    server = SinkServer()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.issue_cert("127.0.0.1").configure_cert(context)
    pki.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    raw = server._server.socket
    server._server.socket = context.wrap_socket(raw, server_side=True)
    try:
        yield server
    finally:
        server.close()


def _secrets_dir(tmp_path: Path, pki: trustme.CA) -> Path:
    folder = tmp_path / "secrets" / "sink-tls"
    folder.mkdir(parents=True)
    client = pki.issue_cert("bridge-runner@example.com")
    (folder / "ca.crt").write_bytes(pki.cert_pem.bytes())
    (folder / "tls.crt").write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    (folder / "tls.key").write_bytes(client.private_key_pem.bytes())
    return tmp_path / "secrets"


def _tls(with_client_cert: bool = True) -> SinkTls:
    cert = SecretRef("secret", name="sink-tls", key="tls.crt") if with_client_cert else None
    key = SecretRef("secret", name="sink-tls", key="tls.key") if with_client_cert else None
    return SinkTls(
        ca_bundle=SecretRef("secret", name="sink-tls", key="ca.crt"),
        client_certificate=cert,
        client_key=key,
    )


def _tls_sender(url: str, secrets_dir: Path, tls: SinkTls | None) -> HttpSender:
    return HttpSender(
        Target(url),
        http=httpx.AsyncClient(),
        secrets=SecretResolver(secrets_dir=secrets_dir, env={}),
        tls=tls,
        timeout=5,
    )


def test_mtls_with_the_sinks_own_ca_and_client_certificate(
    mtls_sink: SinkServer, pki: trustme.CA, tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{mtls_sink.port}/events"
    secrets_dir = _secrets_dir(tmp_path, pki)
    (accepted,) = _send(_tls_sender(url, secrets_dir, _tls()), [_events(1)])
    assert accepted.accepted, accepted
    assert len(mtls_sink.received) == 1
    # Without a client certificate the sink refuses the handshake; without the CA (the
    # shared client, the system's CAs) the sink's certificate is not trusted.
    (no_cert,) = _send(_tls_sender(url, secrets_dir, _tls(with_client_cert=False)), [_events(1)])
    (no_ca,) = _send(_tls_sender(url, secrets_dir, None), [_events(1)])
    assert no_cert.kind == no_ca.kind == "retryable"
    assert len(mtls_sink.received) == 1


def test_a_key_that_is_not_pem_is_misconfigured_and_never_quoted(
    mtls_sink: SinkServer, pki: trustme.CA, tmp_path: Path
) -> None:
    secrets_dir = _secrets_dir(tmp_path, pki)
    (secrets_dir / "sink-tls" / "tls.key").write_text("-----BEGIN PRIVATE KEY-----\ns3cr3t\n")
    url = f"https://127.0.0.1:{mtls_sink.port}/events"
    (outcome,) = _send(_tls_sender(url, secrets_dir, _tls()), [_events(1)])
    assert (outcome.kind, outcome.reason) == ("misconfigured", "InvalidSinkTls")
    assert "s3cr3t" not in outcome.error


def test_no_secret_reaches_a_log_record(
    sink_server_factory: Callable[[], SinkServer], caplog: pytest.LogCaptureFixture
) -> None:
    # Every library's debug logs (httpx, httpcore) included: signing, a token fetched, a 401,
    # a token fetched anew.
    caplog.set_level(logging.DEBUG)
    sink, tokens = sink_server_factory(), sink_server_factory()
    tokens.script(_token_reply("t0ken-0ne-secret"), _token_reply("t0ken-tw0-secret"))
    sink.script(Reply(401))
    sender = _oauth_sender(sink, tokens)
    sender._signing = SecretRef("value", literal=SIGNING_SECRET)
    (outcome,) = _send(sender, [_events(1)])
    assert outcome.accepted
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records  # the libraries did log
    for secret in (CLIENT_SECRET, "t0ken-0ne-secret", "t0ken-tw0-secret", SIGNING_SECRET):
        assert secret not in logged
