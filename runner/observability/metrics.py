"""Prometheus metrics of a running runner, read from its own state at scrape time (DESIGN §5).

    take_snapshot(reconciler, budgets) -> RunnerSnapshot   copy what the metrics need (on the loop)
    metric_families(snapshot) -> list[Metric]              pure: the snapshot as metric families
    RunnerCollector(snapshot_source)                       a prometheus_client Collector

Nothing is counted twice: every value comes from the counters the pollers keep for the status
files (`runner.status.counters`), the reconciler, and the shared request budgets. A poller restarted
after an edit starts its counters from zero, which Prometheus treats as a counter reset.
No label or value is ever a secret: labels are bridge ids, condition names and statuses,
AWS account ids and regions; free-text errors are not exported at all.

Per bridge (label `bridge`): scans_total, pages_read_total, throttles_total, users_tracked,
last_successful_poll_timestamp_seconds, last_scan_duration_seconds, scan_period_seconds,
poll_interval_seconds, scan_keeping_up (0/1), events_emitted_total,
events_delivered_total, events_retried_total, events_dead_lettered_total, events_pending,
events_parked, bridge_condition{condition,status}. Runner: build_info, reconciles_total,
pollers_running, bridges{condition,status}, aws_requests_total and
aws_rate_limit_wait_seconds_total{account,region}. All prefixed `bridge_runner_`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from runner import __version__
from runner.sources.cognito.budget import BucketStats, RequestBudgets
from runner.status.counters import SinkCounters, SourceCounters
from runner.status.readiness import CONDITION_STATUSES, CONDITION_TYPES, BridgeReadiness

PREFIX = "bridge_runner_"


# --- what the metrics read ----------------------------------------------------------------


class PollerView(Protocol):
    @property
    def source_counters(self) -> SourceCounters: ...

    @property
    def sink_counters(self) -> SinkCounters: ...


class RunningView(Protocol):
    @property
    def poller(self) -> PollerView: ...


@runtime_checkable
class ReconcilerView(Protocol):
    """What metrics and readiness read from `runner.reconcile.reconciler.Reconciler`."""

    @property
    def running(self) -> Mapping[str, RunningView]: ...

    @property
    def reconciles(self) -> int: ...

    def readiness(self) -> Mapping[str, BridgeReadiness]:
        """Each selected bridge's readiness, as its status file was last rendered from."""
        ...


class Counters(NamedTuple):
    source: SourceCounters
    sink: SinkCounters


@dataclass(frozen=True, slots=True)
class BridgeSample:
    bridge_id: str
    counters: Counters | None  # None while no poller runs (invalid, suspended)
    readiness: BridgeReadiness | None  # None while no status has been rendered for it

    @property
    def conditions(self) -> Mapping[str, str]:
        """condition type -> "True" | "False" | "Unknown"."""
        found = self.readiness.conditions if self.readiness is not None else ()
        return {c.type: c.status for c in found}


@dataclass(frozen=True, slots=True)
class RunnerSnapshot:
    reconciles: int
    pollers_running: int
    bridges: tuple[BridgeSample, ...]
    rate_limits: Mapping[tuple[str, str], BucketStats]  # (account, region) -> usage

    @property
    def started(self) -> bool:
        """The first reconcile has finished (before it, no bridge is known yet)."""
        return self.reconciles > 0

    @property
    def not_ready(self) -> Mapping[str, str]:
        """bridge id -> why, for the bridges that are not Ready. A suspended bridge is not
        polled on purpose, which is no reason to call the runner unready."""
        return {
            sample.bridge_id: sample.readiness.why_not
            for sample in self.bridges
            if sample.readiness is not None
            and not sample.readiness.ready
            and not sample.readiness.suspended
        }


def take_snapshot(
    reconciler: ReconcilerView, budgets: RequestBudgets | None = None
) -> RunnerSnapshot:
    """Copy what the metrics and readiness need. Call it on the event loop's thread: the
    reconciler and its pollers change their state there, so reading it there needs no lock."""
    readiness = reconciler.readiness()
    samples = []
    for bridge_id in sorted(set(readiness) | set(reconciler.running)):
        item = reconciler.running.get(bridge_id)
        counters = (
            Counters(copy.copy(item.poller.source_counters), copy.copy(item.poller.sink_counters))
            if item is not None
            else None
        )
        samples.append(BridgeSample(bridge_id, counters, readiness.get(bridge_id)))
    return RunnerSnapshot(
        reconciles=reconciler.reconciles,
        pollers_running=len(reconciler.running),
        bridges=tuple(samples),
        rate_limits=budgets.stats() if budgets is not None else {},
    )


# --- the metrics ----------------------------------------------------------------------------


class _PerBridge(NamedTuple):
    name: str  # without the prefix; a counter's without `_total` (the library adds it)
    counter: bool  # a counter (only goes up) rather than a gauge
    help: str
    value: Callable[[SourceCounters, SinkCounters], float | None]  # None: no sample


def _last_success(source: SourceCounters, _: SinkCounters) -> float | None:
    when = source.last_successful_poll_time
    return when.timestamp() if when is not None else None


def _keeping_up(source: SourceCounters, _: SinkCounters) -> float | None:
    return None if source.keeping_up is None else float(source.keeping_up)


PER_BRIDGE: tuple[_PerBridge, ...] = (
    _PerBridge("scans", True, "Complete scans of the user pool.", lambda so, _: so.scans),
    _PerBridge("pages_read", True, "ListUsers pages read.", lambda so, _: so.pages_read),
    _PerBridge("throttles", True, "Throttled Cognito requests.", lambda so, _: so.throttles),
    _PerBridge(
        "users_tracked", False, "Users at the last complete scan.", lambda so, _: so.users_tracked
    ),
    _PerBridge(
        "last_successful_poll_timestamp_seconds",
        False,
        "When the last complete scan ended (Unix time); absent until one has.",
        _last_success,
    ),
    _PerBridge(
        "last_scan_duration_seconds",
        False,
        "How long the last complete scan took.",
        lambda so, _: so.last_scan_duration,
    ),
    _PerBridge(
        "scan_period_seconds",
        False,
        "Time between the starts of the last two consecutive complete scans; absent until "
        "there are two.",
        lambda so, _: so.scan_period,
    ),
    _PerBridge(
        "poll_interval_seconds",
        False,
        "The bridge's pollInterval; absent until a scan has completed.",
        lambda so, _: so.poll_interval,
    ),
    _PerBridge(
        "scan_keeping_up",
        False,
        "1 while complete scans keep up with pollInterval, 0 when the request budget does "
        "not let them; absent until a scan has completed.",
        _keeping_up,
    ),
    _PerBridge("events_emitted", True, "Events committed to the outbox.", lambda _, si: si.emitted),
    _PerBridge("events_delivered", True, "Events the sink accepted.", lambda _, si: si.delivered),
    _PerBridge(
        "events_retried",
        True,
        "Event deliveries retried after a failure.",
        lambda _, si: si.retried,
    ),
    _PerBridge(
        "events_dead_lettered",
        True,
        "Events given up on and sent to the dead-letter sink.",
        lambda _, si: si.dead_lettered,
    ),
    _PerBridge(
        "events_pending",
        False,
        "Events waiting in the outbox for delivery.",
        lambda _, si: si.pending,
    ),
    _PerBridge(
        "events_parked",
        False,
        "Events parked in the outbox: given up on, with no dead-letter sink to take them.",
        lambda _, si: si.parked,
    ),
)


def metric_families(snapshot: RunnerSnapshot) -> list[Metric]:
    """The snapshot as Prometheus metric families (pure)."""
    families: list[Metric] = [
        InfoMetricFamily(f"{PREFIX}build", "The bridge-runner version.", {"version": __version__}),
        CounterMetricFamily(
            f"{PREFIX}reconciles", "Reconciles of the bridges directory.", snapshot.reconciles
        ),
        GaugeMetricFamily(
            f"{PREFIX}pollers_running", "Bridges with a running poller.", snapshot.pollers_running
        ),
    ]
    families.extend(_condition_families(snapshot.bridges))
    for spec in PER_BRIDGE:
        family_type = CounterMetricFamily if spec.counter else GaugeMetricFamily
        family = family_type(PREFIX + spec.name, spec.help, labels=["bridge"])
        for sample in snapshot.bridges:
            value = spec.value(*sample.counters) if sample.counters is not None else None
            if value is not None:
                family.add_metric([sample.bridge_id], value)
        families.append(family)
    families.extend(_rate_limit_families(snapshot.rate_limits))
    return families


def _condition_families(bridges: tuple[BridgeSample, ...]) -> list[Metric]:
    # Every (condition, status) pair is exported, 0 included, so that a query or an alert on
    # `bridges{condition="Ready",status="False"}` sees 0 rather than no data.
    counts: dict[tuple[str, str], int] = dict.fromkeys(
        ((kind, status) for kind in CONDITION_TYPES for status in CONDITION_STATUSES), 0
    )
    per_bridge = GaugeMetricFamily(
        f"{PREFIX}bridge_condition",
        "1 for each condition of each bridge, labelled with its current status.",
        labels=["bridge", "condition", "status"],
    )
    for sample in bridges:
        for kind, status in sample.conditions.items():
            per_bridge.add_metric([sample.bridge_id, kind, status], 1)
            if (kind, status) in counts:
                counts[kind, status] += 1
    by_condition = GaugeMetricFamily(
        f"{PREFIX}bridges",
        "Selected bridges by condition and status (as in their status files).",
        labels=["condition", "status"],
    )
    for (kind, status), count in counts.items():
        by_condition.add_metric([kind, status], count)
    return [by_condition, per_bridge]


def _rate_limit_families(stats: Mapping[tuple[str, str], BucketStats]) -> list[Metric]:
    labels = ["account", "region"]
    requests = CounterMetricFamily(
        f"{PREFIX}aws_requests",
        "Cognito requests granted by the shared request budget (--aws-rps).",
        labels=labels,
    )
    waited = CounterMetricFamily(
        f"{PREFIX}aws_rate_limit_wait_seconds",
        "Time Cognito requests waited for the shared request budget (--aws-rps).",
        labels=labels,
    )
    for (account, region), bucket in sorted(stats.items()):
        requests.add_metric([account, region], bucket.acquired)
        waited.add_metric([account, region], bucket.waited_seconds)
    return [requests, waited]


class RunnerCollector:
    """A prometheus_client Collector: each scrape takes a fresh snapshot from the source."""

    def __init__(self, snapshot_source: Callable[[], RunnerSnapshot]) -> None:
        self._snapshot_source = snapshot_source

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(self._snapshot_source())
