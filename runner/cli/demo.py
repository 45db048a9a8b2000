"""`bridge-runner demo`: the whole product on one machine, with nothing to set up.

It starts a local Cognito emulator (moto's server on 127.0.0.1, from the `demo` extra) with a
seeded pool, a local sink that prints every CloudEvent it receives, writes a demo bridge,
runs the real runner on it (`bridge-runner run` as a child process), then creates, updates,
disables and deletes users so that events flow, and shows the status file. Each event is shown
with its CloudEvents type, and each wait says what it waits for. It ends after `--duration` or
on Ctrl-C and cleans up everything it started. No AWS account, credentials
or network access are needed: every address is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from runner._kits.durations import duration_argument, format_duration
from runner.cli.exitcodes import EXIT_OK
from runner.errors import BridgeRunnerError, UsageError

REGION = "us-west-2"
SEED_USERS = ("alice", "bob", "carol")
# The seeded users' backfill, then one event per scripted change (_script's four steps).
EXPECTED_EVENTS = len(SEED_USERS) + 4
# The demo waits for the events it expects, not for fixed times: on a loaded machine the
# runner may start late, and a change made before its first poll would show up as part of the
# backfill instead of as an event of its own. These are the longest waits.
BACKFILL_WAIT = 30.0  # before the first scripted change: the first poll sends the seeded users
STEP_WAIT = 10.0  # between scripted changes: until that change's event arrived
# After the last change: until its event arrived, so that it shows before we stop.
SETTLE_WAIT = 10.0
# Dummy credentials for the emulator: never real ones, and never read from the environment.
DEMO_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": REGION,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=duration_argument,
        default=30.0,
        metavar="DURATION",
        help="how long to run (default: 30s); the scripted changes always play out and are "
        "delivered first, and Ctrl-C stops earlier",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="write the demo bridge (and state) here and keep it afterwards "
        "(default: a temporary directory, removed at the end)",
    )


class _Printer:
    """Serialises lines from the sink thread, the runner's log and the script."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def __call__(self, prefix: str, text: str) -> None:
        with self._lock:
            for line in text.splitlines() or [""]:
                self._out.write(f"{prefix} {line}\n")
            self._out.flush()


def _describe_event(headers: dict[str, str], body: bytes) -> str:
    """One readable line per CloudEvent (binary, structured or batch)."""
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    event = from_http_event(HTTPMessage(headers, body))
    data = event.get_data()
    username = data.get("Username", "?") if isinstance(data, dict) else "?"
    change = event.get_extension("changetype")
    # What changed, as consumers read it (the changedattributes extension of updated events).
    changed = event.get_extension("changedattributes")
    details = f" changed={changed}" if changed else ""
    if isinstance(data, dict) and "Attributes" in data:
        attrs = {a["Name"]: a["Value"] for a in data["Attributes"] if a["Name"] != "sub"}
        details += f" enabled={data.get('Enabled')} attributes={json.dumps(attrs)}"
    return f"{change:<8} {username:<8} type={event.get_type()} id={event.get_id()[:12]}…{details}"


class _Arrivals:
    """How many events the demo's sink has taken, and a way to wait for more."""

    def __init__(self) -> None:
        self._taken = threading.Condition()
        self.count = 0

    def add(self) -> None:
        with self._taken:
            self.count += 1
            self._taken.notify_all()

    def wait_for(self, count: int, timeout: float, interrupted: threading.Event) -> None:
        """Until `count` events arrived, `timeout` passed or Ctrl-C."""
        until = time.monotonic() + timeout
        with self._taken:
            while self.count < count and not interrupted.is_set():
                left = until - time.monotonic()
                if left <= 0:
                    return
                self._taken.wait(min(left, 0.1))


class _DemoSink(ThreadingHTTPServer):
    arrivals: _Arrivals


def _start_sink(say: Callable[[str, str], None]) -> _DemoSink:
    arrivals = _Arrivals()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                say("[sink]  ", _describe_event(headers, body))
                arrivals.add()
                self.send_response(202)
            except Exception as exc:  # a demo sink shows what it could not read
                say("[sink]  ", f"could not read a request: {type(exc).__name__}: {exc}")
                self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = _DemoSink(("127.0.0.1", 0), Handler)
    server.arrivals = arrivals
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    return server


def _start_emulator() -> tuple[Any, str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise UsageError(
            "the demo needs the local Cognito emulator: pip install 'bridge-runner[demo]'"
        ) from None
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _cognito(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "cognito-idp",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",  # noqa: S106 - the local emulator takes any key
    )


BRIDGE_TEMPLATE = """\
# A demo bridge, written by `bridge-runner demo`. Its pool lives in a local emulator.
apiVersion: bridge-runner/v1alpha1
kind: Bridge
metadata:
  labels: {{team: demo}}
spec:
  source:
    awsCognitoUserPool:
      arn: {arn}
      endpoint: {endpoint}
      pollInterval: 1s
      initialSync: emit      # send one event per existing user first
  sink:
    uri: {sink}
    format: binary
"""


@contextlib.contextmanager
def _workspace(chosen: Path | None) -> Iterator[Path]:
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        yield chosen
        return
    path = Path(tempfile.mkdtemp(prefix="bridge-runner-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _pump(stream: TextIO, say: Callable[[str, str], None]) -> None:
    for line in stream:
        say("[runner]", line.rstrip("\n"))


def _isolated_environment() -> dict[str, str]:
    """This machine's environment without what could send the demo elsewhere: AWS profiles,
    config files and endpoints (a profile that does not exist here would stop boto3 cold),
    and the runner's own settings (a metrics address, a state directory)."""
    dropped = ("AWS_", "BRIDGE_RUNNER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**env, **DEMO_ENV}


def run(args: argparse.Namespace) -> int:
    # The demo talks only to its own emulator: boto3 in this process must not read a
    # profile or an endpoint from the environment either.
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(DEMO_ENV)
    say = _Printer(sys.stdout)
    deadline = time.monotonic() + args.duration
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: _set_from_a_thread(interrupted))
    emulator, endpoint = _start_emulator()
    sink = _start_sink(say)
    runner: subprocess.Popen[str] | None = None
    try:
        with _workspace(args.dir) as work:
            say("[demo]  ", f"Cognito emulator on {endpoint}; sink on port {sink.server_port}")
            say("[demo]  ", f"working directory {work}")
            client = _cognito(endpoint)
            pool = _seeded_pool(client, say)
            bridge_file = work / "bridges" / "demo.yaml"
            _write_bridge(
                bridge_file, pool, endpoint, f"http://127.0.0.1:{sink.server_port}/events"
            )
            say("[demo]  ", f"bridge written to {bridge_file}; starting the runner")
            runner = _start_runner(work)
            assert runner.stdout is not None
            pump = threading.Thread(target=_pump, args=(runner.stdout, say), daemon=True)
            pump.start()
            _script(client, pool["Id"], say, sink.arrivals, interrupted)
            if not interrupted.is_set():
                duration_over = deadline <= time.monotonic()
                say("[demo]  ", _waiting_message(args.duration, duration_over=duration_over))
            sink.arrivals.wait_for(EXPECTED_EVENTS, SETTLE_WAIT, interrupted)
            _wait(deadline, interrupted)
            if interrupted.is_set():
                say("[demo]  ", "Ctrl-C: stopping")
            _stop_runner(runner, say)
            pump.join(5)
            runner.stdout.close()
            runner = None
            _show_status(bridge_file, say)
            client.close()
    finally:
        if runner is not None:
            _stop_runner(runner, say)
            if runner.stdout is not None:
                runner.stdout.close()
        sink.shutdown()
        sink.server_close()
        emulator.stop()
        signal.signal(signal.SIGINT, previous)
    say(
        "[demo]  ",
        "stopped; everything it started is gone"
        + ("" if args.dir is None else f" (kept {args.dir})"),
    )
    return EXIT_OK


def _seeded_pool(client: Any, say: Callable[[str, str], None]) -> dict[str, Any]:
    pool: dict[str, Any] = client.create_user_pool(PoolName="demo")["UserPool"]
    for name in SEED_USERS:
        client.admin_create_user(
            UserPoolId=pool["Id"],
            Username=name,
            UserAttributes=[{"Name": "email", "Value": f"{name}@example.com"}],
            MessageAction="SUPPRESS",
        )
    say("[demo]  ", f"pool {pool['Id']} seeded with {', '.join(SEED_USERS)}")
    return pool


def _write_bridge(bridge_file: Path, pool: dict[str, Any], endpoint: str, sink_url: str) -> None:
    bridge_file.parent.mkdir(exist_ok=True)
    bridge_file.write_text(
        BRIDGE_TEMPLATE.format(arn=pool["Arn"], endpoint=endpoint, sink=sink_url)
    )


def _start_runner(work: Path) -> subprocess.Popen[str]:
    """`bridge-runner run` on the demo's bridges, in its own session (Ctrl-C reaches the demo,
    which stops the runner itself), with an environment that names no real AWS account."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "run",
            str(work / "bridges"),
            "--state-dir",
            str(work / "state"),
            "--secrets-dir",
            str(work / "secrets"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**_isolated_environment(), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def _script(
    client: Any,
    pool_id: str,
    say: Callable[[str, str], None],
    arrivals: _Arrivals,
    interrupted: threading.Event,
) -> None:
    steps: list[tuple[str, Callable[[], object]]] = [
        (
            "create user dave",
            lambda: client.admin_create_user(
                UserPoolId=pool_id,
                Username="dave",
                MessageAction="SUPPRESS",
                UserAttributes=[{"Name": "email", "Value": "dave@example.com"}],
            ),
        ),
        (
            "change alice's email",
            lambda: client.admin_update_user_attributes(
                UserPoolId=pool_id,
                Username="alice",
                UserAttributes=[{"Name": "email", "Value": "alice@example.org"}],
            ),
        ),
        ("disable bob", lambda: client.admin_disable_user(UserPoolId=pool_id, Username="bob")),
        ("delete carol", lambda: client.admin_delete_user(UserPoolId=pool_id, Username="carol")),
    ]
    say(
        "[demo]  ",
        "waiting for the first poll: one event per seeded user (initialSync: emit); Ctrl-C to stop",
    )
    arrivals.wait_for(len(SEED_USERS), BACKFILL_WAIT, interrupted)
    for text, step in steps:
        if interrupted.is_set():
            return
        say("[demo]  ", text)
        expected = arrivals.count + 1
        step()
        arrivals.wait_for(expected, STEP_WAIT, interrupted)


def _waiting_message(duration: float, *, duration_over: bool) -> str:
    """What the demo waits for once its changes are made (the runner keeps polling meanwhile).

    `duration_over`: `--duration` is over before the changes are made, so the demo waits only
    for the last change's event.
    """
    if duration_over:
        waiting = "waiting for the last change's event"
    else:
        waiting = (
            f"the runner keeps polling until {format_duration(duration)} have passed (--duration)"
        )
    return f"all changes made; {waiting}; Ctrl-C to stop"


def _set_from_a_thread(event: threading.Event) -> None:
    """Set `event` from a signal handler. The handler runs in the main thread between two
    bytecodes, which may be inside `event.wait()` while it holds the event's own lock (not
    reentrant): setting it there would wait for that lock forever. A short-lived thread
    sets it as soon as the main thread lets go."""
    threading.Thread(target=event.set, name="ctrl-c", daemon=True).start()


def _wait(until: float, interrupted: threading.Event) -> None:
    interrupted.wait(max(0.0, until - time.monotonic()))


def _stop_runner(runner: subprocess.Popen[str], say: Callable[[str, str], None]) -> None:
    if runner.poll() is None:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(20)
        except subprocess.TimeoutExpired:
            say("[demo]  ", "the runner did not stop in time; killing it")
            runner.kill()
            runner.wait(5)


def _show_status(bridge_file: Path, say: Callable[[str, str], None]) -> None:
    status = bridge_file.with_name(bridge_file.stem + ".status.json")
    try:
        doc = json.loads(status.read_text())
    except (OSError, ValueError) as exc:
        raise BridgeRunnerError(f"no status file was written at {status}: {exc}") from None
    say("[demo]  ", f"status file {status.name}:")
    for cond in doc["conditions"]:
        say("[status]", f"{cond['type']:<12} {cond['status']:<6} {cond['reason']}")
    sink = doc["sink"]
    say(
        "[status]",
        f"delivered={sink['delivered']} pending={sink['pending']} "
        f"usersTracked={doc['source']['usersTracked']}",
    )
