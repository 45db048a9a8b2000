"""What the in-process delivery benches share (`deliver.py`, `latency.py`, `httpclients.py`):
the loopback sink they post to, and the bridge, user events and outbox drain they measure.

The sink runs in its own process (so that it does not compete with the client for the GIL):
a minimal HTTP/1.1 keep-alive responder on `asyncio.start_server` that reads each request
and answers 202, after `delay` seconds if one is given. With `log`, it also records the
`ce-id` of every request in the order it arrived; `GET /log` answers them (a JSON array)
and forgets them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cloudevents.core.bindings.http import HTTPMessage

from runner.delivery.deliverer import Deliverer
from runner.delivery.lanes import http_client
from runner.model import Bridge, ChangeType, CognitoSource, PoolArn, Sink, SinkFormat, Target
from runner.polling.diff import Change, to_record
from runner.secrets.resolver import SecretResolver
from runner.state.outbox import Outbox
from runner.state.store import STATE_FILE
from runner.status.counters import SinkCounters

SINK_PROGRAM = r"""
import asyncio, json, sys

DELAY = float(sys.argv[1])
LOG = sys.argv[2] == "log"
arrived = []

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length, ce_id = 0, None
            for line in head.split(b"\r\n"):
                name = line[:15].lower()
                if name == b"content-length:":
                    length = int(line[15:])
                elif LOG and name[:6] == b"ce-id:":
                    ce_id = line[6:].strip().decode()
            if length:
                await reader.readexactly(length)
            if LOG:
                if head.split(b" ", 2)[1] == b"/log":
                    body = json.dumps(arrived).encode()
                    arrived.clear()
                    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)
                    writer.write(head + body)
                    continue
                arrived.append(ce_id)
            if DELAY:
                await asyncio.sleep(DELAY)
            writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def serve():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(serve())
"""

POOL = PoolArn(
    arn="arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B",
    partition="aws",
    region="us-west-2",
    account="043455440429",
    pool_id="us-west-2_fak3p001B",
)


def start_sink(delay: float = 0.0, *, log: bool = False) -> tuple[subprocess.Popen[str], str]:
    """The sink process and the URL to post events to (`delay`: seconds before each answer)."""
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK_PROGRAM, str(delay), "log" if log else "-"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    return sink, f"http://127.0.0.1:{int(sink.stdout.readline())}/events"


def stop_sink(sink: subprocess.Popen[Any]) -> None:
    sink.kill()
    sink.wait()
    if sink.stdout is not None:
        sink.stdout.close()


def make_bridge(name: str, url: str, format: SinkFormat, max_in_flight: int, **sink: Any) -> Bridge:
    """The bridge `bench/<name>` of the fake pool, posting to `url` (`sink`: more Sink fields)."""
    return Bridge(
        id=f"bench/{name}",
        file=Path(f"bench/{name}.yaml"),
        name=name,
        source=CognitoSource(pool=POOL, initial_sync="emit"),
        sink=Sink(Target(url), format=format, max_in_flight=max_in_flight, **sink),
    )


def user_change(
    kind: ChangeType, n: int, *, email: str, modified: datetime, verified: bool = False
) -> Change:
    """User number `n` of the pool as ListUsers returns it, `kind` (created, updated)."""
    username = f"user-{n:06d}"
    attributes = [
        {"Name": "sub", "Value": f"{n:08d}-1111-4222-8333-444444444444"},
        {"Name": "email", "Value": email},
    ]
    if verified:
        attributes.append({"Name": "email_verified", "Value": "true"})
    raw = {
        "Username": username,
        "Attributes": attributes,
        "UserCreateDate": datetime(2024, 5, 1, tzinfo=UTC),
        "UserLastModifiedDate": modified,
        "Enabled": True,
        "UserStatus": "CONFIRMED",
    }
    return Change(kind, username, to_record(raw), None)


@asynccontextmanager
async def fresh_deliverer(bridge: Bridge, template: Path, count: int) -> AsyncIterator[Deliverer]:
    """A deliverer (the runner's HTTP client) over a fresh copy of the outbox file `template`,
    filled with `count` events; on leaving, it checks that all of them were delivered."""
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp)
        shutil.copyfile(template, state_dir / STATE_FILE)
        with Outbox.open(state_dir) as outbox:
            async with http_client() as http:  # the runner's client
                yield Deliverer(
                    bridge,
                    outbox,
                    http=http,
                    state_dir=state_dir,
                    secrets=SecretResolver(env={}),
                    counters=SinkCounters(),
                )
            stats = outbox.stats(bridge.id)
    if stats.delivered != count or stats.pending:
        raise SystemExit(f"delivery incomplete: {stats}")


async def post_each(
    http: httpx.AsyncClient, url: str, messages: Sequence[HTTPMessage], who: str
) -> None:
    """The requests, prebuilt, posted one at a time: the sequential baseline's loop."""
    for message in messages:
        response = await http.post(url, headers=message.headers, content=message.body)
        if response.status_code != 202:
            raise SystemExit(f"{who}: the sink answered {response.status_code}")
