"""`spec.sink.auth` of a `nats://` sink, as the loader reads it.

nats_auth(doc, path, target) -> NatsAuth | None     checked: one form, NATS sinks only
"""

from __future__ import annotations

from runner.loader import semantics
from runner.loader.document import BridgeDocument, DocPath
from runner.loader.nats_uri import is_nats_uri
from runner.model import HeaderValue, NatsAuth, SecretRef, Target


def nats_auth(doc: BridgeDocument, path: DocPath, target: Target | None) -> NatsAuth | None:
    """`spec.sink.auth` of a nats:// sink: `token`, `user` with `password`, or
    `credentials` (a `.creds` file's content); the schema holds the shapes (AWS's or
    these), this the pairings."""
    given = doc.mapping(path)
    if not given or target is None:
        return None
    if not is_nats_uri(target.uri):
        # An AWS sink's auth is read with its ARN; beside any other URI, `semantics.target`
        # reports it. NATS-only keys on an AWS sink would be ignored silently: refused.
        if target.kind == "aws" and given.keys() & {"token", "user", "password"}:
            doc.error(path, "token, user and password apply to a nats:// sink only")
        return None
    forms = [name for name in ("token", "user", "credentials") if name in given]
    if len(forms) > 1:
        doc.error(path, "give one of token, user (with password) or credentials, not several")
    if ("user" in given) != ("password" in given):
        doc.error(path, "user and password go together")
    user: HeaderValue | None = None
    if "user" in given:
        raw = doc.get((*path, "user"))
        user = raw if isinstance(raw, str) else semantics.secret(doc, (*path, "user"))
    return NatsAuth(
        token=_optional_secret(doc, path, "token"),
        user=user,
        password=_optional_secret(doc, path, "password"),
        credentials=_optional_secret(doc, path, "credentials"),
    )


def _optional_secret(doc: BridgeDocument, path: DocPath, name: str) -> SecretRef | None:
    return semantics.secret(doc, (*path, name)) if name in doc.mapping(path) else None
