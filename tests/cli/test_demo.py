"""`bridge-runner demo` as a user runs it: events shown, then nothing left behind."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from runner.cli import demo

SYNC_TRIGGER = "com.amazon.cognito-idp.sync_trigger"
USER_DELETED = "com.amazon.cognito-idp.user_deleted"


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

    # Each event shows its real CloudEvents type, as a sink would filter on it.
    assert {(line.split()[1], line.split()[3]) for line in sink_lines} == {
        ("created", f"type={SYNC_TRIGGER}"),
        ("updated", f"type={SYNC_TRIGGER}"),
        ("deleted", f"type={USER_DELETED}"),
    }
    # An update says what changed, as the changedattributes extension tells consumers.
    changed = {tuple(line.split()[1:3]): line for line in sink_lines if "updated" in line}
    assert " changed=email " in changed[("updated", "alice")]
    assert " changed=Enabled " in changed[("updated", "bob")]
    # The quiet seconds say what the demo waits for; which wait depends on how long the
    # scripted changes took, and either must say it.
    waiting = re.search(r"^\[demo\] +all changes made; (.*); Ctrl-C to stop$", out, re.MULTILINE)
    assert waiting, out
    assert waiting.group(1) in (
        "the runner keeps polling until 10s have passed (--duration)",
        "waiting for the last change's event",
    )
    assert out.index("delete carol") < waiting.start() < out.index("shutting down")
    # Counts are worded as counts: each scripted change is "1 change, 1 event", never "1 changes".
    assert "bridge demo: 1 change, 1 event committed" in out
    assert "shutting down: stopping 1 bridge\n" in out
    assert re.findall(r"\b1 [a-z]+s\b|\(s\)", out) == []

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
    # --duration is over before the scripted changes are: it waits for the last event only.
    assert (
        "[demo]   all changes made; waiting for the last change's event; Ctrl-C to stop\n"
    ) in done.stdout


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    """The lines of `stream` as they come, then None at its end (read by a thread)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_ctrl_c_while_it_waits_stops_the_demo_and_cleans_up() -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "runner", "demo", "--duration", "10m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert demo.stdout is not None
    lines = _lines(demo.stdout)
    seen: list[str] = []
    try:
        while not seen or "all changes made" not in seen[-1]:
            line = lines.get(timeout=60)  # a safety net for a demo that never says it
            assert line is not None, "".join(seen)
            seen.append(line)
        assert seen[-1] == (
            "[demo]   all changes made; the runner keeps polling until 10m have passed "
            "(--duration); Ctrl-C to stop\n"
        ), "".join(seen)
    finally:
        # Ctrl-C, also when the test failed: the demo stops the runner it started.
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    rest = []
    while (line := lines.get(timeout=10)) is not None:
        rest.append(line)
    demo.stdout.close()
    out = "".join(rest)
    assert demo.returncode == 0, "".join(seen) + out
    assert "[demo]   Ctrl-C: stopping\n" in out
    assert "[status] Ready        True" in out
    assert out.endswith("[demo]   stopped; everything it started is gone\n")
    workdir = re.search(r"working directory (\S+)", "".join(seen))
    assert workdir and not Path(workdir.group(1)).exists()


def _holding_the_events_lock(handler: Callable[[threading.Event], object]) -> bool:
    """Whether `handler`, called where a Ctrl-C would land inside `Event.wait()` (the
    thread holding the event's own lock, for a few bytecodes), returns and the event ends
    up set. Run in a daemon thread, so that a handler that waits forever leaves it behind."""
    event = threading.Event()
    returned = threading.Event()

    def land_inside_wait() -> None:
        with event._cond:  # what Event.wait holds around its waiting
            handler(event)
        returned.set()

    threading.Thread(target=land_inside_wait, daemon=True).start()
    return returned.wait(2) and event.wait(2)


def test_ctrl_c_landing_inside_the_wait_for_it_still_stops_the_demo() -> None:
    assert _holding_the_events_lock(demo._set_from_a_thread)
    # Setting the event in the handler itself, as the demo once did, waits forever.
    assert not _holding_the_events_lock(threading.Event.set)
