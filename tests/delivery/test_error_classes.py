"""The sink half of the error tree (runner/errors.py) decides delivery: each class a sink raises,
against a real loopback peer, and what the deliverer then does with the event — retry it,
dead-letter it, park it, or wait for the operator without blaming it. And the tree is live:
every leaf class is raised somewhere in runner/.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import runner
from runner.delivery.deliverer import Deliverer
from runner.delivery.sinks import open_sender
from runner.errors import (
    BridgeRunnerError,
    PermanentError,
    SinkMisconfigured,
    SinkRejected,
    SinkUnavailable,
    TemporaryError,
)
from runner.model import OutboxEvent, SecretRef, Target
from tests.delivery.builders import BRIDGE_ID, Harness, within_backoff
from tests.peers.echo_sink import EchoSink
from tests.peers.sink_server import Reply, SinkServer

RUNNER = Path(runner.__file__).parent


def pending_event(harness: Harness) -> OutboxEvent:
    """One event appended to the real outbox, as the deliverer will read it."""
    harness.append(1)
    [event] = harness.outbox.pending(BRIDGE_ID, 10)
    return event


def deliver_once(harness: Harness, event: OutboxEvent) -> BridgeRunnerError | None:
    """What the bridge's sink raises for one delivery of `event` (None: it was accepted)."""

    async def main() -> BridgeRunnerError | None:
        async with httpx.AsyncClient() as http:
            sender = open_sender(
                harness.bridge.sink.target,
                http=http,
                secrets=harness.secrets,
                state_dir=harness.state_dir,
                sink=harness.bridge.sink,
            )
            try:
                await sender.deliver(sender.encode([event]))
            except BridgeRunnerError as exc:
                return exc
            return None

    return asyncio.run(main())


# -- SinkUnavailable: retried ----------------------------------------------------------------


def test_sink_unavailable_is_retried_until_the_sink_takes_the_event(
    sink_server_factory: Callable[[], SinkServer], make_harness: Callable[..., Harness]
) -> None:
    sink, dead = sink_server_factory(), sink_server_factory()
    sink.script(Reply(503), Reply(503))
    harness = make_harness(Target(sink.url), dead_letter=Target(dead.url))
    event = pending_event(harness)

    failure = deliver_once(harness, event)

    assert isinstance(failure, SinkUnavailable) and isinstance(failure, TemporaryError)
    assert (failure.status_code, failure.reason) == (503, "SinkError")

    harness.run()  # the second 503 is retried, then the sink takes the event

    assert sink.ids(accepted_only=True) == [event.event_id]
    assert within_backoff(harness.sleeps.delays, [0.5])
    assert dead.received == []
    stats = harness.outbox.stats(BRIDGE_ID)
    assert (stats.delivered, stats.dead_lettered, stats.parked) == (1, 0, 0)
    assert harness.counters.retried == 1
    assert (harness.ready.status, harness.ready.reason) == ("True", "Delivered")


# -- SinkRejected: dead-lettered, or parked --------------------------------------------------


def test_sink_rejected_is_dead_lettered_at_once(
    echo_sink_factory: Callable[..., EchoSink],
    sink_server: SinkServer,
    make_harness: Callable[..., Harness],
) -> None:
    echo = echo_sink_factory(400)
    harness = make_harness(Target(echo.url), dead_letter=Target(sink_server.url))
    event = pending_event(harness)

    failure = deliver_once(harness, event)

    assert isinstance(failure, SinkRejected) and isinstance(failure, PermanentError)
    assert (failure.status_code, failure.reason) == (400, "EventRefused")
    assert failure.body_excerpt.startswith(b"{")  # the echo, kept for knativeerrordata

    harness.run()

    assert len(echo.received_headers) == 2  # ours above, and the deliverer's one: no retry
    assert harness.sleeps.delays == []
    [letter] = sink_server.events()
    assert letter.get_id() == event.event_id
    assert letter.get_extension("knativeerrorcode") == "400"
    stats = harness.outbox.stats(BRIDGE_ID)
    assert (stats.delivered, stats.dead_lettered, stats.parked) == (0, 1, 0)
    assert (harness.ready.status, harness.ready.reason) == ("False", "EventRefused")


def test_sink_rejected_without_a_dead_letter_sink_is_parked(
    echo_sink_factory: Callable[..., EchoSink], make_harness: Callable[..., Harness]
) -> None:
    echo = echo_sink_factory(422)
    harness = make_harness(Target(echo.url))
    event = pending_event(harness)

    assert isinstance(deliver_once(harness, event), SinkRejected)

    harness.run()

    assert len(echo.received_headers) == 2
    assert harness.sleeps.delays == []
    assert harness.outbox.count_parked(BRIDGE_ID) == 1
    assert harness.counters.parked == 1
    assert harness.counters.last_error.startswith("HTTP 422")


def test_a_dead_letter_sink_that_rejects_the_letter_parks_it_without_retrying(
    sink_server: SinkServer,
    echo_sink_factory: Callable[..., EchoSink],
    make_harness: Callable[..., Harness],
) -> None:
    sink_server.script(Reply(400))
    dead = echo_sink_factory(400)
    harness = make_harness(Target(sink_server.url), dead_letter=Target(dead.url))
    harness.append(1)

    harness.run()

    assert len(dead.received_headers) == 1  # SinkRejected ends the dead-letter retries too
    assert harness.sleeps.delays == []
    assert harness.outbox.count_parked(BRIDGE_ID) == 1
    assert harness.counters.last_error == (
        "HTTP 400 Bad Request; dead-letter sink failed too: HTTP 400 Bad Request"
    )


# -- SinkMisconfigured: nothing sent, the event not blamed -----------------------------------


@pytest.mark.parametrize("case", ["unresolvable secret header", "file sink outside the state dir"])
def test_sink_misconfigured_waits_for_the_operator_without_spending_the_budget(
    case: str,
    tmp_path: Path,
    sink_server_factory: Callable[[], SinkServer],
    make_harness: Callable[..., Harness],
) -> None:
    sink, dead = sink_server_factory(), sink_server_factory()
    outside = tmp_path / "outside"
    outside.mkdir()
    if case == "unresolvable secret header":
        target = Target(sink.url)
        options = {"headers": {"Authorization": SecretRef("env", "BRIDGE_VAR_SINK_TOKEN")}}
        reason = "SecretUnavailable"
    else:
        (tmp_path / "state" / "dl").symlink_to(outside, target_is_directory=True)
        target = Target("file:dl/events.jsonl", "dl/events.jsonl")
        options = {}
        reason = "FileSinkOutsideStateDir"
    # retry: 0 — one SinkUnavailable or SinkRejected would dead-letter the event at once.
    harness = make_harness(target, retry=0, dead_letter=Target(dead.url), **options)
    assert harness.state_dir == tmp_path / "state"
    event = pending_event(harness)

    failure = deliver_once(harness, event)

    assert isinstance(failure, SinkMisconfigured) and isinstance(failure, PermanentError)
    assert failure.reason == reason

    async def body(deliverer: Deliverer) -> None:
        stop = asyncio.Event()
        harness.sleeps._on_sleep = lambda n: stop.set() if n == 3 else None
        await deliverer.deliver_pending(stop)

    harness.run(body)

    assert sink.received == [] and dead.received == [] and list(outside.iterdir()) == []
    assert within_backoff(harness.sleeps.delays, [0.5, 1.0, 2.0])  # its own backoff, unbounded
    [pending] = harness.outbox.pending(BRIDGE_ID, 10)
    assert pending.attempts == 0
    assert (harness.ready.status, harness.ready.reason) == ("False", reason)


# -- the tree is live --------------------------------------------------------------------------


def _called_name(node: ast.expr | None) -> str | None:
    """`X` for `X(...)` and `mod.X(...)`."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def _raised_and_returned(tree: ast.Module) -> tuple[set[str], dict[str, set[str]]]:
    """The names called in `raise` statements (`raise X(...)`, `raise make(...)`, `raise e`
    where `e = make(...)`, `raise a or X(...)`), and what each function returns a call of
    (`return X(...)`), so that errors built by a factory function count as raised too."""
    raised: set[str] = set()
    returns: dict[str, set[str]] = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        bound: dict[str, set[str]] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and (name := _called_name(node.value)):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        bound.setdefault(target.id, set()).add(name)
            elif isinstance(node, ast.Return) and (name := _called_name(node.value)):
                returns.setdefault(function.name, set()).add(name)
        for node in ast.walk(function):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            values = node.exc.values if isinstance(node.exc, ast.BoolOp) else [node.exc]
            for value in values:
                if name := _called_name(value):
                    raised.add(name)
                elif isinstance(value, ast.Name):
                    raised |= bound.get(value.id, set())
    return raised, returns


def test_every_leaf_of_the_error_tree_is_raised_somewhere_in_runner() -> None:
    errors = ast.parse((RUNNER / "errors.py").read_text())
    classes = {node.name: node for node in errors.body if isinstance(node, ast.ClassDef)}
    parents = {
        base.id for node in classes.values() for base in node.bases if isinstance(base, ast.Name)
    }
    leaves = set(classes) - parents
    assert {"SinkUnavailable", "SinkRejected", "SinkMisconfigured"} <= leaves

    raised: set[str] = set()
    returns: dict[str, set[str]] = {}
    for path in sorted(RUNNER.rglob("*.py")):
        if path == RUNNER / "errors.py":
            continue
        module_raised, module_returns = _raised_and_returned(ast.parse(path.read_text()))
        raised |= module_raised
        for function, names in module_returns.items():
            returns.setdefault(function, set()).update(names)
    # What a raised factory call returns is raised too, through any chain of factories.
    while True:
        more = set().union(*(returns.get(name, set()) for name in raised)) - raised
        if not more:
            break
        raised |= more

    assert sorted(leaves - raised) == []
