"""Smoke runs of the benchmarks in bench/ (`--quick`): they run end to end and print their ratios.

Figures are not asserted here (no timed assertions in tests); the full runs are in bench/.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.conftest import ROOT
from tests.peers.moto_server import CognitoAdmin, PoolInfo


def run_bench(script: str, *args: str, timeout: float) -> str:
    """`bench/<script>` run with `args` (none given: `--quick`) as a subprocess from the
    repository root, as its docstring says to; its output, once it has exited with 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *(args or ("--quick",))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_check_bench_quick() -> None:
    out = run_bench("check.py", timeout=120)
    assert out.startswith("bridges: 100 files, median of 1 run(s) each\n")
    assert re.search(r"^ratio baseline / check process: +\d+\.\d\dx$", out, re.M)
    assert re.search(r"^ratio baseline / check in-process: +\d+\.\d\dx$", out, re.M)


def test_endpoints_bench_small() -> None:
    out = run_bench(
        "endpoints.py", "--bridges", "5", "--rounds", "1", "--scrapes", "2", timeout=120
    )
    assert re.search(r"^metrics gzip +\d+\.\d+ +\d+\.\d+ +\d+\.\d\d$", out, re.M)
    # Both servers answer every request alike: the move onto prometheus_client's app kept them.
    assert "same answers (Date, Connection, process_* aside), 41 requests: yes" in out


def test_reconcile_bench_quick() -> None:
    out = run_bench("reconcile.py", timeout=300)
    assert "reconcile bench: 100 bridges, 5 edits" in out
    assert re.search(r"^start-up to all statuses \(s\) +\d+\.\d+ +\d+\.\d+", out, re.M)
    assert "exactly one restart per edit: yes" in out


def test_backfill_bench_quick() -> None:
    out = run_bench("backfill.py", timeout=300)
    for format in ("binary", "batch"):
        assert f"300 users, format {format}, median of 1\n" in out
        row = rf"^\| 300 \| {format} \| \d+\.\d\d s \| \d+\.\d\d s \| \d+\.\d\d \|"
        assert re.search(row, out, re.M), out
    assert re.search(r"^  whole run \(s\) +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d", out, re.M)
    assert "duplicate events: runner 0, script 0" in out


def test_memory_bench_quick() -> None:
    out = run_bench("memory.py", timeout=300)
    assert re.search(r"^0 \(baseline\) +\d+\.\d +\d+\.\d$", out, re.M)
    assert re.search(r"^3,000 +\d+\.\d +\d+\.\d +\d+\.\d +\d+\.\d$", out, re.M)
    assert re.search(r"^backfill 3,000 / 300: \d+\.\d\dx", out, re.M)


def test_emulator_fast_list_users_pages_like_moto(
    cognito_admin: CognitoAdmin, cognito_pool: Callable[..., PoolInfo]
) -> None:
    # The end-to-end benches read pools through the emulator's O(page) list_users: it must
    # give the very pages and tokens moto's own does, with and without a filter.
    spec = importlib.util.spec_from_file_location("_emulator", ROOT / "bench" / "_emulator.py")
    assert spec is not None and spec.loader is not None
    emulator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(emulator)
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 50)
    filters = [None, 'sub ^= "a"', 'username ^= "user00001"']
    pages = emulator.check_fast_list(cognito_admin.client, pool.id, filters)
    assert pages >= 8  # 50 users in pages of 7, and the filtered scans


def test_latency_bench_quick() -> None:
    out = run_bench("latency.py", timeout=120)
    # The figures are not asserted, the order at the sink is: it does not depend on speed.
    assert re.search(r"^ +[\d,]+ +[\d,]+ +\d+\.\d\dx  intact ", out, re.M)


def test_httpclients_bench_quick() -> None:
    out = run_bench("httpclients.py", timeout=120)
    for client in ("shared", "lanes"):
        assert re.search(rf"^{client} +8 +[\d,]+ +\d+\.\d\dx", out, re.M)


def test_deliver_bench_quick() -> None:
    out = run_bench("deliver.py", timeout=120)
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert rows == ["binary", "structured", "batch"]


def test_budget_bench_quick_runs_and_prints_every_case() -> None:
    out = run_bench("budget.py", timeout=180)
    figures = r" +\d\.\d\d +(\d\.\d{3}|nan) +\d+ +\d+"  # used, while waiting, throttled, most
    assert re.search(rf"^ +1\. big alone{figures}$", out, re.M), out
    for case in ("2. first-come", "fair"):
        small = r" +\d+\.\d\d s \(max +\d+\.\d\d\) vs 1 s, (yes|no ), \d+\.\d\d s, +\d+\.\d$"
        assert re.search(rf"^ +{re.escape(case)}{figures}{small}", out, re.M), out
    for check in ("budget used >= 0.95", "no throttles", "small pool keeps up"):
        assert re.search(rf"^{re.escape(check)}.*: (ok|MISSED)$", out, re.M), out
    assert re.search(r"^small pool's scan, first-come / fair: +\d+\.\d\dx$", out, re.M), out


def test_scan_bench_quick_runs_and_prints_both_parts() -> None:
    out = run_bench("scan.py", timeout=90)
    assert "1. full scan of 600 users" in out
    assert "ratio" in out
    assert "2. through the proxy" in out
    assert "segmented scan (16)" in out


def test_diffcommit_bench_quick_runs() -> None:
    lines = run_bench("diffcommit.py", timeout=120).splitlines()
    for case in ("first baseline", "unchanged", "1% changed"):
        (line,) = [line for line in lines if line.startswith(case)]
        ours, ours_cpu, bare, ratio = line[len(case) :].split()[:4]
        assert float(ours) > 0 and float(ours_cpu) > 0 and float(bare) > 0
        assert ratio.endswith("x") and float(ratio.rstrip("x")) > 0


def test_aws_sinks_bench_quick() -> None:
    out = run_bench("aws_sinks.py", timeout=300)
    assert out.startswith("aws sinks: 200 events, median of 1 run(s) each")
    for sink in ("sqs", "kinesis"):
        assert re.search(rf"^{sink} +\d+ +\d+ +\d+\.\d\dx$", out, re.M)


def test_nats_sink_bench_quick() -> None:
    out = run_bench("natssink.py", timeout=120)
    for mode in ("jetstream", "core"):
        assert re.search(rf"^{mode} +100 +[\d,]+ +[\d,]+ +\d+\.\d\dx$", out, re.M), out


@pytest.mark.slow  # ~45 s (two emulators, two runners): over the default suite's budget
def test_manybridges_bench_quick() -> None:
    out = run_bench("manybridges.py", timeout=300)
    for where in ("one pool", "30 pools"):
        assert f"\n30 bridges on {where}:\n" in out, out
    assert re.search(r"^  ListUsers requests, first round +1 ", out, re.M), out  # shared
    assert re.search(r"^  ListUsers requests, first round +30 ", out, re.M), out
    assert re.search(r"^  idle CPU \(% of a core\) +\d+\.\d\d +bare asyncio \d+\.\d\d", out, re.M)
    assert re.search(
        r"^  edit -> applied, median \(s\) +\d+\.\d{3} +max \d+\.\d{3} over 3$", out, re.M
    )
    assert re.search(r"KB per bridge$", out, re.M), out
