"""Issue 13's acceptance with real peers: moto's Cognito over HTTP, the SQLite state, the
loopback sink (which validates every event and its data against the project's schemas and,
where ../shared/conformance is, TriggerMesh's), and `bridge-runner replay` / `resync` as
command lines between two runs of the runner. (With the runner running: tests/process/
test_replay_process.py.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runner.cli.main import main
from runner.model import Bridge, EventsSpec
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.sink_server import Reply, SinkServer
from tests.polling.conftest import Harness, make_bridge


def attribute_names(event: Any) -> list[str]:
    return [a["Name"] for a in event.get_data()["Attributes"]]


def sub_of(event: Any) -> str:
    return next(a["Value"] for a in event.get_data()["Attributes"] if a["Name"] == "sub")


@pytest.fixture
def pool(cognito_pool: Callable[..., PoolInfo]) -> PoolInfo:
    return cognito_pool()


def bridge_with(pool: PoolInfo, moto: MotoServer, sink: SinkServer, spec: EventsSpec) -> Bridge:
    return replace(make_bridge(pool, moto.endpoint, sink.url), events=spec)


def test_left_out_attribute_absent_and_its_change_alone_sends_nothing(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    pool: PoolInfo,
    sink_server: SinkServer,
) -> None:
    bridge = bridge_with(pool, moto_server, sink_server, EventsSpec(exclude=("phone_number",)))
    cognito_admin.create_user(pool.id, "amy", {"email": "a@example.com", "phone_number": "+1555"})
    harness.pass_(bridge)
    (created,) = sink_server.events(accepted_only=True)
    assert "phone_number" not in attribute_names(created)
    assert {"sub", "email"} <= set(attribute_names(created))

    cognito_admin.update_user(pool.id, "amy", {"phone_number": "+1666"})
    harness.pass_(bridge)
    harness.pass_(bridge)  # nor later
    assert len(sink_server.events()) == 1

    cognito_admin.update_user(pool.id, "amy", {"email": "b@example.com"})
    harness.pass_(bridge)
    updated = sink_server.events()[1]
    assert updated.get_extension("changetype") == "updated"
    assert updated.get_extension("changedattributes") == "email"
    assert "phone_number" not in attribute_names(updated)
    assert sink_server.problems == []  # the data still validates, with the filter


def test_changedattributes_and_partitionkey_on_every_change(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    pool: PoolInfo,
    sink_server: SinkServer,
) -> None:
    bridge = bridge_with(pool, moto_server, sink_server, EventsSpec())
    cognito_admin.create_user(pool.id, "amy", {"email": "a@example.com"})
    harness.pass_(bridge)
    cognito_admin.update_user(pool.id, "amy", {"email": "b@example.com", "name": "Amy"})
    harness.pass_(bridge)
    cognito_admin.disable_user(pool.id, "amy")
    harness.pass_(bridge)
    cognito_admin.enable_user(pool.id, "amy")
    harness.pass_(bridge)
    cognito_admin.delete_user(pool.id, "amy")
    harness.pass_(bridge)

    events = sink_server.events(accepted_only=True)
    sub = sub_of(events[0])
    assert [
        (e.get_extension("changetype"), e.get_extension("changedattributes")) for e in events
    ] == [
        ("created", None),
        ("updated", "email,name"),
        ("updated", "Enabled"),
        ("updated", "Enabled"),
        ("deleted", None),
    ]
    assert [e.get_extension("partitionkey") for e in events] == [sub] * 5
    assert sink_server.problems == []


def test_a_deletions_only_bridge_sends_only_deletions(
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    pool: PoolInfo,
    sink_server: SinkServer,
) -> None:
    spec = EventsSpec(change_types=("deleted",))
    bridge = bridge_with(pool, moto_server, sink_server, spec)
    for name in ("amy", "bob"):
        cognito_admin.create_user(pool.id, name, {"email": f"{name}@example.com"})
    harness.pass_(bridge)  # an `emit` backfill of created users: not sent
    cognito_admin.update_user(pool.id, "amy", {"email": "new@example.com"})
    cognito_admin.delete_user(pool.id, "bob")
    cognito_admin.create_user(pool.id, "cy", {"email": "cy@example.com"})
    harness.pass_(bridge)
    events = sink_server.events(accepted_only=True)
    assert [(e.get_data()["Username"], e.get_extension("changetype")) for e in events] == [  # type: ignore[index]
        ("bob", "deleted")
    ]
    assert harness.outbox.count_users(bridge.id, pool.arn) == 2  # the snapshot followed


def bridge_dirs(tmp_path: Path, bridge: Bridge) -> list[str]:
    """A bridges directory holding the bridge's file (replay and resync look for it)."""
    bridges = tmp_path / "bridges"
    (bridges / bridge.file).parent.mkdir(parents=True, exist_ok=True)
    (bridges / bridge.file).write_text("# the bridge; replay and resync read only its state\n")
    return [str(bridges), bridge.id]


def test_parked_events_are_replayed_with_their_ids_after_the_sink_is_fixed(
    tmp_path: Path,
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    pool: PoolInfo,
    sink_server: SinkServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bridge = bridge_with(pool, moto_server, sink_server, EventsSpec())
    for name in ("amy", "bob", "cy"):
        cognito_admin.create_user(pool.id, name, {"email": f"{name}@example.com"})
    sink_server.script(*[Reply(400)] * 3)  # refused, and no dead-letter sink: parked
    harness.pass_(bridge)
    refused = sink_server.ids()
    assert len(refused) == 3 and sink_server.ids(accepted_only=True) == []
    assert harness.outbox.count_parked(bridge.id) == 3
    where = [*bridge_dirs(tmp_path, bridge), "--state-dir", str(harness.state_dir)]

    assert main(["replay", *where, "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert all(event_id in listed for event_id in refused) and "3 parked events" in listed
    assert harness.outbox.count_parked(bridge.id) == 3  # a dry run changes nothing

    assert main(["replay", *where]) == 0
    assert "3 parked events" in capsys.readouterr().out
    harness.pass_(bridge)  # the next run of the runner sends them
    assert sorted(sink_server.ids(accepted_only=True)) == sorted(refused)
    assert harness.outbox.stats(bridge.id).parked == 0
    assert main(["replay", *where]) == 0
    assert "0 parked events" in capsys.readouterr().out


def test_resync_sends_the_pool_once_and_keeps_the_place(
    tmp_path: Path,
    harness: Harness,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    pool: PoolInfo,
    sink_server: SinkServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bridge = bridge_with(pool, moto_server, sink_server, EventsSpec())
    for name in ("amy", "bob", "cy"):
        cognito_admin.create_user(pool.id, name, {"email": f"{name}@example.com"})
    harness.pass_(bridge)
    assert len(sink_server.events()) == 3

    assert (
        main(["resync", *bridge_dirs(tmp_path, bridge), "--state-dir", str(harness.state_dir)]) == 0
    )
    assert "3 users" in capsys.readouterr().out
    cognito_admin.delete_user(pool.id, "cy")
    harness.pass_(bridge)
    again = sink_server.events()[3:]
    assert sorted(
        (e.get_data()["Username"], e.get_extension("changetype"))
        for e in again  # type: ignore[index]
    ) == [("amy", "updated"), ("bob", "updated"), ("cy", "deleted")]
    assert {e.get_id() for e in again}.isdisjoint(sink_server.ids()[:3])  # new ids
    harness.pass_(bridge)  # once: the marks went with the commit
    assert len(sink_server.events()) == 6
    assert sink_server.problems == []


def test_replay_and_resync_refuse_an_unknown_bridge_or_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    (bridges / "signups.yaml").write_text("#\n")
    state = tmp_path / "state"
    assert main(["replay", str(bridges), "nope", "--state-dir", str(state)]) == 2
    assert "no bridge 'nope'" in capsys.readouterr().err
    assert main(["resync", str(bridges), "signups", "--state-dir", str(state)]) == 1
    assert "no state in" in capsys.readouterr().err
    assert not state.exists()  # never created by a typo
