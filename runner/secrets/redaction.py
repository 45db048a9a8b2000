"""Keeping secret values out of logs: the process-wide redactor and its logging filter.

Every value `runner.secrets.resolver` resolves (and every value the loader substitutes for
`${VAR}`) is registered with `Redactor`, whose logging filter replaces it with `***` in any
log record: a second line of defence behind "never format a secret". `mask_values` is the
same masking for one text and a known set of values (a sink's error, a wire log).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import ClassVar

_MIN_REDACTED_LEN = 4  # shorter values would redact ordinary words


def mask_values(text: str, values: Iterable[str]) -> str:
    """`text` with every one of `values` that is long enough to mask (4 characters: shorter
    ones would mask ordinary words) replaced by `***`, longest first so that a value holding
    another is masked whole."""
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= _MIN_REDACTED_LEN and value in text:
            text = text.replace(value, "***")
    return text


class Redactor(logging.Filter):
    """A logging filter that masks every secret value resolved in this process."""

    _values: ClassVar[set[str]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def register(cls, value: str) -> None:
        if len(value) >= _MIN_REDACTED_LEN:
            with cls._lock:
                cls._values.add(value)

    @classmethod
    def redact(cls, text: str) -> str:
        with cls._lock:
            values = list(cls._values)
        return mask_values(text, values)

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self.redact)
        return True


def redact_record(record: logging.LogRecord, redact: Callable[[str], str]) -> None:
    """Apply `redact` to everything of `record` that a formatter could print.

    The message is formatted here, once, and kept with `args=None`: text put back into
    `msg` next to the original args would be formatted again, and a `%` in it (or in a
    masked value) makes logging's error handler print the record's exception unmasked.
    A traceback holding a secret anywhere in its chain (causes and contexts included) is
    replaced by its redacted text in `exc_text`, which every `logging.Formatter` prints as
    is, and the exception itself is dropped from the record.
    """
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what the caller passed, masked
        message = f"{record.msg!s} {record.args!r}"
    record.msg, record.args = redact(message), None
    exc_text = record.exc_text  # set when an earlier handler's formatter already ran
    if not exc_text and record.exc_info and record.exc_info[1] is not None:
        exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
    if exc_text:
        redacted = redact(exc_text)
        if redacted != exc_text:
            record.exc_text, record.exc_info = redacted, None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_TRACEBACK_FORMATTER = logging.Formatter()
