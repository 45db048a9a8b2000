"""Metrics and health endpoints (issue 5, item 4): the collector over a Reconciler-like object,
the server in-process, and `bridge-runner run --metrics-addr` as a subprocess over HTTP."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import runner.observability.endpoints as metrics_server
from runner.cli.main import build_parser, main
from runner.observability.endpoints import ListenAddress, MetricsServer, parse_listen_address
from runner.observability.metrics import ReconcilerView, RunnerCollector, take_snapshot
from runner.sources.cognito.budget import RequestBudgets
from runner.status.counters import SinkCounters, SourceCounters
from runner.status.document import render_document
from runner.status.readiness import (
    BridgeReadiness,
    Condition,
    decide_readiness,
    readiness_from_document,
)
from tests.peers.moto_server import CognitoAdmin, MotoServer, PoolInfo
from tests.peers.runner_process import (
    RunnerProcess,
    bridge_yaml,
    condition,
    read_status,
    wait_until,
)
from tests.peers.sink_server import SinkServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ACCOUNT = "123456789012"


def parse_metrics(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# --- a Reconciler-like object, with really decided readiness ---------------------------------


@dataclass
class FakePoller:
    source_counters: SourceCounters
    sink_counters: SinkCounters


@dataclass
class FakeRunning:
    poller: FakePoller


@dataclass
class TypedFakeReconciler:
    """A Reconciler that hands its typed readiness (`ReconcilerView.readiness()`)."""

    running: dict[str, FakeRunning] = field(default_factory=dict)
    decided: dict[str, BridgeReadiness] = field(default_factory=dict)
    reconciles: int = 0

    def readiness(self) -> dict[str, BridgeReadiness]:
        return self.decided


def decided(*, running: bool, suspended: bool = False) -> BridgeReadiness:
    """A bridge's readiness as the reconciler decides it: running and delivering, or not."""
    up = Condition("SourceReady", "True", "Polling", "1 user tracked")
    return decide_readiness(
        applied_digest="d" * 64 if running else None,
        source=up if running else None,
        sink=Condition("SinkReady", "True", "Delivering", "ok") if running else None,
        suspended=suspended,
    )


def document(bridge_id: str, readiness: BridgeReadiness) -> dict[str, object]:
    """The status document rendered from `readiness`, as the reconciler writes it."""
    return render_document(
        readiness,
        bridge_id=bridge_id,
        file=f"{bridge_id}.yaml",
        observed_digest="d" * 64,
        applied_digest="d" * 64,
        observed_revision=None,
        now=datetime.now(UTC),
    )


LAST_POLL = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def three_bridges() -> TypedFakeReconciler:
    """`team/a` runs and is Ready; `b` is suspended; `c` has no poller (Ready Unknown)."""
    source = SourceCounters(
        last_successful_poll_time=LAST_POLL,
        users_tracked=7,
        pages_read=3,
        scans=2,
        last_scan_duration=0.25,
        throttles=1,
        last_error="secret-looking text must not be exported",
    )
    sink = SinkCounters(delivered=5, pending=2, retried=4, dead_lettered=1, parked=3, emitted=9)
    reconciler = TypedFakeReconciler(reconciles=4)
    reconciler.running["team/a"] = FakeRunning(FakePoller(source, sink))
    reconciler.decided["team/a"] = decided(running=True)
    reconciler.decided["b"] = decided(running=False, suspended=True)
    reconciler.decided["c"] = decided(running=False)
    return reconciler


def test_parse_listen_address() -> None:
    assert parse_listen_address("0.0.0.0:9090") == ListenAddress("0.0.0.0", 9090)
    assert parse_listen_address("127.0.0.1:0") == ListenAddress("127.0.0.1", 0)
    assert parse_listen_address(":9090") == ListenAddress("", 9090)
    assert parse_listen_address("[::1]:9090") == ListenAddress("::1", 9090)
    assert str(ListenAddress("::1", 9090)) == "[::1]:9090"
    for bad in ("9090", "host:", "host:http", "::1:9090", "127.0.0.1:70000", ""):
        with pytest.raises(ValueError):
            parse_listen_address(bad)


def test_collector_reads_the_reconciler_state() -> None:
    reconciler = three_bridges()
    clock = [100.0]
    budgets = RequestBudgets(10.0, margin=0.0, clock=lambda: clock[0])
    bucket = budgets.for_account(ACCOUNT, "us-west-2")
    for _ in range(3):
        bucket.reserve()  # at 10/s from one instant: waits of 0, 0.1 and 0.2 s
    registry = CollectorRegistry()
    registry.register(RunnerCollector(lambda: take_snapshot(reconciler, budgets)))
    text = generate_latest(registry).decode()
    samples = parse_metrics(text)

    a = {"bridge": "team/a"}
    expected = {
        "bridge_runner_scans_total": 2,
        "bridge_runner_pages_read_total": 3,
        "bridge_runner_throttles_total": 1,
        "bridge_runner_users_tracked": 7,
        "bridge_runner_last_successful_poll_timestamp_seconds": LAST_POLL.timestamp(),
        "bridge_runner_last_scan_duration_seconds": 0.25,
        "bridge_runner_events_emitted_total": 9,
        "bridge_runner_events_delivered_total": 5,
        "bridge_runner_events_retried_total": 4,
        "bridge_runner_events_dead_lettered_total": 1,
        "bridge_runner_events_pending": 2,
        "bridge_runner_events_parked": 3,
    }
    assert {name: value(samples, name, **a) for name in expected} == expected
    # Bridges without a poller have conditions but no counters (not zeros that look real).
    assert value(samples, "bridge_runner_scans_total", bridge="c") is None
    assert value(samples, "bridge_runner_reconciles_total") == 4
    assert value(samples, "bridge_runner_pollers_running") == 1
    assert value(samples, "bridge_runner_bridges", condition="Ready", status="True") == 1
    assert value(samples, "bridge_runner_bridges", condition="Ready", status="False") == 1  # b
    assert value(samples, "bridge_runner_bridges", condition="Ready", status="Unknown") == 1  # c
    assert value(samples, "bridge_runner_bridges", condition="Valid", status="True") == 3
    ready_c = {"bridge": "c", "condition": "Ready", "status": "Unknown"}
    assert value(samples, "bridge_runner_bridge_condition", **ready_c) == 1
    region = {"account": ACCOUNT, "region": "us-west-2"}
    assert value(samples, "bridge_runner_aws_requests_total", **region) == 3
    assert value(samples, "bridge_runner_aws_rate_limit_wait_seconds_total", **region) == (
        pytest.approx(0.3)
    )
    assert value(samples, "bridge_runner_build_info", version="0.1.0") == 1
    assert "secret-looking" not in text


def test_the_scan_period_and_whether_it_keeps_up_are_gauges_per_bridge() -> None:
    reconciler = three_bridges()
    behind = SourceCounters()
    for start, end in ((0.0, 12.0), (12.0, 24.5)):  # 5 s asked for, 12 s achieved
        behind.scan_started(start)
        behind.scan_completed(end, 5.0)
    on_time = SourceCounters()
    on_time.scan_started(0.0)
    on_time.scan_completed(0.2, 30.0)  # one scan so far: no period, but in time
    for bridge_id, counters in (("behind", behind), ("on-time", on_time)):
        reconciler.running[bridge_id] = FakeRunning(FakePoller(counters, SinkCounters()))
        reconciler.decided[bridge_id] = decided(running=True)
    registry = CollectorRegistry()
    registry.register(RunnerCollector(lambda: take_snapshot(reconciler)))
    samples = parse_metrics(generate_latest(registry).decode())

    def gauges(bridge: str) -> tuple[float | None, ...]:
        return tuple(
            value(samples, f"bridge_runner_{name}", bridge=bridge)
            for name in ("scan_period_seconds", "poll_interval_seconds", "scan_keeping_up")
        )

    assert gauges("behind") == (12.0, 5.0, 0.0)
    assert gauges("on-time") == (None, 30.0, 1.0)
    assert gauges("team/a") == (None, None, None)  # nothing known: no sample, not a 0


def test_the_openmetrics_exposition_is_well_formed() -> None:
    # The strict OpenMetrics parser refuses what promtool would: bad names, types, units,
    # a counter without `_total`, a family given twice.
    from prometheus_client.openmetrics.exposition import generate_latest as generate_om
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as parse_om,
    )

    reconciler = three_bridges()
    reconciler.running["team/a"].poller.source_counters.scan_started(0.0)
    reconciler.running["team/a"].poller.source_counters.scan_completed(1.0, 5.0)
    registry = CollectorRegistry()
    registry.register(RunnerCollector(lambda: take_snapshot(reconciler, RequestBudgets(10.0))))
    families = list(parse_om(generate_om(registry).decode()))
    names = [family.name for family in families]
    assert len(names) == len(set(names))
    assert {"bridge_runner_scan_period_seconds", "bridge_runner_scan_keeping_up"} <= set(names)
    for family in families:
        assert family.documentation, family.name
        if family.name.endswith("_seconds"):
            assert family.unit in ("", "seconds")


def test_suspended_bridges_do_not_make_the_runner_unready() -> None:
    snapshot = take_snapshot(three_bridges())
    assert set(snapshot.not_ready) == {"c"}
    assert snapshot.not_ready["c"].startswith("NotRunning:")


def test_readiness_read_from_documents_agrees_with_the_reconcilers_rule() -> None:
    # What `status --wait` reads back from a status file is what the reconciler decided.
    reconciler = three_bridges()
    decided_here = reconciler.readiness()
    from_documents = {
        bid: readiness_from_document(document(bid, r)) for bid, r in decided_here.items()
    }
    not_ready = {bid: r.why_not for bid, r in from_documents.items() if not r.ready}
    assert not_ready == {bid: r.why_not for bid, r in decided_here.items() if not r.ready}


def test_a_typed_reconciler_gives_the_same_snapshot_and_metrics() -> None:
    # The metrics of the decided readiness are those its status documents show.
    rendered = three_bridges()
    from_documents = TypedFakeReconciler(running=rendered.running, reconciles=rendered.reconciles)
    from_documents.decided = {
        bid: readiness_from_document(document(bid, r)) for bid, r in rendered.decided.items()
    }
    typed = TypedFakeReconciler(
        running=from_documents.running, reconciles=from_documents.reconciles
    )
    typed.decided = {
        "team/a": decide_readiness(
            applied_digest="d" * 64,
            source=Condition("SourceReady", "True", "Polling", "1 user tracked"),
            sink=Condition("SinkReady", "True", "Delivering", "ok"),
        ),
        "b": decide_readiness(applied_digest=None, suspended=True),
        "c": decide_readiness(applied_digest=None),
    }
    assert isinstance(typed, ReconcilerView) and isinstance(from_documents, ReconcilerView)
    assert take_snapshot(typed) == take_snapshot(from_documents)

    def exposition(view: ReconcilerView) -> str:
        registry = CollectorRegistry()
        registry.register(RunnerCollector(lambda: take_snapshot(view)))
        return generate_latest(registry).decode()

    assert exposition(typed) == exposition(from_documents)


# --- the server in this process -----------------------------------------------------------


def server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "metrics-server"]


def test_server_endpoints_and_a_clean_stop() -> None:
    reconciler = TypedFakeReconciler()
    now = [1000.0]

    async def scenario() -> int:
        server = MetricsServer(
            ListenAddress("127.0.0.1", 0),
            reconciler,
            clock=lambda: now[0],
            heartbeat_interval=3600.0,  # the test moves the clock; no beat catches up with it
        )
        await server.start()
        port = server.bound.port
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base) as http:
                starting = await http.get("/readyz")
                assert (starting.status_code, starting.text) == (503, "starting\n")

                reconciler.reconciles = 1
                ok = await http.get("/readyz")
                assert (ok.status_code, ok.text) == (200, "ok: 0 bridges Ready\n")

                reconciler.decided["team/x"] = decided(running=False)
                failing = await http.get("/readyz")
                assert failing.status_code == 503
                assert failing.text.splitlines() == [
                    "not ready: 1 of 1 bridge",
                    "team/x: NotRunning: SourceReady: no version of this bridge runs",
                ]
                as_json = await http.get("/readyz", headers={"Accept": "application/json"})
                assert as_json.headers["content-type"] == "application/json"
                assert as_json.json()["notReady"] == {
                    "team/x": "NotRunning: SourceReady: no version of this bridge runs"
                }

                metrics = await http.get("/metrics")
                assert metrics.status_code == 200
                assert metrics.headers["content-type"].startswith("text/plain")
                samples = parse_metrics(metrics.text)
                assert value(samples, "bridge_runner_reconciles_total") == 1
                openmetrics = await http.get(
                    "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
                )
                assert openmetrics.text.endswith("# EOF\n")

                healthy = await http.get("/healthz")
                assert (healthy.status_code, healthy.text) == (200, "ok\n")
                now[0] += 31.0  # the loop has not beaten for 31 s
                stuck = await http.get("/healthz")
                assert (stuck.status_code, stuck.text) == (503, "event loop stuck for 31s\n")

                assert (await http.get("/nope")).status_code == 404
        finally:
            await server.stop()
        return port

    assert server_threads() == []
    port = asyncio.run(scenario())
    assert server_threads() == []
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def raw_request(port: int, request: str) -> tuple[str, bytes]:
    """Send `request` on a plain socket; the response's head, and every byte after it until
    the server closes (a client library would hide a body sent after a HEAD)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode("ascii"))
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return head.decode("iso-8859-1"), rest


def header(head: str, name: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def test_readyz_is_never_ok_while_the_bridges_directory_is_missing(tmp_path: Path) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    # The runner reads a missing directory as one without bridges: 0 of 0 Ready.
    reconciler = TypedFakeReconciler(reconciles=5)

    async def scenario() -> tuple[tuple[int, str], tuple[int, str]]:
        server = MetricsServer(ListenAddress("127.0.0.1", 0), reconciler, bridges_dir=bridges)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.bound.port}") as http:
                present = await http.get("/readyz")
                bridges.rmdir()  # a volume unmounted, a git-sync link pointing nowhere
                missing = await http.get("/readyz")
        finally:
            await server.stop()
        return (present.status_code, present.text), (missing.status_code, missing.text)

    present, missing = asyncio.run(scenario())
    assert present == (200, "ok: 0 bridges Ready\n")
    assert missing == (503, f"not ready: the bridges directory {bridges} is missing\n")


def test_metrics_answer_head_and_gzip_as_prometheus_client_does() -> None:
    reconciler = TypedFakeReconciler(reconciles=3)

    async def scenario() -> None:
        server = MetricsServer(ListenAddress("127.0.0.1", 0), reconciler)
        await server.start()
        port = server.bound.port
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                plain = await http.get("/metrics", headers={"Accept-Encoding": "identity"})
                assert plain.status_code == 200
                assert "content-encoding" not in plain.headers
                assert value(parse_metrics(plain.text), "bridge_runner_reconciles_total") == 3

                # gzip when asked (Prometheus asks): the same exposition, compressed.
                async with http.stream(
                    "GET", "/metrics", headers={"Accept-Encoding": "gzip"}
                ) as zipped:
                    raw = b"".join([chunk async for chunk in zipped.aiter_raw()])
                assert zipped.status_code == 200
                assert zipped.headers["content-encoding"] == "gzip"
                assert zipped.headers["content-type"] == plain.headers["content-type"]
                assert int(zipped.headers["content-length"]) == len(raw)
                unzipped = gzip.decompress(raw).decode("utf-8")
                assert value(parse_metrics(unzipped), "bridge_runner_reconciles_total") == 3
                assert {name for name, _ in parse_metrics(unzipped)} == {
                    name for name, _ in parse_metrics(plain.text)
                }
                # What httpx sends by default ("gzip, deflate") is decoded transparently.
                default = await http.get("/metrics")
                assert default.headers["content-encoding"] == "gzip"
                assert value(parse_metrics(default.text), "bridge_runner_reconciles_total") == 3

                # OpenMetrics when the scraper asks for it, gzipped too.
                om_accept = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
                om = await http.get("/metrics", headers={"Accept": om_accept})
                assert om.headers["content-type"].startswith("application/openmetrics-text")
                assert om.headers["content-encoding"] == "gzip"
                assert om.text.endswith("# EOF\n")

                # HEAD: the GET's status and headers, no body.
                head = await http.head("/metrics", headers={"Accept-Encoding": "identity"})
                assert head.status_code == 200
                assert head.headers["content-type"] == plain.headers["content-type"]
                assert int(head.headers["content-length"]) > 0
                assert head.content == b""
                om_head = await http.head("/metrics", headers={"Accept": om_accept})
                assert om_head.headers["content-type"] == om.headers["content-type"]
                assert om_head.headers["content-encoding"] == "gzip"
                healthz = await http.head("/healthz")
                assert (healthz.status_code, healthz.headers["content-length"]) == (200, "3")
                readyz = await http.head("/readyz")
                assert readyz.status_code == 200

            # On the wire: nothing follows a HEAD's headers, whatever the encoding.
            for encoding in ("identity", "gzip"):
                request = (
                    "HEAD /metrics HTTP/1.1\r\nHost: test\r\n"
                    f"Accept-Encoding: {encoding}\r\nConnection: close\r\n\r\n"
                )
                head_text, rest = await asyncio.to_thread(raw_request, port, request)
                assert head_text.startswith("HTTP/1.0 200 "), head_text
                assert int(header(head_text, "Content-Length") or 0) > 0
                assert rest == b""
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_other_methods_are_refused_and_queries_ignored_as_before() -> None:
    """What the hand-written server answered, kept on the WSGI one: 501 with http.server's
    page for a method other than GET and HEAD; a query string changes nothing."""
    reconciler = TypedFakeReconciler(reconciles=2)

    async def scenario() -> None:
        server = MetricsServer(ListenAddress("127.0.0.1", 0), reconciler)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.bound.port}") as http:
                posted = await http.post("/metrics")
                assert posted.status_code == 501
                assert posted.reason_phrase == "Unsupported method ('POST')"
                assert posted.headers["content-type"] == "text/html;charset=utf-8"
                assert "<p>Error code: 501</p>" in posted.text
                assert posted.headers["server"] == "bridge-runner"
                queried = await http.get("/metrics?name[]=bridge_runner_build_info")
                names = {name for name, _ in parse_metrics(queried.text)}
                assert "bridge_runner_reconciles_total" in names
                assert queried.headers["cache-control"] == "no-store"
                ready = await http.get("/readyz?verbose=1")
                assert (ready.status_code, ready.text) == (200, "ok: 0 bridges Ready\n")
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_a_busy_event_loop_makes_readyz_503_not_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_server, "LOOP_ANSWER_TIMEOUT", 0.05)
    reconciler = TypedFakeReconciler(reconciles=1)

    async def scenario() -> httpx.Response:
        server = MetricsServer(ListenAddress("127.0.0.1", 0), reconciler)
        await server.start()
        answered = threading.Event()
        replies: list[httpx.Response] = []

        def ask() -> None:
            try:
                replies.append(httpx.get(f"http://127.0.0.1:{server.bound.port}/readyz"))
            finally:
                answered.set()

        asker = threading.Thread(target=ask)
        asker.start()
        answered.wait(30)  # blocks the event loop until the request has its answer
        asker.join()
        await server.stop()
        return replies[0]

    reply = asyncio.run(scenario())
    assert reply.status_code == 503
    assert reply.text == "unknown: the event loop did not answer within 0.05s\n"


def test_metrics_addr_flag_defaults_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    words = ["run", str(tmp_path)]
    monkeypatch.delenv("BRIDGE_RUNNER_METRICS_ADDR", raising=False)
    assert build_parser(words).parse_args(words).metrics_addr is None
    monkeypatch.setenv("BRIDGE_RUNNER_METRICS_ADDR", "127.0.0.1:9090")
    args = build_parser(words).parse_args(words)
    assert args.metrics_addr == ListenAddress("127.0.0.1", 9090)
    monkeypatch.setenv("BRIDGE_RUNNER_METRICS_ADDR", "9090")
    assert main(words) == 2
    assert "is not HOST:PORT" in capsys.readouterr().err


# --- `bridge-runner run --metrics-addr` over HTTP -------------------------------------------

Start = Callable[..., RunnerProcess]
SINK_TOKEN = "tok-3f9a8c1e-never-in-metrics"


def metrics_url(proc: RunnerProcess) -> str:
    proc.wait_for_log(r"serving http://127\.0\.0\.1:\d+/metrics")
    line = next(line for line in proc.lines if "serving http://" in line)
    return line.split("serving ", 1)[1].split("/metrics", 1)[0]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


def test_endpoints_of_a_running_runner(
    tmp_path: Path,
    runner_process: Start,
    moto_server: MotoServer,
    cognito_admin: CognitoAdmin,
    cognito_pool: Callable[..., PoolInfo],
    sink_server: SinkServer,
    http: httpx.Client,
) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    pool = cognito_pool()
    good, bad = bridges / "good.yaml", bridges / "bad.yaml"
    sink_line = f"    uri: {sink_server.url}\n"
    with_header = (
        sink_line + "    headers: {Authorization: {valueFromEnv: BRIDGE_VAR_SINK_TOKEN}}\n"
    )
    good_text = bridge_yaml(pool, moto_server.endpoint, sink_server.url)
    good.write_text(good_text.replace(sink_line, with_header))
    # Nothing listens on port 9 (discard): this bridge's source never becomes Ready.
    bad.write_text(bridge_yaml(pool, "http://127.0.0.1:9", sink_server.url))
    started = time.time()
    proc = runner_process(
        "run",
        str(bridges),
        "--state-dir",
        str(tmp_path / "state"),
        "--metrics-addr",
        "127.0.0.1:0",
        extra_env={"BRIDGE_VAR_SINK_TOKEN": SINK_TOKEN},
    )
    base = metrics_url(proc)

    health = http.get(f"{base}/healthz")
    assert (health.status_code, health.text) == (200, "ok\n")
    head = http.head(f"{base}/metrics")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"].startswith("text/plain")
    assert head.headers["content-encoding"] == "gzip"  # httpx accepts gzip by default

    def good_ready_bad_failing() -> bool:
        return (
            condition(read_status(good), "Ready").get("status") == "True"
            and condition(read_status(bad), "SourceReady").get("status") == "False"
        )

    wait_until(good_ready_bad_failing, timeout=60, what="good Ready, bad failing")
    ready = http.get(f"{base}/readyz")
    assert ready.status_code == 503
    summary, *reasons = ready.text.splitlines()
    assert summary == "not ready: 1 of 2 bridges"
    assert len(reasons) == 1 and reasons[0].startswith("bad: ")

    cognito_admin.create_user(pool.id, "alice")

    def scrape() -> Samples:
        reply = http.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"})
        assert reply.status_code == 200
        assert reply.headers["content-encoding"] == "gzip"
        assert SINK_TOKEN not in reply.text
        return parse_metrics(reply.text)

    def delivered() -> Samples | None:
        samples = scrape()
        return samples if value(samples, "bridge_runner_events_delivered_total", **g) else None

    g = {"bridge": "good"}
    samples = wait_until(delivered, what="alice's event counted as delivered")
    assert value(samples, "bridge_runner_events_delivered_total", **g) == 1
    assert value(samples, "bridge_runner_events_emitted_total", **g) == 1
    assert value(samples, "bridge_runner_users_tracked", **g) == 1
    assert (value(samples, "bridge_runner_scans_total", **g) or 0) >= 1
    last_poll = value(samples, "bridge_runner_last_successful_poll_timestamp_seconds", **g)
    assert last_poll is not None and started - 1 <= last_poll <= time.time()
    assert value(samples, "bridge_runner_scans_total", bridge="bad") == 0
    assert value(samples, "bridge_runner_pollers_running") == 2
    assert (value(samples, "bridge_runner_reconciles_total") or 0) >= 1
    assert value(samples, "bridge_runner_bridges", condition="Ready", status="True") == 1
    assert value(samples, "bridge_runner_bridges", condition="Ready", status="False") == 1
    region = {"account": pool.account, "region": pool.region}
    assert (value(samples, "bridge_runner_aws_requests_total", **region) or 0) >= 1
    assert [e.get_data()["Username"] for e in sink_server.events()] == ["alice"]  # type: ignore[index]

    bad.unlink()
    wait_until(lambda: http.get(f"{base}/readyz").status_code == 200, what="/readyz 200")
    assert http.get(f"{base}/readyz").text == "ok: 1 bridge Ready\n"
    assert SINK_TOKEN not in proc.log
    assert proc.terminate() == 0
    with pytest.raises(httpx.ConnectError):
        http.get(f"{base}/healthz")


def test_an_address_in_use_is_a_usage_error(tmp_path: Path, runner_process: Start) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        state = str(tmp_path / "state")
        address = f"127.0.0.1:{port}"
        proc = runner_process(
            "run", "--once", str(bridges), "--state-dir", state, "--metrics-addr", address
        )
        assert proc.proc.wait(60) == 2
    proc.terminate()
    assert f"--metrics-addr 127.0.0.1:{port}: cannot listen: Address already in use" in proc.log
