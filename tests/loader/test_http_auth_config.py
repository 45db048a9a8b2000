"""An http(s) sink's `signing`, `oauth2` and `tls` in a bridge file."""

from __future__ import annotations

import pytest

from runner.model import OAuth2Client, SecretRef, SinkTls
from tests.loader.conftest import MINIMAL
from tests.loader.test_config import load_text

URI = "    uri: https://events.example.com/cognito\n"


def _sink(extra: str, uri: str = URI) -> str:
    return MINIMAL.replace(URI, uri + extra)


def test_signing_oauth2_and_tls_are_read() -> None:
    result = load_text(
        _sink(
            "    signing: {secret: {valueFromSecret: {name: webhook, key: secret}}}\n"
            "    oauth2:\n"
            "      tokenURL: https://login.example.com/oauth2/token\n"
            "      clientID: bridge-runner\n"
            "      clientSecret: {valueFromFile: oauth/client-secret}\n"
            "      scopes: [events/write]\n"
            "    tls:\n"
            "      caBundle: {valueFromFile: tls/ca.crt}\n"
            "      clientCertificate: {valueFromFile: tls/tls.crt}\n"
            "      clientKey: {valueFromFile: tls/tls.key}\n"
        )
    )
    assert result.valid, result.problems
    assert result.bridge is not None
    sink = result.bridge.sink
    assert sink.signing_secret == SecretRef("secret", name="webhook", key="secret")
    assert sink.oauth2 == OAuth2Client(
        token_url="https://login.example.com/oauth2/token",
        client_id="bridge-runner",
        client_secret=SecretRef("file", name="oauth/client-secret"),
        scopes=("events/write",),
    )
    assert sink.tls == SinkTls(
        ca_bundle=SecretRef("file", name="tls/ca.crt"),
        client_certificate=SecretRef("file", name="tls/tls.crt"),
        client_key=SecretRef("file", name="tls/tls.key"),
    )


@pytest.mark.parametrize(
    ("extra", "uri", "path", "message"),
    [
        (
            "    signing: {secret: {valueFromFile: s}}\n",
            "    uri: nats://nats.example.com/cognito\n",
            "spec.sink.signing",
            "signing applies to an http:// or https:// sink only",
        ),
        (
            "    tls: {clientKey: {valueFromFile: k}}\n",
            URI,
            "spec.sink.tls",
            "clientKey goes with clientCertificate",
        ),
        (
            "    headers: {Authorization: {valueFromFile: t}}\n"
            "    oauth2: {tokenURL: 'https://l/t', clientID: c,\n"
            "             clientSecret: {valueFromFile: s}}\n",
            URI,
            "spec.sink.oauth2",
            "oauth2 sends the Authorization header itself: remove it from spec.sink.headers",
        ),
        (
            "    oauth2: {tokenURL: 'ftp://l/t', clientID: c, clientSecret: {valueFromFile: s}}\n",
            URI,
            "spec.sink.oauth2.tokenURL",
            "",
        ),
    ],
)
def test_what_goes_with_what(extra: str, uri: str, path: str, message: str) -> None:
    errors = load_text(_sink(extra, uri)).errors
    assert [p.path for p in errors] == [path]
    assert errors[0].message.startswith(message)


def test_the_schema_wants_the_oauth2_client_secret() -> None:
    text = _sink("    oauth2: {tokenURL: 'https://l/t', clientID: c}\n")
    assert [p.path for p in load_text(text).errors] == ["spec.sink.oauth2.clientSecret"]


def test_tls_on_a_plain_http_sink_is_ignored_with_a_warning() -> None:
    text = _sink(
        "    tls: {caBundle: {valueFromFile: ca.crt}}\n",
        "    uri: http://127.0.0.1:8080/cognito\n",
    )
    result = load_text(text)
    assert result.valid and result.bridge is not None and result.bridge.sink.tls is None
    assert [(p.path, p.message) for p in result.warnings] == [
        ("spec.sink.tls", "tls applies to an https:// sink only: ignored for http://")
    ]
