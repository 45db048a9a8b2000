"""`bridge-runner run` as a subprocess against moto's server and a loopback sink (issue 4)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from runner.schemas import validator
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import (
    RunnerProcess,
    bridge_yaml,
    condition,
    read_status,
    wait_until,
)
from tests.peers.sink_server import Reply, SinkServer

Start = Callable[..., RunnerProcess]


def usernames(sink: SinkServer) -> Counter[str]:
    return Counter(e.get_data()["Username"] for e in sink.events(accepted_only=True))  # type: ignore[index]


def ready(bridge_file: Path) -> bool:
    return condition(read_status(bridge_file), "Ready").get("status") == "True"


def test_bridges_follow_the_directory(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool_a, pool_b = cognito_pool(), cognito_pool()
    a, b = bridges / "a.yaml", bridges / "team" / "b.yaml"
    b.parent.mkdir()
    a.write_text(bridge_yaml(pool_a, moto_server.endpoint, sink_server.url))
    b.write_text(bridge_yaml(pool_b, moto_server.endpoint, sink_server.url))
    proc = runner_process("run", str(bridges), "--state-dir", str(tmp_path / "state"))

    wait_until(lambda: ready(a) and ready(b), what="both bridges Ready")
    for doc in (read_status(a), read_status(b)):
        assert list(validator("status").iter_errors(doc)) == []
    assert read_status(b)["bridge"] == "team/b"  # type: ignore[index]

    cognito_admin.create_user(pool_a.id, "alice")
    cognito_admin.create_user(pool_b.id, "bob")
    wait_until(lambda: usernames(sink_server) == Counter({"alice": 1, "bob": 1}), what="events")

    # Editing one file restarts that bridge only.
    a.write_text(bridge_yaml(pool_a, moto_server.endpoint, sink_server.url, poll_interval="2s"))
    proc.wait_for_log(r"restart a: ")
    # The status must describe the edited file (not the one before it) and say it runs.
    edited = hashlib.sha256(a.read_bytes()).hexdigest()
    wait_until(
        lambda: read_status(a)["appliedDigest"] == edited == read_status(a)["observedDigest"]
    )
    assert proc.count(r"(restart|stop|start) team/b") == 1  # started once, never touched again

    # An invalid edit keeps the last good version running, and says so with the line.
    good_digest = read_status(a)["appliedDigest"]  # type: ignore[index]
    a.write_text(a.read_text().replace("pollInterval: 2s", "pollInterval: often"))
    wait_until(lambda: condition(read_status(a), "Valid").get("status") == "False")
    status = read_status(a)
    assert status is not None
    assert status["appliedDigest"] == good_digest != status["observedDigest"]
    assert status["errors"][0]["line"] == 8
    assert status["errors"][0]["path"] == "spec.source.awsCognitoUserPool.pollInterval"
    cognito_admin.create_user(pool_a.id, "carol")  # still polled
    wait_until(lambda: usernames(sink_server)["carol"] == 1, what="carol's event")

    # Deleting the file stops the bridge and removes its status file.
    a.unlink()
    proc.wait_for_log(r"stop a: ")
    wait_until(lambda: not a.with_name("a.status.json").exists(), what="status removed")
    assert read_status(b) is not None

    assert proc.terminate() == 0
    assert sink_server.problems == []


def test_once_exits_zero_only_when_every_bridge_is_ready(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    cognito_admin.create_user(pool.id, "dora")
    good = bridges / "good.yaml"
    good.write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    args = ("run", "--once", str(bridges), "--state-dir", str(tmp_path / "state"))
    proc = runner_process(*args)
    assert proc.proc.wait(60) == 0, proc.log
    assert usernames(sink_server) == Counter({"dora": 1})
    assert ready(good)

    (bridges / "bad.yaml").write_text("apiVersion: bridge-runner/v1alpha1\nkind: Bridge\n")
    proc = runner_process(*args)
    assert proc.proc.wait(60) == 1, proc.log
    assert "bad is not Ready" in proc.log
    assert ready(good)


def test_sigterm_mid_delivery_exits_in_time_and_loses_nothing(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 20)
    bridge = bridges / "slow.yaml"
    bridge.write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    sink_server.script(*[Reply(202, delay=0.3) for _ in range(20)])
    state = str(tmp_path / "state")
    proc = runner_process("run", str(bridges), "--state-dir", state, "--shutdown-timeout", "2s")
    wait_until(lambda: len(sink_server.received) >= 3, what="delivery under way")
    started = time.monotonic()
    assert proc.terminate() == 0
    assert time.monotonic() - started < 15  # the deadline (2 s) plus start-up slack
    assert len(usernames(sink_server)) < 20  # it really was cut short
    status = read_status(bridge)
    assert status is not None and status["sink"]["pending"] > 0

    proc = runner_process("run", "--once", str(bridges), "--state-dir", state)
    assert proc.proc.wait(60) == 0, proc.log
    assert set(usernames(sink_server)) == {f"user{i:06d}" for i in range(20)}


def test_sigkill_at_random_moments_loses_nothing(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    bridge = bridges / "crashy.yaml"
    bridge.write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    sink_server.script(*[Reply(202, delay=0.05) for _ in range(10_000)])
    state = str(tmp_path / "state")
    rng = random.Random(20261126)
    created: list[str] = []
    for round_ in range(20):
        proc = runner_process("run", str(bridges), "--state-dir", state)
        for i in range(3):
            name = f"u{round_:02d}-{i}"
            cognito_admin.create_user(pool.id, name)
            created.append(name)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
    proc = runner_process("run", str(bridges), "--state-dir", state)
    wait_until(lambda: set(usernames(sink_server)) >= set(created), timeout=60, what="all users")
    proc.terminate()
    events = sink_server.events(accepted_only=True)
    ids_by_user: dict[str, set[str]] = {}
    for event in events:
        ids_by_user.setdefault(event.get_data()["Username"], set()).add(event.get_id())  # type: ignore[index]
    # No loss, and every duplicate is the same event again: one id per created user.
    assert set(ids_by_user) == set(created)
    assert all(len(ids) == 1 for ids in ids_by_user.values()), ids_by_user


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_status_wait_for_revision(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    pool = cognito_pool()
    (repo / "ok.yaml").write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    (repo / ".gitignore").write_text("*.status.json\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    sha = _git(repo, "rev-parse", "HEAD")
    status = [sys.executable, "-m", "runner", "status", str(repo)]

    proc = runner_process("run", str(repo), "--state-dir", str(tmp_path / "state"))
    done = subprocess.run(
        [*status, "--wait", "--for-revision", sha, "--timeout", "30s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout and "True" in done.stdout

    # A bridge that can never be Ready: the wait times out and names it.
    (repo / "broken.yaml").write_text(
        bridge_yaml(pool, "http://127.0.0.1:9", sink_server.url)  # nothing listens there
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "second")
    sha = _git(repo, "rev-parse", "HEAD")
    done = subprocess.run(
        [*status, "--wait", "--for-revision", sha, "--timeout", "3s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "broken:" in done.stderr and "ok:" not in done.stderr

    as_json = subprocess.run([*status, "--format", "json"], capture_output=True, text=True)
    rows = {row["bridge"]: row for row in json.loads(as_json.stdout)["bridges"]}
    assert rows["ok"]["ready"] == "True" and rows["broken"]["ready"] != "True"

    # An invalid commit: the last good version keeps running (Ready), but it is not the
    # revision CI asked for, so the wait fails and says why.
    (repo / "broken.yaml").unlink()
    ok = repo / "ok.yaml"
    ok.write_text(ok.read_text().replace("pollInterval: 1s", "pollInterval: soon"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "third")
    sha = _git(repo, "rev-parse", "HEAD")
    done = subprocess.run(
        [*status, "--wait", "--for-revision", sha, "--timeout", "3s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "ok: the file is invalid" in done.stderr
    proc.terminate()


def test_two_shards_run_every_bridge_exactly_once(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    names = [f"b{i}" for i in range(6)]
    for name in names:
        (bridges / f"{name}.yaml").write_text(
            bridge_yaml(pool, moto_server.endpoint, sink_server.url, initial_sync="baseline")
        )
    shards = [
        runner_process(
            "run", str(bridges), "--state-dir", str(tmp_path / f"s{i}"), "--shard", f"{i}/2"
        )
        for i in range(2)
    ]
    wait_until(lambda: all(ready(bridges / f"{n}.yaml") for n in names), what="all Ready")
    cognito_admin.create_user(pool.id, "erin")
    # Six bridges watch the same pool: exactly six events, one per bridge.
    wait_until(lambda: len(sink_server.events(accepted_only=True)) >= 6, what="six events")
    time.sleep(1.5)  # a second poll would show a duplicate runner
    assert len(sink_server.events(accepted_only=True)) == 6
    # `status --shard` shows each runner's own bridges: together, every bridge once.
    listed: list[str] = []
    for i in range(2):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "runner",
                "status",
                str(bridges),
                "--shard",
                f"{i}/2",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        listed += [row["bridge"] for row in json.loads(out)["bridges"]]
    assert sorted(listed) == names
    started = [sum(p.count(rf"start {n}: ") for p in shards) for n in names]
    assert started == [1] * 6
    assert all(p.count(r"start b\d: ") > 0 for p in shards)  # both shards got work
    for p in shards:
        assert p.terminate() == 0


# -- every way a directory changes under a runner ------------------------------------------


def _digest_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _applied(bridge_file: Path) -> bool:
    doc = read_status(bridge_file)
    digest = _digest_of(bridge_file)
    return doc is not None and doc["observedDigest"] == digest == doc["appliedDigest"]


def test_directory_changes_are_picked_up(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    pool = cognito_pool()

    def content(interval: str) -> str:
        return bridge_yaml(pool, moto_server.endpoint, sink_server.url, poll_interval=interval)

    # git-sync layout: `bridges` is a symlink to a worktree that is swapped atomically.
    rev1 = tmp_path / "rev1"
    rev1.mkdir()
    (rev1 / "a.yaml").write_text(content("5s"))
    link = tmp_path / "bridges"
    link.symlink_to(rev1)

    # ConfigMap layout inside it: `c.yaml -> ..data/c.yaml`, `..data -> ..v1`.
    def configmap(directory: Path, version: str, interval: str) -> None:
        (directory / f"..{version}").mkdir()
        (directory / f"..{version}" / "c.yaml").write_text(content(interval))
        tmp_link = directory / "..data_tmp"
        tmp_link.symlink_to(f"..{version}")
        os.replace(tmp_link, directory / "..data")
        if not (directory / "c.yaml").is_symlink():
            (directory / "c.yaml").symlink_to("..data/c.yaml")

    configmap(rev1, "v1", "5s")
    proc = runner_process("run", str(link), "--state-dir", str(tmp_path / "state"))
    a, c = link / "a.yaml", link / "c.yaml"
    wait_until(lambda: _applied(a) and _applied(c), what="first reconcile")

    latencies: dict[str, float] = {}

    def measure(name: str, change: Callable[[], None], bridge_file: Path) -> None:
        started = time.monotonic()
        change()
        wait_until(lambda: _applied(bridge_file), timeout=15, what=name)
        latencies[name] = time.monotonic() - started

    measure("in-place edit", lambda: a.write_text(content("6s")), a)

    def rename_save() -> None:
        temp = rev1 / ".a.yaml.swp"
        temp.write_text(content("7s"))
        os.replace(temp, rev1 / "a.yaml")

    measure("write-temp-then-rename", rename_save, a)
    measure("configmap ..data swap", lambda: configmap(rev1, "v2", "8s"), c)

    def git_sync_swap() -> None:
        rev2 = tmp_path / "rev2"
        shutil.copytree(rev1, rev2, symlinks=True)
        for status in rev2.glob("*.status.json"):
            status.unlink()  # a fresh worktree has no status files
        (rev2 / "a.yaml").write_text(content("9s"))
        tmp_link = tmp_path / "bridges.tmp"
        tmp_link.symlink_to(rev2)
        os.replace(tmp_link, link)

    measure("git-sync symlink swap", git_sync_swap, a)
    assert read_status(c) is not None or wait_until(lambda: read_status(c), what="c rewritten")

    restarts_before = proc.count(r"restart a: ")
    for i in range(100):
        a.write_text(content(f"{10 + i}s"))
    measure("100 rapid writes", lambda: None, a)
    assert "pollInterval: 109s" in a.read_text()
    restarts = proc.count(r"restart a: ") - restarts_before
    assert 1 <= restarts <= 20, restarts  # debounced: far fewer restarts than writes
    print("pick-up latencies:", {k: round(v, 2) for k, v in latencies.items()})
    assert proc.terminate() == 0


def test_selector_json_logs_polling_resync_and_secret_headers(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges, secrets = tmp_path / "bridges", tmp_path / "secrets"
    bridges.mkdir()
    (secrets / "sink").mkdir(parents=True)
    token = "s3cr3t-token-value-1234"
    (secrets / "sink" / "token").write_text(token + "\n")
    pool = cognito_pool()
    header = "  sink:\n"
    with_secret = (
        "  sink:\n    headers:\n      Authorization: {valueFromSecret: {name: sink, key: token}}\n"
    )
    a, b = bridges / "a.yaml", bridges / "b.yaml"
    a.write_text(
        bridge_yaml(pool, moto_server.endpoint, sink_server.url, labels="{team: a}").replace(
            header, with_secret
        )
    )
    b.write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url, labels="{team: b}"))
    proc = runner_process(
        "run",
        str(bridges),
        "--state-dir",
        str(tmp_path / "state"),
        "--secrets-dir",
        str(secrets),
        "--selector",
        "team=a",
        "--log-format",
        "json",
        "--log-level",
        "DEBUG",
        "--force-polling",
        "--resync-interval",
        "1s",
        "--aws-rps",
        "5",
    )
    wait_until(lambda: ready(a), what="a Ready")
    cognito_admin.create_user(pool.id, "frank")
    wait_until(lambda: usernames(sink_server)["frank"] == 1, what="frank's event")
    assert sink_server.received[-1].headers["authorization"] == token
    assert read_status(b) is None  # not selected: not run, not reported by this runner

    # --force-polling still sees edits; --resync-interval re-reads the directory regardless.
    a.write_text(a.read_text().replace("pollInterval: 1s", "pollInterval: 2s"))
    proc.wait_for_log(r"restart a: ")
    proc.wait_for_log(r"reconciling after 0 changed path", count=2)
    assert proc.terminate() == 0
    records = [json.loads(line) for line in proc.lines if line.startswith("{")]
    assert records and len(records) == len([ln for ln in proc.lines if ln.strip()])
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert not any("start b:" in r["message"] for r in records)
    assert token not in proc.log


def test_state_of_a_removed_bridge_is_kept_for_the_retention_only(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    from runner.state.outbox import Outbox

    bridges, state = tmp_path / "bridges", tmp_path / "state"
    bridges.mkdir()
    pool = cognito_pool()
    gone = bridges / "gone.yaml"
    gone.write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    (bridges / "stays.yaml").write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    proc = runner_process(
        "run",
        str(bridges),
        "--state-dir",
        str(state),
        "--state-retention",
        "2s",
        "--resync-interval",
        "1s",
        "--log-level",
        "DEBUG",
    )
    wait_until(lambda: ready(gone), what="gone Ready")

    def known_ids() -> list[str]:
        with Outbox.open(state) as outbox:
            return outbox.bridge_ids()

    assert "gone" in known_ids()
    gone.unlink()
    proc.wait_for_log(r"stop gone: ")
    assert "gone" in known_ids()  # kept for now: a revert would resume it
    proc.wait_for_log(r"forgetting the state of bridge gone", timeout=30)
    assert "gone" not in known_ids() and "stays" in known_ids()
    assert proc.terminate() == 0


def test_once_with_a_failing_sink_ends_cleanly_and_keeps_the_events(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    cognito_admin.seed_users(pool, 4)
    bridge = bridges / "down.yaml"
    bridge.write_text(bridge_yaml(pool, moto_server.endpoint, sink_server.url))
    sink_server.script(*[Reply(503) for _ in range(10_000)])
    args = ("run", "--once", str(bridges), "--state-dir", str(tmp_path / "state"))
    proc = runner_process(*args, "--shutdown-timeout", "1s")
    assert proc.proc.wait(60) == 1, proc.log
    assert "Traceback" not in proc.log
    assert "down is not Ready" in proc.log
    status = read_status(bridge)
    assert status is not None and status["sink"]["pending"] == 4

    with sink_server._lock:  # the sink is back: drop the scripted failures
        sink_server._script.clear()
    proc = runner_process(*args)
    assert proc.proc.wait(60) == 0, proc.log
    assert set(usernames(sink_server)) == {f"user{i:06d}" for i in range(4)}
