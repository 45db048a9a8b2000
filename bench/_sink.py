"""A loopback CloudEvents sink for the end-to-end benches, in a process of its own.

    .venv/bin/python bench/_sink.py      # prints its port, serves until killed

A minimal HTTP/1.1 keep-alive responder on `asyncio.start_server` (the one `bench/deliver.py`
measured faster than `http.server`), answering 202 to every POST. For each event it records
the arrival time (`time.monotonic()`: CLOCK_MONOTONIC, one clock for every process of the
machine), its id and the `Username` of its data: a binary-mode POST is one event (`ce-id`
header, the data as body), an `application/cloudevents-batch+json` POST an array of them.

Control, on the same port: `GET /_stats` answers `{"events", "ids", "users", "first",
"last"}` (events received, distinct ids, distinct usernames, first and last arrival);
`GET /_stats?digest` adds `digest`, the sha256 of the sorted distinct usernames joined by
newlines, to compare with the pool's; `POST /_reset` forgets everything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time


class Record:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.events = 0
        self.ids: set[str] = set()
        self.users: set[str] = set()
        self.first: float | None = None
        self.last: float | None = None

    def add(self, event_id: str, username: str, at: float) -> None:
        if self.first is None:
            self.first = at
        self.last = at
        self.events += 1
        self.ids.add(event_id)
        self.users.add(username)

    def stats(self, digest: bool) -> bytes:
        doc: dict[str, object] = {
            "events": self.events,
            "ids": len(self.ids),
            "users": len(self.users),
            "first": self.first,
            "last": self.last,
        }
        if digest:
            doc["digest"] = users_digest(self.users)
        return json.dumps(doc).encode()


def users_digest(users: set[str] | list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(users)).encode()).hexdigest()


RECORD = Record()


def receive(headers: dict[bytes, bytes], body: bytes, at: float) -> None:
    if headers.get(b"content-type", b"").startswith(b"application/cloudevents-batch+json"):
        for event in json.loads(body):
            RECORD.add(event["id"], event["data"]["Username"], at)
    else:
        RECORD.add(headers[b"ce-id"].decode(), json.loads(body)["Username"], at)


def answer(writer: asyncio.StreamWriter, status: str, body: bytes = b"") -> None:
    writer.write(
        f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n"
        "content-type: application/json\r\n\r\n".encode()
        + body
    )


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            at = time.monotonic()
            request_line, *lines = head[:-4].split(b"\r\n")
            headers = {}
            for line in lines:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            body = await reader.readexactly(length) if length else b""
            method, target = request_line.split(b" ")[:2]
            if target.startswith(b"/_stats"):
                answer(writer, "200 OK", RECORD.stats(b"digest" in target))
            elif target == b"/_reset":
                RECORD.reset()
                answer(writer, "200 OK")
            elif method == b"POST":
                receive(headers, body, at)
                answer(writer, "202 Accepted")
            else:
                answer(writer, "404 Not Found")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve())
