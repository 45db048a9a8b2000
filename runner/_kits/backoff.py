"""The one jitter of every retry wait: delivery retries, the poll error backoff, and the
re-asks of a Cognito page.

    equal_jitter(step, floor=, cap=, rng=) -> seconds
"""

from __future__ import annotations

import math
import random

# The jitter's random source when none is injected: one per process, seeded by the OS, so
# that replicas started together draw different waits.
_RANDOM = random.Random()


def equal_jitter(
    step: float,
    *,
    floor: float = 0.0,
    cap: float = math.inf,
    rng: random.Random | None = None,
) -> float:
    """A random wait for a backoff `step`: uniform over [step / 2, step], "equal jitter" as
    AWS's Architecture Blog ("Exponential Backoff And Jitter") names it; when `floor` (a
    Retry-After) is later than step / 2 the window, still step / 2 wide, starts there
    instead; never beyond `cap`.

    Callers that failed at the same moment spread their retries over the window instead of
    coming back in lockstep, also when a sink told them all the same Retry-After, and none
    comes back sooner than half the step (full jitter, [0, step], would let a retry budget of
    `retry: N` run out in next to no time). Rounded to the millisecond, finer than any
    sleep, so that logs read "retrying in 0.732s". `rng` is for tests; by default one
    OS-seeded source per process.
    """
    width = step / 2
    low = min(max(width, floor), cap)
    high = min(low + width, cap)
    if high <= low:
        return low
    draw = (rng or _RANDOM).uniform(low, high)
    return min(max(round(draw, 3), low), high)
