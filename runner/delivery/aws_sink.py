"""The AWS sinks: SQS (standard and FIFO), SNS, EventBridge and Kinesis, through boto3.

    AwsSender(target, secrets=, capacity=, timeout=)
    sender.encode(events) -> AwsBatch          entries and requests (`runner.delivery.aws_entries`);
                                               ValueError: not a valid CloudEvent
    await sender.deliver(batch)                None once every entry was taken; a
                                               `PartialFailure` listing those not taken;
                                               raises (as `runner.delivery.aws_errors`
                                               classifies) when nothing of it was
    await sender.send(events) -> SendOutcome   encode and deliver, the failure as a record

A unit's requests go one after the other. An entry the service did not take holds back every
later entry of its user (listed as not taken, retryable, never sent after it), so each
user's order survives partial failures; a request that fails as a whole after an earlier one
of the unit succeeded fails its entries and leaves the later requests unsent, listed too.
With one entry, its failure is raised rather than listed.

boto3 is blocking: every call runs in one bounded thread pool shared by all AWS sinks
(`AWS_SINK_THREADS`), never on the event loop, bounded by the sink's `timeout`. boto3's own
retries are off (one attempt per call): retrying is the deliverer's, with the bridge's
backoff, counted against `retry: N` and shown in the status -- retries inside boto3 would
multiply attempts the bridge cannot see or bound. The client (and an SQS queue's URL,
looked up once with `GetQueueUrl`) is built on first use from the target's `auth`
(`runner.aws.credentials`: static keys resolved then, an assumed role refreshed by
botocore, else boto3's default chain) and its `endpoint` (None: boto3 applies
`AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL`); credentials AWS does not recognise drop
it, so that the next try resolves the secrets again (they may have been rotated). botocore's
service models are loaded once for all of them (`_data_loader`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.loaders import Loader, create_loader

from runner import __version__, defaults
from runner.aws.botocore_logs import guard_botocore_logs
from runner.aws.credentials import assumed_role_credentials, resolve_static, use_credentials
from runner.delivery.aws_entries import AwsBatch, AwsEntry, build_batch
from runner.delivery.aws_errors import entry_failure, request_failure
from runner.delivery.policy import SINK_FAILURES, PartialFailure, SendOutcome, report
from runner.errors import SinkMisconfigured, SinkRejected, SinkUnavailable
from runner.model import AwsTarget, OutboxEvent, Target
from runner.secrets.resolver import SecretResolver

AWS_SINK_THREADS = 8
_BOTO3_SERVICE = {"sqs": "sqs", "sns": "sns", "events": "events", "kinesis": "kinesis"}

T = TypeVar("T")
EntryResult = SinkUnavailable | SinkRejected | None  # None: taken
Failure = SinkUnavailable | SinkRejected

_executor: ThreadPoolExecutor | None = None
_loader: Loader | None = None
_shared_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _shared_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(AWS_SINK_THREADS, thread_name_prefix="aws-sink")
        return _executor


def _data_loader() -> Loader:
    """botocore's service models, loaded once for every AWS sink's session: a client on a
    fresh session reads and parses them again (~200 ms; ~20 ms with them shared)."""
    global _loader
    with _shared_lock:
        if _loader is None:
            _loader = create_loader()
        return _loader


class AwsSender:
    """Sends events to the SQS queue, SNS topic, EventBridge bus or Kinesis stream of
    `target` (see the module doc)."""

    def __init__(
        self,
        target: Target,
        *,
        secrets: SecretResolver,
        capacity: int = defaults.MAX_BATCH_SIZE,
        timeout: float = defaults.SINK_TIMEOUT,
    ) -> None:
        if target.aws is None:
            raise ValueError(f"{target.uri} is not an AWS sink")
        self._uri = target.uri
        self._aws: AwsTarget = target.aws
        self._service = target.aws.arn.service
        self._secrets = secrets
        self._capacity = max(1, capacity)
        self._timeout = timeout
        self._client: Any = None
        self._queue_url: str | None = None
        self._building = threading.Lock()

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capacity(self) -> int:
        return self._capacity

    def encode(self, events: Sequence[OutboxEvent]) -> AwsBatch:
        return build_batch(self._service, self._aws.arn.fifo, events, self._capacity)

    async def send(self, events: Sequence[OutboxEvent]) -> SendOutcome:
        return await report(self.deliver(self.encode(events)))

    async def deliver(self, message: AwsBatch) -> PartialFailure | None:
        client = await self._call(self._client_and_queue)
        # Entries not taken, and, by user, the first of theirs and why: later ones wait.
        failed, holding = _refused_before_sending(message)
        taken = 0
        for request in message.requests:
            sendable = [e for e in request if not _held(e, holding, failed)]
            if not sendable:
                continue
            try:
                results = await self._call(functools.partial(self._put, client, sendable))
            except SINK_FAILURES as exc:
                if taken == 0 and not failed:
                    raise  # nothing of the unit was taken: the failure is the unit's
                _fail_rest(message, sendable, exc, failed)
                break
            for entry, result in zip(sendable, results, strict=True):
                if result is None:
                    taken += 1
                else:
                    failed[entry.index] = result
                    holding.setdefault(entry.user, (entry.index, result))
        if not failed:
            return None
        if len(message.entries) == 1:
            raise failed[0]
        return PartialFailure(failed)

    async def _call(self, call: Callable[[], T]) -> T:
        """Run a blocking boto3 call in the shared pool, bounded by the sink's timeout;
        raises its failure classified."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                return await loop.run_in_executor(_pool(), call)
        except SINK_FAILURES:
            raise
        except Exception as exc:
            failure = request_failure(exc)
            if isinstance(failure, SinkMisconfigured):
                self._client = None  # resolve the credentials again next time
            raise failure from None

    # -- in worker threads -----------------------------------------------------------------

    def _client_and_queue(self) -> Any:
        with self._building:
            if self._client is None:
                client = self._create_client()
                if self._service == "sqs":
                    arn = self._aws.arn
                    answer = client.get_queue_url(
                        QueueName=arn.name, QueueOwnerAWSAccountId=arn.account
                    )
                    self._queue_url = str(answer["QueueUrl"])
                self._client = client
            return self._client

    def _create_client(self) -> Any:
        static = resolve_static(self._secrets, self._aws.auth.credentials)
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=min(self._timeout, 5.0),
            read_timeout=self._timeout,
            max_pool_connections=AWS_SINK_THREADS,
            user_agent_extra=f"bridge-runner/{__version__}",
        )
        session = botocore.session.Session()
        session.register_component("data_loader", _data_loader())
        credentials: Credentials | None = Credentials(*static) if static else None
        if self._aws.auth.assume_role_arn:
            credentials = assumed_role_credentials(
                credentials,
                role_arn=self._aws.auth.assume_role_arn,
                region=self._aws.arn.region,
                config=config,
                session_name="bridge-runner-sink",
            )
        if credentials is not None:
            use_credentials(session, credentials)
        client = boto3.session.Session(botocore_session=session).client(
            _BOTO3_SERVICE[self._service],  # type: ignore[call-overload]
            region_name=self._aws.arn.region,
            endpoint_url=self._aws.endpoint,
            config=config,
        )
        guard_botocore_logs()  # botocore creates some of its loggers lazily
        return client

    def _put(self, client: Any, entries: Sequence[AwsEntry]) -> list[EntryResult]:
        """One batch request; each entry's result, in order (`SinkUnavailable` if the answer
        does not have one per entry: nothing in it can be trusted)."""
        results = self._put_entries(client, entries)
        if len(results) != len(entries):
            raise SinkUnavailable(
                f"the service answered {len(results)} results for {len(entries)} entries",
                reason="SinkError",
            )
        return results

    def _put_entries(self, client: Any, entries: Sequence[AwsEntry]) -> list[EntryResult]:
        if self._service == "kinesis":
            answer = client.put_records(
                StreamARN=self._aws.arn.arn, Records=[dict(e.fields) for e in entries]
            )
            return [_code_result(r, "ErrorCode", "ErrorMessage") for r in answer["Records"]]
        if self._service == "events":
            bus = self._aws.arn.arn
            answer = client.put_events(Entries=[{**e.fields, "EventBusName": bus} for e in entries])
            return [_code_result(r, "ErrorCode", "ErrorMessage") for r in answer["Entries"]]
        batch = [{"Id": str(e.index), **e.fields} for e in entries]
        if self._service == "sqs":
            answer = client.send_message_batch(QueueUrl=self._queue_url, Entries=batch)
        else:
            answer = client.publish_batch(
                TopicArn=self._aws.arn.arn, PublishBatchRequestEntries=batch
            )
        failures = {str(f.get("Id")): f for f in answer.get("Failed") or ()}
        return [_sender_result(failures.get(str(e.index))) for e in entries]


def _refused_before_sending(
    batch: AwsBatch,
) -> tuple[dict[int, Failure], dict[str, tuple[int, Failure]]]:
    """The entries refused before anything is sent (too large), by index and by user."""
    failed: dict[int, Failure] = {}
    holding: dict[str, tuple[int, Failure]] = {}
    for entry in batch.entries:
        if entry.refusal is not None:
            failed[entry.index] = entry.refusal
            holding.setdefault(entry.user, (entry.index, entry.refusal))
    return failed, holding


def _held(
    entry: AwsEntry, holding: Mapping[str, tuple[int, Failure]], failed: dict[int, Failure]
) -> bool:
    """Whether `entry` stays unsent behind an earlier failure of its user (then listed)."""
    index, earlier = holding.get(entry.user, (entry.index, None))
    if earlier is None or index > entry.index:
        return False
    failed[entry.index] = SinkUnavailable(
        f"held back behind an earlier event of the same user: {earlier}", reason=earlier.reason
    )
    return True


def _fail_rest(
    batch: AwsBatch,
    request: Sequence[AwsEntry],
    exc: SinkUnavailable | SinkRejected | SinkMisconfigured,
    failed: dict[int, Failure],
) -> None:
    """A request failed whole after others of the unit were taken: its entries fail with
    it, and every entry of the requests after it is listed as not sent."""
    failure: Failure = (
        exc
        if not isinstance(exc, SinkMisconfigured)
        else SinkUnavailable(str(exc), reason=exc.reason)
    )
    for entry in request:
        failed[entry.index] = failure
    last = max(entry.index for entry in request)
    for entry in batch.entries:
        if entry.index > last and entry.index not in failed and entry.refusal is None:
            failed[entry.index] = SinkUnavailable(f"not sent: {failure}", reason=failure.reason)


def _code_result(record: Mapping[str, Any], code_key: str, message_key: str) -> EntryResult:
    code = record.get(code_key)
    if not code:
        return None
    return entry_failure(str(code), str(record.get(message_key) or ""))


def _sender_result(failure: Mapping[str, Any] | None) -> EntryResult:
    if failure is None:
        return None
    fault = failure.get("SenderFault")
    return entry_failure(
        str(failure.get("Code") or ""),
        str(failure.get("Message") or ""),
        fault if isinstance(fault, bool) else None,
    )
