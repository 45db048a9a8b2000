"""Logging for the long-running commands: text or JSON lines on stderr, secrets masked.

Every handler carries `Redactor` (runner.secrets.redaction), so a secret value resolved in
this process is masked even if some library logs it, and both formatters mask the finished
line again, tracebacks included (causes and contexts too). botocore's and httpx's debug logs print
request headers (Authorization, custom sink headers) and are too chatty to be useful: these
libraries stay at WARNING unless asked for, that is unless the level is DEBUG *and* the
environment sets BRIDGE_RUNNER_DEBUG_LIBRARIES=1. Their records are then still masked by the
`Redactor`, and botocore's by `WireLogScrubber` (runner.aws.botocore_logs) as well.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from runner._kits.wording import printable
from runner.aws.botocore_logs import guard_botocore_logs
from runner.secrets.redaction import Redactor

LogFormat = Literal["text", "json"]

# Libraries whose DEBUG/INFO output includes request headers or is too chatty to be useful.
_QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "httpx", "httpcore", "watchfiles", "s3transfer")
DEBUG_LIBRARIES_ENV = "BRIDGE_RUNNER_DEBUG_LIBRARIES"
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """The human format; the finished line (message, traceback, stack) is masked again.

    A message is one line whatever it quotes: a file name holding a newline or an escape
    sequence is escaped (`wording.printable`, the rule of `check`'s text output), so that no
    bridge file can forge a log line. A traceback keeps its lines.
    """

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        if record.message.isprintable():
            return super().formatMessage(record)
        # A copy: other handlers (and their formatters) get the record as it was.
        shown = copy.copy(record)
        shown.message = printable(record.message)
        return super().formatMessage(shown)

    def format(self, record: logging.LogRecord) -> str:
        return Redactor.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": Redactor.redact(record.getMessage()),
        }
        # `exc_text` alone when the Redactor replaced a traceback that held a secret.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = Redactor.redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = Redactor.redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    fmt: LogFormat = "text", level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Install one handler on the root logger; returns it (tests remove it again)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(Redactor())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    debug_libraries = root.level == logging.DEBUG and os.environ.get(DEBUG_LIBRARIES_ENV) == "1"
    if debug_libraries:
        guard_botocore_logs()  # before any client exists: the wire logs are on from now
    for name in _QUIET_LOGGERS:
        # NOTSET: the library follows the root level again (a previous call may have capped it).
        logging.getLogger(name).setLevel(logging.NOTSET if debug_libraries else logging.WARNING)
    return handler
