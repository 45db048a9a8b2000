"""Smoke test: `bench/diffcommit.py --quick` runs end to end (figures are not asserted:
timings belong to the benchmark, not to tests)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_diffcommit_bench_quick_runs() -> None:
    result = subprocess.run(
        [sys.executable, "bench/diffcommit.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for case in ("first baseline", "unchanged", "1% changed"):
        (line,) = [line for line in lines if line.startswith(case)]
        ours, ours_cpu, bare, ratio = line[len(case) :].split()[:4]
        assert float(ours) > 0 and float(ours_cpu) > 0 and float(bare) > 0
        assert ratio.endswith("x") and float(ratio.rstrip("x")) > 0
