"""TLS of an https sink (`spec.sink.tls`): a CA bundle of its own and a client certificate
(mTLS), and the HTTP client that uses them.

    context = await tls_context(config, secrets)     ssl.SSLContext; SinkMisconfigured when
                                                     a secret is missing or not valid PEM
    client = tls_client(context)                     an httpx client for this sink alone
    await close_all()                                the end of `run`

The runner's shared client (`runner.delivery.lanes`) trusts the system's CAs and has no
client certificate; a bridge with `tls` gets a client of its own, built on its first
request from the PEM text of its secrets (read then, like every secret), so the shared one
stays as it is for every other bridge. Python's `ssl` loads a certificate chain only from
files: the certificate and key are written to a private temporary directory (mode 0700,
files 0600) for the moment of loading, and removed at once.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
import weakref
from pathlib import Path

import httpx

from runner.errors import SecretError, SinkMisconfigured
from runner.model import SecretRef, SinkTls
from runner.secrets.resolver import SecretResolver

_OPEN: weakref.WeakSet[httpx.AsyncClient] = weakref.WeakSet()


async def tls_context(config: SinkTls, secrets: SecretResolver) -> ssl.SSLContext:
    """The SSL context of the sink: its CA bundle (else the system's) and client cert."""
    ca = await _pem(config.ca_bundle, secrets, "caBundle")
    cert = await _pem(config.client_certificate, secrets, "clientCertificate")
    key = await _pem(config.client_key, secrets, "clientKey")
    try:
        context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    except (ssl.SSLError, ValueError):
        raise SinkMisconfigured(
            "sink tls.caBundle is not a PEM certificate bundle", reason="InvalidSinkTls"
        ) from None
    if cert:
        await asyncio.to_thread(_load_chain, context, cert, key)  # file I/O: off the loop
    return context


def tls_client(context: ssl.SSLContext) -> httpx.AsyncClient:
    client = httpx.AsyncClient(verify=context)
    _OPEN.add(client)
    return client


async def close_all() -> None:
    """Close every sink's own TLS client in this process."""
    for client in list(_OPEN):
        await client.aclose()
        _OPEN.discard(client)


async def _pem(ref: SecretRef | None, secrets: SecretResolver, what: str) -> str | None:
    if ref is None:
        return None
    try:
        return await secrets.resolve_async(ref)
    except SecretError as exc:  # names the reference, never a value
        raise SinkMisconfigured(f"sink tls.{what}: {exc}", reason="SecretUnavailable") from None


def _load_chain(context: ssl.SSLContext, cert: str, key: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bridge-runner-tls-") as folder:
        cert_file = _private_file(Path(folder) / "cert.pem", cert)
        key_file = _private_file(Path(folder) / "key.pem", key) if key else None
        try:
            context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, ValueError, OSError):
            # Never the error's text: OpenSSL may quote from the key.
            raise SinkMisconfigured(
                "sink tls.clientCertificate and clientKey are not a PEM certificate and "
                "its private key",
                reason="InvalidSinkTls",
            ) from None


def _private_file(path: Path, text: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)
