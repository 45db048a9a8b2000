"""RFC 3339 time: the one formatter and parser every status, event and record uses.

`rfc3339` writes UTC with a `Z` in RFC3339Nano style (trailing zeros of the fraction
dropped), or with a fixed `timespec` where a document wants one (a status's `updatedAt`).
`instant_micros` turns every form a date reaches us in into microseconds since the epoch,
so that the same instant compares equal however it came.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Epoch seconds must name an instant `datetime` can hold (years 1..9999), so that a record
# accepted by `to_record` can always be formatted later.
_MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND


def rfc3339(value: float | datetime | str, *, timespec: str | None = None) -> str:
    """`value` as an RFC 3339 UTC string in RFC3339Nano style (`2024-05-01T10:00:00.25Z`).

    Accepts epoch seconds (int or float, as Cognito's JSON carries them; rounded to the
    microsecond as `datetime.fromtimestamp` rounds), aware datetimes (boto3's default
    parser gives `tzlocal()` ones), naive datetimes (taken as UTC, the convention of AWS
    APIs) and RFC 3339 strings with an offset. Raises ValueError (TypeError) for any other
    value (type).
    """
    if type(value) is float or type(value) is int:
        utc = _EPOCH + timedelta(microseconds=epoch_micros(value))
    elif isinstance(value, str):
        utc = parse_rfc3339(value).astimezone(UTC)
    elif isinstance(value, datetime):
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    else:
        raise TypeError(
            f"expected epoch seconds, a datetime or a string, got {type(value).__name__}"
        )
    if timespec is not None:  # as `datetime.isoformat`: "auto", "seconds", "milliseconds", ...
        return utc.isoformat(timespec=timespec)[:-6] + "Z"
    text = utc.isoformat()[:-6]  # drop the "+00:00" that UTC isoformat always ends with
    if utc.microsecond:
        text = text.rstrip("0")
    return text + "Z"


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 string with an offset as an aware datetime; ValueError (naming no value)
    otherwise."""
    # Our own message: fromisoformat's would quote the value into logs and statuses.
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("a date is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError("a date is not an RFC 3339 date-time with an offset")
    return parsed


def epoch_micros(seconds: float) -> int:
    """Epoch seconds as whole microseconds, rounded exactly as `datetime.fromtimestamp`
    rounds (CPython: whole and fractional parts apart, the fraction half-to-even), so a date
    gives the same number as when botocore made a datetime of it: fingerprints stored before
    the client kept raw numbers stay valid."""
    if type(seconds) is int:
        micros = seconds * 1_000_000
    elif math.isfinite(seconds):
        fraction, whole = math.modf(seconds)
        micros = int(whole) * 1_000_000 + round(fraction * 1e6)
    else:
        raise ValueError("a date is not a finite number of epoch seconds")
    if not _MIN_MICROS <= micros <= _MAX_MICROS:
        raise ValueError("a date is outside the years 1 to 9999")
    return micros


def instant_micros(value: float | datetime | str) -> int:
    """Microseconds since the epoch: the same instant gives the same number whether it came
    as epoch seconds (the Cognito client), a tzlocal datetime (boto3's default parser), a
    UTC one or an RFC 3339 string (normalized data)."""
    if type(value) is float or type(value) is int:  # the Cognito client's case, first
        return epoch_micros(value)
    if isinstance(value, str):
        value = parse_rfc3339(value)
    elif not isinstance(value, datetime):
        raise TypeError(
            f"expected epoch seconds, a datetime or a string, got {type(value).__name__}"
        )
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND
