"""Pausing Python's cyclic garbage collector around bulk work that makes no garbage cycles.

A 100,000-user scan keeps some 600,000 containers alive (a dict per user, its attribute
list, a dict per attribute). Building the next 100,000 objects (fingerprinted records, the
stored snapshot) triggers collections that walk all of them and find nothing to free: a
quarter of a diff's time. Reference counting still frees everything as usual meanwhile;
only cycles wait, until the pause ends and the collector runs again.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pausers = 0  # blocks inside gc_paused() right now, in any thread
_resume = False  # whether the collector was enabled when the first of them began


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC (process-wide: it has no other setting) while the block runs.

    Counted, so that overlapping pauses in several threads (bridges diffing at once) end
    when the last one does, and the collector is re-enabled only if it was enabled before
    the first: an application that runs with GC off keeps it off. Keep the block to bounded
    work (one diff, one snapshot load), so that the collector is never off for long.
    """
    global _pausers, _resume
    with _lock:
        if _pausers == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _resume:
                gc.enable()
