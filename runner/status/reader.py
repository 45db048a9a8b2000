"""Reading a status file back, for `status` and `status --wait`: safely, checked, typed.

    read_status(path) -> StatusView | str   the file, or a reason word (NoStatus, InvalidStatus)
    StatusView                              the document, and its conditions as `BridgeReadiness`

Status files are read, not trusted: never through a link, never a FIFO or device, never
unbounded (`runner._kits.safefile`), and checked against the schema, so that a hand-edited or
foreign file is reported rather than crashing `status` or keeping `--wait` from a good one.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner._kits.safefile import FileTooLarge, NotRegularFile, read_regular
from runner.schemas import validator
from runner.status.readiness import BridgeReadiness, Condition, readiness_from_document
from runner.status.runrecord import RunIdentity
from runner.status.writer import MAX_STATUS_BYTES


@dataclass(frozen=True, slots=True)
class Located:
    """One error of the file the status read: where, and what."""

    line: int | None
    column: int | None
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class StatusView:
    """A status file, read and checked against its schema; its conditions typed."""

    doc: Mapping[str, Any]
    readiness: BridgeReadiness

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> StatusView:
        return cls(doc, readiness_from_document(doc))

    def condition(self, kind: str) -> Condition:
        return self.readiness.condition(kind)

    @property
    def observed(self) -> str | None:
        value: str | None = self.doc["observedDigest"]
        return value

    @property
    def applied(self) -> str | None:
        value: str | None = self.doc["appliedDigest"]
        return value

    @property
    def revision(self) -> str | None:
        value: str | None = self.doc["observedRevision"]
        return value

    @property
    def run(self) -> RunIdentity | None:
        return RunIdentity.from_status(self.doc.get("runner"))

    def errors(self) -> list[Located]:
        return [
            Located(e["line"], e["column"], e["path"], e["message"])
            for e in self.doc["errors"]
            if e["severity"] == "error"
        ]


def read_status(status_file: Path) -> StatusView | str:
    """The status file, or why there is none to use (a reason word: NoStatus, InvalidStatus)."""
    try:
        doc: Any = json.loads(read_regular(status_file, limit=MAX_STATUS_BYTES))
    except (NotRegularFile, FileTooLarge, ValueError):
        return "InvalidStatus"
    except OSError as exc:
        return "InvalidStatus" if exc.errno == errno.ELOOP else "NoStatus"
    if not validator("status").is_valid(doc):
        return "InvalidStatus"
    return StatusView.of(doc)
