"""One httpx client over several connection pools: what keeps httpx fast with many requests
in flight.

    http_client() -> httpx.AsyncClient      the runner's client (one per process)
    httpx.AsyncClient(transport=LaneTransport(lanes=8))

httpx gets slower as the requests in flight on one connection pool grow (DESIGN §8;
`bench/httpclients.py` on 2 cores, loopback sink answering at once: one client ~1,400
POST/s at 1 in flight, ~1,000 at 8, ~400 at 16, ~290 at 64), while the same load spread
over one pool per few requests holds ~1,000-1,250/s. `LaneTransport` is that spread behind
one client: each request goes to the lane (an `httpx.AsyncHTTPTransport`, its own pool)
with the fewest requests under way, ties to the lowest, so that one bridge sending one at
a time keeps using one warm connection.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

# Lanes of the runner's one client: every bridge's requests in flight share them, so a
# bridge at its default `maxInFlight` (16) gets about a lane per request.
HTTP_LANES = 16


def http_client(lanes: int = HTTP_LANES) -> httpx.AsyncClient:
    """The client the runner (and the delivery benchmarks) send through.

    With a proxy in the environment (`HTTPS_PROXY`, ...) it is httpx's plain client: httpx
    routes through env proxies (and honours `NO_PROXY`) only with its own transport."""
    if urllib.request.getproxies():
        return httpx.AsyncClient()
    return httpx.AsyncClient(transport=LaneTransport(lanes))


class LaneTransport(httpx.AsyncBaseTransport):
    """Sends each request on the least busy of `lanes` connection pools (see the module doc).

    `options` are `httpx.AsyncHTTPTransport`'s (limits, retries, ...), for every lane."""

    def __init__(self, lanes: int, **options: Any) -> None:
        self._lanes = [httpx.AsyncHTTPTransport(**options) for _ in range(max(1, lanes))]
        self._busy = [0] * len(self._lanes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lane = self._busy.index(min(self._busy))
        self._busy[lane] += 1
        try:
            response = await self._lanes[lane].handle_async_request(request)
        except BaseException:
            self._busy[lane] -= 1
            raise
        # Busy until the body is read or dropped: the connection is in use until then.
        response.stream = _Released(response.stream, lambda: self._release(lane))
        return response

    def _release(self, lane: int) -> None:
        self._busy[lane] -= 1

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


class _Released(httpx.AsyncByteStream):
    """A response body that calls `release` once, when it is closed."""

    def __init__(self, stream: Any, release: Any) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            await self._stream.aclose()
        finally:
            if release is not None:
                release()
