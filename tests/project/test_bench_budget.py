"""Smoke test: `bench/budget.py --quick` runs end to end and prints every case (figures are
not judged here: timings belong to the benchmark, not to tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_budget_bench_quick_runs_and_prints_every_case() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "budget.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    figures = r" +\d\.\d\d +(\d\.\d{3}|nan) +\d+ +\d+"  # used, while waiting, throttled, most
    assert re.search(rf"^ +1\. big alone{figures}$", out, re.M), out
    for case in ("2. first-come", "fair"):
        small = r" +\d+\.\d\d s \(max +\d+\.\d\d\) vs 1 s, (yes|no ), \d+\.\d\d s, +\d+\.\d$"
        assert re.search(rf"^ +{re.escape(case)}{figures}{small}", out, re.M), out
    for check in ("budget used >= 0.95", "no throttles", "small pool keeps up"):
        assert re.search(rf"^{re.escape(check)}.*: (ok|MISSED)$", out, re.M), out
    assert re.search(r"^small pool's scan, first-come / fair: +\d+\.\d\dx$", out, re.M), out
