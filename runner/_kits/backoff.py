"""The one backoff of every retry wait: delivery retries, the poll error backoff, the re-asks
of a Cognito page, and the restarts of a failed bridge.

    backoff_step(base, attempt, cap=, policy=) -> seconds   the step before retry `attempt`
    equal_jitter(step, floor=, cap=, rng=)      -> seconds   a random wait for that step
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


# 2**64 times any sane base is beyond any cap; the exponent stops there so floats never overflow.
_MAX_EXPONENT = 64


def backoff_step(
    base: float, attempt: int, *, cap: float = math.inf, policy: str = "exponential"
) -> float:
    """The backoff step before retry number `attempt` (0: the first retry waits `base`):
    `exponential` doubles it each time (base * 2**attempt), `linear` adds `base` each time
    (base * (attempt + 1)); never beyond `cap`. Jitter it with `equal_jitter`."""
    n = max(0, attempt)
    if policy == "linear":
        step = base * (n + 1)
    elif policy == "exponential":
        step = base * 2.0 ** min(n, _MAX_EXPONENT)
    else:
        raise ValueError(f"unknown backoff policy {policy!r}")
    return min(step, cap)
