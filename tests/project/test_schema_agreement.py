"""The shipped bridge schemas agree with `check`, and two independent validators agree on them.

Editors validate a bridge file as written (`# yaml-language-server: $schema=`), `check` validates
it after `${VAR}` substitution. Over a corpus (the example bridges, the test fixtures, targeted
documents) and over generated documents, for each document D in either format:

1. the `jsonschema` and `jsonschema-rs` validators give the same verdict on D;
2. if `check` accepts D, the schema accepts D;
3. if the schema rejects D, `check` rejects D;
4. if `check` reports a shape error (any error not listed in `SEMANTIC_ONLY`) at a value written
   without a `${VAR}` reference, the schema rejects D. (A value with a reference is known only
   at load time: `pollInterval: ${POLL}` is schema-valid whatever POLL will hold.)

What lies out of the schema's reach by design is listed in `SEMANTIC_ONLY`, and files that do
not parse (syntax, duplicate keys, aliases, tags, ...) or name no known format are left out:
their errors come before any schema.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.loader.config import load_bytes
from runner.loader.yamlsafe import format_path, parse_document
from runner.model import RESERVED_ATTRIBUTES, Problem
from runner.schemas import load_schema, validator
from runner.secrets.envpolicy import EnvPolicy

ROOT = Path(__file__).resolve().parents[2]
FORMATS = {
    ("bridge-runner/v1alpha1", "Bridge"): "bridge",
    ("sources.triggermesh.io/v1alpha1", "AWSCognitoUserPoolSource"): "triggermesh",
}
ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"
ROLE = "arn:aws:iam::043455440429:role/cognito-reader"

# Errors `check` reports that no JSON Schema of the file can express, as
# "<format> <path>: <message>" patterns. Everything else check reports is a shape error.
SEMANTIC_ONLY: dict[str, str] = {
    "the user pool ARN's parts (partition, region, account, pool id and their agreement)": (
        r"(bridge spec\.source\.awsCognitoUserPool|triggermesh spec)\.arn: (?!must be a string)"
    ),
    "duration values: a minimum, above 0s, ISO-8601 without years or months": (
        r"\w+ [\w.]+: (must be at least \S+ \(got |must be longer than 0s|.*ISO-8601 duration"
        r"|duration .* needs a unit|.* is not a duration)"
    ),
    "maxBackoff not shorter than backoffDelay": r"bridge spec\.delivery\.maxBackoff: must not be",
    "secret files confined to --secrets-dir": (
        r".*(: secret file path |: must be a single path segment)"
    ),
    "URLs: scheme, host, no user:password@, file: paths inside --state-dir": (
        r".*(uri|endpoint): (.* is not a valid UR[LI]|.*must be an http:// or https:// URL"
        r"|.* needs a host|.* must not hold credentials|must be an absolute http|unsupported "
        r"scheme|a file: URI)"
    ),
    "headers that bridge-runner or the HTTP client sets": r"bridge spec\.sink\.headers.*: header ",
    "variables: defined, or with a default; well formed": (
        r".*: (environment variable \w+ is not set|malformed variable reference)"
    ),
    "TriggerMesh sinks: no Kubernetes ref, a uri": (
        r"triggermesh spec\.sink\.(ref: Kubernetes object references|uri: missing required)"
    ),
}
_SEMANTIC = [re.compile(pattern) for pattern in SEMANTIC_ONLY.values()]
# "Holds a ${VAR} reference" (check 4 above): `${` not preceded by `$`, a name, a default.
REFERENCE = r"(^|[^$])\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"
_REFERENCE = re.compile(REFERENCE)


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    env: Mapping[str, str] = field(default_factory=dict)


def _bridge(extra_pool: str = "", extra_sink: str = "", extra_spec: str = "") -> str:
    return (
        "apiVersion: bridge-runner/v1alpha1\nkind: Bridge\nspec:\n  source:\n"
        f"    awsCognitoUserPool:\n      arn: {ARN}\n{extra_pool}"
        f"  sink:\n    uri: https://events.example.com/cognito\n{extra_sink}{extra_spec}"
    )


TARGETED = [
    Case(
        "durations-with-defaults",
        _bridge(
            "      pollInterval: ${POLL:-30s}\n",
            "    timeout: ${T:-10s}\n",
            "  delivery: {backoffDelay: '${D:-1}s', maxBackoff: '${M:-5m}'}\n",
        ),
    ),
    Case(
        "durations-from-env",
        _bridge("      pollInterval: ${POLL}\n", "    timeout: ${T}\n"),
        {"POLL": "1m", "T": "PT5S"},
    ),
    Case("duration-from-env-is-bad", _bridge("      pollInterval: ${POLL}\n"), {"POLL": "soon"}),
    Case("duration-variable-undefined", _bridge("      pollInterval: ${POLL}\n")),
    Case("duration-literal-dollar-brace", _bridge("      pollInterval: $${POLL}\n")),
    Case("duration-malformed-reference", _bridge("      pollInterval: ${1POLL}\n")),
    Case("duration-bad-literal", _bridge("      pollInterval: 5 minutes\n")),
    Case(
        "enums-with-defaults",
        _bridge(
            "      initialSync: ${SYNC:-emit}\n",
            "    format: ${FORMAT:-structured}\n",
            "  delivery: {backoffPolicy: '${BP:-linear}'}\n",
        ),
    ),
    Case("enum-from-env", _bridge(extra_sink="    format: ${FORMAT}\n"), {"FORMAT": "batch"}),
    Case("enum-from-env-is-bad", _bridge(extra_sink="    format: ${FORMAT}\n"), {"FORMAT": "x"}),
    Case(
        "enum-from-env-looks-like-a-reference",
        _bridge(extra_sink="    format: ${F}\n"),
        {"F": "${G}"},
    ),
    Case("enum-bad-literal", _bridge(extra_sink="    format: json\n")),
    Case(
        "role-and-env-name-from-variables",
        _bridge(
            "      auth:\n        assumeIamRole: ${ROLE}\n        credentials:\n"
            "          accessKeyID: {valueFromEnv: '${KEY_VAR:-AWS_ACCESS_KEY_ID}'}\n"
            "          secretAccessKey: {valueFromEnv: AWS_SECRET_ACCESS_KEY}\n"
        ),
        {"ROLE": ROLE},
    ),
    Case("env-name-bad-literal", _bridge(extra_sink="    headers: {X-A: {valueFromEnv: 1BAD}}\n")),
    Case(
        "extension-names-good",
        _bridge(
            extra_spec="  ceOverrides:\n    extensions:\n"
            "      team: identity\n      tier2: gold\n      averyveryverylongextensionname: x\n"
        ),
    ),
    Case(
        "extension-name-uppercase", _bridge(extra_spec="  ceOverrides: {extensions: {Team: x}}\n")
    ),
    Case("extension-name-dash", _bridge(extra_spec="  ceOverrides: {extensions: {my-ext: x}}\n")),
    Case("extension-name-empty", _bridge(extra_spec="  ceOverrides: {extensions: {'': x}}\n")),
    Case("extension-name-reserved", _bridge(extra_spec="  ceOverrides: {extensions: {id: x}}\n")),
    Case(
        "extension-name-data-base64",
        _bridge(extra_spec="  ceOverrides: {extensions: {data_base64: x}}\n"),
    ),
    Case(
        "extension-value-not-a-string", _bridge(extra_spec="  ceOverrides: {extensions: {n: 1}}\n")
    ),
    Case("header-name-bad", _bridge(extra_sink="    headers: {'Bad Name': x}\n")),
    Case("header-reserved", _bridge(extra_sink="    headers: {ce-id: x}\n")),
    Case(
        "triggermesh-role-from-variable",
        "apiVersion: sources.triggermesh.io/v1alpha1\nkind: AWSCognitoUserPoolSource\n"
        f"spec:\n  arn: {ARN}\n  sink: {{uri: 'https://e.example.com'}}\n  auth:\n"
        "    credentials:\n      accessKeyID: {value: a}\n      secretAccessKey: {value: b}\n"
        "      assumeIamRole: ${ROLE:-arn:aws:iam::043455440429:role/r}\n",
    ),
    Case(
        "triggermesh-role-bad-literal",
        "apiVersion: sources.triggermesh.io/v1alpha1\nkind: AWSCognitoUserPoolSource\n"
        f"spec:\n  arn: {ARN}\n  sink: {{uri: 'https://e.example.com'}}\n  auth:\n"
        "    credentials:\n      accessKeyID: {value: a}\n      secretAccessKey: {value: b}\n"
        "      assumeIamRole: role/r\n",
    ),
]


def _readme_bridges() -> Iterator[Case]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)):
        yield Case(f"README.md#{index}", block)


def _file_cases() -> Iterator[Case]:
    folders = ["bridges", "docs/examples", "tests/fixtures"]
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.y*ml")):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # not UTF-8: refused before any schema, like a syntax error
            yield Case(path.relative_to(ROOT).as_posix(), text)


CORPUS = [*_file_cases(), *_readme_bridges(), *TARGETED]


@dataclass(frozen=True)
class Verdicts:
    schema_name: str
    python: bool
    rust: bool
    check_errors: tuple[Problem, ...]
    raw_values: Mapping[str, Any]

    @property
    def shape_errors(self) -> list[Problem]:
        return [e for e in self.check_errors if not _is_semantic(self.schema_name, e)]


def _is_semantic(schema_name: str, problem: Problem) -> bool:
    key = f"{schema_name} {problem.path}: {problem.message}"
    return any(pattern.match(key) for pattern in _SEMANTIC)


def _rust_validator(schema_name: str) -> Any:
    return jsonschema_rs.validator_for(load_schema(schema_name))


def _values_by_path(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str, Any]]:
    yield format_path(path), node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _values_by_path(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _values_by_path(value, (*path, index))


def verdicts(case: Case) -> Verdicts | None:
    """Both validators' verdicts and check's errors, or None when no schema applies."""
    data = case.text.encode("utf-8")
    parsed = parse_document(data, case.name)
    if isinstance(parsed, list) or not isinstance(parsed.data, dict):
        return None  # YAML-level problems: found before any schema, by the same parser
    document = parsed.data
    kind = (document.get("apiVersion"), document.get("kind"))
    schema_name = FORMATS.get(kind) if all(isinstance(v, str) for v in kind) else None
    if schema_name is None:
        return None  # not a bridge (a workflow file, a ConfigMap): check names the format
    document = json.loads(json.dumps(document))  # what an editor sees: plain JSON data
    # The schema describes a file's form; which variables a runner lets bridges read is the
    # runner's choice (--allow-env), so check runs here with every variable allowed.
    result = load_bytes(
        data,
        path=Path("/bridges/case.yaml"),
        root=Path("/bridges"),
        env=case.env,
        env_policy=EnvPolicy(("*",)),
    )
    return Verdicts(
        schema_name=schema_name,
        python=validator(schema_name).is_valid(document),
        rust=_rust_validator(schema_name).is_valid(document),
        check_errors=result.errors,
        raw_values=dict(_values_by_path(document)),
    )


def assert_agreement(v: Verdicts) -> None:
    assert v.python == v.rust, "jsonschema and jsonschema-rs disagree"
    rendered = [f"{p.path}: {p.message}" for p in v.check_errors]
    if not v.check_errors:
        assert v.python, "check accepts what the schema rejects"
    if not v.python:
        assert v.check_errors, "the schema rejects what check accepts"
    for problem in v.shape_errors:
        raw = v.raw_values.get(problem.path)
        if isinstance(raw, str) and _REFERENCE.search(raw):
            continue  # its value is only known at load time
        assert not v.python, f"the schema accepts what check calls a shape error: {rendered}"


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_schema_and_check_agree_on_the_corpus(case: Case) -> None:
    found = verdicts(case)
    if found is None:
        assert case not in TARGETED
        pytest.skip("not a bridge document the schema applies to (parse or format error)")
    assert_agreement(found)


def test_the_corpus_reaches_every_example_and_both_verdicts() -> None:
    examples = [c for c in CORPUS if c.name.startswith("bridges/")]
    assert len(examples) >= 3 and all(verdicts(c) is not None for c in examples)
    found = [v for v in map(verdicts, CORPUS) if v is not None]
    assert {v.schema_name for v in found} == {"bridge", "triggermesh"}
    assert any(v.python for v in found) and any(not v.python for v in found)
    # Check 4 above is exercised: documents check rejects for their shape alone.
    assert sum(bool(v.shape_errors) and not v.python for v in found) >= 10


@pytest.mark.parametrize(
    ("name", "schema_valid", "check_valid"),
    [
        ("durations-with-defaults", True, True),
        ("durations-from-env", True, True),
        ("duration-from-env-is-bad", True, False),
        ("duration-literal-dollar-brace", False, False),
        ("enums-with-defaults", True, True),
        ("enum-from-env", True, True),
        ("enum-from-env-looks-like-a-reference", True, False),
        ("role-and-env-name-from-variables", True, True),
        ("triggermesh-role-from-variable", True, True),
        ("extension-names-good", True, True),
        ("extension-name-uppercase", False, False),
        ("extension-name-dash", False, False),
        ("extension-name-empty", False, False),
        ("extension-name-reserved", False, False),
        ("extension-name-data-base64", False, False),
    ],
)
def test_targeted_verdicts(name: str, schema_valid: bool, check_valid: bool) -> None:
    """The verdicts the agreement rests on, spelled out: variables in durations, choices and
    patterns are schema-valid; extension names are refused by the schema as by check."""
    (case,) = [c for c in TARGETED if c.name == name]
    found = verdicts(case)
    assert found is not None
    assert (found.python, found.rust) == (schema_valid, schema_valid)
    assert (not found.check_errors) is check_valid


@pytest.mark.parametrize("schema_name", ["bridge", "triggermesh"])
def test_the_schemas_say_what_a_reference_is_as_this_test_does(schema_name: str) -> None:
    assert load_schema(schema_name)["$defs"]["variableReference"]["pattern"] == REFERENCE


def test_the_schema_reserves_exactly_the_attributes_the_model_reserves() -> None:
    name_schema = load_schema("bridge")["$defs"]["extensionName"]
    assert set(name_schema["not"]["enum"]) == RESERVED_ATTRIBUTES


@pytest.mark.parametrize("schema_name", ["bridge", "triggermesh"])
def test_the_second_validator_accepts_the_schemas_themselves(schema_name: str) -> None:
    assert jsonschema_rs.meta.is_valid(load_schema(schema_name))


# -- generated documents ------------------------------------------------------------------------

SETTINGS = settings(
    max_examples=int(os.environ.get("BRIDGE_PROPERTY_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_REFERENCES = ["${V}", "${V:-30s}", "${V:-emit}", "${V}s", "$${V}", "${1V}", "${V", "x${V}"]
DURATIONS = st.sampled_from(
    ["30s", "500ms", "1h30m", "PT5S", "P1D", "0s", "P1M", "5", "soon", "", *_REFERENCES]
)
CHOICES = st.sampled_from(
    [
        "baseline",
        "emit",
        "binary",
        "structured",
        "batch",
        "exponential",
        "linear",
        "Binary",
        "",
        *_REFERENCES,
    ]
)
ROLES = st.sampled_from([ROLE, "role/x", "", *_REFERENCES])
ENV_NAMES = st.sampled_from(["SINK_TOKEN", "1BAD", "A-B", "", *_REFERENCES])
EXTENSION_NAMES = st.one_of(
    st.sampled_from(sorted(RESERVED_ATTRIBUTES)),
    st.text(alphabet="abcz09XY_-. é", max_size=22),
)
ENV = st.sampled_from(
    [
        {},
        {"V": "30s"},
        {"V": "emit"},
        {"V": "linear"},
        {"V": "batch"},
        {"V": "SINK_TOKEN"},
        {"V": ROLE},
        {"V": "soon"},
        {"V": "${W}"},
    ]
)
FIELDS = {
    ("spec", "source", "awsCognitoUserPool", "pollInterval"): DURATIONS,
    ("spec", "source", "awsCognitoUserPool", "initialSync"): CHOICES,
    ("spec", "source", "awsCognitoUserPool", "auth", "assumeIamRole"): ROLES,
    ("spec", "sink", "format"): CHOICES,
    ("spec", "sink", "timeout"): DURATIONS,
    ("spec", "sink", "headers", "Authorization", "valueFromEnv"): ENV_NAMES,
    ("spec", "delivery", "backoffPolicy"): CHOICES,
    ("spec", "delivery", "backoffDelay"): DURATIONS,
    ("spec", "delivery", "maxBackoff"): DURATIONS,
}


@SETTINGS
@given(st.data())
def test_schema_and_check_agree_on_generated_bridges(data: st.DataObject) -> None:
    document: dict[str, Any] = yaml.safe_load(_bridge())
    # One or two fields at a time, so that documents check accepts are frequent.
    for path in data.draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=2)):
        node = document
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = data.draw(FIELDS[path])
    names = data.draw(st.lists(EXTENSION_NAMES, max_size=3, unique=True))
    if names:
        document["spec"]["ceOverrides"] = {"extensions": {name: "x" for name in names}}
    case = Case("generated", yaml.safe_dump(document), data.draw(ENV))
    found = verdicts(case)
    assert found is not None
    event("check accepts" if not found.check_errors else "check rejects")
    assert_agreement(found)
