"""Smoke test: `bench/scan.py --quick` runs end to end (figures are not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scan_bench_quick_runs_and_prints_both_parts() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scan.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "1. full scan of 600 users" in done.stdout
    assert "ratio" in done.stdout
    assert "2. through the proxy" in done.stdout
    assert "segmented scan (16)" in done.stdout
