"""The loader's entry: one bridge file -> a `LoadResult`, a frozen `Bridge` with every default
filled in, plus every located `Problem` found (DESIGN §2, §2.1).

Steps, each adding Problems located at the offending node (file, line, column, dotted path):

1. safe read and size check (`runner.loader.reading`), YAML parse (`runner.loader.yamlsafe`:
   positions, duplicate keys, alias bombs ...);
2. the format, from apiVersion/kind: a bridge-runner `Bridge` or a TriggerMesh
   `AWSCognitoUserPoolSource`;
3. `${VAR}` / `${VAR:-default}` expansion (`runner.loader.variables`), of the variables the
   runner's `EnvPolicy` allows; every value substituted is masked like a secret value;
4. JSON Schema validation with the one cached validator per schema, every error worded for
   people (`runner.loader.schema_messages`);
5. semantic checks the schema cannot express (`runner.loader.semantics`: ARN, durations,
   secret paths, sink URIs ...), skipped where the schema already reported the value;
6. the model, built by the format's module (`runner.loader.bridge_format`,
   `runner.loader.triggermesh_format`), with `digest` over the effective spec
   (`runner.loader.digest`: secret references, never values).

It never raises for bad input: an unreadable file or bytes that are not YAML are Problems too.
Secrets are not resolved here (`runner.secrets.resolver` does that at run time); a
`valueFromEnv` the policy does not allow is a Problem here already.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from runner import schemas
from runner.loader.bridge_format import build_bridge
from runner.loader.digest import bridge_digest
from runner.loader.discovery import NOT_UTF8_NAME, is_utf8
from runner.loader.document import BridgeDocument, DocPath
from runner.loader.reading import Unread, read_bridge_file
from runner.loader.schema_messages import report_schema_errors
from runner.loader.triggermesh_format import build_triggermesh
from runner.loader.variables import expand_variables, mask_environment_values
from runner.loader.yamlsafe import ParsedDocument, format_path, parse_document
from runner.model import (
    API_VERSION,
    KIND_BRIDGE,
    TRIGGERMESH_API_VERSION,
    TRIGGERMESH_KIND,
    Bridge,
    LoadResult,
    Problem,
    bridge_id_for,
)
from runner.secrets.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy
from runner.secrets.resolver import DEFAULT_SECRETS_DIR

__all__ = ["load_bridge", "load_bytes"]

log = logging.getLogger(__name__)

_FORMATS: dict[tuple[object, object], str] = {
    (API_VERSION, KIND_BRIDGE): "bridge",
    (TRIGGERMESH_API_VERSION, TRIGGERMESH_KIND): "triggermesh",
}
_EXPECTED_KINDS = (
    f"expected apiVersion: {API_VERSION} with kind: {KIND_BRIDGE}, "
    f"or apiVersion: {TRIGGERMESH_API_VERSION} with kind: {TRIGGERMESH_KIND}"
)


def load_bridge(
    path: Path,
    *,
    root: Path,
    secrets_dir: Path = DEFAULT_SECRETS_DIR,
    env: Mapping[str, str] | None = None,
    env_policy: EnvPolicy = DEFAULT_ENV_POLICY,
    display_path: str | None = None,
) -> LoadResult:
    """Load the bridge file at `path` (below the bridges directory `root`).

    Never raises for bad input: every failure is a located Problem in the result.
    `display_path` is what Problems show as `file` (default: `str(path)`). `secrets_dir`
    is where secret references will be read from at run time; references are only checked
    here, lexically (relative, no `..`), so that `check` runs where secrets are not mounted.
    `env` (default `os.environ`) is read only for the variables `env_policy` allows.
    """
    display = display_path if display_path is not None else str(path)
    if not is_utf8(_bridge_id(root, path)):
        message = f"the file name is not valid UTF-8: {NOT_UTF8_NAME}"
        problem = Problem(display, None, None, "", message)
        return LoadResult(path, _bridge_id(root, path), None, (problem,), None)
    data = read_bridge_file(path, display)
    if isinstance(data, Unread):
        return LoadResult(path, _bridge_id(root, path), None, (data.problem,), data.file_digest)
    return load_bytes(
        data,
        path=path,
        root=root,
        secrets_dir=secrets_dir,
        env=env,
        env_policy=env_policy,
        display_path=display,
    )


def load_bytes(
    data: bytes,
    *,
    path: Path,
    root: Path,
    secrets_dir: Path = DEFAULT_SECRETS_DIR,
    env: Mapping[str, str] | None = None,
    env_policy: EnvPolicy = DEFAULT_ENV_POLICY,
    display_path: str | None = None,
) -> LoadResult:
    """Load a bridge from `data`, the content of the file at `path`. Never raises for bad input."""
    display = display_path if display_path is not None else str(path)
    bridge_id = _bridge_id(root, path)
    file_digest = hashlib.sha256(data).hexdigest()
    try:
        environment = os.environ if env is None else env
        bridge, problems = _load(data, path, bridge_id, display, environment, env_policy)
    except Exception as exc:
        # A bug here must not stop the other bridges (DESIGN §4.3): report it as this file's
        # problem. Only the exception type is shown: its text could quote the file's content.
        log.error("internal error while loading %s (%s)", display, type(exc).__name__)
        problem = Problem(
            display,
            None,
            None,
            "",
            f"internal error while loading this file ({type(exc).__name__}); please report it",
        )
        return LoadResult(path, bridge_id, None, (problem,), file_digest)
    if bridge is not None:
        bridge = dataclasses.replace(bridge, file_digest=file_digest)
        bridge = dataclasses.replace(bridge, digest=bridge_digest(bridge))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return LoadResult(path, bridge_id, bridge, tuple(problems), file_digest)


def _bridge_id(root: Path, path: Path) -> str:
    try:
        return bridge_id_for(root, path)
    except ValueError:  # not below root: the caller's choice, not the file's fault
        return path.stem


def _load(
    data: bytes,
    path: Path,
    bridge_id: str,
    display: str,
    env: Mapping[str, str],
    env_policy: EnvPolicy,
) -> tuple[Bridge | None, list[Problem]]:
    parsed = parse_document(data, display)
    if isinstance(parsed, list):
        return None, parsed
    schema_name, kind_problem = _detect_format(parsed, display)
    if schema_name is None:
        return None, [kind_problem] if kind_problem else []
    document = BridgeDocument(parsed, display, env_policy)
    substituted = expand_variables(document, env)
    report_schema_errors(document, schemas.substituted_validator(schema_name))
    build = build_bridge if schema_name == "bridge" else build_triggermesh
    bridge = build(document, bridge_id, path)
    mask_environment_values(document, substituted)
    return (None if document.has_errors else bridge), document.problems


def _detect_format(doc: ParsedDocument, display: str) -> tuple[str | None, Problem | None]:
    api_version, kind = doc.data.get("apiVersion"), doc.data.get("kind")
    # Only strings can name a format (and only they are hashable: `apiVersion: []` is junk).
    found = _FORMATS.get((api_version, kind)) if _all_str(api_version, kind) else None
    if found is not None:
        return found, None
    known_api_versions = {a for a, _ in _FORMATS}
    known_kinds = {k for _, k in _FORMATS}
    if api_version is None and kind is None:
        where: DocPath = ()
        message = f"missing apiVersion and kind: {_EXPECTED_KINDS}"
    else:
        # Point at the half that is wrong when the other half is one of ours.
        api_known = isinstance(api_version, str) and api_version in known_api_versions
        kind_known = isinstance(kind, str) and kind in known_kinds
        where = ("kind",) if api_known else ("apiVersion",)
        if not kind_known and not api_known and "kind" in doc.data:
            where = ("apiVersion",) if "apiVersion" in doc.data else ("kind",)
        message = (
            f"unknown apiVersion {_short(api_version)} with kind {_short(kind)}: {_EXPECTED_KINDS}"
        )
    line, column = doc.locate(where)
    return None, Problem(display, line, column, format_path(where), message)


def _all_str(*values: object) -> bool:
    return all(isinstance(v, str) for v in values)


def _short(value: object) -> str:
    if value is None:
        return "(missing)"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text if len(text) <= 60 else text[:57] + "...")
