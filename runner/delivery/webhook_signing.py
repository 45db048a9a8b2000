"""Standard Webhooks signatures for an http(s) sink (`spec.sink.signing`).

    webhook_id(events) -> str                    the event id; a batch: one id for the batch
    signing_key(secret) -> bytes                 `whsec_<base64>` (or bare base64) decoded;
                                                 ValueError, quoting nothing of it
    signature_headers(key, id, body, now) -> {webhook-id, webhook-timestamp, webhook-signature}

The scheme (standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<body>">`, the timestamp in seconds since the epoch. The
id stays the same across retries (a receiver de-duplicates on it); the timestamp and
signature are made for each attempt, as receivers refuse old timestamps. A batch request
is signed as one body. Written here rather than taken from the `standardwebhooks`
package: the scheme is these few lines of `hmac`, and the tests hold them to that
package's own verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

from runner.model import OutboxEvent

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's prefix, not a secret


def webhook_id(events: Sequence[OutboxEvent]) -> str:
    """The event's id; for a batch, `batch_` + a digest of its events' ids (the same for
    every attempt at the same batch)."""
    if len(events) == 1:
        return events[0].event_id
    digest = hashlib.sha256("\n".join(ev.event_id for ev in events).encode()).hexdigest()
    return f"batch_{digest[:32]}"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_` + base64, or the base64 alone)."""
    text = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "the signing secret is not a Standard Webhooks secret (whsec_ followed by base64)"
        ) from None
    if not key:
        raise ValueError("the signing secret is empty")
    return key


def signature_headers(key: bytes, message_id: str, body: bytes, now: float) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt at sending `body`."""
    timestamp = str(int(now))
    signed = message_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
