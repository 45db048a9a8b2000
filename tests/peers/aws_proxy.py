"""A fault proxy in front of moto for the AWS sinks: the Cognito proxy's faults (throttling,
5xx, any error code, dropped connections, for JSON-protocol services: SQS, Kinesis,
EventBridge), plus per-entry failures of batch calls, which moto never answers by itself.

`fail_entries(n, matches, code, sender_fault)`: the next `n` entries of SQS
`SendMessageBatch` or Kinesis `PutRecords` for which `matches(body_text)` holds are taken
out of the request before it reaches moto (so moto never stores them) and listed as failed
in the answer, in the service's own shape (SQS `Failed`; Kinesis records with `ErrorCode`
at their place).

Fixture: `aws_proxy` (function scope) -> a started `AwsProxy` in front of the session's moto
server; `.endpoint` is its URL.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.peers.cognito_proxy import CognitoProxy, _Handler, _send
from tests.peers.moto_server import MotoServer


@dataclass(slots=True)
class _EntryFault:
    remaining: int
    matches: Callable[[str], bool]
    code: str
    sender_fault: bool


class AwsProxy(CognitoProxy):
    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self._entry_faults: list[_EntryFault] = []
        self._entry_lock = threading.Lock()
        self.failed_entries: list[str] = []  # body texts answered as failed

    def fail_entries(
        self,
        n: int,
        matches: Callable[[str], bool],
        code: str = "InternalError",
        *,
        sender_fault: bool = False,
    ) -> None:
        with self._entry_lock:
            self._entry_faults.append(_EntryFault(n, matches, code, sender_fault))

    def _fault_for(self, text: str) -> _EntryFault | None:
        with self._entry_lock:
            for fault in self._entry_faults:
                if fault.remaining > 0 and fault.matches(text):
                    fault.remaining -= 1
                    self.failed_entries.append(text)
                    return fault
        return None

    def _forward(self, handler: _Handler, raw: bytes) -> None:
        operation = handler.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        if operation == "SendMessageBatch":
            self._sqs_batch(handler, json.loads(raw))
        elif operation == "PutRecords":
            self._kinesis_records(handler, json.loads(raw))
        else:
            super()._forward(handler, raw)

    def _sqs_batch(self, handler: _Handler, body: dict[str, Any]) -> None:
        kept, failed = [], []
        for entry in body["Entries"]:
            fault = self._fault_for(entry["MessageBody"])
            if fault is None:
                kept.append(entry)
            else:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": fault.sender_fault,
                        "Code": fault.code,
                        "Message": "injected entry failure",
                    }
                )
        answer: dict[str, Any] = {"Successful": [], "Failed": failed}
        if kept:
            status, payload, headers = self._ask_upstream(
                handler, json.dumps({**body, "Entries": kept}).encode()
            )
            if status != 200:
                _send(handler, status, payload, headers)
                return
            upstream = json.loads(payload)
            answer["Successful"] = upstream.get("Successful", [])
            answer["Failed"] = [*upstream.get("Failed", []), *failed]
        _send(handler, 200, json.dumps(answer).encode(), _headers())

    def _kinesis_records(self, handler: _Handler, body: dict[str, Any]) -> None:
        places: list[dict[str, Any] | None] = []  # None: forwarded
        kept = []
        for record in body["Records"]:
            fault = self._fault_for(base64.b64decode(record["Data"]).decode())
            if fault is None:
                places.append(None)
                kept.append(record)
            else:
                places.append({"ErrorCode": fault.code, "ErrorMessage": "injected"})
        forwarded: list[dict[str, Any]] = []
        if kept:
            status, payload, headers = self._ask_upstream(
                handler, json.dumps({**body, "Records": kept}).encode()
            )
            if status != 200:
                _send(handler, status, payload, headers)
                return
            forwarded = list(json.loads(payload)["Records"])
        records = [place if place is not None else forwarded.pop(0) for place in places]
        failed = sum(1 for r in records if "ErrorCode" in r)
        answer = {"FailedRecordCount": failed, "Records": records}
        _send(handler, 200, json.dumps(answer).encode(), _headers())


def _headers() -> list[tuple[str, str]]:
    return [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", "proxy")]


@pytest.fixture
def aws_proxy(moto_server: MotoServer) -> Iterator[AwsProxy]:
    proxy = AwsProxy(moto_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()
