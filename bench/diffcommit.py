"""Benchmark: change detection + outbox commit of one large scan (issue 3 targets).

    .venv/bin/python bench/diffcommit.py            # 100,000 users, median of 5 runs
    .venv/bin/python bench/diffcommit.py --quick    # 10,000 users, median of 3 runs

What is timed is what the poller does with a scan's pages as they arrive (issue 11: a
streamed scan): `ScanStream` takes the pages of 60 users one by one, diffs each chunk
against its users' snapshot entries (`known_users`, `to_record`, `diff_chunk`), builds its
events and commits them with the chunk's rows (`commit_scan`, each user marked with the
scan's generation), then sweeps the users the scan did not read (the deleted ones). Only the
network is left out: the pages are in memory. The users are synthetic `UserType` dicts as
the runner's Cognito client returns them: dates are the epoch seconds of the JSON response
(floats with milliseconds, as Cognito sends them), which that client keeps instead of
botocore's `tzlocal()` datetimes. Three cases:

    first baseline   empty state, every user new, nothing sent (initialSync: baseline)
    unchanged        the same scan again: no change                 target < 1.0 s
    1% changed       0.8% updated, 0.1% created, 0.1% deleted        target < 1.5 s

Beside each, measured in the same run, a bare baseline: the same rows through plain
`sqlite3` (`executemany` in one transaction, a SELECT into a dict) and a plain dict
comparison of precomputed fingerprints -- the floor of "store and compare these rows" --
and the ratio of ours to it. "ours cpu" is this process's CPU time for the same runs: on a
shared machine, wall time also counts the time other processes held the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.model import Bridge, CognitoSource, PoolArn, Sink, Target
from runner.polling.diff import to_record
from runner.polling.stream import ScanStream
from runner.sources.cognito.scan import LIST_USERS_LIMIT
from runner.state.outbox import Outbox

ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
BRIDGE = Bridge(
    id="bench/signups",
    file=Path("bench/signups.yaml"),
    name="signups",
    source=CognitoSource(
        pool=PoolArn(ARN, "aws", "us-west-2", "043455440429", "us-west-2_fak3p001B")
    ),
    sink=Sink(target=Target("http://127.0.0.1:9/")),
)
EPOCH_2024 = 1_704_067_200.0


def make_user(index: int, modified_offset: float = 0.0) -> dict[str, Any]:
    """A user as the runner's Cognito client returns it (dates: epoch seconds, in ms)."""
    created = EPOCH_2024 + index * 7.123
    return {
        "Username": f"user-{index:07d}",
        "Attributes": [
            {"Name": "sub", "Value": str(uuid.UUID(int=index * 7919 + 1))},
            {"Name": "email", "Value": f"user{index}@example.com"},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "name", "Value": f"User Number {index}"},
        ],
        "UserCreateDate": round(created, 3),
        "UserLastModifiedDate": round(created + 60.5 + modified_offset, 3),
        "Enabled": True,
        "UserStatus": "CONFIRMED",
    }


def poller_step(outbox: Outbox, scan: list[dict[str, Any]], phases: dict[str, float]) -> int:
    """What the poller does with one complete scan's pages; returns the number of changes."""

    async def stream() -> int:
        mark = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            phases[name] = phases.get(name, 0.0) + now - mark
            mark = now

        send = outbox.has_baseline(BRIDGE.id, ARN)
        scan_stream = ScanStream(BRIDGE, outbox, send=send, on_events=lambda n: None)
        await scan_stream.begin()
        for start in range(0, len(scan), LIST_USERS_LIMIT):
            await scan_stream.add_page(scan[start : start + LIST_USERS_LIMIT])
        lap("chunks")
        totals = await scan_stream.finish(complete=True, segments=1)
        lap("last chunk + sweep")
        return totals.changes

    return asyncio.run(stream())


# -- bare baselines: the same rows through plain sqlite3 and dicts -----------------------


def bare_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS snap (bridge TEXT, arn TEXT, username TEXT,"
        " fingerprint TEXT, sub TEXT, PRIMARY KEY (bridge, arn, username)) WITHOUT ROWID"
    )
    return conn


def bare_step(conn: sqlite3.Connection, rows: dict[str, tuple[str, str]]) -> None:
    """Load the stored rows into a dict, compare with `rows` (precomputed fingerprints),
    write the difference with executemany in one transaction."""
    stored = {
        username: (fp, sub)
        for username, fp, sub in conn.execute(
            "SELECT username, fingerprint, sub FROM snap WHERE bridge = ? AND arn = ?",
            (BRIDGE.id, ARN),
        )
    }
    upserts = [
        (BRIDGE.id, ARN, username, fp, sub)
        for username, (fp, sub) in rows.items()
        if stored.get(username) != (fp, sub)
    ]
    deletions = [(BRIDGE.id, ARN, username) for username in stored.keys() - rows.keys()]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT OR REPLACE INTO snap VALUES (?, ?, ?, ?, ?)", upserts)
    conn.executemany("DELETE FROM snap WHERE bridge = ? AND arn = ? AND username = ?", deletions)
    conn.execute("COMMIT")


# -- the cases ----------------------------------------------------------------------------


@dataclass
class Case:
    ours: list[float] = field(default_factory=list)  # wall seconds per run
    ours_cpu: list[float] = field(default_factory=list)  # this process's CPU seconds
    bare: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)


def measure(case: Case, outbox: Outbox, scan: list[dict[str, Any]]) -> int:
    """Run the poller step once, recording wall and CPU time; returns the change count."""
    phases: dict[str, float] = {}
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    count = poller_step(outbox, scan, phases)
    case.ours.append(time.perf_counter() - wall)
    case.ours_cpu.append(time.process_time() - cpu)
    case.phases.append(phases)
    return count


def measure_bare(case: Case, conn: sqlite3.Connection, scan: list[dict[str, Any]]) -> None:
    rows = {r.username: (r.fingerprint, r.sub) for r in map(to_record, scan)}  # not timed
    gc.collect()
    start = time.perf_counter()
    bare_step(conn, rows)
    case.bare.append(time.perf_counter() - start)


def bench(users: int, runs: int) -> dict[str, tuple[Case, float | None]]:
    base_scan = [make_user(i) for i in range(users)]
    one_percent = max(users // 100, 10)
    first, unchanged, changed = Case(), Case(), Case()
    with tempfile.TemporaryDirectory(prefix="bench-diffcommit-") as tmp:
        root = Path(tmp)
        for run in range(runs):
            with Outbox(root / f"first-{run}.sqlite") as outbox:
                measure(first, outbox, base_scan)
            with closing(bare_connect(root / f"bare-first-{run}.sqlite")) as conn:
                measure_bare(first, conn, base_scan)

        # One state carried through the remaining runs: each scan differs from the last
        # committed one by exactly the intended changes.
        with (
            Outbox(root / "state.sqlite") as outbox,
            closing(bare_connect(root / "bare.sqlite")) as bare,
        ):
            poller_step(outbox, base_scan, {})
            bare_step(bare, {r.username: (r.fingerprint, r.sub) for r in map(to_record, base_scan)})
            for _ in range(runs):
                assert measure(unchanged, outbox, base_scan) == 0
                measure_bare(unchanged, bare, base_scan)

            scan, next_index = base_scan, users
            for run in range(runs):
                scan = mutate(scan, run, one_percent, next_index)
                next_index += one_percent
                assert measure(changed, outbox, scan) == one_percent
                measure_bare(changed, bare, scan)
    return {
        "first baseline": (first, None),
        "unchanged": (unchanged, 1.0),
        "1% changed": (changed, 1.5),
    }


def mutate(
    scan: list[dict[str, Any]], run: int, one_percent: int, next_index: int
) -> list[dict[str, Any]]:
    """1% of the users changed: 80% of that updated, 10% deleted, 10% created."""
    updated, removed = one_percent * 8 // 10, one_percent // 10
    created = one_percent - updated - removed
    scan = list(scan)
    # Spread over the pool, and different users each run.
    step = len(scan) // updated
    for k in range(updated):
        i = (k * step + run) % len(scan)
        user = dict(scan[i])
        user["Attributes"] = [*user["Attributes"][:3], {"Name": "name", "Value": f"Renamed {run}"}]
        user["UserLastModifiedDate"] = EPOCH_2024 + 9e7 + run * 1000 + k
        scan[i] = user
    # Deleted users sit halfway between updated ones, so no user is both.
    doomed = {(k * step + step // 2 + run) % len(scan) for k in range(removed)}
    scan = [user for i, user in enumerate(scan) if i not in doomed]
    scan.extend(make_user(next_index + k) for k in range(created))
    return scan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 users, 3 runs (smoke)")
    parser.add_argument("--users", type=int, help="users per scan (default 100,000)")
    parser.add_argument("--runs", type=int, help="runs per case (default 5)")
    args = parser.parse_args(argv)
    users = args.users or (10_000 if args.quick else 100_000)
    runs = args.runs or (3 if args.quick else 5)

    print(f"streamed diff + commit of one complete scan: {users:,} users, median of {runs} runs")
    print(
        f"{'case':<16}{'ours (s)':>10}{'ours cpu':>10}{'bare (s)':>10}{'ratio':>8}"
        f"  {'target (s)':<12}breakdown (s)"
    )
    failed = False
    for name, (case, target) in bench(users, runs).items():
        ours, bare = statistics.median(case.ours), statistics.median(case.bare)
        # Targets are for 100,000 users; scale them for other sizes.
        limit = target * users / 100_000 if target else None
        verdict = "" if limit is None else (" ok" if ours < limit else " MISS")
        failed |= verdict == " MISS"
        breakdown = ", ".join(
            f"{phase} {statistics.median(p[phase] for p in case.phases):.3f}"
            for phase in case.phases[0]
        )
        target_text = f"<{limit:.2f}{verdict}" if limit else "-"
        print(
            f"{name:<16}{ours:>10.3f}{statistics.median(case.ours_cpu):>10.3f}{bare:>10.3f}"
            f"{ours / bare:>7.1f}x  {target_text:<12}{breakdown}"
        )
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
