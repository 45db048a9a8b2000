"""`check` warns when an extension value would be percent-encoded in HTTP binary mode.

Binary mode carries each CloudEvents attribute in a `ce-` header, and the HTTP binding
(3.1.3.2) percent-encodes space, `"`, `%` and every character outside printable ASCII; the JS,
Go and Java SDKs hand such values on undecoded (cloudevents/spec#1397). The warning is located
at the value, names the characters (unless the value came from the environment) and is a
warning, so `check --strict` fails on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli.check import check_paths
from runner.delivery.encodings import encode_binary
from runner.loader.semantics import percent_encoded_characters
from runner.model import OutboxEvent
from tests.loader.conftest import MINIMAL
from tests.loader.conftest import load_text as load

SINK_ADVICE = "use format: structured or batch, whose JSON carries the value as it is"
DEAD_LETTER_ADVICE = "use a file: deadLetterSink, which stores the value as it is"


def with_extension(value: str, sink: str = "", spec: str = "") -> str:
    return MINIMAL + sink + spec + f"  ceOverrides:\n    extensions:\n      site: {value}\n"


def test_a_value_binary_mode_would_encode_is_a_located_warning() -> None:
    result = load(with_extension("'Zürich 100%'"))
    assert result.valid  # a warning, not an error: the bridge runs
    ((line, column, path, severity, message),) = [
        (p.line, p.column, p.path, p.severity, p.message) for p in result.problems
    ]
    assert (line, column, path, severity) == (11, 13, "spec.ceOverrides.extensions.site", "warning")
    assert message == (
        "would be percent-encoded in its ce-site header in binary mode (spec.sink.format, "
        "default binary): it has 'ü' (U+00FC), space, '%' (U+0025), and receivers built on the "
        "CloudEvents JS, Go or Java SDK do not decode it (cloudevents/spec#1397); "
        f"{SINK_ADVICE}, or keep to printable ASCII without space, '\"' and '%'"
    )


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("'say \"hi\"'", "space, '\"' (U+0022)"),
        ("'tab\there'", "U+0009"),
        ("'😀'", "'😀' (U+1F600)"),
        ("'é-é'", "'é' (U+00E9)"),  # each character named once
    ],
)
def test_every_character_the_binding_encodes_is_named(value: str, named: str) -> None:
    (problem,) = load(with_extension(value)).problems
    assert f"it has {named}, and receivers" in problem.message


@pytest.mark.parametrize(
    "value", ["identity", "a-b_c.d~e!f*g'h(i)j", "https://x.example/p?q=1&r=#f", "'{[<>]}'"]
)
def test_printable_ascii_without_space_quote_or_percent_is_sent_as_is(value: str) -> None:
    assert load(with_extension(value)).problems == ()


@pytest.mark.parametrize(
    "sink",
    [
        "    format: structured\n",
        "    format: batch\n",
    ],
)
def test_structured_and_batch_modes_carry_the_value_as_json(sink: str) -> None:
    assert load(with_extension("'Zürich'", sink=sink)).problems == ()


def test_a_file_sink_stores_the_value_as_json_whatever_its_format() -> None:
    text = with_extension("'Zürich'").replace("https://events.example.com/cognito", "file:e.jsonl")
    assert load(text).problems == ()


def test_an_http_dead_letter_sink_gets_binary_mode_whatever_the_sink_format() -> None:
    spec = "  delivery: {deadLetterSink: {uri: 'https://dead.example.com/'}}\n"
    (problem,) = load(with_extension("'Zürich'", sink="    format: batch\n", spec=spec)).problems
    assert problem.severity == "warning"
    assert "in binary mode, which dead letters are sent in: it has 'ü' (U+00FC)" in problem.message
    assert DEAD_LETTER_ADVICE in problem.message
    file_dead_letter = spec.replace("https://dead.example.com/", "file:dead.jsonl")
    assert load(with_extension("'Zürich'", "    format: batch\n", file_dead_letter)).problems == ()


def test_a_value_from_the_environment_is_never_quoted() -> None:
    (problem,) = load(
        with_extension("${BRIDGE_VAR_SITE}"), env={"BRIDGE_VAR_SITE": "Zürich 100%"}
    ).problems
    assert problem.severity == "warning" and problem.path == "spec.ceOverrides.extensions.site"
    assert "it has characters outside printable ASCII, or space, '\"' or '%'" in problem.message
    assert "ü" not in problem.message and "Zürich" not in problem.message


def test_check_strict_fails_on_the_warning(tmp_path: Path) -> None:
    bridges = tmp_path / "bridges"
    bridges.mkdir()
    (bridges / "b.yaml").write_text(with_extension("'Zürich'"), encoding="utf-8")
    lenient = check_paths([bridges], secrets_dir=tmp_path, env={})
    strict = check_paths([bridges], secrets_dir=tmp_path, env={}, strict=True)
    assert (lenient.warning_count, lenient.exit_code) == (1, 0)
    assert (strict.warning_count, strict.exit_code) == (1, 1)


def _sent_header(value: str) -> str:
    attributes = {
        "specversion": "1.0",
        "id": "1",
        "source": "s",
        "type": "t",
        "datacontenttype": "application/json",
        "x": value,
    }
    headers = encode_binary(OutboxEvent(1, "b", "1", attributes, {})).headers
    return str(headers["ce-x"])


def test_the_warning_follows_what_the_sink_really_sends() -> None:
    """The rule is the binding's, as the SDK the sink uses applies it: a character is named
    exactly when the ce- header carries it in another form."""
    for code in [*range(0x20, 0x80), 0x85, 0xA0, 0xE9, 0x20AC, 0x1F600]:
        char = chr(code)
        encoded = _sent_header(f"a{char}b") != f"a{char}b"
        assert (percent_encoded_characters(char) == [char]) is encoded, hex(code)
