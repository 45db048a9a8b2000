"""runner._kits.gcpause: counted, process-wide pauses of the cyclic garbage collector."""

from __future__ import annotations

import gc
import threading

import pytest

from runner._kits.gcpause import gc_paused


def test_a_pause_disables_the_collector_and_restores_it_even_on_error() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()

    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_pauses_in_threads_end_with_the_last_one() -> None:
    first_in, second_in, first_out, second_may_leave = (threading.Event() for _ in range(4))
    during: dict[str, bool] = {}

    def first() -> None:
        with gc_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with gc_paused():
            second_in.set()
            first_out.wait(5)
            during["after the first left"] = gc.isenabled()
            second_may_leave.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    try:
        first_out.wait(5)
        assert first_out.is_set()
    finally:
        second_may_leave.set()
        for thread in threads:
            thread.join(5)
    assert during == {"after the first left": False}
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused(), gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
