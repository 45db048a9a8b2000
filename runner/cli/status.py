"""`bridge-runner status DIR`: what the status files beside the bridges say.

A table (or JSON) of every bridge's readiness. Read-only: it never talks to Cognito or the
sink. `--wait` blocks until every bridge is done, fails at once when one never will be, or
gives up after `--timeout` (exit 1 either way, saying why), printing progress to stderr.

This module is the command: its flags, the table, the exit codes. What `--wait` awaits and its
loop are `runner.cli.status_wait`'s; when a bridge counts as done, failed or superseded is
decided by `runner.status.waitrules` (pure); status files are read by `runner.status.reader`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from runner._kits.durations import duration_argument
from runner._kits.wording import printable
from runner.cli.exitcodes import EXIT_OK
from runner.cli.status_wait import file_sha256, wait
from runner.errors import UsageError
from runner.loader.discovery import NOT_UTF8_NAME, discover_bridge_files, is_utf8
from runner.model import bridge_id_for
from runner.reconcile.plan import Shard
from runner.status.reader import read_status
from runner.status.runrecord import RunRecord, liveness_of, read_run_records
from runner.status.writer import status_path_for

__all__ = [
    "Row",
    "add_arguments",
    "read_rows",
    "render_table",
    "run",
]

_REVISION = re.compile(r"^[0-9a-f]{7,64}$")
_NOTHING = (None, None, None, None, False)  # last poll, delivered, pending, revision, current


def parse_revision(text: str) -> str:
    """`--for-revision`: a commit id or a prefix of at least 7 hex digits, any case."""
    revision = text.strip().lower()
    if not _REVISION.match(revision):
        raise UsageError(
            f"--for-revision {text!r}: give a commit id, or a prefix of at least 7 hex characters"
        )
    return revision


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR", help="the bridges directory")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait until every bridge is Ready (exit 1 on timeout, or at once on a bridge "
        "that cannot become Ready)",
    )
    parser.add_argument(
        "--for-revision",
        metavar="SHA",
        help="with --wait: wait for the bridge files of this git commit (at least 7 hex "
        "characters); bridges a later commit changed are judged at their newer version",
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


# -- what the status files say -------------------------------------------------------------


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
    stale: str | None = None  # why the status no longer describes a live runner, if it does not


def read_rows(root: Path, shard: Shard | None = None, *, now: datetime | None = None) -> list[Row]:
    """The table: every bridge file on disk and what its status says."""
    records = read_run_records(root)
    moment = now or datetime.now(UTC)
    rows = []
    for path in discover_bridge_files(root):
        bridge_id = bridge_id_for(root, path)
        if shard is None or shard.owns(bridge_id):
            rows.append(_row(bridge_id, path, records, moment))
    return rows


def _row(bridge_id: str, path: Path, records: Sequence[RunRecord], now: datetime) -> Row:
    if not is_utf8(bridge_id):
        shown = printable(bridge_id)
        return Row(shown, "False", "False", "InvalidFileName", NOT_UTF8_NAME, *_NOTHING)
    try:
        digest: str | None = file_sha256(path)
    except OSError:
        digest = None
    view = read_status(status_path_for(path))
    if isinstance(view, str):
        message = "no status file yet" if view == "NoStatus" else "not a status file"
        return Row(bridge_id, "Unknown", "Unknown", view, message, None, None, None, None, False)
    ready, valid = view.readiness.ready_condition, view.readiness.valid
    source, sink = view.doc["source"], view.doc["sink"]
    stale = liveness_of(view.run, records, now)
    return Row(
        bridge=bridge_id,
        # A stale status says nothing about now: shown as Unknown, with why.
        ready="Unknown" if stale else ready.status,
        valid=valid.status,
        reason="Stale" if stale else ready.reason,
        message=stale or ready.message,
        last_poll=source.get("lastSuccessfulPollTime") or source.get("lastPollTime"),
        delivered=sink.get("delivered"),
        pending=sink.get("pending"),
        revision=view.revision,
        current=digest is not None and view.observed == digest,
        stale=stale,
    )


def run(args: argparse.Namespace) -> int:
    root: Path = args.directory
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    revision = parse_revision(args.for_revision) if args.for_revision else None
    if revision and not args.wait:
        raise UsageError("--for-revision goes with --wait")
    if not args.wait:
        _print(read_rows(root, args.shard), args.format)
        return EXIT_OK
    return wait(
        root,
        revision,
        shard=args.shard,
        timeout=args.timeout,
        show_table=lambda: _print(read_rows(root, args.shard), args.format),
    )


def render_table(rows: list[Row]) -> str:
    header = ("BRIDGE", "READY", "REASON", "LAST POLL", "DELIVERED", "PENDING")
    body = [
        (
            printable(r.bridge),
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


def _print(rows: list[Row], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps({"bridges": [asdict(r) for r in rows]}, indent=2))
    else:
        print(render_table(rows) if rows else "no bridges found")
        stale = [r for r in rows if r.stale]
        if stale:
            print(f"\n{len(stale)} stale: {stale[0].stale}", file=sys.stderr)
