"""The third-party reference files in `../shared/conformance/`, beside the repository.

They are written by others (the CloudEvents 1.0 JSON schema, TriggerMesh's sync_trigger data
schema, its sample manifest and CRD) and sit beside the repository where it is developed and
in its CI, not in it: a lone clone has none of them. So:

- tests that hold the project against them take the `conformance` fixture
  (tests/conftest.py), which marks them `conformance` and skips them, with the reason, when the
  folder is absent; with BRIDGE_RUNNER_REQUIRE_CONFORMANCE=1 (which `.ci/run` sets where the
  folder exists) they fail instead, so CI can never pass them by skipping them;
- the project's own schemas carry the same constraints and are tested in every clone;
- nothing is read at import: `load()` reads the files on first use, once.

BRIDGE_RUNNER_CONFORMANCE_DIR points at another folder (the tests of this mechanism use it).
"""

from __future__ import annotations

import json
import os
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, Draft7Validator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT.parent / "shared" / "conformance"
DIR_ENV = "BRIDGE_RUNNER_CONFORMANCE_DIR"
REQUIRE_ENV = "BRIDGE_RUNNER_REQUIRE_CONFORMANCE"

CLOUDEVENTS_SCHEMA = "cloudevents-1.0.schema.json"
SYNC_TRIGGER_SCHEMA = "triggermesh-cognito-sync_trigger-data.schema.json"
TRIGGERMESH_SAMPLE = "triggermesh-awscognitouserpoolsource-sample.yaml"


def location() -> Path:
    override = os.environ.get(DIR_ENV)
    return Path(override) if override else DEFAULT_DIR


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def missing_reason() -> str:
    return (
        f"no conformance data at {location()} (the third-party reference files beside the "
        "repository): not held against the CloudEvents and TriggerMesh schemas"
    )


class Conformance:
    """The reference files of one folder; each is read on first use."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, name: str) -> Path:
        return self.dir / name

    def _json(self, name: str) -> Any:
        return json.loads(self.path(name).read_text("utf-8"))

    @cached_property
    def cloudevents(self) -> Draft7Validator:
        """The CloudEvents 1.0 JSON-format schema, with its formats checked."""
        return Draft7Validator(
            self._json(CLOUDEVENTS_SCHEMA), format_checker=Draft7Validator.FORMAT_CHECKER
        )

    @cached_property
    def sync_trigger(self) -> Draft4Validator:
        """TriggerMesh's data schema of its Cognito user pool source's sync_trigger events."""
        return Draft4Validator(
            self._json(SYNC_TRIGGER_SCHEMA), format_checker=Draft4Validator.FORMAT_CHECKER
        )

    @cached_property
    def sync_trigger_examples(self) -> list[dict[str, Any]]:
        examples: list[dict[str, Any]] = self._json(SYNC_TRIGGER_SCHEMA)["examples"]
        return examples


@cache
def _load(directory: Path) -> Conformance | None:
    return Conformance(directory) if directory.is_dir() else None


def load() -> Conformance | None:
    """The reference files, or None where the folder is absent (a lone clone)."""
    return _load(location())
