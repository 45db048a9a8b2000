"""The environment policy through the runner as a subprocess (issue 9, item 3, acceptance):
the runner's own AWS key asked for by `${VAR}` and by `valueFromEnv` never reaches a sink, a
status file, a log or `check` output; a value bridges may read (`BRIDGE_VAR_*`) reaches its
own sink but no dead letter, status file or log line, even when the sink echoes it back; and
a token in the sink URL's query string is not logged."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.peers.echo_sink import EchoSink
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import RunnerProcess, condition, read_status, wait_until
from tests.peers.sink_server import SinkServer

Start = Callable[..., RunnerProcess]


def _bridge(
    pool_arn: str, endpoint: str, sink_url: str, sink_extra: str = "", spec_extra: str = ""
) -> str:
    return (
        "apiVersion: bridge-runner/v1alpha1\n"
        "kind: Bridge\n"
        "spec:\n"
        "  source:\n"
        "    awsCognitoUserPool:\n"
        f"      arn: {pool_arn}\n"
        f"      endpoint: {endpoint}\n"
        "      pollInterval: 1s\n"
        "      initialSync: emit\n"
        "  sink:\n"
        f"    uri: {sink_url}\n"
        f"{sink_extra}"
        "  delivery:\n"
        "    backoffDelay: 50ms\n"
        "    maxBackoff: 200ms\n"
        f"{spec_extra}"
    )


@pytest.fixture
def echo_sink() -> Iterator[EchoSink]:
    sink = EchoSink(400, reason_header="x-token")
    yield sink
    sink.close()


def test_the_runners_aws_key_and_bridge_values_never_leak(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server_factory: Callable[[], SinkServer],
    echo_sink: EchoSink,
) -> None:
    aws_key = f"wJalrXUtnFEMI/K7MDENG/{secrets.token_hex(10)}"
    token = f"bridge-token-{secrets.token_hex(8)}"
    query_token = f"qs-{secrets.token_hex(8)}"
    never_seen = (aws_key, token, query_token)
    pool = cognito_pool()
    cognito_admin.create_user(pool.id, "alice")
    plain_sink, dead_letters = sink_server_factory(), sink_server_factory()
    bridges, state = tmp_path / "bridges", tmp_path / "state"
    bridges.mkdir()
    endpoint = moto_server.endpoint

    # The runner's own key, asked for in a value (an ARN) ...
    in_arn = pool.arn.replace(pool.id, f"{pool.region}_${{AWS_SECRET_ACCESS_KEY}}")
    (bridges / "in-arn.yaml").write_text(_bridge(in_arn, endpoint, plain_sink.url))
    # ... and in sink headers, by valueFromEnv and by ${VAR:-default}, to a sink that accepts.
    leak_headers = (
        "    headers:\n"
        "      X-Leak: {valueFromEnv: AWS_SECRET_ACCESS_KEY}\n"
        "      X-Leak-Too: '${AWS_SECRET_ACCESS_KEY:-none}'\n"
    )
    (bridges / "in-header.yaml").write_text(
        _bridge(pool.arn, endpoint, plain_sink.url, sink_extra=leak_headers)
    )
    # A good bridge: a value it may read goes to its sink, which refuses and echoes it back
    # (body and reason phrase); the event is dead-lettered with the sink's response attached.
    good = bridges / "good.yaml"
    good.write_text(
        _bridge(
            pool.arn,
            endpoint,
            f"{echo_sink.url}?token={query_token}",
            sink_extra="    headers: {X-Token: '${BRIDGE_VAR_TOKEN}'}\n",
            spec_extra=f"    deadLetterSink: {{uri: '{dead_letters.url}'}}\n",
        )
    )
    env = {"AWS_SECRET_ACCESS_KEY": aws_key, "BRIDGE_VAR_TOKEN": token}

    runner = runner_process(
        "run", str(bridges), "--state-dir", str(state), "--log-level", "DEBUG", extra_env=env
    )
    (letter,) = dead_letters.wait_for_events(1, timeout=30)
    for name in ("in-arn.yaml", "in-header.yaml"):
        wait_until(
            lambda name=name: (
                condition(read_status(bridges / name), "Valid").get("status") == "False"
            ),
            what=f"{name} Valid=False",
        )
    wait_until(
        lambda: condition(read_status(good), "SinkReady").get("status") == "False",
        what="good.yaml SinkReady=False",
    )
    assert runner.terminate() == 0

    # The refused bridges say why, naming the variable and the flag.
    for name, path in (
        ("in-arn.yaml", "spec.source.awsCognitoUserPool.arn"),
        ("in-header.yaml", "spec.sink.headers.X-Leak.valueFromEnv"),
    ):
        status = read_status(bridges / name)
        assert status is not None
        first = status["errors"][0]
        assert first["path"] == path
        assert "environment variable AWS_SECRET_ACCESS_KEY is not allowed" in first["message"]
        assert "--allow-env" in first["message"]
    # Nothing reached a sink but the good bridge's event, with the value it may read.
    assert plain_sink.received == []
    (echoed,) = echo_sink.received_headers
    assert echoed["x-token"] == token
    assert aws_key not in str(echoed)
    # The dead letter carries the sink's echo, masked, and the sink URL without its query.
    assert letter.get_extension("knativeerrorcode") == "400"
    assert letter.get_extension("knativeerrordest") == echo_sink.url
    error_data = base64.b64decode(str(letter.get_extension("knativeerrordata"))).decode()
    assert '"x-token": "***"' in error_data
    (request,) = dead_letters.received
    outputs = {
        "dead letter": f"{request.headers} {request.body!r} {error_data}",
        "runner log": runner.log,
    }
    for status_file in bridges.glob("*.status.json"):
        outputs[status_file.name] = status_file.read_text()
    for fmt in ("text", "json", "github"):
        check = subprocess.run(
            [sys.executable, "-m", "runner", "check", str(bridges), "--format", fmt],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 1, check.stderr
        assert "AWS_SECRET_ACCESS_KEY is not allowed" in check.stdout
        outputs[f"check --format {fmt}"] = check.stdout + check.stderr
    assert "retrying" in runner.log or "dead-lettered" in runner.log  # the log did speak
    for where, text in outputs.items():
        for value in never_seen:
            assert value not in text, f"{where} holds a value it must not: {text}"


def test_a_runner_allowing_its_own_aws_variables_says_so_by_name(
    tmp_path: Path, runner_process: Start
) -> None:
    aws_key = f"wJalrXUtnFEMI/K7MDENG/{secrets.token_hex(10)}"
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    env = {"AWS_SECRET_ACCESS_KEY": aws_key}
    runner = runner_process(
        "run", str(bridges), "--once", "--state-dir", str(tmp_path / "state"),
        "--allow-env", "AWS_*", extra_env=env,
    )  # fmt: skip
    assert runner.proc.wait(60) == 0, runner.log
    runner.terminate()
    assert "--allow-env lets bridges read the runner's own credentials: " in runner.log
    assert "AWS_SECRET_ACCESS_KEY" in runner.log
    assert aws_key not in runner.log

    quiet = runner_process(
        "run", str(bridges), "--once", "--state-dir", str(tmp_path / "state"),
        "--allow-env", "SINK_*", extra_env=env,
    )  # fmt: skip
    assert quiet.proc.wait(60) == 0, quiet.log
    quiet.terminate()
    assert "own credentials" not in quiet.log
