"""Readiness as typed values (runner.status.readiness): decided once, rendered into the status
document, and read back from one into the same values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runner.model import Problem
from runner.secrets.redaction import Redactor
from runner.status.document import render_document
from runner.status.readiness import (
    BridgeReadiness,
    Condition,
    decide_readiness,
    readiness_from_document,
    sink_ready_or_idle,
)
from tests.builders import render_status

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
DIGEST = "a" * 64
ERROR = Problem("signups.yaml", 7, 9, "spec.sink.uri", "must be an http(s) or file: URI")
POLLING = Condition("SourceReady", "True", "Polling", "1 user tracked")
DELIVERING = Condition("SinkReady", "True", "Delivering", "the sink accepts events")


def statuses(readiness: BridgeReadiness) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in readiness.conditions}


def test_a_running_valid_bridge_is_ready_and_says_nothing_against_it() -> None:
    readiness = decide_readiness(
        problems=(), applied_digest=DIGEST, source=POLLING, sink=DELIVERING
    )
    assert readiness.ready and not readiness.suspended
    assert readiness.why_not == ""
    assert [c.type for c in readiness.conditions] == ["Valid", "SourceReady", "SinkReady", "Ready"]
    assert readiness.ready_condition == Condition(
        "Ready", "True", "Ready", "polling and delivering"
    )
    assert readiness.condition("SinkReady") == DELIVERING
    with pytest.raises(KeyError):
        readiness.condition("Healthy")


def test_ready_takes_the_first_failing_input_false_before_unknown() -> None:
    waiting = Condition("SourceReady", "Unknown", "NotPolledYet", "not polled yet")
    refused = Condition("SinkReady", "False", "EventRefused", "HTTP 400")
    readiness = decide_readiness(problems=(), applied_digest=DIGEST, source=waiting, sink=refused)
    assert not readiness.ready
    assert readiness.ready_condition == Condition(
        "Ready", "False", "EventRefused", "SinkReady: HTTP 400"
    )
    assert readiness.why_not == "EventRefused: SinkReady: HTTP 400"


def test_nothing_running_and_suspended_and_invalid() -> None:
    idle = decide_readiness(problems=(), applied_digest=None)
    assert statuses(idle)["Ready"] == ("Unknown", "NotRunning")
    assert idle.why_not == "NotRunning: SourceReady: no version of this bridge runs"

    suspended = decide_readiness(problems=(), applied_digest=None, suspended=True)
    assert suspended.suspended and not suspended.ready
    assert statuses(suspended)["SourceReady"] == ("Unknown", "Suspended")

    invalid = decide_readiness(problems=[ERROR], applied_digest=None)
    assert statuses(invalid)["Valid"] == ("False", "ValidationFailed")
    assert statuses(invalid)["Ready"] == ("False", "ValidationFailed")

    last_good = decide_readiness(
        problems=[ERROR], applied_digest=DIGEST, source=POLLING, sink=DELIVERING
    )
    assert last_good.ready
    assert statuses(last_good)["Ready"] == ("True", "LastGoodRunning")


def test_conditions_come_out_as_the_status_file_shows_them() -> None:
    Redactor.register("s3cr3t-in-a-message")
    odd = Condition("SourceReady", "False", "access denied", "token s3cr3t-in-a-message refused")
    readiness = decide_readiness(problems=(), applied_digest=DIGEST, source=odd, sink=DELIVERING)
    shown = Condition("SourceReady", "False", "AccessDenied", "token *** refused")
    assert readiness.source == shown
    assert readiness.why_not == "AccessDenied: SourceReady: token *** refused"


def test_conditions_from_bools_and_the_idle_sink() -> None:
    assert Condition.of("SinkReady", None, "NoDeliveryYet", "none yet") == Condition(
        "SinkReady", "Unknown", "NoDeliveryYet", "none yet"
    )
    assert Condition.of("Valid", False, "X", "y").known is False
    assert Condition.of("Valid", None, "X", "y").known is None
    unknown = Condition("SinkReady", "Unknown", "NoDeliveryYet", "no event has been sent yet")
    idle = sink_ready_or_idle(unknown, pending=0, source=POLLING)
    assert idle == Condition("SinkReady", "True", "Idle", "nothing to deliver yet")
    assert sink_ready_or_idle(unknown, pending=1, source=POLLING) is unknown
    not_polled = Condition("SourceReady", "Unknown", "NotPolledYet", "")
    assert sink_ready_or_idle(unknown, pending=0, source=not_polled) is unknown


@pytest.mark.parametrize(
    "case",
    [
        {"source": POLLING, "sink": DELIVERING},
        {"source": Condition("SourceReady", "False", "AccessDenied", "no"), "sink": DELIVERING},
        {"suspended": True},
        {"problems": [ERROR]},
        {"problems": [ERROR], "source": POLLING, "sink": DELIVERING},
        {},
    ],
)
def test_a_rendered_document_reads_back_into_the_decided_values(case: dict[str, object]) -> None:
    readiness = decide_readiness(applied_digest=DIGEST, **case)  # type: ignore[arg-type]
    document = render_document(
        readiness,
        bridge_id="b",
        file="b.yaml",
        observed_digest=DIGEST,
        applied_digest=DIGEST,
        observed_revision=None,
        problems=case.get("problems", ()),  # type: ignore[arg-type]
        now=T0,
    )
    assert readiness_from_document(document) == readiness
    # render_status decides the same from the same parts (the tuple shape included).
    legacy = render_status(
        bridge_id="b",
        file="b.yaml",
        observed_digest=DIGEST,
        applied_digest=DIGEST,
        observed_revision=None,
        problems=case.get("problems", ()),  # type: ignore[arg-type]
        source_ready=_as_tuple(case.get("source")),
        sink_ready=_as_tuple(case.get("sink")),
        suspended=bool(case.get("suspended")),
        now=T0,
    )
    assert legacy == document


def _as_tuple(condition: object) -> tuple[bool | None, str, str] | None:
    if not isinstance(condition, Condition):
        return None
    return (condition.known, condition.reason, condition.message)


def test_a_malformed_document_reads_as_unknown() -> None:
    readiness = readiness_from_document({"conditions": [{"type": "Ready"}, "junk"]})
    assert statuses(readiness) == {kind: ("Unknown", "Unknown") for kind in statuses(readiness)}
    assert readiness.why_not == "Unknown"
    assert not readiness_from_document(None).ready
