"""Durations as bridge files write them: `500ms`, `30s`, `5m`, `1h30m`, `1.5s`, or ISO-8601
(`PT30S`, `PT1H30M`, `P1D`), turned into seconds.

Only units of fixed length are accepted: ISO-8601 years and months vary in length, so they
are refused rather than guessed.
"""

from __future__ import annotations

import argparse
import math
import re

_NUMBER = r"\d+(?:\.\d+)?"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIMPLE = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+")
_SIMPLE_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_ISO = re.compile(
    rf"P(?:(?P<W>{_NUMBER})W)?(?:(?P<D>{_NUMBER})D)?"
    rf"(?:T(?:(?P<H>{_NUMBER})H)?(?:(?P<M>{_NUMBER})M)?(?:(?P<S>{_NUMBER})S)?)?",
    re.IGNORECASE,
)
_ISO_SECONDS = {"W": 604800.0, "D": 86400.0, "H": 3600.0, "M": 60.0, "S": 1.0}
_EXAMPLES = "500ms, 30s, 5m, 1h30m or ISO-8601 PT30S"


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with a message a person can act on otherwise."""
    value = text.strip()
    if not value:
        raise ValueError(f"a duration must not be empty (examples: {_EXAMPLES})")
    if _SIMPLE.fullmatch(value):
        seconds = sum(
            float(number) * _UNIT_SECONDS[unit] for number, unit in _SIMPLE_PART.findall(value)
        )
    elif value[0] in "Pp":
        seconds = _parse_iso(value)
    elif re.fullmatch(_NUMBER, value):
        raise ValueError(f"duration {value!r} needs a unit: write {value}s, {value}ms or {value}m")
    elif value.startswith("-"):
        raise ValueError(f"duration {value!r} must not be negative")
    else:
        raise ValueError(f"{value!r} is not a duration (examples: {_EXAMPLES})")
    if not math.isfinite(seconds):
        raise ValueError(f"duration {value!r} is too long")
    return seconds


def _parse_iso(value: str) -> float:
    match = _ISO.fullmatch(value)
    # "P" or "PT" alone match the pattern with no component: not a duration.
    if match is None or not any(match.groupdict().values()) or value.upper().endswith("T"):
        upper = value.upper()
        if re.search(r"\dY", upper) or re.search(r"P[^T]*\dM", upper):
            raise ValueError(
                f"ISO-8601 duration {value!r} uses years or months, which have no fixed "
                "length: use days (P30D) or hours instead"
            )
        raise ValueError(f"{value!r} is not an ISO-8601 duration (examples: PT30S, PT1H30M, P1D)")
    return sum(
        float(number) * _ISO_SECONDS[unit] for unit, number in match.groupdict().items() if number
    )


def format_duration(seconds: float) -> str:
    """A short human form of `seconds` for messages (`1.5s`, `250ms`, `5m`)."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def duration_argument(text: str) -> float:
    """An argparse `type` for duration flags: a duration as in bridge files, or a bare number
    of seconds (`--timeout 90`, as command lines usually take)."""
    try:
        return float(text) if _BARE_SECONDS.fullmatch(text.strip()) else parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_BARE_SECONDS = re.compile(r"\d+(\.\d+)?")
