"""Builders shared by tests of several packages.

`render_status` renders a status document as the runner would, taking each of the poller's and
the deliverer's reports as a `Condition` or, shorter to write in a test, as a
`(status, reason, message)` tuple with None for Unknown (the runner itself hands Conditions).
"""

from __future__ import annotations

from typing import Any

from runner.status import document
from runner.status.readiness import Condition

Report = Condition | tuple[bool | None, str, str] | None


def render_status(*, source_ready: Report = None, sink_ready: Report = None, **fields: Any) -> Any:
    return document.render_status(
        source_ready=_condition("SourceReady", source_ready),
        sink_ready=_condition("SinkReady", sink_ready),
        **fields,
    )


def _condition(kind: str, report: Report) -> Condition | None:
    if report is None or isinstance(report, Condition):
        return report
    return Condition.of(kind, *report)
