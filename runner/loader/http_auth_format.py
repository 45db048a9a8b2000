"""An http(s) sink's authentication fields, as the loader reads them: `spec.sink.signing`
(Standard Webhooks), `spec.sink.oauth2` (client credentials) and `spec.sink.tls` (a CA
bundle, a client certificate and key). The schema holds their shapes; this, what goes with
what: http(s) sinks only, `tls` with https only (else ignored, a warning), a key with its
certificate, and no custom `Authorization` header beside `oauth2`.

    signing_secret(doc, path, target) -> SecretRef | None
    oauth2(doc, path, target, headers) -> OAuth2Client | None
    tls(doc, path, target) -> SinkTls | None
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.loader import semantics
from runner.loader.document import BridgeDocument, DocPath
from runner.model import HeaderValue, OAuth2Client, SecretRef, SinkTls, Target


def _http_only(doc: BridgeDocument, path: DocPath, target: Target | None) -> bool:
    if not doc.mapping(path):
        return False
    if target is not None and not target.uri.lower().startswith(("http://", "https://")):
        doc.error(path, f"{path[-1]} applies to an http:// or https:// sink only", at_key=True)
        return False
    return True


def signing_secret(doc: BridgeDocument, path: DocPath, target: Target | None) -> SecretRef | None:
    if not _http_only(doc, path, target):
        return None
    return semantics.secret(doc, (*path, "secret"))


def oauth2(
    doc: BridgeDocument,
    path: DocPath,
    target: Target | None,
    headers: Mapping[str, HeaderValue],
) -> OAuth2Client | None:
    if not _http_only(doc, path, target):
        return None
    if any(name.lower() == "authorization" for name in headers):
        doc.error(
            path,
            "oauth2 sends the Authorization header itself: remove it from spec.sink.headers",
            at_key=True,
        )
    token_url = semantics.http_url(doc, (*path, "tokenURL"), what="the token URL")
    raw_id = doc.get((*path, "clientID"))
    client_id = raw_id if isinstance(raw_id, str) else semantics.secret(doc, (*path, "clientID"))
    client_secret = semantics.secret(doc, (*path, "clientSecret"))
    scopes = doc.get((*path, "scopes")) or []
    if token_url is None or client_id is None or client_secret is None:
        return None
    return OAuth2Client(
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        scopes=tuple(str(scope) for scope in scopes),
    )


def tls(doc: BridgeDocument, path: DocPath, target: Target | None) -> SinkTls | None:
    if not _http_only(doc, path, target):
        return None
    if target is not None and not target.uri.lower().startswith("https://"):
        # A warning: `${VAR:-https://...}` may well be pointed at a plain test sink.
        doc.warn(path, "tls applies to an https:// sink only: ignored for http://", at_key=True)
        return None
    given = doc.mapping(path)
    if "clientKey" in given and "clientCertificate" not in given:
        doc.error(path, "clientKey goes with clientCertificate")
    return SinkTls(
        ca_bundle=_optional(doc, path, "caBundle"),
        client_certificate=_optional(doc, path, "clientCertificate"),
        client_key=_optional(doc, path, "clientKey"),
    )


def _optional(doc: BridgeDocument, path: DocPath, name: str) -> SecretRef | None:
    return semantics.secret(doc, (*path, name)) if name in doc.mapping(path) else None
