"""Secret files are read off the event loop, without blocking, regular files only, capped
(issue 9): a secret swapped for a FIFO, a huge file or a stalled mount never freezes the
other bridges. The process test runs the real runner against moto and a loopback sink."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import SecretError
from runner.model import SecretRef
from runner.secrets.resolver import MAX_SECRET_BYTES, SecretResolver
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import (
    RunnerProcess,
    bridge_yaml,
    condition,
    read_status,
    wait_until,
)
from tests.peers.sink_server import SinkServer

Start = Callable[..., RunnerProcess]


def _resolve_in_a_thread(resolver: SecretResolver, ref: SecretRef) -> BaseException | str | None:
    """What `resolve` gave, or None when it was still blocked after 10 s."""
    outcome: list[BaseException | str] = []

    def call() -> None:
        try:
            outcome.append(resolver.resolve(ref))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(10)
    return outcome[0] if outcome else None


def test_a_secret_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    try:
        outcome = _resolve_in_a_thread(SecretResolver(tmp_path), SecretRef("file", name="token"))
    finally:
        # Release a reader the old code left blocked in open().
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if outcome is None else None
        if writer is not None:
            os.close(writer)
    assert isinstance(outcome, SecretError), outcome
    assert str(outcome) == "secrets file token cannot be read: not a regular file (a FIFO)"


def test_a_huge_secret_file_is_refused_not_read_whole(tmp_path: Path) -> None:
    (tmp_path / "huge").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    (tmp_path / "fine").write_bytes(b"y" * (MAX_SECRET_BYTES - 1) + b"\n")
    resolver = SecretResolver(tmp_path)
    with pytest.raises(SecretError, match=r"cannot be read: file is too large"):
        resolver.resolve(SecretRef("file", name="huge"))
    assert resolver.resolve(SecretRef("file", name="fine")) == "y" * (MAX_SECRET_BYTES - 1)


def test_a_stalled_read_is_given_up_and_not_piled_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No stalled mount can be made here (no FUSE, no NFS): the read itself is replaced by
    # one that blocks until released, which is what a stalled mount's read(2) does.
    (tmp_path / "token").write_text("s3cr3t-token\n")
    resolver = SecretResolver(tmp_path)
    release, calls = threading.Event(), []
    real_resolve = SecretResolver.resolve

    def stalled(self: SecretResolver, ref: SecretRef) -> str:
        calls.append(ref)
        release.wait(30)
        return real_resolve(self, ref)

    monkeypatch.setattr(SecretResolver, "resolve", stalled)
    ref = SecretRef("file", name="token")

    async def scenario() -> tuple[list[str], int, str]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(ticker())
        errors = []
        for _ in range(3):
            try:
                await resolver.resolve_async(ref, give_up_after=0.2)
            except SecretError as exc:
                errors.append(str(exc))
        release.set()
        value = await resolver.resolve_async(ref, give_up_after=10)
        beat.cancel()
        return errors, ticks, value

    errors, ticks, value = asyncio.run(scenario())
    assert (
        errors
        == ["secrets file token could not be read within 0.2s (is the secrets mount stalled?)"] * 3
    )
    assert ticks > 10  # the loop kept running while the read hung
    assert len(calls) == 1  # the three waits shared the one hung read
    assert value == "s3cr3t-token"


def test_a_secret_swapped_for_a_fifo_never_stops_the_other_bridges(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges, secrets = tmp_path / "bridges", tmp_path / "secrets"
    bridges.mkdir()
    secrets.mkdir()
    os.mkfifo(secrets / "token")  # a hostile commit, or a mount gone wrong
    good_pool, fifo_pool = cognito_pool(), cognito_pool()
    good, fifo = bridges / "good.yaml", bridges / "fifo.yaml"
    good.write_text(bridge_yaml(good_pool, moto_server.endpoint, sink_server.url))
    line = f"    uri: {sink_server.url}\n"
    fifo.write_text(
        bridge_yaml(fifo_pool, moto_server.endpoint, sink_server.url).replace(
            line, line + "    headers: {Authorization: {valueFromFile: token}}\n"
        )
    )
    cognito_admin.create_user(fifo_pool.id, "blocked")
    proc = runner_process(
        "run",
        str(bridges),
        "--state-dir",
        str(tmp_path / "state"),
        "--secrets-dir",
        str(secrets),
        "--shutdown-timeout",
        "2s",
    )
    wait_until(
        lambda: condition(read_status(fifo), "SinkReady").get("reason") == "SecretUnavailable",
        timeout=30,
        what="the FIFO bridge reported",
    )
    assert "not a regular file (a FIFO)" in condition(read_status(fifo), "SinkReady")["message"]
    cognito_admin.create_user(good_pool.id, "flows")
    wait_until(
        lambda: Counter(e.get_data()["Username"] for e in sink_server.events())["flows"] == 1,  # type: ignore[index]
        timeout=30,
        what="the good bridge's event",
    )
    started = time.monotonic()
    assert proc.terminate(timeout=30) == 0, proc.log
    assert time.monotonic() - started < 30
