"""The runner's HTTP client over several connection pools (runner/delivery/lanes.py), against a
real loopback sink: requests in flight together go to different lanes, one at a time stay on
the first, and a lane is given back whatever the request's end (read, dropped, failed)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from runner.delivery.lanes import LaneTransport
from tests.delivery.overlap_sink import OverlapSink
from tests.peers.ports import refused_port


def test_requests_in_flight_together_go_to_different_lanes() -> None:
    transport = LaneTransport(4)
    busy_while_in_flight: list[list[int]] = []

    async def main(sink: OverlapSink) -> None:
        url = sink.url
        async with httpx.AsyncClient(transport=transport) as http:
            sends = [asyncio.create_task(http.post(url, content=b"{}")) for _ in range(4)]
            await asyncio.to_thread(sink.wait_for_requests, 4)  # each held for a second
            busy_while_in_flight.append(list(transport._busy))
            responses = await asyncio.gather(*sends)
            assert [r.status_code for r in responses] == [202] * 4
            for _ in range(3):  # one at a time: always the least busy, the first lane
                async with http.stream("POST", url, content=b"{}") as response:
                    busy_while_in_flight.append(list(transport._busy))
                    assert response.status_code == 202

    held = [1.0] * 4 + [0.0] * 3
    with OverlapSink(lambda ids, attempt: (202, held.pop(0))) as sink:
        asyncio.run(main(sink))
        assert sink.max_in_flight == 4
    assert busy_while_in_flight[0] == [1, 1, 1, 1]
    assert busy_while_in_flight[1:] == [[1, 0, 0, 0]] * 3
    assert transport._busy == [0, 0, 0, 0]  # every lane given back


def test_a_failed_request_gives_its_lane_back() -> None:
    transport = LaneTransport(2)

    async def main(port: int) -> None:
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.ConnectError):
                await http.post(f"http://127.0.0.1:{port}/events", content=b"{}")

    with refused_port() as port:
        asyncio.run(main(port))
    assert transport._busy == [0, 0]
