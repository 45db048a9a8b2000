"""Smoke runs of the benchmarks in bench/ (`--quick`): they run end to end and print their ratios.

Figures are not asserted here (no timed assertions in tests); the full runs are in bench/.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.peers.moto_server import CognitoAdmin, PoolInfo

ROOT = Path(__file__).resolve().parents[2]


def test_check_bench_quick() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "check.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("bridges: 100 files, median of 1 run(s) each\n")
    assert re.search(r"^ratio baseline / check process: +\d+\.\d\dx$", completed.stdout, re.M)
    assert re.search(r"^ratio baseline / check in-process: +\d+\.\d\dx$", completed.stdout, re.M)


def test_endpoints_bench_small() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "endpoints.py"),
            "--bridges",
            "5",
            "--rounds",
            "1",
            "--scrapes",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert re.search(r"^metrics gzip +\d+\.\d+ +\d+\.\d+ +\d+\.\d\d$", completed.stdout, re.M)
    # Both servers answer every request alike: the move onto prometheus_client's app kept them.
    assert "same answers (Date, Connection, process_* aside), 41 requests: yes" in completed.stdout


def test_reconcile_bench_quick() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "reconcile.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "reconcile bench: 100 bridges, 5 edits" in completed.stdout
    assert re.search(r"^start-up to all statuses \(s\) +\d+\.\d+ +\d+\.\d+", completed.stdout, re.M)
    assert "exactly one restart per edit: yes" in completed.stdout


def test_backfill_bench_quick() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "backfill.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for format in ("binary", "batch"):
        assert f"300 users, format {format}, median of 1\n" in completed.stdout
        row = rf"^\| 300 \| {format} \| \d+\.\d\d s \| \d+\.\d\d s \| \d+\.\d\d \|"
        assert re.search(row, completed.stdout, re.M), completed.stdout
    assert re.search(r"^  whole run \(s\) +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d", completed.stdout, re.M)
    assert "duplicate events: runner 0, script 0" in completed.stdout


def test_memory_bench_quick() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "memory.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert re.search(r"^0 \(baseline\) +\d+\.\d +\d+\.\d$", completed.stdout, re.M)
    assert re.search(r"^3,000 +\d+\.\d +\d+\.\d +\d+\.\d +\d+\.\d$", completed.stdout, re.M)
    assert re.search(r"^backfill 3,000 / 300: \d+\.\d\dx", completed.stdout, re.M)


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
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "latency.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The figures are not asserted, the order at the sink is: it does not depend on speed.
    assert re.search(r"^ +[\d,]+ +[\d,]+ +\d+\.\d\dx  intact ", completed.stdout, re.M)


def test_httpclients_bench_quick() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "httpclients.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for client in ("shared", "lanes"):
        assert re.search(rf"^{client} +8 +[\d,]+ +\d+\.\d\dx", completed.stdout, re.M)
