"""The reconciler in-process, for faults a real directory cannot produce on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from runner.app import RunnerSettings, poller_factory
from runner.reconcile import directory as directory_module
from runner.reconcile.directory import BridgesDirectory, bridge_file_loader
from runner.reconcile.reconciler import Reconciler
from runner.secrets.resolver import SecretResolver
from runner.sources.cognito.budget import RequestBudgets
from runner.sources.cognito.client import CognitoClients
from runner.state.outbox import Outbox
from tests.peers.moto_server import MotoServer, PoolInfo
from tests.peers.runner_process import bridge_yaml
from tests.peers.sink_server import SinkServer


def test_a_directory_that_cannot_be_listed_changes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    # A folder removed while it is listed (git checkout, git-sync's cleanup) or a path too
    # long makes the listing fail. That must not look like deleted files: bridges keep running.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    root = tmp_path / "bridges"
    root.mkdir()
    pool = cognito_pool()
    (root / "a.yaml").write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    settings = RunnerSettings(root=root, state_dir=tmp_path / "state", secrets_dir=tmp_path)
    outbox = Outbox.open(settings.state_dir)
    secrets = SecretResolver(tmp_path, env={})
    clients = CognitoClients(secrets, RequestBudgets(100.0))

    async def scenario() -> None:
        async with httpx.AsyncClient() as http:
            load = bridge_file_loader(root, secrets_dir=settings.secrets_dir)
            workers = poller_factory(
                outbox=outbox,
                clients=clients,
                http=http,
                state_dir=settings.state_dir,
                secrets=secrets,
            )
            rec = Reconciler(
                settings.reconcile_settings(),
                directory=BridgesDirectory(root, load),
                worker_factory=workers,
                outbox=outbox,
            )
            first = await rec.reconcile()
            assert [a.bridge_id for a in first.starts] == ["a"]

            def vanished(_: Path) -> list[Path]:
                raise FileNotFoundError(2, "No such file or directory", str(root / "gone"))

            monkeypatch.setattr(directory_module, "discover_bridge_files", vanished)
            second = await rec.reconcile()
            assert second.actions == ()
            assert list(rec.running) == ["a"]
            assert (root / "a.status.json").exists()
            await rec.shutdown()

    try:
        asyncio.run(scenario())
    finally:
        clients.close()
        outbox.close()
