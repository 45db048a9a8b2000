"""Overlapping delivery (runner/delivery/window.py, deliverer.py): several requests in flight per
bridge, each user's events strictly in order, against a real loopback sink that records when each
request arrived and was answered (`tests/delivery/overlap_sink.py`), and the real outbox.

"In order" is checked the strict way: a user's next event must not *arrive* at the sink before
the sink *answered* (accepted) that user's previous one -- retries included. "Overlapped" is
the sink's own count of requests it held at once. Backoff waits go through the recorded
`Sleeps` of the harness (they return at once), so no test waits out a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
from collections.abc import Callable

from runner.delivery.deliverer import Deliverer
from runner.model import Target
from tests.delivery.builders import BRIDGE_ID, Harness, scan_events, within_backoff
from tests.delivery.overlap_sink import OverlapSink, user_order_problems
from tests.peers.runner_process import wait_until


def append_rounds(harness: Harness, users: int, rounds: int) -> list[tuple[str, str]]:
    """`rounds` events for each of `users` users, committed round by round (as successive
    scans commit them: every user once, then every user again); (id, user) in seq order."""
    expected: list[tuple[str, str]] = []
    for scan in range(rounds):
        events = scan_events(harness.bridge, users, scan)
        harness.outbox.append_events(BRIDGE_ID, events)
        expected += [(ev.event_id, ev.user_key) for ev in events]
    assert len({event_id for event_id, _ in expected}) == users * rounds
    return expected


def random_delays(
    seed: int, low: float, high: float
) -> Callable[[tuple[str, ...], int], tuple[int, float]]:
    rng = random.Random(seed)
    return lambda ids, attempt: (202, rng.uniform(low, high))


def test_a_slow_sink_gets_overlapping_requests_and_each_users_events_in_order(
    make_harness: Callable[..., Harness],
) -> None:
    with OverlapSink(random_delays(11, 0.005, 0.04)) as sink:
        harness = make_harness(Target(sink.url), max_in_flight=6)
        expected = append_rounds(harness, users=8, rounds=5)

        harness.run()

        requests = sink.requests
    assert sink.max_in_flight > 1  # they really overlapped
    assert sink.max_in_flight <= 6
    assert user_order_problems(requests, expected) == []
    assert sorted(sink.accepted_ids()) == sorted(ids for ids, _ in expected)  # each once
    assert len(requests) == len(expected)
    stats = harness.outbox.stats(BRIDGE_ID)
    assert (stats.pending, stats.delivered) == (0, 40)
    assert harness.counters.delivered == 40


def test_a_users_next_event_waits_for_the_retries_of_the_one_before(
    make_harness: Callable[..., Harness],
) -> None:
    first_of_user_0: list[str] = []

    def decide(ids: tuple[str, ...], attempt: int) -> tuple[int, float]:
        # user-0000's first event fails twice; everything is a little slow.
        if ids and ids[0] in first_of_user_0 and attempt < 2:
            return 503, 0.01
        return 202, 0.02

    with OverlapSink(decide) as sink:
        harness = make_harness(Target(sink.url), max_in_flight=4)
        expected = append_rounds(harness, users=4, rounds=3)
        first_of_user_0.append(expected[0][0])

        harness.run()

        requests = sink.requests
    assert user_order_problems(requests, expected) == []
    tries = [r for r in requests if r.ids == (expected[0][0],)]
    assert [r.status for r in tries] == [503, 503, 202]
    # user-0000's second event went only after its first was accepted, the third try.
    second = next(r for r in requests if r.ids == (expected[4][0],))
    assert tries[-1].answered is not None and second.arrived > tries[-1].answered
    assert within_backoff(harness.sleeps.delays, [0.5, 1.0])  # one probe at a time
    assert harness.outbox.stats(BRIDGE_ID).delivered == 12


def test_a_failing_sink_is_retried_by_one_request_at_a_time(
    make_harness: Callable[..., Harness],
) -> None:
    arrivals, lock = [0], threading.Lock()

    def decide(ids: tuple[str, ...], attempt: int) -> tuple[int, float]:
        with lock:  # one handler thread per request
            arrivals[0] += 1
            return (503, 0.05) if arrivals[0] <= 6 else (202, 0.0)

    with OverlapSink(decide) as sink:
        harness = make_harness(Target(sink.url), max_in_flight=4)
        expected = append_rounds(harness, users=4, rounds=2)

        harness.run()
        requests = sink.requests
    failed = [r for r in requests if r.status == 503]
    assert len(failed) == 6
    assert sink.max_in_flight == 4  # the first requests went together, and all failed
    # Every request sent after the sink first failed, until it took one again, went alone:
    # each after the one before it was answered (those in flight at the failure aside).
    first_failure = min(r.answered for r in failed if r.answered is not None)
    recovered = min(r.answered for r in requests if r.accepted and r.answered is not None)
    probes = [r for r in requests if first_failure < r.arrived < recovered]
    for before, after in itertools.pairwise(probes):
        assert before.answered is not None and after.arrived > before.answered
    # The probes' backoff grew with the sink's streak of failures, whichever unit probed
    # (then the other units that had failed each waited its own first or second step).
    assert len(probes) == 3 and probes[-1].accepted
    assert within_backoff(harness.sleeps.delays[:3], [0.5, 1.0, 2.0])
    assert user_order_problems(requests, expected) == []
    assert harness.outbox.stats(BRIDGE_ID).delivered == 8


def test_no_new_request_starts_beside_a_failing_one(
    make_harness: Callable[..., Harness],
) -> None:
    # `retry: 0`: each failed event is given up (parked) at once and its slot frees, so only
    # the window's rule keeps the backlog from going to the down sink four at a time.
    # The first answers wait until four requests are in (at most 10 s), so that "the first
    # four went together" holds on a loaded machine too.
    arrived: list[OverlapSink] = []

    def decide(ids: tuple[str, ...], attempt: int) -> tuple[int, float]:
        with contextlib.suppress(AssertionError):
            arrived[0].wait_for_requests(4, timeout=10)
        return 503, 0.02

    with OverlapSink(decide) as sink:
        arrived.append(sink)
        harness = make_harness(Target(sink.url), max_in_flight=4, retry=0)
        append_rounds(harness, users=10, rounds=1)

        harness.run()

        requests = sink.requests
    assert len(requests) == 10 and all(r.status == 503 for r in requests)
    assert sink.max_in_flight == 4  # the first four went together
    first_failure = min(r.answered for r in requests if r.answered is not None)
    later = [r for r in requests if r.arrived > first_failure]
    assert len(later) >= 5
    for before, after in itertools.pairwise(later):
        assert before.answered is not None and after.arrived > before.answered
    assert harness.outbox.count_parked(BRIDGE_ID) == 10


def test_batches_overlap_but_a_user_is_never_in_two_unfinished_batches(
    make_harness: Callable[..., Harness],
) -> None:
    with OverlapSink(random_delays(12, 0.005, 0.04)) as sink:
        harness = make_harness(Target(sink.url), format="batch", max_batch_size=3, max_in_flight=4)
        expected = append_rounds(harness, users=9, rounds=4)

        harness.run()

        requests = sink.requests
    assert sink.max_in_flight > 1
    assert all(len(r.ids) == 3 for r in requests)
    for number, later in enumerate(requests):
        for earlier in requests[:number]:
            if set(earlier.users) & set(later.users):
                assert earlier.answered is not None and later.arrived > earlier.answered
    assert user_order_problems(requests, expected) == []
    assert harness.outbox.stats(BRIDGE_ID).delivered == 36


def test_stop_mid_flight_keeps_what_was_not_accepted_pending(
    make_harness: Callable[..., Harness],
) -> None:
    arrivals, lock = [0], threading.Lock()

    def decide(ids: tuple[str, ...], attempt: int) -> tuple[int, float]:
        with lock:
            arrivals[0] += 1
            return (503 if arrivals[0] == 2 else 202), 0.3

    with OverlapSink(decide) as sink:
        harness = make_harness(Target(sink.url), max_in_flight=3)
        expected = append_rounds(harness, users=6, rounds=1)

        async def stop_once_three_are_in_flight(deliverer: Deliverer) -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(deliverer.deliver_pending(stop))
            await asyncio.to_thread(sink.wait_for_requests, 3)
            stop.set()
            await task

        harness.run(stop_once_three_are_in_flight)
        requests = sink.requests
    assert len(requests) == 3  # nothing new after the stop, and the failed one not retried
    accepted = {i for r in requests if r.accepted for i in r.ids}
    assert len(accepted) == 2
    pending = [ev.event_id for ev in harness.outbox.pending(BRIDGE_ID, 10)]
    assert set(pending) == {i for i, _ in expected} - accepted
    assert harness.outbox.stats(BRIDGE_ID).delivered == 2
    assert harness.counters.pending == 4


def test_accepted_marks_are_committed_while_a_slow_request_is_still_in_flight(
    make_harness: Callable[..., Harness],
) -> None:
    # What a crash may resend is bounded in time too: the first event's mark is committed
    # (MARK_INTERVAL after it was accepted) although nothing else is accepted after it.
    answers = iter([(202, 0.0), (202, 30.0)])
    with OverlapSink(lambda ids, attempt: next(answers)) as sink:
        harness = make_harness(Target(sink.url), timeout=60.0)
        append_rounds(harness, users=2, rounds=1)

        async def cancel_once_the_first_mark_is_committed(deliverer: Deliverer) -> None:
            task = asyncio.create_task(deliverer.deliver_pending())
            await asyncio.to_thread(sink.wait_for_requests, 2)  # the second is held
            # The deliverer's timer commits it, not a later acceptance or a flush.
            await asyncio.to_thread(
                wait_until, lambda: harness.outbox.count_pending(BRIDGE_ID) == 1, 20.0
            )
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        harness.run(cancel_once_the_first_mark_is_committed)
    assert harness.outbox.stats(BRIDGE_ID).delivered == 1
