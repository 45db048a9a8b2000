"""Backfill bench: a whole `bridge-runner run` backfilling a pool, against the plain script.

    .venv/bin/python bench/backfill.py            # 3,000 and 20,000 users, binary and batch,
                                                  # median of 3 runs each (~15 min)
    .venv/bin/python bench/backfill.py --quick    # 300 users, 1 run (smoke)
    .venv/bin/python bench/backfill.py --users 20000 --format batch --runs 5
    .venv/bin/python bench/backfill.py --latency 0 --quota 0 --aws-rps 1000   # no pacing

Per case (pool size x format): `bridge-runner run` on a directory of one bridge
(`initialSync: emit`, `pollInterval: 1h`, the given `format`, `--aws-rps 30`, a fresh state
directory each run), started as a process and stopped (SIGTERM) once the sink has every
user; beside it, run alternately with it, the plain script (`bench/_plain.py`: boto3's
ListUsers paginator + httpx posting each page's users as it reads them, binary: one POST per
user; batch: one POST per page), also a process. Both read the same pool and post to the same
sink; the sink (`bench/_sink.py`, its own process) records each event's arrival time, id and
username, and every run must deliver exactly the pool's usernames. Times are from starting the
process (so both pay their imports) to the sink's first and last event.

Pacing. moto answers a page in ~10 ms and never throttles; Cognito answers in ~50-150 ms and
throttles above 30 ListUsers/s per account and region. Unpaced, the script would read pages at
~100/s, a rate the real quota forbids, and the comparison would reward ignoring it. So both go
through the fault proxy (`tests/peers/cognito_proxy.py`, run in the emulator's process) adding
100 ms to every request (the middle of Cognito's range; moto's own time comes on top) and
answering TooManyRequestsException above 30 requests in any one-second window. The runner
runs at `--aws-rps 30`, the real quota; the sequential script stays below it by itself (one
request at a time, ~110 ms each: ~9/s). Throttles the proxy answered are printed per side.
moto's `list_users` is replaced in the emulator by an equivalent O(page) one
(`_emulator.py --fast-list`) so that moto's O(pool)-per-page walk, which Cognito does not
have, weighs on neither side.

Printed per case: whole run (runner, script, ratio), time to first event (runner, script),
and the runner's first event as a fraction of the script's whole run; at the end a Markdown
table of every case, ready for the README.

Targets (issue 11): whole run binary <= 1.0x and batch <= 0.6x the script; the first event
of a 20,000-user backfill within 0.25 of the script's whole run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _e2e import BENCH, ENV, Emulator, Runner, Sink, bridge_text
from _emulator import usernames
from _sink import users_digest

LATENCY = 0.1
QUOTA = 30.0
RPS = 30.0
TARGET_RATIO = {"binary": 1.0, "batch": 0.6}
TARGET_FIRST = 0.25  # of the script's whole run, for the largest pool
TIMEOUT = 1800.0


@dataclass(frozen=True)
class Run:
    whole: float  # process start -> last event at the sink
    first: float  # process start -> first event at the sink
    throttled: int
    duplicates: int  # events received beyond one per distinct id


@dataclass(frozen=True)
class Case:
    users: int
    format: str
    runner: Run
    script: Run

    @property
    def ratio(self) -> float:
        return self.runner.whole / self.script.whole

    @property
    def first_fraction(self) -> float:
        return self.runner.first / self.script.whole


def finish(sink: Sink, emulator: Emulator, started: float, users: int, who: str) -> Run:
    stats = sink.stats(digest=True)
    if stats["users"] != users or stats["digest"] != users_digest(usernames(users)):
        raise SystemExit(f"{who}: the sink has {stats['users']} users, not the pool's {users}")
    return Run(
        whole=stats["last"] - started,
        first=stats["first"] - started,
        throttled=emulator.stats()["throttled"],
        duplicates=stats["events"] - stats["ids"],
    )


def run_runner(
    emulator: Emulator, sink: Sink, pool: dict[str, object], format: str, rps: float
) -> Run:
    users = int(str(pool["users"]))
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        bridges = work / "bridges"
        bridges.mkdir()
        text = bridge_text(str(pool["arn"]), emulator.endpoint, sink.url, format)
        (bridges / "backfill.yaml").write_text(text)
        sink.reset()
        emulator.stats(reset=True)
        runner = Runner(bridges, work / "state", rps, work / "runner.log")
        try:
            if not sink.wait_for_users(users, runner.proc, TIMEOUT):
                raise SystemExit(f"runner: not every user arrived\n{runner.log_tail()}")
        finally:
            runner.stop()
        return finish(sink, emulator, runner.started, users, "runner")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_script(emulator: Emulator, sink: Sink, pool: dict[str, object], format: str) -> Run:
    sink.reset()
    emulator.stats(reset=True)
    sink_args = (sink.url, format)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, str(BENCH / "_plain.py"), emulator.endpoint, str(pool["arn"]), *sink_args],
        check=True,
        env=ENV,
        timeout=TIMEOUT,
    )
    return finish(sink, emulator, started, int(str(pool["users"])), "script")


def median_run(runs: list[Run]) -> Run:
    return Run(
        whole=statistics.median(r.whole for r in runs),
        first=statistics.median(r.first for r in runs),
        throttled=max(r.throttled for r in runs),
        duplicates=max(r.duplicates for r in runs),
    )


def measure(
    emulator: Emulator, sink: Sink, pool: dict[str, object], format: str, runs: int, rps: float
) -> Case:
    ours, theirs = [], []
    for _ in range(runs):  # alternate, so that drift in the machine's load hits both alike
        theirs.append(run_script(emulator, sink, pool, format))
        ours.append(run_runner(emulator, sink, pool, format, rps))
    return Case(int(str(pool["users"])), format, median_run(ours), median_run(theirs))


def report(case: Case, largest: int, runs: int) -> bool:
    target = TARGET_RATIO[case.format]
    ok_ratio = case.ratio <= target
    print(f"{case.users:,} users, format {case.format}, median of {runs}")
    print(f"  {'':<22}{'runner':>9}{'script':>9}{'ratio':>8}")
    print(
        f"  {'whole run (s)':<22}{case.runner.whole:>9.2f}{case.script.whole:>9.2f}"
        f"{case.ratio:>8.2f}  target <= {target:.1f}: {'ok' if ok_ratio else 'MISSED'}"
    )
    print(f"  {'first event (s)':<22}{case.runner.first:>9.2f}{case.script.first:>9.2f}")
    ok_first = case.users != largest or case.first_fraction <= TARGET_FIRST
    aim = f"target <= {TARGET_FIRST}: {'ok' if ok_first else 'MISSED'}"
    print(
        f"  runner's first event / script's whole run: {case.first_fraction:.3f}"
        f"{'  ' + aim if case.users == largest else ''}"
    )
    print(
        f"  throttled by the proxy (most in a run): runner {case.runner.throttled}, "
        f"script {case.script.throttled}; duplicate events: runner {case.runner.duplicates}, "
        f"script {case.script.duplicates}"
    )
    return ok_ratio and ok_first


def markdown(cases: list[Case]) -> None:
    print("\n| users | format | runner whole | script whole | ratio | runner first | "
          "script first | first / script whole |")  # fmt: skip
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cases:
        print(
            f"| {c.users:,} | {c.format} | {c.runner.whole:.2f} s | {c.script.whole:.2f} s | "
            f"{c.ratio:.2f} | {c.runner.first:.2f} s | {c.script.first:.2f} s | "
            f"{c.first_fraction:.3f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 users, one run (smoke)")
    parser.add_argument("--users", type=int, action="append", help="pool sizes (repeatable)")
    parser.add_argument("--format", action="append", choices=["binary", "batch"])
    parser.add_argument("--runs", type=int, help="runs per side and case (default 3)")
    parser.add_argument("--latency", type=float, default=LATENCY, help="s added per request")
    parser.add_argument("--quota", type=float, default=QUOTA, help="requests/s, 0: none")
    parser.add_argument("--aws-rps", type=float, default=RPS, help="the runner's budget")
    args = parser.parse_args(argv)
    sizes = args.users or ([300] if args.quick else [3_000, 20_000])
    formats = args.format or ["binary", "batch"]
    runs = args.runs or (1 if args.quick else 3)

    pools = {f"p{n}": n for n in sizes}
    pacing = [f"--latency={args.latency}"] + ([f"--quota={args.quota}"] if args.quota else [])
    emulator = Emulator(pools, "--fast-list", *pacing)
    sink = Sink()
    print(
        f"backfill bench: proxy +{args.latency * 1000:.0f} ms/request, throttling above "
        f"{args.quota or float('inf'):.0f} requests/s; runner --aws-rps {args.aws_rps:g}; "
        f"medians of {runs} run(s), runner and script alternating; times from process start"
    )
    cases, ok = [], True
    try:
        for n in sizes:
            for format in formats:
                pool = emulator.pools[f"p{n}"]
                case = measure(emulator, sink, pool, format, runs, args.aws_rps)
                ok = report(case, max(sizes), runs) and ok
                cases.append(case)
                sys.stdout.flush()
    finally:
        sink.stop()
        emulator.stop()
    markdown(cases)
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
