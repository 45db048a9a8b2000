"""The `nats://HOST[:PORT]/SUBJECT` sink URI: the loader checks it with the same function
the NATS sender (`runner.delivery.nats_sink`) parses it with.

    is_nats_uri(uri) -> bool
    parse_nats_uri(uri) -> (server URL, subject)    ValueError: why not, quoting no part of it
    nats_target(doc, path, text) -> Target | None   the check, reported at `path`
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from runner.loader.document import BridgeDocument, DocPath
from runner.model import Target

DEFAULT_PORT = 4222
# A NATS subject: dot-separated tokens of printable characters without spaces; the
# wildcards `*` and `>` only subscribe, never publish.
_SUBJECT = re.compile(r"[^\s.*>]+(\.[^\s.*>]+)*")


def is_nats_uri(uri: str) -> bool:
    return uri[:7].lower() == "nats://"


def parse_nats_uri(uri: str) -> tuple[str, str]:
    """`nats://HOST[:PORT]/SUBJECT` as (`nats://HOST:PORT`, `SUBJECT`); `ValueError` with a
    reason that quotes no part of the URI otherwise."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URI") from None
    if parts.scheme.lower() != "nats":
        raise ValueError("a NATS sink URI starts with nats://")
    if not parts.hostname:
        raise ValueError("a NATS sink URI needs a host, like nats://nats.example.com:4222/subject")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "a NATS sink URI must not hold credentials (user:password@): they would show in "
            "logs and status; use spec.sink.auth with secret values instead"
        )
    if parts.query or parts.fragment:
        raise ValueError("a NATS sink URI has no query or fragment: nats://HOST:PORT/SUBJECT")
    subject = parts.path.removeprefix("/")
    if not _SUBJECT.fullmatch(subject):
        raise ValueError(
            "a NATS sink URI needs a subject to publish to, like "
            "nats://nats.example.com:4222/cognito.users (dot-separated tokens, no spaces, "
            "no wildcards * or >)"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"nats://{host}:{port or DEFAULT_PORT}", subject


def nats_target(doc: BridgeDocument, path: DocPath, text: str) -> Target | None:
    try:
        parse_nats_uri(text)
    except ValueError as exc:
        doc.error(path, str(exc))
        return None
    return Target(text)
