"""`bridge-runner demo` as a user runs it: events shown, then nothing left behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def test_demo_shows_events_and_cleans_up() -> None:
    # Whatever this machine's AWS settings are, the demo ignores them: even a profile that
    # does not exist, or an endpoint and a metrics address meant for something else.
    env = {
        **os.environ,
        "AWS_PROFILE": "no-such-profile-here",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "BRIDGE_RUNNER_METRICS_ADDR": "not-an-address",
    }
    done = subprocess.run(
        [sys.executable, "-m", "runner", "demo", "--duration", "10"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    sink_lines = [line for line in out.splitlines() if line.startswith("[sink]")]
    changes = {tuple(line.split()[1:3]) for line in sink_lines}
    assert {
        ("created", "alice"),
        ("created", "bob"),
        ("created", "carol"),
        ("created", "dave"),
        ("updated", "alice"),
        ("updated", "bob"),
        ("deleted", "carol"),
    } <= changes
    assert len(sink_lines) == 7  # one event per change, no duplicates
    assert "[status] Ready        True" in out

    # Nothing left behind: the runner process, the ports, the temporary directory.
    workdir = re.search(r"working directory (\S+)", out)
    ports = re.search(r"on http://127\.0\.0\.1:(\d+); sink on port (\d+)", out)
    assert workdir and ports
    assert not Path(workdir.group(1)).exists()
    assert _processes_mentioning(workdir.group(1)) == []
    assert not _listening(int(ports.group(1)))
    assert not _listening(int(ports.group(2)))


def test_demo_dir_keeps_the_bridge_and_its_status(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "runner", "demo", "--duration", "3s", "--dir", str(work)],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "bridges" / "demo.yaml").is_file()
    assert (work / "bridges" / "demo.status.json").is_file()
    assert (work / "state" / "state.sqlite").is_file()
    assert f"(kept {work})" in done.stdout
