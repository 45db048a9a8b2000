"""A `${VAR}` whose value is not UTF-8 (issue 9): a located error for that bridge, never a crash
of `check` or of the runner's pass over the directory. The variable's bytes reach the process as
they would from a container's environment: undecodable, so Python holds them as surrogates."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.peers.moto_server import MotoServer, PoolInfo
from tests.peers.runner_process import RunnerProcess, bridge_yaml, condition, read_status
from tests.peers.sink_server import SinkServer

Start = Callable[..., RunnerProcess]
NOT_UTF8 = os.fsdecode(b"caf\xe9-\xff")  # Latin-1 bytes, as a misconfigured Secret gives them
HEADER = "    headers:\n      X-Team: ${BRIDGE_VAR_TEAM}\n"


def _with_team_header(text: str, sink_url: str) -> str:
    line = f"    uri: {sink_url}\n"
    return text.replace(line, line + HEADER)


def test_check_reports_the_variable_and_exits_1_not_3(
    tmp_path: Path, moto_server: MotoServer, cognito_pool: Callable[..., PoolInfo]
) -> None:
    bad = tmp_path / "team.yaml"
    sink = "https://events.example.com/x"
    bad.write_text(_with_team_header(bridge_yaml(cognito_pool(), moto_server.endpoint, sink), sink))
    done = subprocess.run(
        [sys.executable, "-m", "runner", "check", str(bad)],
        env={**os.environ, "BRIDGE_VAR_TEAM": NOT_UTF8},
        capture_output=True,
        timeout=60,
    )
    out = done.stdout.decode()
    assert done.returncode == 1, done.stderr.decode(errors="replace")
    assert "internal error" not in done.stderr.decode(errors="replace")
    line = bad.read_text().splitlines().index("      X-Team: ${BRIDGE_VAR_TEAM}") + 1
    assert f"team.yaml:{line}:" in out
    assert "environment variable BRIDGE_VAR_TEAM is not valid UTF-8" in out
    assert "caf" not in out  # not even the decodable part of the value


def test_the_other_bridges_run_and_get_their_status(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    good, bad = bridges / "good.yaml", bridges / "team.yaml"
    good.write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    bad.write_text(
        _with_team_header(bridge_yaml(pool, moto_server.endpoint, sink_server.url), sink_server.url)
    )
    proc = runner_process(
        "run",
        "--once",
        str(bridges),
        "--state-dir",
        str(tmp_path / "state"),
        extra_env={"BRIDGE_VAR_TEAM": NOT_UTF8},
    )
    assert proc.proc.wait(60) == 1, proc.log
    assert "Traceback" not in proc.log and "internal error" not in proc.log
    assert condition(read_status(good), "Ready").get("status") == "True"
    status = read_status(bad)
    assert status is not None
    assert condition(status, "Valid").get("status") == "False"
    assert [e["message"] for e in status["errors"]] == [
        "environment variable BRIDGE_VAR_TEAM is not valid UTF-8 (its value is not shown)"
    ]


def test_a_secret_from_such_a_variable_is_refused_by_name(tmp_path: Path) -> None:
    import pytest

    from runner.errors import SecretError
    from runner.model import SecretRef
    from runner.secrets.resolver import SecretResolver

    resolver = SecretResolver(tmp_path, env={"BRIDGE_VAR_TOKEN": NOT_UTF8})
    with pytest.raises(SecretError, match=r"BRIDGE_VAR_TOKEN.* is not valid UTF-8$") as raised:
        resolver.resolve(SecretRef("env", name="BRIDGE_VAR_TOKEN"))
    assert "caf" not in str(raised.value)
