"""Hostile or odd files in the bridges directory, against the runner as a subprocess (issue 9).

Each test puts one such file beside a good bridge, checks that the good bridge keeps
delivering (a user created afterwards reaches the sink) and that SIGTERM still stops the
runner within its shutdown timeout. The runner's address space is capped (`_cap_memory`), so
that a regression that reads `/dev/zero` fails the test instead of taking the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import (
    RunnerProcess,
    bridge_yaml,
    condition,
    read_status,
    wait_until,
)
from tests.peers.sink_server import SinkServer

Start = Callable[..., RunnerProcess]

SHUTDOWN_TIMEOUT = 5.0
# A hang never ends; a slow machine ends late. Generous on purpose: only a hang exceeds it.
STOP_MARGIN = 30.0
WAIT = 60.0
MEMORY_CAP = 2 * 1024**3  # bytes of address space; the runner needs a few hundred MiB


def _cap_memory(proc: RunnerProcess) -> None:
    resource.prlimit(proc.proc.pid, resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _start(start: Start, bridges: Path, state: Path) -> RunnerProcess:
    proc = start(
        "run",
        str(bridges),
        "--state-dir",
        str(state),
        "--shutdown-timeout",
        f"{SHUTDOWN_TIMEOUT:g}s",
        "--resync-interval",
        "2s",
    )
    _cap_memory(proc)
    return proc


def _ready(bridge_file: Path) -> bool:
    return condition(read_status(bridge_file), "Ready").get("status") == "True"


def _delivered(sink: SinkServer, username: str) -> bool:
    return any(
        isinstance(e.get_data(), dict) and e.get_data().get("Username") == username  # type: ignore[union-attr]
        for e in sink.events(accepted_only=True)
    )


def _keeps_delivering(
    admin: CognitoAdmin, pool: PoolInfo, sink: SinkServer, proc: RunnerProcess, user: str
) -> None:
    admin.create_user(pool.id, user)
    wait_until(lambda: _delivered(sink, user), WAIT, f"{user} delivered\n{proc.log}")


def _stops_in_time(proc: RunnerProcess) -> None:
    try:
        code = proc.terminate(timeout=SHUTDOWN_TIMEOUT + STOP_MARGIN)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"SIGTERM did not stop the runner\n{proc.log}") from None
    assert code == 0, proc.log


def _status_path(bridge_file: Path) -> Path:
    return bridge_file.with_name(bridge_file.stem + ".status.json")


def _is_regular_status(bridge_file: Path) -> bool:
    path = _status_path(bridge_file)
    return stat.S_ISREG(os.lstat(path).st_mode) and _ready(bridge_file)


def _good_pair(
    tmp_path: Path, moto: MotoServer, pool: Callable[..., PoolInfo], sink: SinkServer
) -> tuple[Path, Path, PoolInfo, PoolInfo]:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool_a, pool_b = pool(), pool()
    a, b = bridges / "a.yaml", bridges / "b.yaml"
    a.write_text(bridge_yaml(pool_a, moto.endpoint, sink.url))
    b.write_text(bridge_yaml(pool_b, moto.endpoint, sink.url))
    return a, b, pool_a, pool_b


def test_a_status_file_linked_to_a_fifo_is_replaced_not_read(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    a, b, pool_a, _ = _good_pair(tmp_path, moto_server, cognito_pool, sink_server)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _status_path(b).symlink_to(fifo)  # as git checks out a committed link
    proc = _start(runner_process, a.parent, tmp_path / "state")

    wait_until(lambda: _ready(a), WAIT, f"a Ready\n{proc.log}")
    _keeps_delivering(cognito_admin, pool_a, sink_server, proc, "alice")
    # The link was replaced by a real status file, not written through.
    wait_until(lambda: _is_regular_status(b), WAIT, f"b's own status file\n{proc.log}")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _stops_in_time(proc)


def test_a_status_file_linked_to_dev_zero_is_replaced_not_read(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    a, b, pool_a, _ = _good_pair(tmp_path, moto_server, cognito_pool, sink_server)
    _status_path(b).symlink_to("/dev/zero")
    proc = _start(runner_process, a.parent, tmp_path / "state")

    wait_until(lambda: _ready(a), WAIT, f"a Ready\n{proc.log}")
    _keeps_delivering(cognito_admin, pool_a, sink_server, proc, "alice")
    wait_until(lambda: _is_regular_status(b), WAIT, f"b's own status file\n{proc.log}")
    assert "MemoryError" not in proc.log
    _stops_in_time(proc)


def test_a_fifo_swapped_in_for_a_bridge_file_never_hangs_the_runner(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    a, b, pool_a, pool_b = _good_pair(tmp_path, moto_server, cognito_pool, sink_server)
    proc = _start(runner_process, a.parent, tmp_path / "state")
    wait_until(lambda: _ready(a) and _ready(b), WAIT, f"both Ready\n{proc.log}")

    # b.yaml is a FIFO and a regular file by turns, each swap an atomic rename (as a checkout
    # does), while every swap makes the runner read the directory again. A big file listed
    # before b, changed on every turn, takes a while to load: reads that listed b as a
    # regular file then open the FIFO. Dot names: neither bridges nor watched.
    content = bridge_yaml(pool_b, moto_server.endpoint, sink_server.url)
    slow = "metadata:\n  labels:\n" + "".join(f"    k{i}: v{i}\n" for i in range(20000))
    for turn in range(100):
        for target, make in (
            (a.parent / "aa-slow.yaml", lambda path, t=turn: path.write_text(f"{slow}# {t}\n")),
            (b, (lambda path: path.write_text(content)) if turn % 2 else os.mkfifo),
        ):
            swap = a.parent / f".swap-{turn}"
            make(swap)
            os.replace(swap, target)
        time.sleep(0.05)  # let the runner read most versions (nothing timed is asserted)
    final = bridge_yaml(pool_b, moto_server.endpoint, sink_server.url, poll_interval="2s")
    swap = a.parent / ".swap-final"
    swap.write_text(final)
    os.replace(swap, b)

    _keeps_delivering(cognito_admin, pool_a, sink_server, proc, "alice")
    # The reconciler went on reading the directory: it runs b's final version.
    digest = hashlib.sha256(final.encode()).hexdigest()
    wait_until(
        lambda: (read_status(b) or {}).get("appliedDigest") == digest and _ready(b),
        WAIT,
        f"b's final version runs\n{proc.log}",
    )
    _stops_in_time(proc)


def test_a_file_name_that_is_not_utf8_is_reported_and_the_others_run(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool_a, pool_b, pool_c = cognito_pool(), cognito_pool(), cognito_pool()
    a = bridges / "a.yaml"
    a.write_text(bridge_yaml(pool_a, moto_server.endpoint, sink_server.url))
    bad = os.path.join(os.fsencode(bridges), b"bad\xff.yaml")
    with open(bad, "wb") as out:
        out.write(bridge_yaml(pool_b, moto_server.endpoint, sink_server.url).encode())
    # A name with a newline is valid UTF-8 and runs, but must not forge a log line.
    forged = bridges / "x\n2026-01-01 00:00:00,000 ERROR   runner: forged.yaml"
    forged.write_text(bridge_yaml(pool_c, moto_server.endpoint, sink_server.url))
    proc = _start(runner_process, bridges, tmp_path / "state")

    wait_until(lambda: _ready(a) and _ready(forged), WAIT, f"a and the odd name Ready\n{proc.log}")
    _keeps_delivering(cognito_admin, pool_a, sink_server, proc, "alice")
    proc.wait_for_log(r"bad\\xff\.yaml: the file name is not valid UTF-8: the runner ignores", WAIT)
    # No status file with a name that is not UTF-8 either.
    names = os.listdir(os.fsencode(bridges))
    assert b"bad\xff.status.json" not in names
    assert all(
        json.loads((bridges / os.fsdecode(n)).read_text())
        for n in names
        if n.endswith(b".status.json")
    )
    assert proc.count(r"^2026-01-01 00:00:00,000 ERROR   runner: forged") == 0
    assert proc.count(r"\\n2026-01-01 00:00:00,000 ERROR   runner: forged") >= 1
    _stops_in_time(proc)
