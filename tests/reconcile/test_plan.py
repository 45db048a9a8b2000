"""The pure reconcile plan (runner/reconcile/plan.py): hand-checked cases and a property test that
any
sequence of directory states converges, with last-good and without redundant restarts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import UsageError
from runner.model import Bridge, CognitoSource, PoolArn, Sink, Target
from runner.reconcile.plan import (
    ActionKind,
    DesiredBridge,
    Plan,
    Reason,
    RunningBridge,
    Shard,
    is_selected,
    matches_selector,
    parse_selector,
    plan_reconcile,
    shard_of,
)

T = TypeVar("T", DesiredBridge, RunningBridge)

POOL = PoolArn(
    arn="arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B",
    partition="aws",
    region="us-west-2",
    account="043455440429",
    pool_id="us-west-2_fak3p001B",
)


def make_bridge(
    bridge_id: str, version: int = 1, *, suspend: bool = False, labels: Mapping[str, str] = {}
) -> Bridge:
    digest = hashlib.sha256(f"{bridge_id}@{version}".encode()).hexdigest()
    return Bridge(
        id=bridge_id,
        file=Path(f"/bridges/{bridge_id}.yaml"),
        name=bridge_id.rsplit("/", 1)[-1],
        source=CognitoSource(pool=POOL),
        sink=Sink(target=Target(uri="http://127.0.0.1:9/events")),
        labels=dict(labels),
        suspend=suspend,
        digest=digest,
        file_digest=digest,
    )


def valid(bridge_id: str, version: int = 1, **kw: bool) -> DesiredBridge:
    return DesiredBridge(
        bridge_id, make_bridge(bridge_id, version, suspend=kw.get("suspend", False))
    )


def invalid(bridge_id: str) -> DesiredBridge:
    return DesiredBridge(bridge_id, None)


def runs(bridge_id: str, version: int = 1) -> RunningBridge:
    return RunningBridge(bridge_id, make_bridge(bridge_id, version).digest)


def by_id(*items: T) -> dict[str, T]:
    return {item.id: item for item in items}


def summary(plan: Plan) -> list[tuple[str, str, str]]:
    return [(a.kind.value, a.bridge_id, a.reason.value) for a in plan.actions]


# --- hand-checked cases -----------------------------------------------------------------------


def test_new_bridges_start_and_nothing_runs_from_an_empty_directory() -> None:
    assert plan_reconcile({}, {}).actions == ()
    plan = plan_reconcile(by_id(valid("b"), valid("a")), {})
    assert summary(plan) == [("start", "a", "Added"), ("start", "b", "Added")]
    assert plan.starts[0].bridge is not None and plan.starts[0].bridge.id == "a"
    assert plan.starts[0].digest_after == make_bridge("a").digest


def test_unchanged_bridges_are_kept_and_changed_ones_restart_alone() -> None:
    plan = plan_reconcile(by_id(valid("a"), valid("b", 2)), by_id(runs("a"), runs("b", 1)))
    assert summary(plan) == [("restart", "b", "SpecChanged"), ("keep", "a", "Unchanged")]
    restart = plan.restarts[0]
    assert restart.running_digest == make_bridge("b", 1).digest
    assert restart.digest_after == make_bridge("b", 2).digest
    assert restart.describe().startswith("restart b: its effective spec changed (")
    assert plan.changes == (restart,)


def test_removed_files_stop() -> None:
    plan = plan_reconcile({}, by_id(runs("gone")))
    assert summary(plan) == [("stop", "gone", "FileRemoved")]
    assert plan.stops[0].digest_after is None
    assert plan.stops[0].describe() == "stop gone: its file was removed"


def test_suspended_bridges_stop_and_never_start() -> None:
    plan = plan_reconcile(
        by_id(valid("a", suspend=True), valid("b", suspend=True)), by_id(runs("a"))
    )
    assert summary(plan) == [("stop", "a", "Suspended")]


def test_an_invalid_file_keeps_its_last_good_version_running() -> None:
    plan = plan_reconcile(by_id(invalid("a")), by_id(runs("a", 3)))
    assert summary(plan) == [("keep", "a", "LastGood")]
    keep = plan.keeps[0]
    assert keep.bridge is None
    assert keep.digest_after == make_bridge("a", 3).digest
    assert plan.changes == ()


def test_a_file_invalid_from_the_start_never_starts() -> None:
    assert plan_reconcile(by_id(invalid("a")), {}).actions == ()


def test_an_invalid_file_that_is_deleted_stops_its_last_good_version() -> None:
    assert summary(plan_reconcile({}, by_id(runs("a")))) == [("stop", "a", "FileRemoved")]


def test_unselected_bridges_stop_and_never_start() -> None:
    desired = {
        "a": DesiredBridge("a", make_bridge("a"), selected=False),
        "b": DesiredBridge("b", make_bridge("b"), selected=False),
        "c": DesiredBridge("c", None, selected=False),
    }
    plan = plan_reconcile(desired, by_id(runs("a"), runs("c")))
    assert summary(plan) == [("stop", "a", "NotSelected"), ("stop", "c", "NotSelected")]


def test_every_stop_comes_before_any_restart_and_start() -> None:
    desired = by_id(valid("a"), valid("m", 2), valid("z"), valid("k"))
    running = by_id(runs("b"), runs("m"), runs("y"), runs("k"))
    kinds = [a.kind for a in plan_reconcile(desired, running).actions]
    assert kinds == [
        ActionKind.STOP,
        ActionKind.STOP,
        ActionKind.RESTART,
        ActionKind.START,
        ActionKind.START,
        ActionKind.KEEP,
    ]


# --- shard and selector -------------------------------------------------------------------------


def test_shard_of_is_sha256_based_stable_and_spread() -> None:
    # Pinned values: a change here would silently move bridges between running replicas.
    expected = int.from_bytes(hashlib.sha256(b"team-a/signups").digest()[:8], "big") % 7
    assert shard_of("team-a/signups", 7) == expected
    assert shard_of("anything", 1) == 0
    counts = [0, 0, 0, 0]
    for i in range(400):
        counts[shard_of(f"team-{i}/bridge", 4)] += 1
    assert all(60 < c < 140 for c in counts), counts
    with pytest.raises(ValueError):
        shard_of("x", 0)


def test_every_bridge_has_exactly_one_owner_among_the_shards() -> None:
    shards = [Shard.parse(f"{i}/3") for i in range(3)]
    for i in range(200):
        owners = [s for s in shards if s.owns(f"b{i}")]
        assert len(owners) == 1


@pytest.mark.parametrize("text", ["", "1", "2/2", "-1/2", "a/b", "1/0", "1/2/3"])
def test_malformed_shards_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Shard.parse(text)


def test_selector_parsing_and_matching() -> None:
    selector = parse_selector(["team=identity,env = prod", "tier=1"])
    assert selector == {"team": "identity", "env": "prod", "tier": "1"}
    assert matches_selector({"team": "identity", "env": "prod", "tier": "1", "x": "y"}, selector)
    assert not matches_selector({"team": "identity", "env": "prod"}, selector)
    assert not matches_selector({"team": "identity", "env": "dev", "tier": "1"}, selector)
    assert matches_selector({}, {})
    assert parse_selector([]) == {}
    for bad in (["team"], ["=x"], ["a==b"], ["a=1", "a=2"]):
        with pytest.raises(UsageError):
            parse_selector(bad)


def test_is_selected_combines_shard_and_selector() -> None:
    shard = Shard(shard_of("a", 2), 2)
    other = Shard(1 - shard.index, 2)
    assert is_selected("a", {"team": "x"}, shard=shard, selector={"team": "x"})
    assert not is_selected("a", {"team": "x"}, shard=other, selector={"team": "x"})
    assert not is_selected("a", {"team": "y"}, shard=shard, selector={"team": "x"})
    # Unknown labels (a file never valid): its shard reports it, whatever the selector.
    assert is_selected("a", None, shard=shard, selector={"team": "x"})
    assert not is_selected("a", None, shard=other)


# --- property: any sequence of directory states converges ------------------------------------

IDS = ["a", "b", "c", "team/d"]
# One file's state: absent, invalid, or valid at some version, maybe suspended or unselected.
file_state = st.one_of(
    st.none(),
    st.just("invalid"),
    st.tuples(st.integers(1, 3), st.booleans(), st.booleans()),  # version, suspend, selected
)
directory_state = st.fixed_dictionaries({i: file_state for i in IDS})


def desired_from(state: Mapping[str, object]) -> dict[str, DesiredBridge]:
    desired: dict[str, DesiredBridge] = {}
    for bridge_id, f in state.items():
        if f is None:
            continue
        if f == "invalid":
            desired[bridge_id] = DesiredBridge(bridge_id, None)
        else:
            assert isinstance(f, tuple)
            version, suspend, selected = f
            desired[bridge_id] = DesiredBridge(
                bridge_id, make_bridge(bridge_id, version, suspend=suspend), selected=selected
            )
    return desired


def expected_running(state: Mapping[str, object], before: Mapping[str, str]) -> dict[str, str]:
    """The model: valid+wanted files run their digest; invalid ones keep what ran (last good)."""
    after: dict[str, str] = {}
    for bridge_id, f in state.items():
        if f == "invalid":
            if bridge_id in before:
                after[bridge_id] = before[bridge_id]
        elif isinstance(f, tuple):
            version, suspend, selected = f
            if selected and not suspend:
                after[bridge_id] = make_bridge(bridge_id, version).digest
    return after


def apply(plan: Plan, running: dict[str, str]) -> dict[str, str]:
    """Carry a plan out on a simulated set of tasks, checking each step is legal."""
    running = dict(running)
    for action in plan.actions:
        if action.kind is ActionKind.STOP:
            assert action.bridge_id in running
            del running[action.bridge_id]
        elif action.kind is ActionKind.START:
            assert action.bridge_id not in running and action.bridge is not None
            running[action.bridge_id] = action.bridge.digest
        elif action.kind is ActionKind.RESTART:
            assert action.bridge is not None
            assert running[action.bridge_id] != action.bridge.digest, "redundant restart"
            running[action.bridge_id] = action.bridge.digest
        else:
            assert running[action.bridge_id] == action.digest_after
    return running


@settings(max_examples=300, deadline=None)
@given(st.lists(directory_state, min_size=1, max_size=8))
def test_any_sequence_of_directory_states_converges(states: list[dict[str, object]]) -> None:
    running: dict[str, str] = {}
    for state in states:
        plan = plan_reconcile(
            desired_from(state), {i: RunningBridge(i, d) for i, d in running.items()}
        )
        kinds = [a.kind for a in plan.actions]
        assert kinds == sorted(kinds, key=list(ActionKind).index), "stops come first"
        assert len({a.bridge_id for a in plan.actions}) == len(plan.actions)
        expected = expected_running(state, running)
        restarted = {a.bridge_id for a in plan.restarts}
        assert restarted == {i for i in expected if i in running and running[i] != expected[i]}, (
            "exactly the bridges whose digest changed restart"
        )
        running = apply(plan, running)
        assert running == expected
        # A second pass over the same directory changes nothing.
        again = plan_reconcile(
            desired_from(state), {i: RunningBridge(i, d) for i, d in running.items()}
        )
        assert again.changes == ()
        assert all(a.reason in (Reason.UNCHANGED, Reason.LAST_GOOD) for a in again.actions)
