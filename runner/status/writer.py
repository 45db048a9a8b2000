"""Status files: what each bridge is doing, written next to its file (DESIGN §4.4).

    render_status(...) -> dict        pure: the document, from what the runner knows
    StatusWriter.write(file, doc)     atomic, only when the content changed (updatedAt aside)
    StatusWriter.remove(file)         when the bridge file is deleted
    status_path_for(file)             `signups.yaml` -> `signups.status.json`

The document's schema is `runner/schemas/status.schema.json`. Conditions, in order:

- Valid: the file passed validation (False: `errors` holds the located problems).
- SourceReady / SinkReady: given by the poller and the deliverer as `(status, reason, message)`;
  Unknown while nothing runs (never valid, not started yet) or the bridge is suspended.
- Ready: (Valid, or its last good version running) and SourceReady and SinkReady. A suspended
  bridge is Ready=False with reason Suspended: it is validated but deliberately not polled, and
  `run --once` / `status --wait` must not report it as delivering. When Ready is not True its
  reason is the first failing input's (False before Unknown), so a table shows the cause.

`lastTransitionTime` changes only when a condition's status changes, as in Kubernetes.
No secret value reaches a status file: problems never hold one, and every free-text field
also goes through `Redactor` as a second line of defence.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from runner._kits.rfc3339 import rfc3339
from runner._kits.safefile import read_regular
from runner.model import (
    API_VERSION,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_SYNC,
    STATUS_SUFFIX,
    Bridge,
    Problem,
)
from runner.secrets.redaction import Redactor
from runner.status.counters import SinkCounters, SourceCounters

logger = logging.getLogger(__name__)

STATUS_KIND = "BridgeStatus"
CONDITION_TYPES = ("Valid", "SourceReady", "SinkReady", "Ready")

# (status, CamelCase reason, message): what the poller and the deliverer report as readiness.
# status None means Unknown.
Readiness = tuple[bool | None, str, str]

_CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_STATUS_FILE_MODE = 0o644  # read by CI, people and sidecars, not only by the runner's user
# Status files read back (by the runner after a restart, by `status`) larger than this are not
# status files: a real one is a few KiB, and its errors come from a bridge file of 1 MiB at most.
MAX_STATUS_BYTES = 16 * 1024 * 1024


def status_path_for(bridge_file: Path) -> Path:
    """Where a bridge file's status goes: `team-a/signups.yaml` -> `team-a/signups.status.json`."""
    return bridge_file.with_name(bridge_file.stem + STATUS_SUFFIX)


def ce_attributes_for(bridge: Bridge) -> list[dict[str, str]]:
    """The CloudEvents (type, source) pairs a bridge emits, for `ceAttributes`."""
    source = bridge.source.pool.arn
    attributes = [{"type": EVENT_TYPE_SYNC, "source": source}]
    if bridge.source.emit_deletions:
        attributes.append({"type": EVENT_TYPE_DELETED, "source": source})
    return attributes


def render_status(
    *,
    bridge_id: str,
    file: str,
    observed_digest: str | None,
    applied_digest: str | None,
    observed_revision: str | None,
    problems: Sequence[Problem] = (),
    source: SourceCounters | None = None,
    sink: SinkCounters | None = None,
    source_ready: Readiness | None = None,
    sink_ready: Readiness | None = None,
    ce_attributes: Sequence[Mapping[str, str]] = (),
    suspended: bool = False,
    previous: Mapping[str, Any] | None = None,
    runner: Mapping[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The status document of one bridge.

    `file` is the path relative to the bridges directory; `observed_digest` the sha256 of the
    file's bytes (None if unreadable); `applied_digest` the file digest of the version running
    (None if none runs), so that applied == observed says "what is on disk runs"; `problems`
    what the loader found (errors make Valid False); `source_ready` / `sink_ready` None when no
    poller runs; `previous` the document written before (keeps each unchanged condition's
    `lastTransitionTime`); `runner` the run that writes it (`RunIdentity.to_status()`, see
    `runner.status.runrecord`), so that a status left by a run that has ended can be told; `now` the
    current time.
    """
    valid = not any(p.severity == "error" for p in problems)
    valid_condition = _valid_condition(problems, valid, applied_digest)
    source_condition: Readiness
    sink_condition: Readiness
    if suspended:
        source_condition = sink_condition = (None, "Suspended", "spec.suspend is true: not polled")
    else:
        source_condition = source_ready or _not_running(applied_digest)
        sink_condition = sink_ready or _not_running(applied_digest)
    ready_condition = _ready_condition(
        valid, applied_digest, suspended, source_condition, sink_condition
    )
    stamp = rfc3339(now, timespec="seconds")
    previous_times = _previous_transitions(previous)
    conditions = [
        _condition(kind, inputs, previous_times, stamp)
        for kind, inputs in zip(
            CONDITION_TYPES,
            (valid_condition, source_condition, sink_condition, ready_condition),
            strict=True,
        )
    ]
    source_block = (source or SourceCounters()).to_status()
    sink_block = (sink or SinkCounters()).to_status()
    for block in (source_block, sink_block):
        if block.get("lastError"):
            block["lastError"] = Redactor.redact(block["lastError"])
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": STATUS_KIND,
        "bridge": bridge_id,
        "file": file,
        "observedDigest": observed_digest,
        "appliedDigest": applied_digest,
        "observedRevision": observed_revision,
        "conditions": conditions,
        "errors": [_problem(p) for p in problems],
        "source": source_block,
        "sink": sink_block,
        "ceAttributes": [{"type": a["type"], "source": a["source"]} for a in ce_attributes],
        "updatedAt": rfc3339(now, timespec="milliseconds"),
    }
    if runner is not None:
        document["runner"] = dict(runner)
    return document


def _valid_condition(
    problems: Sequence[Problem], valid: bool, applied_digest: str | None
) -> Readiness:
    if valid:
        warnings = len(problems)
        if warnings:
            return True, "Validated", f"the file is valid, with {_plural(warnings, 'warning')}"
        return True, "Validated", "the file is valid"
    errors = [p for p in problems if p.severity == "error"]
    first = errors[0]
    where = f"line {first.line}: " if first.line is not None else ""
    at = f" [{first.path}]" if first.path else ""
    more = f" (and {_plural(len(errors) - 1, 'more error')})" if len(errors) > 1 else ""
    if applied_digest:
        running = f"; the last good version ({applied_digest[:12]}) keeps running"
    else:
        running = "; no version of this bridge runs"
    return False, "ValidationFailed", f"{where}{first.message}{at}{more}{running}"


def _not_running(applied_digest: str | None) -> Readiness:
    if applied_digest:
        return None, "Starting", "the poller has not reported yet"
    return None, "NotRunning", "no version of this bridge runs"


def _ready_condition(
    valid: bool,
    applied_digest: str | None,
    suspended: bool,
    source: Readiness,
    sink: Readiness,
) -> Readiness:
    if suspended:
        return False, "Suspended", "spec.suspend is true: the bridge is validated, not polled"
    if not valid and not applied_digest:
        return False, "ValidationFailed", "the file is invalid and no earlier version runs"
    inputs = (("SourceReady", source), ("SinkReady", sink))
    for wanted in (False, None):
        for name, (status, reason, message) in inputs:
            if status is wanted:
                return wanted, reason, f"{name}: {message}"
    if not valid:
        return True, "LastGoodRunning", "the file is invalid; its last good version delivers"
    return True, "Ready", "polling and delivering"


def _condition(
    kind: str, inputs: Readiness, previous_times: Mapping[str, tuple[str, str]], stamp: str
) -> dict[str, str]:
    status, reason, message = inputs
    text = "Unknown" if status is None else ("True" if status else "False")
    before = previous_times.get(kind)
    return {
        "type": kind,
        "status": text,
        "reason": _camel(reason),
        "message": Redactor.redact(message),
        "lastTransitionTime": before[1] if before and before[0] == text else stamp,
    }


def _previous_transitions(previous: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
    """condition type -> (status, lastTransitionTime) from an earlier document, if well formed."""
    found: dict[str, tuple[str, str]] = {}
    conditions = previous.get("conditions") if previous else None
    if not isinstance(conditions, list):
        return found
    for item in conditions:
        if not isinstance(item, Mapping):
            continue
        kind, status, when = item.get("type"), item.get("status"), item.get("lastTransitionTime")
        if isinstance(kind, str) and isinstance(status, str) and isinstance(when, str):
            found[kind] = (status, when)
    return found


def _problem(problem: Problem) -> dict[str, Any]:
    return {
        "line": problem.line,
        "column": problem.column,
        "path": problem.path,
        "message": Redactor.redact(problem.message),
        "severity": problem.severity,
    }


def _camel(reason: str) -> str:
    """`reason` as the schema wants it (CamelCase); other spellings are converted, not rejected,
    so that one odd reason from a poller cannot make a status file invalid."""
    if _CAMEL_CASE.match(reason):
        return reason
    words = re.findall(r"[A-Za-z0-9]+", reason)
    camel = "".join(w[0].upper() + w[1:] for w in words)
    return camel if _CAMEL_CASE.match(camel) else "Unknown"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- writing ----------------------------------------------------------------------------------


class StatusWriter:
    """Writes status files next to bridge files: atomically, and only when they changed.

    "Changed" ignores `updatedAt`, or every poll would rewrite every file. A file that has
    disappeared or is not the one written (a git-sync swap brings a fresh worktree without it,
    or with a committed file or link in its place) is written again even if its content did
    not change. Writing renames a temp file over the path, so a link there is replaced, never
    written through. A directory that cannot be written (read-only ConfigMap mount,
    permissions) is logged once, then skipped quietly until a write there succeeds again: the
    runner carries on without status files rather than failing.
    """

    def __init__(self) -> None:
        self._written: dict[Path, str] = {}  # status path -> comparable content last written
        # status path -> (device, inode) of the file written: another file there (a git-sync
        # swap, a link committed in its place) is replaced even if the content is unchanged.
        self._inodes: dict[Path, tuple[int, int] | None] = {}
        self._documents: dict[Path, dict[str, Any]] = {}
        self._unwritable: set[Path] = set()  # directories already logged as unwritable

    def previous(self, bridge_file: Path) -> dict[str, Any] | None:
        """The document last written for this bridge, or the one on disk (after a restart).

        The file on disk is read as `runner._kits.safefile` reads: never through a link, only a
        regular file, at most `MAX_STATUS_BYTES` (a committed link to a FIFO or to
        `/dev/zero` is no previous document). It may block on a stalled mount: call it off
        the event loop.
        """
        path = status_path_for(bridge_file)
        known = self._documents.get(path)
        if known is not None:
            return known
        try:
            loaded = json.loads(read_regular(path, limit=MAX_STATUS_BYTES))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.debug("%s is not a status file to go on from (%s)", path, exc)
            return None
        if isinstance(loaded, dict):
            self._documents[path] = loaded
            return loaded
        return None

    def write(self, bridge_file: Path, document: Mapping[str, Any]) -> bool:
        """Write the bridge's status file if its content changed or it is missing.

        Returns True when the file was written.
        """
        path = status_path_for(bridge_file)
        comparable = _comparable(document)
        if self._written.get(path) == comparable:
            on_disk = _identity(path)
            if on_disk is not None and on_disk == self._inodes.get(path):
                return False
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        try:
            # Renamed over whatever is there: a link is replaced, never written through.
            # A lone surrogate (a byte of a name that is not UTF-8) cannot be UTF-8: written as
            # its JSON escape rather than failing every status write after it.
            write_atomically(path, text.encode("utf-8", "backslashreplace"))
        except OSError as exc:
            self._cannot_write(path.parent, exc)
            return False
        self._unwritable.discard(path.parent)
        self._written[path] = comparable
        self._inodes[path] = _identity(path)
        self._documents[path] = dict(document)
        return True

    def remove(self, bridge_file: Path) -> bool:
        """Remove the bridge's status file (its bridge file is gone). True if one was removed."""
        path = status_path_for(bridge_file)
        self._written.pop(path, None)
        self._inodes.pop(path, None)
        self._documents.pop(path, None)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._cannot_write(path.parent, exc)
            return False
        return True

    def _cannot_write(self, directory: Path, exc: OSError) -> None:
        if directory in self._unwritable:
            return
        self._unwritable.add(directory)
        logger.warning(
            "cannot write status files in %s (%s); carrying on without them",
            directory,
            exc.strerror or type(exc).__name__,
        )


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of `path` itself (a link is not followed), None when there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _comparable(document: Mapping[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in document.items() if k != "updatedAt"}, sort_keys=True, default=str
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, then rename over the target (STYLE habit 7).

    The temp name starts with a dot so that the watcher and discovery ignore it. The folder is
    not fsynced: a status file lost to a power cut is simply written again.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _STATUS_FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
