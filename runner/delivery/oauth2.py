"""OAuth2 client credentials for an http(s) sink (`spec.sink.oauth2`): the token, fetched,
cached and refreshed before it expires.

    tokens = ClientCredentials(config, http=, secrets=, timeout=)
    await tokens.token() -> str        the cached token, or a new one; raises SinkUnavailable
                                       (the token endpoint is down or slow: retried) or
                                       SinkMisconfigured (it refused the client: an operator
                                       has to fix it; SinkReady says TokenRequestRefused)
    tokens.invalidate(token)           the sink answered 401 with it: fetch anew next time

The grant (RFC 6749 §4.4): a form POST of `grant_type=client_credentials` (and `scope`)
with the client id and secret as HTTP Basic credentials (§2.3.1: every server supports
them). A token is used until `REFRESH_MARGIN` before its `expires_in` (or a tenth of its
lifetime, if shorter); one without `expires_in` for `DEFAULT_LIFETIME`. One fetch at a
time: the requests in flight wait for it rather than each asking.

Secrets: the client secret and the token go into requests only; what an error says names
the status and the OAuth `error` code, masked for both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx

from runner.delivery.texts import exception_text, masked, status_text
from runner.errors import SecretError, SinkMisconfigured, SinkUnavailable
from runner.model import HeaderValue, OAuth2Client
from runner.secrets.resolver import SecretResolver

REFRESH_MARGIN = 60.0  # seconds before expiry a token is replaced
DEFAULT_LIFETIME = 300.0  # seconds a token without `expires_in` is kept
_REFUSED = frozenset({400, 401, 403})


class ClientCredentials:
    """The token of one sink's OAuth2 client (see the module doc)."""

    def __init__(
        self,
        config: OAuth2Client,
        *,
        http: httpx.AsyncClient,
        secrets: SecretResolver,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._http = http
        self._secrets = secrets
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock: asyncio.Lock | None = None
        self.fetches = 0  # tokens asked for (tests and logs)

    async def token(self) -> str:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token is None or self._clock() >= self._expires:
                self._token, lifetime = await self._fetch()
                margin = min(REFRESH_MARGIN, lifetime / 10)
                self._expires = self._clock() + lifetime - margin
            return self._token

    def invalidate(self, token: str) -> None:
        if token == self._token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        client_id = await self._secret(self._config.client_id, "clientID")
        client_secret = await self._secret(self._config.client_secret, "clientSecret")
        form = {"grant_type": "client_credentials"}
        if self._config.scopes:
            form["scope"] = " ".join(self._config.scopes)
        mask = [client_id, client_secret]
        self.fetches += 1
        try:
            response = await self._http.post(
                self._config.token_url,
                data=form,
                auth=httpx.BasicAuth(client_id, client_secret),
                headers={"accept": "application/json"},
                timeout=self._timeout,
            )
        except (httpx.TransportError, TimeoutError) as exc:
            raise SinkUnavailable(
                f"token endpoint: {exception_text(exc, mask)}", reason="TokenEndpointUnavailable"
            ) from None
        return _read_token(response, mask)

    async def _secret(self, value: HeaderValue, what: str) -> str:
        try:
            return await self._secrets.resolve_header(value)
        except SecretError as exc:  # names the reference, never a value
            raise SinkMisconfigured(
                f"sink oauth2.{what}: {exc}", reason="SecretUnavailable"
            ) from None


def _read_token(response: httpx.Response, mask: list[str]) -> tuple[str, float]:
    code = response.status_code
    if code in _REFUSED:
        # The OAuth error code (`invalid_client`, `invalid_scope`...) says what to fix.
        error = _json(response).get("error")
        said = f" ({masked(str(error).encode(), mask).decode()[:80]})" if error else ""
        raise SinkMisconfigured(
            f"the token endpoint refused the client: {status_text(code)}{said}",
            reason="TokenRequestRefused",
        )
    if not 200 <= code < 300:
        raise SinkUnavailable(
            f"token endpoint: {status_text(code)}",
            reason="TokenEndpointUnavailable",
            status_code=code,
        )
    body = _json(response)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise SinkMisconfigured(
            "the token endpoint's answer has no access_token", reason="TokenRequestRefused"
        )
    expires_in = body.get("expires_in")
    lifetime = (
        float(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        else DEFAULT_LIFETIME
    )
    return token, max(lifetime, 1.0)


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
