"""Logging for the long-running commands: text or JSON lines on stderr, secrets masked.

Every handler carries `Redactor` (runner.secrets), so a secret value resolved in this process
is masked even if some library logs it. botocore's and httpx's debug logs print request
headers (Authorization, custom sink headers): they are capped at WARNING unless asked for.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from runner.secrets import Redactor

LogFormat = Literal["text", "json"]

# Libraries whose DEBUG/INFO output includes request headers or is too chatty to be useful.
_QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "httpx", "httpcore", "watchfiles", "s3transfer")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = Redactor.redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    fmt: LogFormat = "text", level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Install one handler on the root logger; returns it (tests remove it again)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(Redactor())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
