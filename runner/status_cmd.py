"""`bridge-runner status DIR`: what the status files beside the bridges say.

A table (or JSON) of every bridge's readiness; `--wait` blocks until every bridge is Ready
— at `--for-revision SHA` when given, and with a status that describes the file as it is
on disk now (its observedDigest equals the file's sha256) — or `--timeout` passes (exit 1,
listing what is still not ready). Read-only: it never talks to Cognito or the sink.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runner.cli import EXIT_FAILED, EXIT_OK
from runner.discovery import discover_bridge_files
from runner.durations import duration_argument
from runner.errors import UsageError
from runner.model import bridge_id_for
from runner.plan import Shard
from runner.schemas import validator
from runner.status import status_path_for

POLL_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR", help="the bridges directory")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--wait", action="store_true", help="wait until every bridge is Ready (exit 1 on timeout)"
    )
    parser.add_argument(
        "--for-revision",
        metavar="SHA",
        help="with --wait: also wait until every status was written at this git commit "
        "(a prefix of at least 7 characters is enough)",
    )
    parser.add_argument(
        "--shard",
        type=Shard.parse,
        metavar="I/N",
        help="only the bridges of shard I of N (what `run --shard I/N` writes statuses for)",
    )
    parser.add_argument(
        "--timeout",
        type=duration_argument,
        default=120.0,
        metavar="DURATION",
        help="with --wait: give up after this long (default: 2m)",
    )


@dataclass(frozen=True, slots=True)
class Row:
    bridge: str
    ready: str  # True / False / Unknown
    valid: str  # the Valid condition's status
    reason: str
    message: str
    last_poll: str | None
    delivered: int | None
    pending: int | None
    revision: str | None
    current: bool  # the status describes the file as it is on disk now

    def blocking(self, revision: str | None) -> str | None:
        """Why this bridge does not count as done for --wait, or None when it does."""
        if not self.current:
            return "its status does not describe the current file yet"
        if self.valid != "True":
            # An invalid file can be Ready (its last good version runs), but that is not the
            # revision CI is waiting for.
            return f"the file is invalid: {self.message}" if self.message else "the file is invalid"
        if revision and not (self.revision or "").startswith(revision):
            return f"status is at revision {self.revision or 'unknown'}, not {revision}"
        if self.ready != "True":
            return f"{self.reason}: {self.message}" if self.message else self.reason
        return None


def read_rows(root: Path, shard: Shard | None = None) -> list[Row]:
    ids = ((bridge_id_for(root, path), path) for path in discover_bridge_files(root))
    return [
        _row(bridge_id, path) for bridge_id, path in ids if shard is None or shard.owns(bridge_id)
    ]


def _unknown(bridge_id: str, reason: str, message: str) -> Row:
    return Row(bridge_id, "Unknown", "Unknown", reason, message, None, None, None, None, False)


def _row(bridge_id: str, path: Path) -> Row:
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        digest = None
    status_file = status_path_for(path)
    try:
        doc: Any = json.loads(status_file.read_text("utf-8"))
    except (OSError, ValueError):
        return _unknown(bridge_id, "NoStatus", "no status file yet")
    # Status files are read, not trusted: a hand-edited or foreign file is reported, and
    # never crashes `status` (or keeps `--wait` from waiting for a good one).
    if not validator("status").is_valid(doc):
        return _unknown(bridge_id, "InvalidStatus", f"{status_file.name} is not a status file")
    conditions: list[dict[str, Any]] = doc["conditions"]
    ready: dict[str, Any] = next((c for c in conditions if c["type"] == "Ready"), {})
    valid: dict[str, Any] = next((c for c in conditions if c["type"] == "Valid"), {})
    source, sink = doc["source"], doc["sink"]
    return Row(
        bridge=bridge_id,
        ready=str(ready.get("status", "Unknown")),
        valid=str(valid.get("status", "Unknown")),
        reason=str(ready.get("reason", "Unknown")),
        message=str(ready.get("message", "")),
        last_poll=source.get("lastSuccessfulPollTime") or source.get("lastPollTime"),
        delivered=sink.get("delivered"),
        pending=sink.get("pending"),
        revision=doc.get("observedRevision"),
        current=digest is not None and doc.get("observedDigest") == digest,
    )


def render_table(rows: list[Row]) -> str:
    header = ("BRIDGE", "READY", "REASON", "LAST POLL", "DELIVERED", "PENDING")
    body = [
        (
            r.bridge,
            r.ready,
            r.reason,
            r.last_poll or "-",
            "-" if r.delivered is None else str(r.delivered),
            "-" if r.pending is None else str(r.pending),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    root: Path = args.directory
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    if args.for_revision and not args.wait:
        raise UsageError("--for-revision goes with --wait")
    deadline = time.monotonic() + args.timeout
    while True:
        rows = read_rows(root, args.shard)
        blocked = {r.bridge: why for r in rows if (why := r.blocking(args.for_revision))}
        if not args.wait or not blocked or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    _print(rows, args.format)
    if args.wait and blocked:
        print(f"timed out after {args.timeout:g}s; not ready:", file=sys.stderr)
        for bridge_id, why in sorted(blocked.items()):
            print(f"  {bridge_id}: {why}", file=sys.stderr)
        return EXIT_FAILED
    if args.wait and not rows:
        print("no bridges found", file=sys.stderr)
    return EXIT_OK


def _print(rows: list[Row], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps({"bridges": [asdict(r) for r in rows]}, indent=2))
    else:
        print(render_table(rows) if rows else "no bridges found")
