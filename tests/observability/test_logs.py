"""Logging as the long-running commands configure it: no secret value in any output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from runner.aws.botocore_logs import WireLogScrubber
from runner.model import SecretRef
from runner.observability.logs import LogFormat, configure_logging
from runner.secrets.resolver import SecretResolver

# A `%` next to the secret is what used to break the redacted message's formatting.
SECRET = "s3cr3t-token-value-0f-test-logs"
CAUSE_SECRET = "cause-secret-from-test-logs-42"
DEBUG_LIBRARIES_ENV = "BRIDGE_RUNNER_DEBUG_LIBRARIES"  # documented in runner.observability.logs
LIBRARY_LOGGERS = ("botocore", "boto3", "urllib3", "httpx", "httpcore")

log = logging.getLogger("runner.test_logs")


def resolve_secrets() -> None:
    """Register both values with the Redactor the way the product does: by resolving them."""
    resolver = SecretResolver(
        env={"BRIDGE_VAR_TEST_LOGS_SECRET": SECRET, "BRIDGE_VAR_TEST_LOGS_CAUSE": CAUSE_SECRET}
    )
    assert resolver.resolve(SecretRef("env", name="BRIDGE_VAR_TEST_LOGS_SECRET")) == SECRET
    assert resolver.resolve(SecretRef("env", name="BRIDGE_VAR_TEST_LOGS_CAUSE")) == CAUSE_SECRET


@pytest.fixture
def configure() -> Iterator[Callable[..., io.StringIO]]:
    """configure_logging onto a StringIO; puts the root handlers and every level back."""
    root = logging.getLogger()
    saved_root = root.level
    saved_levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    handlers: list[logging.Handler] = []

    def configure(fmt: LogFormat = "text", level: str = "INFO") -> io.StringIO:
        stream = io.StringIO()
        handlers.append(configure_logging(fmt, level, stream))
        return stream

    yield configure
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(saved_root)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)


def log_failures() -> None:
    """Log exceptions that carry secrets only in their text, their causes and contexts."""
    try:
        raise ValueError(f"100% {SECRET}")
    except ValueError:
        log.exception("refresh of %s failed", "bridge-a")
    try:
        try:
            raise ValueError(f"100% {CAUSE_SECRET}")
        except ValueError as exc:
            raise RuntimeError("could not build the client") from exc
    except RuntimeError:
        log.exception("client for %s: %d%% done", "bridge-b", 50)
    try:
        try:
            raise KeyError(SECRET)
        except KeyError:
            raise OSError("while handling another error")  # noqa: B904 (implicit context)
    except OSError:
        log.error("cleanup for %s failed", "bridge-c", exc_info=True)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_in_exceptions_never_reach_any_output(
    configure: Callable[..., io.StringIO], capsys: pytest.CaptureFixture[str], fmt: LogFormat
) -> None:
    resolve_secrets()
    stream = configure(fmt)
    log_failures()
    log.info("token %s for %s", SECRET, "bridge-d")

    output = stream.getvalue()
    errors = capsys.readouterr().err  # logging's own error handler writes to sys.stderr
    for text in (output, errors):
        assert SECRET not in text and CAUSE_SECRET not in text
    assert "--- Logging error ---" not in errors
    # The records are all there, with their arguments and their (redacted) tracebacks.
    assert "refresh of bridge-a failed" in output
    assert "client for bridge-b: 50% done" in output
    assert "cleanup for bridge-c failed" in output
    assert "token *** for bridge-d" in output
    assert "ValueError: 100% ***" in output
    assert "The above exception was the direct cause" in output
    assert "During handling of the above exception" in output
    assert "RuntimeError: could not build the client" in output
    if fmt == "json":
        entries = [json.loads(line) for line in output.splitlines()]
        assert [e["level"] for e in entries] == ["error", "error", "error", "info"]
        assert all("Traceback" in e["exception"] for e in entries[:3])


def test_a_record_without_secrets_keeps_its_traceback(
    configure: Callable[..., io.StringIO],
) -> None:
    stream = configure("text")
    try:
        raise ValueError("100% harmless")
    except ValueError:
        log.exception("step %s", "one")
    output = stream.getvalue()
    assert "step one" in output
    assert "Traceback (most recent call last)" in output
    assert "ValueError: 100% harmless" in output


def test_wire_log_scrubber_masks_exception_chains_without_breaking_formatting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    resolve_secrets()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("botocore.test_logs")
    logger.addFilter(WireLogScrubber())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            try:
                raise ValueError(f"100% {CAUSE_SECRET}")
            except ValueError as exc:
                raise RuntimeError("request failed") from exc
        except RuntimeError:
            logger.exception("sending to %s", "cognito")
        try:
            raise ValueError(f"Authorization: 100% {SECRET}")
        except ValueError:
            logger.exception("sending to %s", "sts")
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()
        logger.propagate = True
    output = stream.getvalue()
    errors = capsys.readouterr().err
    for text in (output, errors):
        assert SECRET not in text and CAUSE_SECRET not in text
    assert "--- Logging error ---" not in errors
    assert "sending to cognito" in output and "sending to sts" in output
    assert "RuntimeError: request failed" in output


@pytest.mark.parametrize(
    ("level", "opt_in", "library_level"),
    [
        ("DEBUG", None, logging.WARNING),
        ("DEBUG", "0", logging.WARNING),
        ("INFO", "1", logging.WARNING),
        ("DEBUG", "1", logging.DEBUG),
    ],
)
def test_library_debug_logs_only_on_request(
    configure: Callable[..., io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
    level: str,
    opt_in: str | None,
    library_level: int,
) -> None:
    if opt_in is None:
        monkeypatch.delenv(DEBUG_LIBRARIES_ENV, raising=False)
    else:
        monkeypatch.setenv(DEBUG_LIBRARIES_ENV, opt_in)
    configure("text", "WARNING")  # an earlier configuration must not stick
    configure("text", level)
    for name in LIBRARY_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() == library_level, name


def test_library_debug_logs_are_still_redacted_and_scrubbed(
    configure: Callable[..., io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve_secrets()
    monkeypatch.setenv(DEBUG_LIBRARIES_ENV, "1")
    stream = configure("text", "DEBUG")
    logging.getLogger("botocore.endpoint").debug(
        "Sending http request: %s", {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAWIRE00"}
    )
    logging.getLogger("httpx").debug("POST with header x-sink-token: %s", SECRET)
    output = stream.getvalue()
    assert "Sending http request" in output and "x-sink-token: ***" in output
    assert "AKIAWIRE00" not in output and SECRET not in output


def test_text_log_lines_cannot_be_forged_by_a_name(
    configure: Callable[..., io.StringIO], caplog: pytest.LogCaptureFixture
) -> None:
    stream = configure("text")
    name = "x\n2026-01-01 00:00:00,000 ERROR   runner: forged\x1b[2K\udcff.yaml"
    logging.getLogger("runner.test").warning("start %s: new bridge", name)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(
        "runner.test: start x\\n2026-01-01 00:00:00,000 ERROR   runner: forged\\x1b[2K\\xff.yaml: "
        "new bridge"
    )
    # Other handlers see the record as it was.
    assert caplog.records[-1].getMessage() == f"start {name}: new bridge"
