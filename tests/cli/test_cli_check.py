"""`bridge-runner check`: exact outputs in the three formats, exit codes, and a real subprocess.

The fixture tests/fixtures/check/bridges holds one valid bridge, one valid bridge with a
warning (a plain-text header value), one invalid bridge with three errors, and two files that
are not bridges (a hidden .yaml and a .txt) which must be skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli.check import github_annotation
from runner.cli.main import main
from runner.model import Problem

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "check"
PLAIN_SECRET = "tok-PLAIN-9f8e7d6c5b4a"  # the header value written in plain-secret.yaml

BROKEN = "bridges/team-a/broken.yml"
PLAIN = "bridges/team-a/plain-secret.yaml"
ARN_MESSAGE = (
    "user pool id 'us-west-2_fak3p001B' is in region 'us-west-2' but the ARN says 'us-east-1'"
)
UNKNOWN_MESSAGE = (
    "unknown field 'pollIntervall' (allowed: arn, auth, endpoint, pollInterval, initialSync, "
    "emitDeletions)"
)
ENUM_MESSAGE = "must be one of: binary, structured, batch"
PLAIN_MESSAGE = (
    "plain-text secret value: it is stored in git; prefer valueFromEnv, valueFromFile or "
    "valueFromSecret"
)
SUMMARY = "3 files checked: 2 valid, 1 invalid (3 errors, 1 warning)\n"

EXPECTED_TEXT = (
    f"{BROKEN}:7:12: error: {ARN_MESSAGE} [spec.source.awsCognitoUserPool.arn]\n"
    f"{BROKEN}:8:7: error: {UNKNOWN_MESSAGE} [spec.source.awsCognitoUserPool.pollIntervall]\n"
    f"{BROKEN}:11:13: error: {ENUM_MESSAGE} [spec.sink.format]\n"
    f"{PLAIN}:11:23: warning: {PLAIN_MESSAGE} [spec.sink.headers.Authorization.value]\n"
) + SUMMARY

EXPECTED_GITHUB = (
    f"::error file={BROKEN},line=7,col=12,title=bridge-runner::{ARN_MESSAGE} "
    "[spec.source.awsCognitoUserPool.arn]\n"
    f"::error file={BROKEN},line=8,col=7,title=bridge-runner::{UNKNOWN_MESSAGE} "
    "[spec.source.awsCognitoUserPool.pollIntervall]\n"
    f"::error file={BROKEN},line=11,col=13,title=bridge-runner::{ENUM_MESSAGE} [spec.sink.format]\n"
    f"::warning file={PLAIN},line=11,col=23,title=bridge-runner::{PLAIN_MESSAGE} "
    "[spec.sink.headers.Authorization.value]\n"
) + SUMMARY

VALID_BRIDGE = """\
apiVersion: bridge-runner/v1alpha1
kind: Bridge
spec:
  source:
    awsCognitoUserPool:
      arn: arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B
  sink:
    uri: {uri}
"""


@pytest.fixture
def in_fixture(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(FIXTURE)
    return FIXTURE


def run_check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("in_fixture")
def test_text_format_lists_every_problem_then_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_check(capsys, "bridges") == (1, EXPECTED_TEXT, "")


@pytest.mark.usefixtures("in_fixture")
def test_github_format_writes_annotations_then_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_check(capsys, "--format", "github", "bridges") == (1, EXPECTED_GITHUB, "")


@pytest.mark.usefixtures("in_fixture")
def test_json_format_lists_every_file_valid_or_not(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(capsys, "--format", "json", "bridges")
    assert (code, err) == (1, "")
    document = json.loads(out)
    files = document["files"]
    assert [(f["file"], f["id"], f["valid"]) for f in files] == [
        ("bridges/good.yaml", "good", True),
        (BROKEN, "team-a/broken", False),
        (PLAIN, "team-a/plain-secret", True),
    ]
    assert all(len(f["digest"]) == 64 for f in files)
    assert files[0]["errors"] == files[0]["warnings"] == []
    assert files[1]["errors"] == [
        {
            "line": 7,
            "column": 12,
            "path": "spec.source.awsCognitoUserPool.arn",
            "message": ARN_MESSAGE,
        },
        {
            "line": 8,
            "column": 7,
            "path": "spec.source.awsCognitoUserPool.pollIntervall",
            "message": UNKNOWN_MESSAGE,
        },
        {"line": 11, "column": 13, "path": "spec.sink.format", "message": ENUM_MESSAGE},
    ]
    assert files[2]["warnings"] == [
        {
            "line": 11,
            "column": 23,
            "path": "spec.sink.headers.Authorization.value",
            "message": PLAIN_MESSAGE,
        }
    ]
    assert document["summary"] == {
        "files": 3,
        "valid": 2,
        "invalid": 1,
        "errors": 3,
        "warnings": 1,
        "strict": False,
        "passed": False,
    }


@pytest.mark.usefixtures("in_fixture")
@pytest.mark.parametrize("output_format", ["text", "json", "github"])
def test_no_format_prints_a_plain_text_secret_value(
    output_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_check(capsys, "--format", output_format, "--strict", "bridges")
    assert code == 1
    assert "plain-text secret value" in out
    assert PLAIN_SECRET not in out + err


@pytest.mark.usefixtures("in_fixture")
def test_valid_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    expected = "1 file checked: 1 valid, 0 invalid (0 errors, 0 warnings)\n"
    assert run_check(capsys, "bridges/good.yaml") == (0, expected, "")


@pytest.mark.usefixtures("in_fixture")
def test_warnings_fail_only_with_strict(capsys: pytest.CaptureFixture[str]) -> None:
    warning = f"{PLAIN}:11:23: warning: {PLAIN_MESSAGE} [spec.sink.headers.Authorization.value]\n"
    summary = "1 file checked: 1 valid, 0 invalid (0 errors, 1 warning)"
    assert run_check(capsys, PLAIN) == (0, f"{warning}{summary}\n", "")
    strict_summary = f"{summary}; warnings fail the check (--strict)\n"
    assert run_check(capsys, "--strict", PLAIN) == (1, warning + strict_summary, "")
    code, out, _ = run_check(capsys, "--strict", "--format", "json", PLAIN)
    assert code == 1
    assert json.loads(out)["summary"]["passed"] is False


@pytest.mark.usefixtures("in_fixture")
def test_quiet_prints_problems_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_check(capsys, "--quiet", "bridges/good.yaml") == (0, "", "")
    assert run_check(capsys, "-q", "bridges") == (1, EXPECTED_TEXT.removesuffix(SUMMARY), "")


def test_paths_are_shown_relative_to_the_working_directory_when_below_it(
    in_fixture: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run_check(capsys, "--format", "json", str(in_fixture / "bridges" / "good.yaml"))
    assert code == 0 and json.loads(out)["files"][0]["file"] == "bridges/good.yaml"
    outside = tmp_path / "bad.yaml"
    outside.write_text("kind: Bridge\n")
    code, out, _ = run_check(capsys, "--format", "json", str(outside))
    assert code == 1 and json.loads(out)["files"][0]["file"] == outside.as_posix()


@pytest.mark.usefixtures("in_fixture")
def test_a_file_named_twice_is_checked_once(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--format", "json", "bridges/team-a", "bridges/team-a/broken.yml", "bridges"]
    code, out, _ = run_check(capsys, *argv)
    assert code == 1
    # Kept under the first argument that reached it: with team-a as its root, its id is "broken".
    assert [(f["file"], f["id"]) for f in json.loads(out)["files"]] == [
        (BROKEN, "broken"),
        (PLAIN, "plain-secret"),
        ("bridges/good.yaml", "good"),
    ]


@pytest.mark.usefixtures("in_fixture")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: PATH"),
        (["bridges", "nope/"], "bridge-runner: error: nope: no such file or directory\n"),
        (["--format", "xml", "bridges"], "argument --format: invalid choice: 'xml'"),
        (["--no-such-flag", "bridges"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_check(capsys, *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_a_directory_without_bridges_passes_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "README.md").write_text("no bridges yet\n")
    note = f"note: no bridge files (*.yaml, *.yml) in {tmp_path.as_posix()}\n"
    summary = "0 files checked: 0 valid, 0 invalid (0 errors, 0 warnings)\n"
    assert run_check(capsys, str(tmp_path)) == (0, summary, note)
    assert run_check(capsys, "--quiet", str(tmp_path)) == (0, "", "")


def test_a_directory_whose_files_were_listed_by_an_earlier_argument_gets_no_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    team = tmp_path / "team"
    team.mkdir()
    (team / "a.yaml").write_text(VALID_BRIDGE.format(uri="https://example.com/"))
    assert run_check(capsys, str(tmp_path), str(team)) == (
        0,
        "1 file checked: 1 valid, 0 invalid (0 errors, 0 warnings)\n",
        "",
    )


def test_yaml_and_yml_with_one_id_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("signups.yaml", "signups.yml"):
        (tmp_path / name).write_text(VALID_BRIDGE.format(uri="https://example.com/"))
    assert run_check(capsys, ".") == (
        1,
        "signups.yml: error: bridge id 'signups' is already used by signups.yaml: "
        "rename or remove one of the two files\n"
        "2 files checked: 1 valid, 1 invalid (1 error, 0 warnings)\n",
        "",
    )


@pytest.mark.parametrize("named", ["signups.yml", "signups.yaml"])
def test_a_named_file_is_checked_with_the_file_beside_it_that_shares_its_id(
    named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the pre-commit hook does: only the staged file is named, its pair is on disk.
    monkeypatch.chdir(tmp_path)
    team = tmp_path / "team"
    team.mkdir()
    for name in ("signups.yaml", "signups.yml", "other.yaml"):
        (team / name).write_text(VALID_BRIDGE.format(uri="https://example.com/"))
    expected = (
        1,
        "team/signups.yml: error: bridge id 'signups' is already used by team/signups.yaml: "
        "rename or remove one of the two files\n"
        "2 files checked: 1 valid, 1 invalid (1 error, 0 warnings)\n",
        "",
    )
    assert run_check(capsys, f"team/{named}") == expected
    # The same verdict, on the same file, as checking the folder (less the unrelated file).
    folder = run_check(capsys, "team")
    assert folder[1].splitlines()[0] == expected[1].splitlines()[0]


def test_environment_variables_are_expanded_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = tmp_path / "env.yaml"
    bridge.write_text(VALID_BRIDGE.format(uri="${BRIDGE_VAR_CHECK_TEST_SINK_URL}"))
    monkeypatch.delenv("BRIDGE_VAR_CHECK_TEST_SINK_URL", raising=False)
    code, out, _ = run_check(capsys, "--format", "json", str(bridge))
    assert code == 1
    assert "BRIDGE_VAR_CHECK_TEST_SINK_URL" in json.loads(out)["files"][0]["errors"][0]["message"]
    monkeypatch.setenv("BRIDGE_VAR_CHECK_TEST_SINK_URL", "https://events.example.com/")
    assert run_check(capsys, "--quiet", str(bridge)) == (0, "", "")


@pytest.mark.parametrize(
    ("problem", "annotation"),
    [
        (
            Problem("team/a,b:c.yaml", 3, 5, "spec.x", "50% of\r\nlines, a: b"),
            "::error file=team/a%2Cb%3Ac.yaml,line=3,col=5,title=bridge-runner::"
            "50%25 of%0D%0Alines, a: b [spec.x]",
        ),
        (
            Problem("a.yaml", None, None, "", "cannot read the file", "warning"),
            "::warning file=a.yaml,title=bridge-runner::cannot read the file",
        ),
        (
            Problem("a.yaml", 4, None, "spec", "x"),
            "::error file=a.yaml,line=4,title=bridge-runner::x [spec]",
        ),
    ],
)
def test_github_annotations_are_escaped_as_github_requires(
    problem: Problem, annotation: str
) -> None:
    assert github_annotation(problem) == annotation


def test_the_installed_command_in_a_real_process() -> None:
    command = Path(sys.executable).parent / "bridge-runner"
    completed = subprocess.run(
        [str(command), "check", "bridges"],
        cwd=FIXTURE,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (1, EXPECTED_TEXT, "")


def test_python_dash_m_runner_check_in_a_real_process() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "check", "--format", "github", "bridges"],
        cwd=FIXTURE,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (1, EXPECTED_GITHUB, "")
