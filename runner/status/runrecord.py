"""Which run of the runner wrote a status file, and whether that run is still alive.

A status file left behind by a runner that died (SIGKILL, OOM, a node lost) looks just like
a live one. So the runner publishes its run:

- every status file carries `runner: {startedAt, pid, host}` (`RunIdentity`), the run that
  wrote it; a new run changes it, so the first write after a restart rewrites every status;
- a small record in the bridges directory, `.bridge-runner/runner.json` (per shard:
  `.bridge-runner/runner-I-of-N.json`; dot-folders are not bridges and the watcher ignores
  them), holds the run, a heartbeat refreshed every `HEARTBEAT_SECONDS`, the revision last
  reconciled, and `stoppedAt` once the runner has stopped on purpose.

`status` (`liveness_of`) counts a status only when its run is the run of a record in the
directory and that record is alive: not stopped, a heartbeat younger than `STALE_AFTER`, and —
when it is read on the runner's own host and process namespace — its pid alive.

    RunIdentity.current()                      this process's run
    RunRecordWriter(root, shard, run)          .beat(revision) / .stopped() (atomic, never raises)
    read_run_records(root) -> list[RunRecord]  what `status` reads
    liveness_of(status_run, records, now)      None when alive, else why not
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner._kits.rfc3339 import rfc3339
from runner._kits.safefile import read_regular
from runner.model import API_VERSION
from runner.status.writer import write_atomically

log = logging.getLogger(__name__)

RECORD_DIR = ".bridge-runner"
RECORD_KIND = "RunnerRecord"
HEARTBEAT_SECONDS = 5.0
# A record whose heartbeat is older than this belongs to a runner that is gone. Generous:
# the CI flow copies records from the pods every few seconds, and clocks differ a little.
STALE_AFTER = 30.0
_MAX_RECORD_BYTES = 64 * 1024


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _pid_namespace() -> str | None:
    """This process's pid namespace (Linux), so that a pid is only checked where it means
    the same process: another container of the pod shares the host name, not the pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """One run of the runner: a restart is a new run even when the pid is the same (pid 1)."""

    started_at: str
    pid: int
    host: str

    @classmethod
    def current(cls, now: datetime | None = None) -> RunIdentity:
        return cls(rfc3339(now or datetime.now(UTC)), os.getpid(), socket.gethostname())

    def to_status(self) -> dict[str, Any]:
        return {"startedAt": self.started_at, "pid": self.pid, "host": self.host}

    @classmethod
    def from_status(cls, block: object) -> RunIdentity | None:
        if not isinstance(block, Mapping):
            return None
        started, pid, host = block.get("startedAt"), block.get("pid"), block.get("host")
        if isinstance(started, str) and isinstance(pid, int) and isinstance(host, str):
            return cls(started, pid, host)
        return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started_at}"


def record_name(shard: str | None) -> str:
    """`runner.json`, or `runner-0-of-2.json` for `--shard 0/2`."""
    if shard is None:
        return "runner.json"
    index, _, count = shard.partition("/")
    return f"runner-{index}-of-{count}.json"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A runner record as read back (`path` for messages)."""

    path: Path
    run: RunIdentity
    shard: str | None
    heartbeat_at: datetime | None
    stopped_at: datetime | None
    revision: str | None
    pid_namespace: str | None


def render_record(
    run: RunIdentity,
    *,
    shard: str | None,
    now: datetime,
    revision: str | None,
    stopped: bool = False,
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": RECORD_KIND,
        "runner": run.to_status(),
        "shard": shard,
        "pidNamespace": _pid_namespace(),
        "heartbeatAt": rfc3339(now),
        "heartbeatIntervalSeconds": HEARTBEAT_SECONDS,
        "revision": revision,
        "stoppedAt": rfc3339(now) if stopped else None,
    }


class RunRecordWriter:
    """Writes this run's record into the bridges directory; never raises (a read-only
    directory is logged once: the runner carries on, and `status --wait` cannot pass there)."""

    def __init__(self, root: Path, *, shard: str | None, run: RunIdentity) -> None:
        self.path = root / RECORD_DIR / record_name(shard)
        self.shard = shard
        self.run = run
        self._warned = False

    def beat(self, revision: str | None, *, stopped: bool = False) -> bool:
        document = render_record(
            self.run, shard=self.shard, now=datetime.now(UTC), revision=revision, stopped=stopped
        )
        try:
            self.path.parent.mkdir(mode=0o755, exist_ok=True)
            if self.path.parent.is_symlink():
                # A link committed as `.bridge-runner` would have the record written wherever
                # it points, outside the bridges directory.
                raise OSError(errno.ELOOP, "is a symbolic link", str(self.path.parent))
            write_atomically(self.path, (json.dumps(document, indent=2) + "\n").encode())
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot write the runner record %s (%s); `status --wait` will not count "
                    "this runner's status files",
                    self.path,
                    exc.strerror or type(exc).__name__,
                )
            return False
        self._warned = False
        return True

    def stopped(self, revision: str | None) -> bool:
        return self.beat(revision, stopped=True)


def read_run_records(root: Path) -> list[RunRecord]:
    """Every well-formed record in `root/.bridge-runner/` (anything else is skipped)."""
    folder = root / RECORD_DIR
    try:
        names = sorted(p for p in folder.iterdir() if p.name.endswith(".json"))
    except OSError:
        return []
    records: list[RunRecord] = []
    for path in names:
        try:
            # Not through a link, never a FIFO or device, never unbounded (`runner._kits.safefile`).
            doc: Any = json.loads(read_regular(path, limit=_MAX_RECORD_BYTES))
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or doc.get("kind") != RECORD_KIND:
            continue
        run = RunIdentity.from_status(doc.get("runner"))
        if run is None:
            continue
        shard, revision, namespace = doc.get("shard"), doc.get("revision"), doc.get("pidNamespace")
        records.append(
            RunRecord(
                path=path,
                run=run,
                shard=shard if isinstance(shard, str) else None,
                heartbeat_at=_parse_time(doc.get("heartbeatAt")),
                stopped_at=_parse_time(doc.get("stoppedAt")),
                revision=revision if isinstance(revision, str) else None,
                pid_namespace=namespace if isinstance(namespace, str) else None,
            )
        )
    return records


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return True  # cannot tell: the heartbeat decides
    return True


def record_liveness(record: RunRecord, now: datetime) -> str | None:
    """None when the record's runner is alive, else why it is not."""
    run = record.run
    if record.stopped_at is not None:
        return f"the runner ({run.describe()}) stopped at {rfc3339(record.stopped_at)}"
    if record.heartbeat_at is None:
        return f"the runner record {record.path.name} has no heartbeat"
    age = (now - record.heartbeat_at).total_seconds()
    if age > STALE_AFTER:
        return (
            f"the runner ({run.describe()}) has not been heard from since "
            f"{rfc3339(record.heartbeat_at)} ({age:.0f}s ago)"
        )
    same_process_space = (
        run.host == socket.gethostname()
        and record.pid_namespace is not None
        and record.pid_namespace == _pid_namespace()
    )
    if same_process_space and not _pid_alive(run.pid):
        return f"the runner ({run.describe()}) is not running any more"
    return None


def liveness_of(
    status_run: RunIdentity | None, records: Sequence[RunRecord], now: datetime
) -> str | None:
    """None when a status written by `status_run` describes a live runner, else why not."""
    if status_run is None:
        return "the status file does not say which run of the runner wrote it (an older runner?)"
    if not records:
        return (
            f"no runner record in {RECORD_DIR}/ beside the bridges (copy it with the status "
            "files), so whether its runner is alive cannot be told"
        )
    for record in records:
        if record.run == status_run:
            return record_liveness(record, now)
    return f"written by an earlier run ({status_run.describe()}): the runner has restarted since"
