"""`spec.events` in bridge files: the schema, the model the loader builds, and what `check`
warns about or rejects (`runner.loader.events_spec`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.loader.config import load_bytes
from runner.loader.digest import bridge_digest
from runner.model import LoadResult

ARN = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"


def load(events: str = "", *, emit_deletions: str = "", extensions: str = "") -> LoadResult:
    text = (
        "apiVersion: bridge-runner/v1alpha1\nkind: Bridge\nspec:\n  source:\n"
        f"    awsCognitoUserPool:\n      arn: {ARN}\n{emit_deletions}"
        "  sink:\n    uri: https://events.example.com/cognito\n"
        f"{extensions}{events}"
    )
    return load_bytes(text.encode(), path=Path("/b/signups.yaml"), root=Path("/b"), env={})


def messages(result: LoadResult) -> list[tuple[str, str, str]]:
    return [(p.severity, p.path, p.message) for p in result.problems]


def test_the_lists_reach_the_model_in_canonical_order() -> None:
    result = load(
        "  events:\n    attributes:\n      include: [email, 'custom:*']\n"
        "      exclude: ['custom:secret']\n    changeTypes: [updated, created]\n"
    )
    assert result.bridge is not None and result.problems == ()
    events = result.bridge.events
    assert events.include == ("email", "custom:*")
    assert events.exclude == ("custom:secret",)
    assert events.change_types == ("created", "updated")


def test_without_spec_events_everything_is_sent_and_the_digest_does_not_move() -> None:
    plain, spelled = load(), load("  events:\n    changeTypes: [created, updated, deleted]\n")
    assert plain.bridge is not None and spelled.bridge is not None
    assert plain.bridge.events == spelled.bridge.events
    assert not plain.bridge.events.filters_attributes
    # The default is left out of the digest, so bridges of earlier releases keep theirs.
    assert bridge_digest(plain.bridge) == bridge_digest(spelled.bridge)
    filtered = load("  events:\n    attributes: {exclude: [email]}\n")
    assert filtered.bridge is not None
    assert bridge_digest(filtered.bridge) != bridge_digest(plain.bridge)


def test_excluding_sub_by_name_warns() -> None:
    result = load("  events:\n    attributes: {exclude: [sub, phone_number]}\n")
    assert result.valid
    [(severity, path, message)] = messages(result)
    assert (severity, path) == ("warning", "spec.events.attributes.exclude")
    assert "sub is excluded" in message
    assert load("  events:\n    attributes: {exclude: ['s*']}\n").problems == ()


def test_change_types_against_emit_deletions() -> None:
    off = "      emitDeletions: false\n"
    listed = load("  events:\n    changeTypes: [created, deleted]\n", emit_deletions=off)
    assert listed.valid
    [(severity, path, message)] = messages(listed)
    assert (severity, path) == ("warning", "spec.events.changeTypes")
    assert "no deletions are sent, only created" in message

    nothing = load("  events:\n    changeTypes: [deleted]\n", emit_deletions=off)
    assert not nothing.valid
    [(severity, path, message)] = messages(nothing)
    assert (severity, path) == ("error", "spec.events.changeTypes")
    assert "sends nothing at all" in message
    assert load("  events:\n    changeTypes: [deleted]\n").problems == ()


@pytest.mark.parametrize(
    "events",
    [
        "  events:\n    changeTypes: []\n",
        "  events:\n    changeTypes: [renamed]\n",
        "  events:\n    changeTypes: [created, created]\n",
        "  events:\n    attributes: {}\n",
        "  events:\n    attributes: {include: []}\n",
        "  events:\n    attributes: {exclude: ['']}\n",
        "  events:\n    attributes: {only: [email]}\n",
        "  events:\n    kinds: [created]\n",
    ],
)
def test_the_schema_rejects_malformed_spec_events(events: str) -> None:
    result = load(events)
    assert not result.valid
    assert all(p.path.startswith("spec.events") for p in result.errors), messages(result)


@pytest.mark.parametrize("name", ["partitionkey", "changedattributes"])
def test_ce_overrides_cannot_replace_the_new_extensions(name: str) -> None:
    result = load(extensions=f"  ceOverrides:\n    extensions: {{{name}: x}}\n")
    assert not result.valid
    [problem] = result.errors
    assert problem.path == f"spec.ceOverrides.extensions.{name}"
    assert "would replace an attribute that bridge-runner sets" in problem.message
