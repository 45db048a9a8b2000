"""The loader: one bridge file -> a frozen `Bridge` with every default filled in, plus every
located `Problem` found (DESIGN §2, §2.1).

Steps, each adding Problems located at the offending node (file, line, column, dotted path):

1. size check and YAML parse (`runner.loader.yamlsafe`: positions, duplicate keys, alias bombs ...);
2. the format, from apiVersion/kind: a bridge-runner `Bridge` or a TriggerMesh
   `AWSCognitoUserPoolSource`;
3. `${VAR}` / `${VAR:-default}` expansion in the string values of metadata.name,
   metadata.labels and spec (`$${` writes a literal `${`), of the variables the runner's
   `EnvPolicy` allows (`runner.secrets.envpolicy`); every value substituted is registered with the
   `Redactor`, so that logs and dead letters mask it like a secret value;
4. JSON Schema validation with the one cached validator per schema, every error rewritten
   for people;
5. semantic checks the schema cannot express (ARN, durations, secret paths, sink URIs ...),
   skipped where the schema already reported the value;
6. the model, with `digest` over the effective spec (secret references, never values).

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
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, ValidationError

from runner import schemas
from runner._kits.durations import format_duration, parse_duration
from runner._kits.safefile import open_regular
from runner._kits.wording import plural
from runner.loader.arn import IAM_ROLE_ARN, parse_pool_arn
from runner.loader.discovery import NOT_UTF8_NAME, is_utf8
from runner.loader.yamlsafe import MAX_FILE_BYTES, ParsedDocument, format_path, parse_document
from runner.model import (
    API_VERSION,
    KIND_BRIDGE,
    STATE_FILE_NAME,
    TRIGGERMESH_API_VERSION,
    TRIGGERMESH_KIND,
    AwsAuth,
    AwsCredentials,
    BackoffPolicy,
    Bridge,
    CognitoSource,
    Delivery,
    HeaderValue,
    InitialSync,
    LoadResult,
    PoolArn,
    Problem,
    SecretRef,
    Severity,
    Sink,
    SinkFormat,
    Target,
    bridge_id_for,
    frozen_map,
)
from runner.secrets.envpolicy import DEFAULT_ENV_POLICY, EnvPolicy
from runner.secrets.redaction import Redactor, mask_values
from runner.secrets.resolver import DEFAULT_SECRETS_DIR, secret_path_problem

__all__ = [
    "DEFAULT_SECRETS_DIR",
    "bridge_digest",
    "effective_spec",
    "load_bridge",
    "load_bytes",
    "move_key",
]

log = logging.getLogger(__name__)

DocPath = tuple[str | int, ...]

_FORMATS: dict[tuple[object, object], str] = {
    (API_VERSION, KIND_BRIDGE): "bridge",
    (TRIGGERMESH_API_VERSION, TRIGGERMESH_KIND): "triggermesh",
}
_EXPECTED_KINDS = (
    f"expected apiVersion: {API_VERSION} with kind: {KIND_BRIDGE}, "
    f"or apiVersion: {TRIGGERMESH_API_VERSION} with kind: {TRIGGERMESH_KIND}"
)
_EXTENSION_NAME_RECOMMENDED_MAX = 20
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Fields whose valid values are public words or durations (`binary`, `30s`): a value from the
# environment that passed their check is not masked in logs, where it would only hide words.
_PUBLIC_FORM_FIELDS: frozenset[tuple[str | int, ...]] = frozenset(
    {
        ("spec", "sink", "format"),
        ("spec", "sink", "timeout"),
        ("spec", "delivery", "backoffPolicy"),
        ("spec", "delivery", "backoffDelay"),
        ("spec", "delivery", "maxBackoff"),
        ("spec", "source", "awsCognitoUserPool", "initialSync"),
        ("spec", "source", "awsCognitoUserPool", "pollInterval"),
    }
)
# `$${` is a literal `${`; `${...}` a reference; a lone `${` with no closing brace is malformed.
_VARIABLE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
# Headers that carry the CloudEvent itself: set by the sink code, never by the user.
_RESERVED_HEADER_PREFIXES = ("ce-", "content-type")
# Headers that frame the HTTP message or govern one connection (hop-by-hop): the HTTP client
# sets them, and a second value from the bridge file makes the request fail when sent.
_TRANSPORT_HEADERS = frozenset(
    {
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
    }
)
# Plain-text values under these names are credentials written into git.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key"})
_PLAIN_TEXT_VALUE_WARNING = (
    "plain-text secret value: it is stored in git; "
    "prefer valueFromEnv, valueFromFile or valueFromSecret"
)

_NOT_A_POOL_ARN = (
    "is not a user pool ARN: arn:<partition>:cognito-idp:<region>:<12-digit account>:"
    "userpool/<region>_<id>, with the pool id in the ARN's region"
)
_NOT_A_DURATION = "must be a duration such as 500ms, 30s, 5m, 1h30m or PT30S"

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


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
    try:
        # Never blocks, reads regular files only: a FIFO swapped in is a Problem, not a hang.
        with open_regular(path, follow_symlinks=True) as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_FILE_BYTES:
                # Refused before reading it all; the digest still identifies the content.
                digest = hashlib.sha256()
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                problem = Problem(
                    display,
                    None,
                    None,
                    "",
                    f"file is too large: {size:,} bytes (bridge files are limited to 1 MiB)",
                )
                return LoadResult(
                    path, _bridge_id(root, path), None, (problem,), digest.hexdigest()
                )
            data = stream.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        problem = Problem(display, None, None, "", f"cannot read the file: {reason}")
        return LoadResult(path, _bridge_id(root, path), None, (problem,), None)
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


def effective_spec(bridge: Bridge) -> dict[str, Any]:
    """What a bridge runs, as canonical JSON-ready data: every field of the model except its
    identity (id, file) and digests. Secret references appear as references; an inline
    value only as its sha256, so that changing it still changes the digest."""
    spec = _canonical(bridge)
    for identity in ("id", "file", "digest", "file_digest"):
        spec.pop(identity, None)
    return cast(dict[str, Any], spec)


def bridge_digest(bridge: Bridge) -> str:
    """sha256 hex of the canonical JSON of `effective_spec(bridge)`."""
    text = json.dumps(
        effective_spec(bridge), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def move_key(bridge: Bridge) -> str:
    """The digest that tells a moved or renamed bridge file from a new bridge: the effective
    spec without the name, which defaults to the file's name (`signups.yaml` -> `signups`)."""
    return bridge_digest(dataclasses.replace(bridge, name=""))


def _is_utf8(text: str) -> bool:
    """False for a string holding lone surrogates (undecodable bytes of an environment value)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _canonical(value: Any) -> Any:
    if isinstance(value, SecretRef):
        ref: dict[str, str] = {"source": value.source, "name": value.name, "key": value.key}
        if value.source == "value":
            ref["sha256"] = hashlib.sha256(value.literal.encode("utf-8")).hexdigest()
        return ref
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return value.as_posix()
    return value


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
    checker = _Checker(parsed, display, env_policy)
    checker.expand_variables(env)
    checker.validate(schemas.substituted_validator(schema_name))
    if schema_name == "bridge":
        bridge = checker.build_bridge(bridge_id, path)
    else:
        bridge = checker.build_triggermesh(bridge_id, path)
    checker.mask_environment_values()
    return (None if checker.has_errors else bridge), checker.problems


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


class _Checker:
    """Validates one parsed document and builds its model, collecting located Problems."""

    def __init__(
        self, doc: ParsedDocument, display: str, env_policy: EnvPolicy = DEFAULT_ENV_POLICY
    ) -> None:
        self.doc = doc
        self.data = doc.data
        self.display = display
        self.env_policy = env_policy
        self.problems: list[Problem] = []
        self.has_errors = False
        # Values the schema already reported: no second, semantic finding on them.
        self._reported: set[DocPath] = set()
        # Strings that came (partly) from the environment rather than from the file.
        self._expanded: set[DocPath] = set()
        # Strings whose ${...} failed: the schema would only repeat that they are wrong.
        self._unexpandable: set[DocPath] = set()
        # (where, value) of every environment value substituted: masked once loading is done.
        self._env_values: list[tuple[DocPath, str]] = []
        self._seen: set[tuple[DocPath, str]] = set()

    # -- reporting ---------------------------------------------------------------------------

    def _add(self, path: DocPath, message: str, severity: Severity, *, at_key: bool) -> None:
        if (path, message) in self._seen:
            return
        self._seen.add((path, message))
        line, column = self.doc.locate_key(path) if at_key else self.doc.locate(path)
        self.problems.append(
            Problem(self.display, line, column, format_path(path), message, severity)
        )
        if severity == "error":
            self.has_errors = True

    def error(self, path: DocPath, message: str, *, at_key: bool = False) -> None:
        self._add(path, message, "error", at_key=at_key)

    def warn(self, path: DocPath, message: str, *, at_key: bool = False) -> None:
        self._add(path, message, "warning", at_key=at_key)

    def value_error(self, path: DocPath, message: str, *, without_value: str) -> None:
        """An error about the value at `path`. `message` may quote the value, unless it came
        from the environment: then `without_value` is said instead (no environment value is
        ever shown, not even in part)."""
        if path in self._expanded:
            message = f"{without_value} (the value comes from the environment and is not shown)"
        self.error(path, message)

    def _already_reported(self, path: DocPath) -> bool:
        return any(path[:end] in self._reported for end in range(len(path) + 1))

    def mask_environment_values(self) -> None:
        """Register every value substituted from the environment with the `Redactor` (logs,
        dead letters and status texts then mask it as they mask secret values), and mask it
        in this file's Problems, which never quote it by design: a second line of defence.
        A value that passed the check of a field of public words or durations is left alone."""
        errors_at = {p.path for p in self.problems if p.severity == "error"}
        values = [
            value
            for where, value in self._env_values
            if where not in _PUBLIC_FORM_FIELDS or format_path(where) in errors_at
        ]
        if not values:
            return
        for value in values:
            Redactor.register(value)
        self.problems = [
            dataclasses.replace(p, message=mask_values(p.message, values)) for p in self.problems
        ]

    # -- ${VAR} expansion --------------------------------------------------------------------

    def expand_variables(self, env: Mapping[str, str]) -> None:
        metadata = self.data.get("metadata")
        if isinstance(metadata, dict):
            if isinstance(metadata.get("name"), str):
                metadata["name"] = self._expand(metadata["name"], ("metadata", "name"), env)
            if isinstance(metadata.get("labels"), dict):
                self._expand_in(metadata["labels"], ("metadata", "labels"), env)
        if isinstance(self.data.get("spec"), dict | list):
            self._expand_in(self.data["spec"], ("spec",), env)

    def _expand_in(self, container: dict[str, Any] | list[Any], path: DocPath, env: Any) -> None:
        items: Iterable[tuple[Any, Any]] = (
            container.items() if isinstance(container, dict) else enumerate(container)
        )
        for key, value in list(items):
            if isinstance(value, str):
                container[key] = self._expand(value, (*path, key), env)
            elif isinstance(value, dict | list):
                self._expand_in(value, (*path, key), env)

    def _expand(self, text: str, path: DocPath, env: Mapping[str, str]) -> str:
        if "${" not in text:
            return text
        failures: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            body = match.group("body")
            name, has_default, default = (body or "").partition(":-")
            if body is None or "${" in body or not _ENV_NAME.fullmatch(name):
                failures.append(
                    "malformed variable reference: write ${NAME} or ${NAME:-default} "
                    "(NAME: letters, digits and _), or $${ for a literal ${"
                )
                return ""
            if not self.env_policy.allows(name):
                # Refused whether it is set or not, default or not: the error must not tell
                # whether the runner has it, and a silent default would route events to
                # where the operator did not choose.
                failures.append(self.env_policy.refusal(name))
                return ""
            if name in env:
                value = env[name]
                if not _is_utf8(value):
                    # os.environ keeps undecodable bytes as lone surrogates, which no file,
                    # log or request can carry: a located error, never a crash of the pass.
                    failures.append(
                        f"environment variable {name} is not valid UTF-8 (its value is not shown)"
                    )
                    return ""
                self._env_values.append((path, value))
                return value
            if has_default:
                return default
            failures.append(
                f"environment variable {name} is not set and has no default "
                f"(write ${{{name}:-default}} to give one)"
            )
            return ""

        expanded = _VARIABLE.sub(substitute, text)
        for failure in failures:
            self.error(path, failure)
        if failures:
            self._reported.add(path)
            self._unexpandable.add(path)
        elif expanded != text.replace("$${", "${"):
            self._expanded.add(path)
        return expanded

    # -- JSON Schema -------------------------------------------------------------------------

    def validate(self, validator: Draft202012Validator) -> None:
        for error in validator.iter_errors(self.data):
            self._schema_error(error)

    def _schema_error(self, error: ValidationError) -> None:
        path: DocPath = tuple(error.absolute_path)
        if path in self._unexpandable:
            return
        keyword = error.validator
        schema = error.schema if isinstance(error.schema, dict) else {}
        instance = error.instance
        if keyword == "additionalProperties" and isinstance(instance, dict):
            allowed = list(schema.get("properties", {}))
            for key in instance:
                if key not in allowed:
                    where = (*path, key)
                    self._reported.add(where)
                    listing = ", ".join(allowed) if allowed else "none"
                    self.error(where, f"unknown field {key!r} (allowed: {listing})", at_key=True)
            return
        if keyword == "required" and isinstance(instance, dict):
            for name in cast(list[str], error.validator_value):
                if name not in instance:
                    self._reported.add((*path, name))
                    self.error((*path, name), f"missing required field {name!r}")
            return
        message = _editor_message(error) or _schema_message(error)
        if "propertyNames" in error.relative_schema_path:
            where = (*path, str(instance))
            self._reported.add(where)
            self.error(where, f"{str(instance)!r} {message}", at_key=True)
            return
        self._reported.add(path)
        self.error(path, message)

    # -- typed reads (None when absent or of the wrong type: the schema reported it) ---------

    def get(self, path: DocPath) -> Any:
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def string(self, path: DocPath) -> str | None:
        value = self.get(path)
        return value if isinstance(value, str) and not self._already_reported(path) else None

    def mapping(self, path: DocPath) -> dict[str, Any]:
        value = self.get(path)
        return value if isinstance(value, dict) else {}

    def boolean(self, path: DocPath, default: bool) -> bool:
        value = self.get(path)
        return value if isinstance(value, bool) else default

    # -- semantic checks ---------------------------------------------------------------------

    def pool_arn(self, path: DocPath) -> PoolArn | None:
        text = self.string(path)
        if text is None:
            return None
        try:
            return parse_pool_arn(text)
        except ValueError as exc:
            self.value_error(path, str(exc), without_value=_NOT_A_POOL_ARN)
            return None

    def duration(self, path: DocPath, default: float, *, minimum: float = 0.0) -> float:
        text = self.string(path)
        if text is None:
            return default
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            self.value_error(path, str(exc), without_value=_NOT_A_DURATION)
            return default
        if seconds < minimum or (minimum == 0.0 and seconds == 0.0):
            bound = f"at least {format_duration(minimum)}" if minimum else "longer than 0s"
            self.value_error(
                path, f"must be {bound} (got {text})", without_value=f"must be {bound}"
            )
        return seconds

    def secret(self, path: DocPath) -> SecretRef | None:
        obj = self.get(path)
        if not isinstance(obj, dict) or len(obj) != 1 or self._already_reported(path):
            return None
        ((source, value),) = obj.items()
        where = (*path, source)
        if source == "value" and isinstance(value, str):
            if where not in self._expanded:
                self.warn(where, _PLAIN_TEXT_VALUE_WARNING, at_key=True)
            return SecretRef("value", literal=value)
        if source == "valueFromEnv" and isinstance(value, str):
            if self._already_reported(where):
                return None
            if not self.env_policy.allows(value):
                self.value_error(
                    where,
                    self.env_policy.refusal(value),
                    without_value="names an environment variable that is not allowed for "
                    f"bridges (allowed: {', '.join(self.env_policy.all_patterns)}; see "
                    "--allow-env)",
                )
                return None
            return SecretRef("env", name=value)
        if source == "valueFromFile" and isinstance(value, str):
            problem = secret_path_problem(value)
            if problem:
                self.value_error(
                    where,
                    f"secret file path {problem}",
                    without_value="secret file path must be relative and stay inside "
                    "--secrets-dir (no '..')",
                )
                return None
            return SecretRef("file", name=PurePosixPath(value).as_posix())
        if source == "valueFromSecret" and isinstance(value, dict):
            name, key = value.get("name"), value.get("key")
            if not isinstance(name, str) or not isinstance(key, str):
                return None
            ok = True
            for part, text in (("name", name), ("key", key)):
                if "/" in text or "\\" in text or text in (".", ".."):
                    ok = False
                    segment = (
                        "must be a single path segment (no '/', '.' or '..'): the value is "
                        "read from <secrets-dir>/<name>/<key>"
                    )
                    self.value_error(
                        (*where, part), f"{segment} (got {text!r})", without_value=segment
                    )
            return SecretRef("secret", name=name, key=key) if ok else None
        return None

    def credentials(self, path: DocPath) -> AwsCredentials | None:
        if not self.mapping(path):
            return None
        access = self.secret((*path, "accessKeyID"))
        secret = self.secret((*path, "secretAccessKey"))
        token = (
            self.secret((*path, "sessionToken")) if "sessionToken" in self.mapping(path) else None
        )
        if access is None or secret is None:
            return None
        return AwsCredentials(access, secret, token)

    def role_arn(self, path: DocPath) -> str | None:
        text = self.string(path)
        if text is not None and not IAM_ROLE_ARN.fullmatch(text):
            self.error(path, "must be an IAM role ARN like arn:aws:iam::123456789012:role/name")
            return None
        return text

    def http_url(self, path: DocPath, *, what: str) -> str | None:
        """An http(s) URL with a host and no user:password@ (it would show in logs)."""
        text = self.string(path)
        if text is None:
            return None
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            self.error(path, f"{what} is not a valid URL")
            return None
        if parts.scheme.lower() not in ("http", "https"):
            self.error(path, f"{what} must be an http:// or https:// URL")
            return None
        return self._checked_http(path, parts.hostname, parts.username, parts.password, text, what)

    def _checked_http(
        self,
        path: DocPath,
        host: str | None,
        username: str | None,
        password: str | None,
        text: str,
        what: str,
    ) -> str | None:
        if not host:
            self.error(path, f"{what} needs a host, like https://events.example.com/cognito")
            return None
        if username is not None or password is not None:
            self.error(
                path,
                f"{what} must not hold credentials (user:password@): they would show in logs "
                "and status; send them in a header with a secret value instead",
            )
            return None
        return text

    def target(self, path: DocPath) -> Target | None:
        """A sink or dead-letter URI: http(s) URL, or file:relative/path below the state dir."""
        text = self.string(path)
        if text is None:
            return None
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            self.error(path, "is not a valid URI")
            return None
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            url = self._checked_http(
                path, parts.hostname, parts.username, parts.password, text, "the URL"
            )
            return Target(url) if url else None
        if scheme == "file":
            return self._file_target(path, text)
        if not scheme:
            self.error(
                path,
                "must be an absolute http:// or https:// URL, or file:relative/path.jsonl",
            )
        else:
            self.value_error(
                path,
                f"unsupported scheme {scheme!r}: use http://, https:// or file:path.jsonl",
                without_value="unsupported scheme: use http://, https:// or file:path.jsonl",
            )
        return None

    def _file_target(self, path: DocPath, text: str) -> Target | None:
        rel = text[len("file:") :]
        example = "like file:events/signups.jsonl"
        if rel.startswith("/") or re.match(r"[A-Za-z]:", rel):
            self.error(
                path,
                f"a file: URI must be a path relative to the state directory, {example} "
                "(not an absolute path)",
            )
            return None
        if "?" in rel or "#" in rel:
            self.error(path, f"a file: URI is a plain relative path, {example} (no ? or #)")
            return None
        parts = PurePosixPath(rel.replace("\\", "/"))
        if ".." in parts.parts:
            self.error(
                path, f"a file: URI must stay inside the state directory: remove '..' ({example})"
            )
            return None
        if not rel or str(parts) == "." or rel.endswith("/"):
            self.error(path, f"a file: URI needs a file name, {example}")
            return None
        # The outbox database lives in the state directory too: appending JSON lines to it
        # (or to its -wal/-shm/-journal files) would corrupt it and lose every pending event.
        if parts.parts[0].lower().startswith(STATE_FILE_NAME):
            self.error(
                path,
                f"a file: URI must not name bridge-runner's state database ({STATE_FILE_NAME} "
                f"and its -wal, -shm, -journal files): writing events there would corrupt it; "
                f"use another name, {example}",
            )
            return None
        return Target(text, file_path=parts.as_posix())

    def headers(self, path: DocPath) -> dict[str, HeaderValue]:
        result: dict[str, HeaderValue] = {}
        for name, value in self.mapping(path).items():
            where = (*path, name)
            if name.lower().startswith(_RESERVED_HEADER_PREFIXES):
                self.error(
                    where,
                    f"header {name!r} is set by bridge-runner (it carries the CloudEvent); "
                    "use spec.ceOverrides.extensions for extension attributes",
                    at_key=True,
                )
            elif name.lower() in _TRANSPORT_HEADERS:
                self.error(
                    where,
                    f"header {name!r} is set by the HTTP client (it frames the request or "
                    "controls the connection); remove it",
                    at_key=True,
                )
            elif isinstance(value, str):
                if name.lower() in _CREDENTIAL_HEADERS and where not in self._expanded:
                    self.warn(where, _PLAIN_TEXT_VALUE_WARNING)
                result[name] = value
            else:
                ref = self.secret(where)
                if ref is not None:
                    result[name] = ref
        return result

    def extensions(self, path: DocPath) -> dict[str, str]:
        """The extension attributes. Their names are checked by the schema (`propertyNames`:
        the CloudEvents form, and none of `RESERVED_ATTRIBUTES`); only the length CloudEvents
        recommends is left to check here."""
        result: dict[str, str] = {}
        for name, value in self.mapping(path).items():
            where = (*path, name)
            if self._already_reported(where):
                continue
            if len(name) > _EXTENSION_NAME_RECOMMENDED_MAX:
                self.warn(
                    where,
                    f"extension name {name!r} is longer than the "
                    f"{_EXTENSION_NAME_RECOMMENDED_MAX} characters CloudEvents recommends",
                    at_key=True,
                )
            if isinstance(value, str):
                result[name] = value
        return result

    def _warn_percent_encoded(
        self,
        path: DocPath,
        extensions: Mapping[str, str],
        *,
        sink_binary: bool,
        dead_letter_binary: bool,
    ) -> None:
        """Warn about extension values that HTTP binary mode would percent-encode.

        Binary mode carries each attribute in a `ce-` header, percent-encoding (CloudEvents
        HTTP binding, 3.1.3.2) space, `"`, `%` and every character outside printable ASCII;
        the JS, Go and Java SDKs hand such values on undecoded (cloudevents/spec#1397).
        Dead letters are always sent in binary mode.
        """
        if not (sink_binary or dead_letter_binary):
            return
        if sink_binary:
            mode = "binary mode (spec.sink.format, default binary)"
            advice = "use format: structured or batch, whose JSON carries the value as it is"
        else:
            mode = "binary mode, which dead letters are sent in"
            advice = "use a file: deadLetterSink, which stores the value as it is"
        for name, value in extensions.items():
            encoded = percent_encoded_characters(value)
            if not encoded:
                continue
            value_path = (*path, name)
            if value_path in self._expanded:
                # A value from the environment is not quoted, not even in part.
                found = "characters outside printable ASCII, or space, '\"' or '%'"
            else:
                found = ", ".join(_describe_character(c) for c in encoded)
            self.warn(
                value_path,
                f"would be percent-encoded in its ce-{name} header in {mode}: it has {found}, "
                "and receivers built on the CloudEvents JS, Go or Java SDK do not decode it "
                f"(cloudevents/spec#1397); {advice}, or keep to printable ASCII without "
                "space, '\"' and '%'",
            )

    def labels(self) -> dict[str, str]:
        labels = self.mapping(("metadata", "labels"))
        return {k: v for k, v in labels.items() if isinstance(v, str)}

    def name(self, path: Path) -> str:
        return self.string(("metadata", "name")) or path.stem

    # -- the two formats ---------------------------------------------------------------------

    def build_bridge(self, bridge_id: str, path: Path) -> Bridge | None:
        pool_path: DocPath = ("spec", "source", "awsCognitoUserPool")
        pool = self.pool_arn((*pool_path, "arn"))
        auth = AwsAuth(
            credentials=self.credentials((*pool_path, "auth", "credentials")),
            assume_role_arn=self.role_arn((*pool_path, "auth", "assumeIamRole")),
        )
        endpoint = self.http_url((*pool_path, "endpoint"), what="the endpoint")
        poll_interval = self.duration((*pool_path, "pollInterval"), 30.0, minimum=1.0)
        initial_sync = self.get((*pool_path, "initialSync")) or "baseline"
        emit_deletions = self.boolean((*pool_path, "emitDeletions"), True)

        sink_path: DocPath = ("spec", "sink")
        target = self.target((*sink_path, "uri"))
        sink_format = self.get((*sink_path, "format")) or "binary"
        max_batch = self.get((*sink_path, "maxBatchSize"))
        if (
            max_batch is not None
            and sink_format != "batch"
            and not self._already_reported((*sink_path, "format"))
        ):
            self.warn(
                (*sink_path, "maxBatchSize"),
                f"maxBatchSize only applies to format: batch; it is ignored with "
                f"format: {sink_format}",
                at_key=True,
            )
        headers = self.headers((*sink_path, "headers"))
        timeout = self.duration((*sink_path, "timeout"), 10.0)

        delivery = self._delivery(("spec", "delivery"))
        extensions = self.extensions(("spec", "ceOverrides", "extensions"))
        self._warn_percent_encoded(
            ("spec", "ceOverrides", "extensions"),
            extensions,
            sink_binary=sink_format == "binary" and target is not None and not target.file_path,
            dead_letter_binary=delivery is not None
            and delivery.dead_letter is not None
            and not delivery.dead_letter.file_path,
        )
        if self.has_errors or pool is None or target is None or delivery is None:
            return None
        return Bridge(
            id=bridge_id,
            file=path,
            name=self.name(path),
            source=CognitoSource(
                pool=pool,
                auth=auth,
                endpoint=endpoint,
                poll_interval=poll_interval,
                initial_sync=cast(InitialSync, initial_sync),
                emit_deletions=emit_deletions,
            ),
            sink=Sink(
                target=target,
                format=cast(SinkFormat, sink_format),
                max_batch_size=max_batch if isinstance(max_batch, int) else 100,
                headers=frozen_map(headers),
                timeout=timeout,
            ),
            delivery=delivery,
            labels=frozen_map(self.labels()),
            suspend=self.boolean(("spec", "suspend"), False),
            ce_extensions=frozen_map(extensions),
            origin="Bridge",
        )

    def _delivery(self, path: DocPath) -> Delivery | None:
        retry = self.get((*path, "retry"))
        backoff_delay = self.duration((*path, "backoffDelay"), 0.5)
        max_backoff = self.duration((*path, "maxBackoff"), 300.0)
        if max_backoff < backoff_delay and not self._already_reported((*path, "maxBackoff")):
            self.error(
                (*path, "maxBackoff"),
                f"must not be shorter than backoffDelay ({format_duration(backoff_delay)})",
            )
        dead_letter_path = (*path, "deadLetterSink", "uri")
        dead_letter = self.target(dead_letter_path)
        if self.get(dead_letter_path) is not None and dead_letter is None:
            return None
        return Delivery(
            retry=retry if isinstance(retry, int) and not isinstance(retry, bool) else None,
            backoff_policy=cast(BackoffPolicy, self.get((*path, "backoffPolicy")) or "exponential"),
            backoff_delay=backoff_delay,
            max_backoff=max_backoff,
            dead_letter=dead_letter,
        )

    def build_triggermesh(self, bridge_id: str, path: Path) -> Bridge | None:
        pool = self.pool_arn(("spec", "arn"))
        auth_path: DocPath = ("spec", "auth")
        credentials_path: DocPath = (*auth_path, "credentials")
        auth = AwsAuth(
            credentials=self.credentials(credentials_path),
            assume_role_arn=self.role_arn((*credentials_path, "assumeIamRole")),
        )
        for ignored, what in (
            ("iam", "IAM roles for service accounts configure the TriggerMesh adapter's pod"),
            ("iamRole", "the deprecated IRSA role of the TriggerMesh adapter's pod"),
        ):
            if ignored in self.mapping(auth_path):
                self.warn(
                    (*auth_path, ignored),
                    f"ignored by bridge-runner: spec.auth.{ignored} ({what}); bridge-runner "
                    "uses its own AWS identity (boto3's default chain, web identity / IRSA "
                    "included) or spec.auth.credentials",
                    at_key=True,
                )
        if "adapterOverrides" in self.mapping(("spec",)):
            self.warn(
                ("spec", "adapterOverrides"),
                "ignored by bridge-runner: spec.adapterOverrides configure the TriggerMesh "
                "adapter's Kubernetes pod, which bridge-runner does not use",
                at_key=True,
            )

        sink_path: DocPath = ("spec", "sink")
        sink = self.mapping(sink_path)
        target = None
        if "ref" in sink:
            self.error(
                (*sink_path, "ref"),
                "Kubernetes object references cannot be resolved outside Kubernetes; replace "
                "spec.sink.ref with spec.sink.uri: http://<the broker or service URL>",
                at_key=True,
            )
        elif "uri" not in sink and isinstance(self.get(sink_path), dict):
            self.error((*sink_path, "uri"), "missing required field 'uri'")
        else:
            target = self.target((*sink_path, "uri"))

        if self.has_errors or pool is None or target is None:
            return None
        # TriggerMesh's defaults (DESIGN §2.1): baseline, no deletion events, binary mode.
        return Bridge(
            id=bridge_id,
            file=path,
            name=self.name(path),
            source=CognitoSource(
                pool=pool,
                auth=auth,
                poll_interval=30.0,
                initial_sync="baseline",
                emit_deletions=False,
            ),
            sink=Sink(target=target, format="binary"),
            labels=frozen_map(self.labels()),
            origin="AWSCognitoUserPoolSource",
        )


def percent_encoded_characters(value: str) -> list[str]:
    """The distinct characters of `value` that the CloudEvents HTTP binding (3.1.3.2) has
    percent-encoded in a `ce-` header, in order of appearance: space, `"`, `%`, and anything
    outside printable ASCII (U+0021-U+007E)."""
    found = dict.fromkeys(c for c in value if not "!" <= c <= "~" or c in '"%')
    return list(found)


def _describe_character(char: str) -> str:
    if char == " ":
        return "space"
    if char.isprintable():
        return f"{char!r} (U+{ord(char):04X})"
    return f"U+{ord(char):04X}"


def _editor_message(error: ValidationError) -> str | None:
    """The schema's own message for `error`, read as yaml-language-server reads it: a failed
    `pattern` shows `patternErrorMessage` (else `errorMessage`), a failed `not` the
    `errorMessage` of the schema it negates, anything else the failing schema's `errorMessage`."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "pattern":
        candidates = [schema.get("patternErrorMessage"), schema.get("errorMessage")]
    elif error.validator == "not":
        negated = error.validator_value
        candidates = [negated.get("errorMessage") if isinstance(negated, dict) else None]
    else:
        candidates = [schema.get("errorMessage")]
    return next((text for text in candidates if isinstance(text, str)), None)


def _schema_message(error: ValidationError) -> str:
    """A message for people; never quotes the offending value (it could be a secret)."""
    keyword = error.validator
    value: Any = error.validator_value
    if keyword == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        names = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in wanted)
        return f"must be {names}, not {_describe(error.instance)}"
    if keyword == "enum":
        return f"must be one of: {', '.join(str(v) for v in value)}"
    if keyword == "const":
        return f"must be {value}"
    if keyword == "minimum":
        return f"must be at least {value}"
    if keyword == "maximum":
        return f"must be at most {value}"
    if keyword == "minLength":
        if value == 1:
            return "must not be empty"
        return f"must be at least {plural(value, 'character')} long"
    if keyword == "maxLength":
        return f"must be at most {plural(value, 'character')} long"
    if keyword == "pattern":
        return f"does not have the expected form (pattern {value})"
    if keyword in ("minProperties", "maxProperties"):
        bound = "at least" if keyword == "minProperties" else "at most"
        return f"must have {bound} {plural(value, 'field')}"
    return f"is not valid ({keyword})"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return "empty" if value is None else type(value).__name__
