"""Keeping AWS credentials out of botocore's own log records.

At DEBUG, botocore logs every request with its headers (`Authorization`, which names the
access key id, and `X-Amz-Security-Token`), the SigV4 canonical request (which repeats the
session token) and response bodies (an STS AssumeRole answer carries fresh keys). The
`Redactor` only masks values we resolved ourselves; credentials from the default chain or
from STS never pass through it. So `guard_botocore_logs()` puts `WireLogScrubber` on
botocore's, boto3's and urllib3's loggers: it drops signing records, masks credential
headers and fields by pattern, then applies the `Redactor`. A filter on the logger that
creates a record runs before any handler sees it, whatever handlers (or pytest's caplog)
are installed.
"""

from __future__ import annotations

import logging
import re
import threading

from runner.secrets.redaction import Redactor, redact_record

MASK = "***"

_LOGGER_PREFIXES = ("botocore", "boto3", "urllib3", "s3transfer")
# Loggers known to log wire data; created here so that they are guarded even before the
# botocore module that owns them is imported.
_KNOWN_LOGGERS = (
    "botocore.auth",
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.hooks",
    "botocore.credentials",
    "botocore.httpsession",
    "botocore.awsrequest",
    "botocore.retryhandler",
    "botocore.retries.standard",
    "botocore.client",
    "botocore.utils",
    "urllib3.connectionpool",
)

_HEADER_VALUE = re.compile(
    r"""(?ix)
    (['"]?(?:authorization|x-amz-security-token)['"]?\s*[:=]\s*)   # header name and separator
    (b?'[^']*'|b?"[^"]*"|[^\s,}]+)                                 # its value, quoted or bare
    """
)
_XML_FIELD = re.compile(r"(?i)(<(AccessKeyId|SecretAccessKey|SessionToken)>)[^<]*(</\2>)")
_JSON_FIELD = re.compile(
    r"""(?ix)
    (['"](?:access_?key_?id|secret_?access_?key|session_?token|aws_secret_access_key)['"]
    \s*:\s*)(b?'[^']*'|b?"[^"]*")
    """
)


def scrub(text: str) -> str:
    """Mask credential headers, credential fields and every resolved secret in `text`."""
    text = _HEADER_VALUE.sub(rf"\g<1>'{MASK}'", text)
    text = _XML_FIELD.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _JSON_FIELD.sub(rf"\g<1>'{MASK}'", text)
    return Redactor.redact(text)


class WireLogScrubber(logging.Filter):
    """Drops botocore's signing records and scrubs every other record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Canonical requests, strings to sign and signatures: nothing a reader needs.
        if record.name == "botocore.auth" and record.levelno < logging.INFO:
            return False
        redact_record(record, scrub)
        return True


_SCRUBBER = WireLogScrubber()
_install_lock = threading.Lock()


def guard_botocore_logs() -> None:
    """Attach the scrubber to every AWS SDK logger that exists now (idempotent, cheap).

    Call it again after creating clients: botocore creates some loggers lazily, when the
    module that owns them is first imported.
    """
    with _install_lock:
        names = set(_KNOWN_LOGGERS)
        names.update(
            name
            for name in list(logging.root.manager.loggerDict)
            if name.split(".", 1)[0] in _LOGGER_PREFIXES
        )
        for name in names:
            logger = logging.getLogger(name)
            if _SCRUBBER not in logger.filters:
                logger.addFilter(_SCRUBBER)
