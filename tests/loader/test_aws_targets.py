"""AWS sinks in bridge files: the ARN forms of `spec.sink.uri` and of the dead-letter sink's,
with `endpoint` and `auth` beside them, and what `check` says about fields that do not fit."""

from __future__ import annotations

import pytest

from runner.model import AwsAuth, AwsCredentials, AwsTarget, SecretRef, SinkArn, Target
from tests.loader.conftest import MINIMAL, load_text

SINK = "  sink:\n    uri: https://events.example.com/cognito\n"


def with_sink(sink: str) -> str:
    assert SINK in MINIMAL
    return MINIMAL.replace(SINK, sink)


@pytest.mark.parametrize(
    ("uri", "service", "name", "fifo"),
    [
        ("arn:aws:sqs:us-west-2:043455440429:signups", "sqs", "signups", False),
        ("arn:aws:sqs:us-west-2:043455440429:signups.fifo", "sqs", "signups.fifo", True),
        ("arn:aws:sns:eu-west-1:043455440429:identity.fifo", "sns", "identity.fifo", True),
        ("arn:aws:events:us-west-2:043455440429:event-bus/identity", "events", "identity", False),
        ("arn:aws-cn:kinesis:cn-north-1:043455440429:stream/users", "kinesis", "users", False),
    ],
)
def test_an_arn_sink_is_parsed_with_its_endpoint_and_auth(
    uri: str, service: str, name: str, fifo: bool
) -> None:
    result = load_text(
        with_sink(
            f"  sink:\n    uri: {uri}\n    endpoint: http://127.0.0.1:5000\n"
            "    auth:\n      credentials:\n"
            "        accessKeyID: {valueFromEnv: BRIDGE_VAR_KEY}\n"
            "        secretAccessKey: {valueFromFile: aws/secret}\n"
            "      assumeIamRole: arn:aws:iam::043455440429:role/sink-writer\n"
        )
    )
    assert result.valid, result.problems
    assert result.bridge is not None
    target = result.bridge.sink.target
    assert target.kind == "aws"
    assert target.aws is not None
    assert target.aws.arn.service == service
    assert target.aws.arn.name == name
    assert target.aws.arn.fifo is fifo
    assert target.aws.endpoint == "http://127.0.0.1:5000"
    assert target.aws.auth == AwsAuth(
        credentials=AwsCredentials(
            SecretRef("env", name="BRIDGE_VAR_KEY"), SecretRef("file", name="aws/secret")
        ),
        assume_role_arn="arn:aws:iam::043455440429:role/sink-writer",
    )


def test_a_dead_letter_arn_takes_its_own_endpoint_and_auth() -> None:
    text = MINIMAL + (
        "  delivery:\n    deadLetterSink:\n"
        "      uri: arn:aws:sqs:us-west-2:043455440429:dlq\n"
        "      endpoint: https://sqs.us-west-2.amazonaws.com\n"
    )
    result = load_text(text)
    assert result.valid, result.problems
    assert result.bridge is not None
    assert result.bridge.delivery.dead_letter == Target(
        "arn:aws:sqs:us-west-2:043455440429:dlq",
        aws=AwsTarget(
            arn=SinkArn(
                "arn:aws:sqs:us-west-2:043455440429:dlq",
                "aws",
                "sqs",
                "us-west-2",
                "043455440429",
                "dlq",
            ),
            endpoint="https://sqs.us-west-2.amazonaws.com",
        ),
    )


def test_a_malformed_dead_letter_arn_names_its_field() -> None:
    text = MINIMAL + "  delivery:\n    deadLetterSink: {uri: 'arn:aws:sqs:us-west-2:0434554:dlq'}\n"
    problems = [(p.path, p.message) for p in load_text(text).problems]
    assert problems == [
        (
            "spec.delivery.deadLetterSink.uri",
            "account '0434554' in ARN 'arn:aws:sqs:us-west-2:0434554:dlq' must be 12 digits",
        )
    ]


def test_an_arn_from_the_environment_is_not_quoted() -> None:
    text = with_sink("  sink:\n    uri: ${BRIDGE_VAR_SINK}\n")
    result = load_text(text, env={"BRIDGE_VAR_SINK": "arn:aws:sqs:us-west-2:SECRETISH:q"})
    messages = [p.message for p in result.problems]
    assert len(messages) == 1
    assert "SECRETISH" not in messages[0]
    assert messages[0].startswith("is not a sink ARN")


@pytest.mark.parametrize(
    ("sink", "path", "message"),
    [
        (
            "  sink:\n    uri: arn:aws:sqs:us-west-2:043455440429:q\n    format: binary\n",
            "spec.sink.format",
            "an AWS sink sends each event as a structured CloudEvent (JSON) in its own entry, "
            "batched as the service batches (maxBatchSize caps it): leave format out or set "
            "it to structured, not binary",
        ),
        (
            "  sink:\n    uri: arn:aws:sqs:us-west-2:043455440429:q\n    headers: {X-A: b}\n",
            "spec.sink.headers",
            "headers apply to http(s) sinks only: an AWS sink signs its requests with "
            "spec.sink.auth",
        ),
        (
            "  sink:\n    uri: https://events.example.com/\n    endpoint: http://127.0.0.1:1\n",
            "spec.sink.endpoint",
            "applies to AWS sinks only (a uri that is an ARN)",
        ),
        (
            "  sink:\n    uri: arn:aws:sqs:us-west-2:043455440429:q\n    endpoint: ftp://h/\n",
            "spec.sink.endpoint",
            "the endpoint must be an http:// or https:// URL",
        ),
    ],
)
def test_fields_that_do_not_fit_the_sink_are_errors(sink: str, path: str, message: str) -> None:
    problems = [(p.path, p.message) for p in load_text(with_sink(sink)).problems]
    assert problems == [(path, message)]


def test_structured_and_max_batch_size_are_accepted_for_an_aws_sink() -> None:
    sink = (
        "  sink:\n    uri: arn:aws:kinesis:us-west-2:043455440429:stream/s\n"
        "    format: structured\n    maxBatchSize: 400\n"
    )
    result = load_text(with_sink(sink))
    assert result.problems == ()
    assert result.bridge is not None
    assert result.bridge.sink.max_batch_size == 400


def test_an_inline_secret_of_the_sink_auth_is_never_in_a_message() -> None:
    sink = (
        "  sink:\n    uri: arn:aws:sqs:us-west-2:043455440429:q\n    auth:\n      credentials:\n"
        "        accessKeyID: {value: AKIAEXAMPLEVALUE}\n"
        "        secretAccessKey: {value: s3cr3t-value-here}\n"
    )
    result = load_text(with_sink(sink))
    assert result.valid
    assert result.warnings  # plain text in git is warned about ...
    for problem in result.problems:  # ... without repeating it
        assert "AKIAEXAMPLEVALUE" not in problem.render()
        assert "s3cr3t-value-here" not in problem.render()
