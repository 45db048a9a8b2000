"""A `nats://` sink in a bridge file: the URI's checks and `spec.sink.auth`."""

from __future__ import annotations

import pytest

from runner.model import NatsAuth, SecretRef, Target
from tests.loader.conftest import MINIMAL
from tests.loader.test_config import load_text

SINK = "  sink:\n    uri: https://events.example.com/cognito\n"


def _with_sink(sink: str) -> str:
    assert SINK in MINIMAL
    return MINIMAL.replace(SINK, "  sink:\n" + sink)


def test_a_nats_sink_with_user_and_password_from_secrets() -> None:
    result = load_text(
        _with_sink(
            "    uri: nats://nats.example.com:4222/cognito.users\n"
            "    auth:\n"
            "      user: bridge\n"
            "      password: {valueFromSecret: {name: nats, key: password}}\n"
        )
    )
    assert result.valid, result.problems
    assert result.bridge is not None
    sink = result.bridge.sink
    assert sink.target == Target("nats://nats.example.com:4222/cognito.users")
    assert sink.nats_auth == NatsAuth(
        user="bridge", password=SecretRef("secret", name="nats", key="password")
    )


def test_a_nats_sink_with_a_creds_file() -> None:
    result = load_text(
        _with_sink(
            "    uri: nats://nats.example.com/cognito.users\n"
            "    auth: {credentials: {valueFromFile: nats/user.creds}}\n"
        )
    )
    assert result.valid, result.problems
    assert result.bridge is not None
    assert result.bridge.sink.nats_auth == NatsAuth(
        credentials=SecretRef("file", name="nats/user.creds")
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "nats://bridge:s3cret@nats.example.com/cognito.users",
            "a NATS sink URI must not hold credentials (user:password@): they would show in "
            "logs and status; use spec.sink.auth with secret values instead",
        ),
        ("nats://nats.example.com", "a NATS sink URI needs a subject to publish to"),
        ("nats://nats.example.com/cognito.*", "a NATS sink URI needs a subject to publish to"),
        ("nats://nats.example.com/a..b", "a NATS sink URI needs a subject to publish to"),
        ("nats:///cognito", "a NATS sink URI needs a host"),
        ("nats://h/s?x=1", "a NATS sink URI has no query or fragment"),
    ],
)
def test_nats_uri_checks(uri: str, expected: str) -> None:
    problems = load_text(_with_sink(f"    uri: '{uri}'\n")).problems
    assert [p.path for p in problems] == ["spec.sink.uri"]
    assert problems[0].message.startswith(expected)
    assert "s3cret" not in problems[0].render()


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            "{user: bridge}",
            "user and password go together",
        ),
        (
            "{token: {valueFromFile: t}, user: u, password: {valueFromFile: p}}",
            "give one of token, user (with password) or credentials, not several",
        ),
    ],
)
def test_nats_auth_checks(auth: str, expected: str) -> None:
    text = _with_sink(f"    uri: nats://h/s\n    auth: {auth}\n")
    assert [(p.path, p.message) for p in load_text(text).errors] == [("spec.sink.auth", expected)]


def test_nats_auth_on_an_http_sink_is_an_error() -> None:
    text = _with_sink(
        "    uri: https://events.example.com/cognito\n    auth: {token: {valueFromFile: t}}\n"
    )
    assert [(p.path, p.message) for p in load_text(text).errors] == [
        ("spec.sink.auth", "applies to AWS sinks (a uri that is an ARN) and nats:// sinks only")
    ]


def test_nats_auth_on_an_aws_sink_is_an_error() -> None:
    text = _with_sink(
        "    uri: arn:aws:sqs:us-west-2:043455440429:signups\n"
        "    auth: {token: {valueFromFile: t}}\n"
    )
    assert [(p.path, p.message) for p in load_text(text).errors] == [
        ("spec.sink.auth", "token, user and password apply to a nats:// sink only")
    ]


def test_a_nats_dead_letter_sink() -> None:
    text = MINIMAL + "  delivery:\n    deadLetterSink: {uri: 'nats://h:4222/dead.cognito'}\n"
    result = load_text(text)
    assert result.valid, result.problems
    assert result.bridge is not None
    assert result.bridge.delivery.dead_letter == Target("nats://h:4222/dead.cognito")
