"""The environment policy (issue 9, item 3), in process: which variables bridges may read
through `${VAR}` and `valueFromEnv`, the `--allow-env` flag and `BRIDGE_RUNNER_ALLOW_ENV` of
`run` and `check`, the masking of values that came from the environment, and sink URIs shown
without their query string. The runner as a subprocess: tests/process/test_env_policy_process.py."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets as random_tokens
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from runner.cli.flags import allowed_env
from runner.cli.main import build_parser, main
from runner.delivery.policy import SendOutcome
from runner.delivery.sinks import open_sender
from runner.delivery.texts import knative_error_extensions, safe_uri
from runner.errors import SecretError
from runner.loader.config import load_bytes
from runner.model import LoadResult, OutboxEvent, SecretRef, Sink, Target
from runner.secrets.envpolicy import ALLOW_ENV_VAR, EnvPolicy, parse_allow_env
from runner.secrets.redaction import Redactor
from runner.secrets.resolver import SecretResolver
from tests.peers.echo_sink import EchoSink

ROOT = Path("/bridges")
ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
BRIDGE = """\
apiVersion: bridge-runner/v1alpha1
kind: Bridge
spec:
  source:
    awsCognitoUserPool:
      arn: {arn}
  sink:
    uri: {uri}
{sink_extra}"""


def fresh(label: str) -> str:
    """A value no other test registered with the process-wide Redactor."""
    return f"{label}-{random_tokens.token_hex(8)}"


def bridge_text(arn: str = ARN, uri: str = "https://events.example.com/c", extra: str = "") -> str:
    return BRIDGE.format(arn=arn, uri=uri, sink_extra=extra)


def load(text: str, env: dict[str, str], policy: EnvPolicy | None = None) -> LoadResult:
    kwargs = {} if policy is None else {"env_policy": policy}
    return load_bytes(text.encode(), path=ROOT / "b.yaml", root=ROOT, env=env, **kwargs)


# -- the loader refuses what the policy does not allow ----------------------------------------


@pytest.mark.parametrize(
    "reference", ["${AWS_SECRET_ACCESS_KEY}", "${AWS_SECRET_ACCESS_KEY:-us-west-2_fak3p001B}"]
)
def test_the_runners_aws_key_is_refused_in_a_value_even_with_a_default(reference: str) -> None:
    key = fresh("aws-secret")
    arn = ARN.replace("us-west-2_fak3p001B", reference)
    result = load(bridge_text(arn=arn), {"AWS_SECRET_ACCESS_KEY": key})

    assert result.bridge is None
    (problem,) = result.errors
    assert (problem.line, problem.column, problem.path) == (
        6,
        12,
        "spec.source.awsCognitoUserPool.arn",
    )
    assert problem.message.startswith(
        "environment variable AWS_SECRET_ACCESS_KEY is not allowed for bridges (allowed: "
        "BRIDGE_VAR_*)"
    )
    assert "--allow-env AWS_SECRET_ACCESS_KEY" in problem.message
    assert f"{ALLOW_ENV_VAR}=AWS_SECRET_ACCESS_KEY" in problem.message
    assert key not in problem.render()


def test_a_refusal_reads_the_same_whether_the_variable_is_set_or_not() -> None:
    # The error must not tell a bridge author whether the runner has the variable.
    text = bridge_text(uri="${SINK_URL:-https://events.example.com/c}")
    when_set = load(text, {"SINK_URL": "https://elsewhere.example.com/"})
    when_unset = load(text, {})
    assert when_set.problems == when_unset.problems
    assert [p.path for p in when_set.errors] == ["spec.sink.uri"]


def test_value_from_env_of_the_runners_aws_key_is_a_located_error() -> None:
    extra = "    headers: {X-Leak: {valueFromEnv: AWS_SECRET_ACCESS_KEY}}\n"
    result = load(bridge_text(extra=extra), {"AWS_SECRET_ACCESS_KEY": fresh("aws-secret")})

    assert result.bridge is None
    (problem,) = result.errors
    assert (problem.line, problem.path) == (9, "spec.sink.headers.X-Leak.valueFromEnv")
    assert "environment variable AWS_SECRET_ACCESS_KEY is not allowed for bridges" in (
        problem.message
    )
    assert "--allow-env" in problem.message


def test_a_value_from_env_name_that_came_from_the_environment_is_not_shown() -> None:
    # `valueFromEnv: ${BRIDGE_VAR_NAME}`: the name is itself an environment value.
    extra = "    headers: {X-A: {valueFromEnv: '${BRIDGE_VAR_WHICH}'}}\n"
    name = "AWS_SESSION_TOKEN"
    result = load(bridge_text(extra=extra), {"BRIDGE_VAR_WHICH": name})
    (problem,) = result.errors
    assert problem.path == "spec.sink.headers.X-A.valueFromEnv"
    assert "not allowed for bridges" in problem.message and "--allow-env" in problem.message
    assert name not in problem.message


def test_the_prefix_and_allowed_patterns_are_read() -> None:
    token, url = fresh("tok"), "https://sink.example.com/in"
    extra = (
        "    headers: {X-Token: '${BRIDGE_VAR_TOKEN}', Authorization: {valueFromEnv: SINK_AUTH}}\n"
    )
    text = bridge_text(uri="${SINK_URL}", extra=extra)
    env = {"BRIDGE_VAR_TOKEN": token, "SINK_URL": url, "SINK_AUTH": fresh("auth")}

    refused = load(text, env)
    assert sorted(p.path for p in refused.errors) == [
        "spec.sink.headers.Authorization.valueFromEnv",
        "spec.sink.uri",
    ]

    allowed = load(text, env, EnvPolicy(("SINK_*",)))
    assert allowed.problems == () and allowed.bridge is not None
    assert allowed.bridge.sink.target.uri == url
    assert allowed.bridge.sink.headers["X-Token"] == token
    assert allowed.bridge.sink.headers["Authorization"] == SecretRef("env", name="SINK_AUTH")


def test_globs_match_whole_names_and_case() -> None:
    policy = EnvPolicy(("SINK_*", "POOL_ARN"))
    assert policy.allows("SINK_URL") and policy.allows("POOL_ARN")
    assert policy.allows("BRIDGE_VAR_X")  # always
    assert not policy.allows("sink_url")  # POSIX names are case-sensitive
    assert not policy.allows("POOL_ARN_2") and not policy.allows("MY_SINK_URL")
    assert not EnvPolicy().allows("AWS_SECRET_ACCESS_KEY")
    assert not EnvPolicy().allows("BRIDGE_RUNNER_SECRETS_DIR")


# -- SecretResolver refuses again at run time -------------------------------------------------


def test_secret_resolver_refuses_a_variable_the_policy_does_not_allow() -> None:
    key = fresh("aws-secret")
    resolver = SecretResolver(env={"AWS_SECRET_ACCESS_KEY": key})
    with pytest.raises(SecretError) as refused:
        resolver.resolve(SecretRef("env", name="AWS_SECRET_ACCESS_KEY"))
    assert "AWS_SECRET_ACCESS_KEY is not allowed" in str(refused.value)
    assert "--allow-env" in str(refused.value)
    assert key not in str(refused.value)

    allowing = SecretResolver(
        env={"AWS_SECRET_ACCESS_KEY": key}, env_policy=EnvPolicy(("AWS_SECRET_ACCESS_KEY",))
    )
    assert allowing.resolve(SecretRef("env", name="AWS_SECRET_ACCESS_KEY")) == key


# -- the flag and the variable, the same for run and check ------------------------------------


def test_run_and_check_take_the_same_flag_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV_VAR, " SINK_URL, ,POOL_* ")
    for command in ("run", "check"):
        from_env = build_parser([command]).parse_args([command, "x"])
        assert allowed_env(from_env) == EnvPolicy(("SINK_URL", "POOL_*")), command
        # Flags replace the variable, as every flag with an environment default does.
        words = [command, "x", "--allow-env", "A_*", "--allow-env", "B"]
        from_flags = build_parser(words).parse_args(words)
        assert allowed_env(from_flags) == EnvPolicy(("A_*", "B")), command


def test_a_bad_pattern_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "b.yaml").write_text(bridge_text())
    assert main(["check", str(tmp_path), "--allow-env", "A=B"]) == 2
    assert "'A=B' is not a variable name or a glob" in capsys.readouterr().err

    # A bad entry of the variable is named by its position: the variable's text is not shown.
    monkeypatch.setenv(ALLOW_ENV_VAR, "GOOD,bad value-x9")
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{ALLOW_ENV_VAR}: entry 2 is not a variable name" in err
    assert "value-x9" not in err
    with pytest.raises(ValueError, match="entry 1"):
        parse_allow_env(["a b"], source="x")


def test_check_allows_what_the_flag_or_the_variable_allows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "b.yaml").write_text(bridge_text(uri="${SINK_URL}"))
    monkeypatch.setenv("SINK_URL", "https://events.example.com/c")
    monkeypatch.delenv(ALLOW_ENV_VAR, raising=False)

    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "b.yaml:8:10: error: environment variable SINK_URL is not allowed" in out
    assert main(["check", str(tmp_path), "--allow-env", "SINK_URL"]) == 0
    capsys.readouterr()
    monkeypatch.setenv(ALLOW_ENV_VAR, "SINK_*")
    assert main(["check", str(tmp_path)]) == 0


# -- values from the environment are masked like secret values --------------------------------


def test_values_substituted_from_the_environment_are_masked_in_logs() -> None:
    token, fmt = fresh("header-token"), "structured"
    extra = (
        "    format: ${BRIDGE_VAR_FORMAT}\n    headers: {X-Token: 'Bearer ${BRIDGE_VAR_TOKEN}'}\n"
    )
    result = load(bridge_text(extra=extra), {"BRIDGE_VAR_TOKEN": token, "BRIDGE_VAR_FORMAT": fmt})
    assert result.valid

    assert Redactor.redact(f"sink said: Bearer {token}!") == "sink said: Bearer ***!"
    # A public word of a field with a fixed set of values is not masked: it hides nothing.
    assert Redactor.redact("format structured") == "format structured"


def test_an_environment_value_is_masked_in_every_problem_of_its_file() -> None:
    # A second line of defence behind "never quote an environment value": even a message
    # that quotes some other part of the file cannot carry it.
    value = fresh("labelled")
    text = bridge_text().replace(
        "spec:\n", f"metadata:\n  labels: {{team: '${{BRIDGE_VAR_TEAM}}'}}\nspec:\n  {value}: 1\n"
    )
    result = load(text, {"BRIDGE_VAR_TEAM": value})
    (problem,) = result.errors
    assert problem.message.startswith("unknown field '***'")


def _event() -> OutboxEvent:
    attributes = {
        "specversion": "1.0",
        "id": "id-1",
        "source": ARN,
        "type": "com.amazon.cognito-idp.sync_trigger",
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json",
    }
    return OutboxEvent(1, "b", "id-1", attributes, {"Username": "u"})


@pytest.fixture
def echo_sink() -> Iterator[EchoSink]:
    sink = EchoSink(400, reason_header="x-token")
    yield sink
    sink.close()


def test_a_header_from_the_environment_echoed_by_the_sink_stays_out_of_the_dead_letter(
    echo_sink: EchoSink,
) -> None:
    token = fresh("echoed-token")
    extra = "    headers: {X-Token: '${BRIDGE_VAR_TOKEN}'}\n"
    result = load(bridge_text(uri=echo_sink.url, extra=extra), {"BRIDGE_VAR_TOKEN": token})
    assert result.bridge is not None
    sink = result.bridge.sink

    async def send_once() -> tuple[bytes, dict[str, str]]:
        async with httpx.AsyncClient() as http:
            sender = open_sender(
                sink.target, http=http, secrets=SecretResolver(env={}), state_dir=ROOT, sink=sink
            )
            outcome = await sender.send([_event()])
            assert outcome.kind == "refused"
            return outcome.body_excerpt, knative_error_extensions(sink.target.uri, outcome)

    excerpt, extensions = asyncio.run(send_once())

    assert echo_sink.received_headers[0]["x-token"] == token  # it did reach its own sink
    assert b"you sent" in excerpt and token.encode() not in excerpt
    data = base64.b64decode(extensions["knativeerrordata"])
    assert json.loads(data)["you sent"]["x-token"] == "***"
    assert token not in json.dumps(extensions)


def test_a_secret_echoed_in_the_reason_phrase_stays_out_of_the_dead_letter(
    echo_sink: EchoSink,
) -> None:
    token = fresh("reason-token")
    echo_sink.reason_header = "x-token"
    ref = SecretRef("env", name="BRIDGE_VAR_REASON_TOKEN")
    resolver = SecretResolver(env={"BRIDGE_VAR_REASON_TOKEN": token})
    sink = Sink(target=Target(echo_sink.url), headers={"X-Token": ref})

    async def send_once() -> dict[str, str]:
        async with httpx.AsyncClient() as http:
            sender = open_sender(
                sink.target, http=http, secrets=resolver, state_dir=ROOT, sink=sink
            )
            outcome = await sender.send([_event()])
            assert token not in outcome.error
            # Knative attaches the error text when the body is empty: build one such.
            return knative_error_extensions(sink.target.uri, replace(outcome, body_excerpt=b""))

    extensions = asyncio.run(send_once())
    assert echo_sink.received_headers[0]["x-token"] == token
    assert base64.b64decode(extensions["knativeerrordata"]) == b"HTTP 400 ***"


# -- sink URIs are shown without userinfo, query string or fragment ---------------------------


def test_safe_uri_drops_the_query_string_and_fragment() -> None:
    assert (
        safe_uri("https://hooks.example.com/in?token=abc123&x=1") == "https://hooks.example.com/in"
    )
    assert safe_uri("https://u:p@[::1]:8443/in?sig=s#frag") == "https://[::1]:8443/in"
    assert safe_uri("http://h/in#t=1") == "http://h/in"
    assert safe_uri("https://h/in") == "https://h/in"
    assert safe_uri("file:events/signups.jsonl") == "file:events/signups.jsonl"


def test_knative_error_dest_carries_no_token() -> None:
    outcome = SendOutcome("refused", status_code=400, error="HTTP 400 Bad Request")
    extensions = knative_error_extensions("https://h/in?token=qs-secret-1", outcome)
    assert extensions["knativeerrordest"] == "https://h/in"
