"""runner.polling.events and the event data schemas: CloudEvents exactly as DESIGN §3 defines
them."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.utils import parse_timestamp
from cloudevents.core.bindings.http import from_binary_event, to_binary_event
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from runner.delivery.encodings import to_cloudevent
from runner.model import (
    EVENT_TYPE_DELETED,
    EVENT_TYPE_SYNC,
    Bridge,
    CognitoSource,
    NewEvent,
    OutboxEvent,
    PoolArn,
    Sink,
    SnapshotEntry,
    Target,
    frozen_map,
)
from runner.polling.diff import Change, diff_chunk, normalize_user, to_record
from runner.polling.events import build_events, event_id
from runner.schemas import load_schema, validator
from runner.state.outbox import Outbox
from tests.conformance import Conformance
from tests.peers.sink_server import document_problems, envelope_validator
from tests.polling.oracle import diff_scan

POOL_ID = "us-west-2_fak3p001B"
ARN = f"arn:aws:cognito-idp:us-west-2:043455440429:userpool/{POOL_ID}"
OBSERVED = datetime(2024, 3, 1, 12, 30, 0, 500000, tzinfo=UTC)
BRIDGE = Bridge(
    id="team-a/signups",
    file=Path("team-a/signups.yaml"),
    name="signups",
    source=CognitoSource(pool=PoolArn(ARN, "aws", "us-west-2", "043455440429", POOL_ID)),
    sink=Sink(target=Target("http://127.0.0.1:9/")),
    ce_extensions=frozen_map({"team": "identity"}),
)


# TriggerMesh's own examples of sync_trigger data, as its schema publishes them
# (test_the_examples_here_are_triggermeshs holds this copy to the file where it is present).
TRIGGERMESH_EXAMPLES: list[dict[str, Any]] = [
    {
        "Attributes": [
            {"Name": "email", "Value": "johndoe@example.com"},
            {"Name": "phone_number", "Value": "+1 123-456-7890"},
        ],
        "Enabled": True,
        "MFAOptions": [{"AttributeName": "phone_number", "DeliveryMedium": "SMS"}],
        "UserCreateDate": "2022-01-01T10:00:00Z",
        "UserLastModifiedDate": "2022-01-02T11:00:00Z",
        "UserStatus": "CONFIRMED",
        "Username": "johndoe",
    },
    {
        "Attributes": [{"Name": "email", "Value": "janedoe@example.com"}],
        "Enabled": False,
        "MFAOptions": [],
        "UserCreateDate": "2022-02-01T09:00:00Z",
        "UserLastModifiedDate": "2022-03-01T10:00:00Z",
        "UserStatus": "RESET_REQUIRED",
        "Username": "janedoe",
    },
    {
        "Attributes": [],
        "Enabled": True,
        "MFAOptions": [],
        "UserCreateDate": "2022-04-01T08:00:00Z",
        "UserLastModifiedDate": "2022-04-01T08:00:00Z",
        "UserStatus": "FORCE_CHANGE_PASSWORD",
        "Username": "joedoe",
    },
]


def raw_user(name: str, modified: float, **attributes: str) -> dict[str, Any]:
    return {
        "Username": name,
        "Attributes": [{"Name": "sub", "Value": f"sub-{name}"}]
        + [{"Name": k, "Value": v} for k, v in attributes.items()],
        "UserCreateDate": parse_timestamp(1_704_103_200),
        "UserLastModifiedDate": parse_timestamp(1_704_103_200 + modified),
        "Enabled": True,
        "UserStatus": "CONFIRMED",
    }


def scan_changes() -> list[Change]:
    """One of each: created ("new"), updated ("changed"), deleted ("gone")."""
    changed_before = to_record(raw_user("changed", 0))
    gone = SnapshotEntry("f" * 32, "sub-gone")
    snapshot = {
        "changed": SnapshotEntry(changed_before.fingerprint, changed_before.sub),
        "gone": gone,
    }
    scan = [
        to_record(raw_user("changed", 60.125, email="c@example.com")),
        to_record(raw_user("new", 1)),
    ]
    return diff_scan(snapshot, scan, complete=True)


# -- attributes and data --------------------------------------------------------------------


def test_events_carry_the_attributes_of_design_section_3() -> None:
    events = build_events(BRIDGE, scan_changes(), observed_at=OBSERVED, scan_id="scan-1")

    assert [e.attributes["changetype"] for e in events] == ["updated", "created", "deleted"]
    updated, created, deleted = events
    assert updated.attributes == {
        "specversion": "1.0",
        "id": updated.event_id,
        "source": ARN,
        "type": EVENT_TYPE_SYNC,
        "subject": POOL_ID,
        "time": "2024-01-01T10:01:00.125Z",
        "datacontenttype": "application/json",
        "changetype": "updated",
        "partitionkey": "sub-changed",
        "team": "identity",
    }
    assert updated.data == normalize_user(raw_user("changed", 60.125, email="c@example.com"))
    assert created.attributes["type"] == EVENT_TYPE_SYNC
    assert created.attributes["time"] == "2024-01-01T10:00:01Z"
    assert deleted.attributes["type"] == EVENT_TYPE_DELETED
    assert deleted.attributes["time"] == "2024-03-01T12:30:00.5Z"  # when the scan noticed
    assert deleted.data == {"Username": "gone", "sub": "sub-gone"}
    assert len({e.event_id for e in events}) == 3


def test_deletions_are_sent_only_when_the_bridge_asks() -> None:
    quiet = replace(BRIDGE, source=replace(BRIDGE.source, emit_deletions=False))
    kinds = [
        [
            e.attributes["changetype"]
            for e in build_events(
                b, scan_changes(), observed_at=OBSERVED, scan_id="s", emit_deletions=override
            )
        ]
        for b, override in ((quiet, None), (BRIDGE, False), (quiet, True))
    ]
    assert kinds == [
        ["updated", "created"],
        ["updated", "created"],
        ["updated", "created", "deleted"],
    ]


def test_a_deleted_user_without_a_sub_has_null_sub() -> None:
    change = Change("deleted", "legacy", None, SnapshotEntry("f" * 32, None))
    (event,) = build_events(BRIDGE, [change], observed_at=OBSERVED, scan_id="s")
    assert event.data == {"Username": "legacy", "sub": None}
    validator("user_deleted").validate(event.data)


def test_extensions_never_replace_core_attributes() -> None:
    bridge = replace(
        BRIDGE, ce_extensions=frozen_map({"type": "x", "id": "x", "changetype": "x", "env": "prod"})
    )
    (event, *_) = build_events(bridge, scan_changes(), observed_at=OBSERVED, scan_id="s")
    assert event.attributes["type"] == EVENT_TYPE_SYNC
    assert event.attributes["id"] == event.event_id
    assert event.attributes["changetype"] == "updated"
    assert event.attributes["env"] == "prod"


def test_observed_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        build_events(BRIDGE, [], observed_at=datetime(2024, 1, 1), scan_id="s")


# -- ids ------------------------------------------------------------------------------------


def test_ids_are_deterministic_and_distinguish_every_field() -> None:
    base = event_id(ARN, "johndoe", "updated", "2024-01-01T10:00:00Z")
    assert base == event_id(ARN, "johndoe", "updated", "2024-01-01T10:00:00Z")
    assert len(base) == 32
    others = {
        event_id(
            ARN.replace("fak3p001B", "other0001"), "johndoe", "updated", "2024-01-01T10:00:00Z"
        ),
        event_id(ARN, "janedoe", "updated", "2024-01-01T10:00:00Z"),
        event_id(ARN, "johndoe", "created", "2024-01-01T10:00:00Z"),
        event_id(ARN, "johndoe", "updated", "2024-01-01T10:00:01Z"),
        event_id(
            ARN, "john", "doeupdated", "2024-01-01T10:00:00Z"
        ),  # no field bleeds into the next
    }
    assert base not in others
    assert len(others) == 5


def test_ids_repeat_only_for_the_same_change() -> None:
    first = build_events(BRIDGE, scan_changes(), observed_at=OBSERVED, scan_id="scan-1")
    again = build_events(BRIDGE, scan_changes(), observed_at=OBSERVED, scan_id="scan-1")
    assert [e.event_id for e in first] == [e.event_id for e in again]
    # Seen by another scan: a creation is the same event (its content says so); an update or
    # a deletion is another one.
    later = build_events(BRIDGE, scan_changes(), observed_at=OBSERVED, scan_id="scan-2")
    same = {
        a.attributes["changetype"]: a.event_id == b.event_id
        for a, b in zip(first, later, strict=True)
    }
    assert same == {"updated": False, "created": True, "deleted": False}


def test_a_change_and_its_undoing_get_different_ids_when_the_timestamp_stays() -> None:
    # moto does not move UserLastModifiedDate on AdminDisableUser / AdminEnableUser.
    enabled = to_record(raw_user("u", 5))
    disabled = to_record({**raw_user("u", 5), "Enabled": False})
    transitions = [(enabled, disabled), (disabled, enabled), (enabled, disabled)]
    ids = []
    for n, (before, after) in enumerate(transitions):
        change = Change("updated", "u", after, SnapshotEntry(before.fingerprint, before.sub))
        (event,) = build_events(BRIDGE, [change], observed_at=OBSERVED, scan_id=f"scan-{n}")
        assert event.attributes["time"] == "2024-01-01T10:00:05Z"
        ids.append(event.event_id)
    assert len(set(ids)) == 3


# -- a user deleted and created again under the same username --------------------------------


def replacement() -> tuple[Change, list[Change]]:
    """The creation of user "reborn" and the changes of a later scan that finds it
    re-created: the same username with another sub (the oracle's, and the chunk's)."""
    old = to_record(raw_user("reborn", 0))
    new = to_record({**raw_user("reborn", 90), "Attributes": [{"Name": "sub", "Value": "sub-2"}]})
    first = Change("created", "reborn", old, None)
    before = first.entry()
    assert before is not None
    changes = diff_scan({"reborn": before}, [new], complete=False)
    assert diff_chunk({"reborn": before}, [new]).changes == changes
    return first, changes


def test_a_re_created_user_gives_a_deletion_then_a_creation_with_distinct_ids() -> None:
    _, changes = replacement()
    deleted, created = build_events(BRIDGE, changes, observed_at=OBSERVED, scan_id="scan-1")

    assert deleted.attributes["changetype"] == "deleted"
    assert deleted.attributes["type"] == EVENT_TYPE_DELETED
    assert deleted.data == {"Username": "reborn", "sub": "sub-reborn"}  # the old user's sub
    assert created.attributes["changetype"] == "created"
    assert created.attributes["type"] == EVENT_TYPE_SYNC
    assert created.data["Attributes"] == [{"Name": "sub", "Value": "sub-2"}]
    assert deleted.event_id != created.event_id
    quiet = build_events(BRIDGE, changes, observed_at=OBSERVED, scan_id="s", emit_deletions=False)
    assert [e.attributes["changetype"] for e in quiet] == ["created"]


def test_committing_a_replacement_leaves_the_new_user_in_the_snapshot(tmp_path: Path) -> None:
    first, changes = replacement()
    events = build_events(BRIDGE, changes, observed_at=OBSERVED, scan_id="scan-1")
    with Outbox.open(tmp_path) as outbox:
        outbox.commit_scan(BRIDGE.id, ARN, [first], [], complete=True)
        assert outbox.load_snapshot(BRIDGE.id, ARN) == {"reborn": first.entry()}

        seqs = outbox.commit_scan(BRIDGE.id, ARN, changes, events, complete=False)

        assert [e.event_id for e in outbox.pending(BRIDGE.id, 10)] == [e.event_id for e in events]
        assert len(seqs) == 2
        assert outbox.load_snapshot(BRIDGE.id, ARN) == {"reborn": changes[1].entry()}


# -- the events against the SDK, the project's schemas and the conformance ones -------------


def all_kinds() -> list[NewEvent]:
    return build_events(BRIDGE, scan_changes(), observed_at=OBSERVED, scan_id="scan-1")


def stored(event: NewEvent) -> OutboxEvent:
    """The event as the outbox hands it to delivery."""
    return OutboxEvent(1, BRIDGE.id, event.event_id, event.attributes, event.data)


def structured_form(event: NewEvent) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(JSONFormat().write(to_cloudevent(stored(event))))
    return document


def test_every_event_builds_with_the_sdk_and_validates_in_structured_form() -> None:
    for event in all_kinds():
        attributes_before = copy.deepcopy(event.attributes)
        cloud_event = to_cloudevent(stored(event))
        assert event.attributes == attributes_before  # the SDK wrote into a copy

        structured = json.loads(JSONFormat().write(cloud_event))
        envelope_validator().validate(structured)
        assert structured["id"] == event.event_id
        assert structured["source"] == ARN
        assert structured["changetype"] == event.attributes["changetype"]
        assert datetime.fromisoformat(structured["time"]) == datetime.fromisoformat(
            event.attributes["time"]
        )
        assert structured["data"] == event.data
        if structured["type"] == EVENT_TYPE_SYNC:
            validator("sync_trigger").validate(structured["data"])
        else:
            validator("user_deleted").validate(structured["data"])
        assert document_problems(structured) == []


def test_every_event_is_valid_for_the_cloudevents_and_triggermesh_schemas(
    conformance: Conformance,
) -> None:
    for event in all_kinds():
        structured = structured_form(event)
        conformance.cloudevents.validate(structured)
        if structured["type"] == EVENT_TYPE_SYNC:
            conformance.sync_trigger.validate(structured["data"])


def test_binary_http_round_trip_keeps_every_attribute() -> None:
    for event in all_kinds():
        message = to_binary_event(to_cloudevent(stored(event)))
        assert message.headers["ce-changetype"] == event.attributes["changetype"]
        assert message.headers["ce-team"] == "identity"
        parsed = from_binary_event(message)
        assert parsed.get_id() == event.event_id
        assert parsed.get_subject() == POOL_ID
        assert parsed.get_extension("changetype") == event.attributes["changetype"]
        assert json.loads(message.body) == event.data
        assert parsed.get_data() == event.data


# -- the data schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sync_trigger", "user_deleted"])
def test_event_schemas_are_valid_2020_12_schemas_with_valid_examples(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["examples"]
    for example in schema["examples"]:
        validator(name).validate(example)


@pytest.mark.parametrize("example", TRIGGERMESH_EXAMPLES, ids=lambda e: e["Username"])
def test_triggermesh_examples_normalize_to_themselves_and_validate(example: dict[str, Any]) -> None:
    data = normalize_user(example)
    assert data == example
    validator("sync_trigger").validate(data)


def test_the_examples_here_are_triggermeshs(conformance: Conformance) -> None:
    assert conformance.sync_trigger_examples == TRIGGERMESH_EXAMPLES
    for example in TRIGGERMESH_EXAMPLES:
        conformance.sync_trigger.validate(example)


def sync_trigger_verdicts() -> list[tuple[Any, bool]]:
    """Documents near TriggerMesh's example, valid and invalid in every way we can think of,
    with the verdict TriggerMesh's schema gives (test_triggermesh_gives_the_same_verdicts)."""
    base = TRIGGERMESH_EXAMPLES[0]
    docs: list[tuple[Any, bool]] = [
        (base, True),
        ({**base, "MFAOptions": []}, True),
        ({**base, "Attributes": []}, True),
        ({**base, "UserCreateDate": "2022-01-01T10:00:00.123456789+05:30"}, True),
        ({**base, "Attributes": [{"Name": "", "Value": ""}]}, True),
    ]
    for key in base:
        docs.append(({k: v for k, v in base.items() if k != key}, False))  # a required field
        docs.append(({**base, key: None}, False))
        docs.append(({**base, key: 1}, False))
    docs += [
        ({**base, "Extra": "x"}, False),
        ({**base, "UserCreateDate": "2022-01-01"}, False),
        ({**base, "UserCreateDate": "2022-01-01T10:00:00"}, False),
        ({**base, "UserLastModifiedDate": "not a date"}, False),
        ({**base, "Enabled": "true"}, False),
        ({**base, "Attributes": [{"Name": "email"}]}, False),
        ({**base, "Attributes": [{"Name": "email", "Value": "x", "Extra": 1}]}, False),
        ({**base, "Attributes": [{"Name": 1, "Value": "x"}]}, False),
        ({**base, "Attributes": ["email"]}, False),
        ({**base, "MFAOptions": [{"AttributeName": "phone_number"}]}, False),
        ({**base, "MFAOptions": [{"AttributeName": "p", "DeliveryMedium": "SMS", "X": 1}]}, False),
        ({**base, "MFAOptions": {}}, False),
        ([], False),
        ("a string", False),
    ]
    return docs


@pytest.mark.parametrize(("doc", "valid"), sync_trigger_verdicts())
def test_sync_trigger_schema_verdicts(doc: Any, valid: bool) -> None:
    assert validator("sync_trigger").is_valid(doc) is valid


@pytest.mark.parametrize(("doc", "valid"), sync_trigger_verdicts())
def test_triggermesh_gives_the_same_verdicts(
    conformance: Conformance, doc: Any, valid: bool
) -> None:
    assert conformance.sync_trigger.is_valid(doc) is valid


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    drop=st.sets(st.sampled_from(sorted(TRIGGERMESH_EXAMPLES[0]))),
    replace_with=st.dictionaries(
        st.sampled_from([*sorted(TRIGGERMESH_EXAMPLES[0]), "Extra"]), json_values, max_size=2
    ),
)
def test_sync_trigger_schema_agrees_with_triggermesh_on_random_documents(
    conformance: Conformance, drop: set[str], replace_with: dict[str, Any]
) -> None:
    doc = {k: v for k, v in TRIGGERMESH_EXAMPLES[0].items() if k not in drop} | replace_with
    assert validator("sync_trigger").is_valid(doc) == conformance.sync_trigger.is_valid(doc)


def test_user_deleted_schema() -> None:
    check = validator("user_deleted")
    assert check.is_valid({"Username": "a", "sub": "b"})
    assert check.is_valid({"Username": "a", "sub": None})
    assert not check.is_valid({"Username": "a"})
    assert not check.is_valid({"Username": "a", "sub": "b", "Extra": 1})
    assert not check.is_valid({"Username": None, "sub": "b"})


# -- the envelope schema --------------------------------------------------------------------

ENVELOPE = {
    "specversion": "1.0",
    "id": "0f73addd",
    "source": ARN,
    "type": EVENT_TYPE_SYNC,
    "subject": POOL_ID,
    "time": "2024-01-01T10:00:01Z",
    "datacontenttype": "application/json",
    "changetype": "created",
    "data": TRIGGERMESH_EXAMPLES[0],
}
REQUIRED = ("id", "source", "specversion", "type")


def envelope_verdicts() -> list[tuple[Any, bool, bool]]:
    """(document, valid for the project's envelope schema, valid for CloudEvents' JSON schema).
    Ours may refuse more, following the specification's prose; never accept more."""
    base = ENVELOPE
    minimal = {k: base[k] for k in REQUIRED}
    docs: list[tuple[Any, bool, bool]] = [
        (base, True, True),
        (minimal, True, True),
        ({**minimal, "source": "/sensors/tn-1234567/alerts"}, True, True),  # a URI-reference
        ({**minimal, "time": "2024-01-01T10:00:01.123456789+05:30"}, True, True),
        ({**minimal, "dataschema": "https://example.com/schema"}, True, True),
        ({**minimal, "count": 3, "flag": True, "team": ""}, True, True),  # extension types
        ({**minimal, "data_base64": "eA=="}, True, True),
        ({**minimal, "data": None}, True, True),
        ({**minimal, "data": "text"}, True, True),
        ({**minimal, "subject": None, "time": None, "datacontenttype": None}, True, True),
    ]
    for key in REQUIRED:
        docs.append(({k: v for k, v in base.items() if k != key}, False, False))
        docs.append(({**base, key: ""}, False, False))
        docs.append(({**base, key: 1}, False, False))
    for key in ("subject", "datacontenttype", "dataschema", "time"):
        docs.append(({**base, key: ""}, False, False))
        docs.append(({**base, key: 1}, False, False))
    docs += [
        ({**base, "source": "not a uri reference"}, False, False),
        ({**base, "time": "yesterday"}, False, False),
        ({**base, "time": "2024-01-01T10:00:01"}, False, False),  # no offset
        ({**base, "time": "2024-02-30T10:00:01Z"}, False, False),
        ({**base, "dataschema": "relative/path"}, False, False),  # must be absolute
        ({**base, "data_base64": 1}, False, False),
        ([], False, False),
        ("a string", False, False),
        # What the specification says and CloudEvents' JSON schema does not check:
        ({**base, "specversion": "0.3"}, False, True),
        ({**base, "Bad-Name": "x"}, False, True),  # names: a-z and 0-9 only
        ({**base, "team\n": "x"}, False, True),
        ({**base, "team": None}, False, True),  # extension values: string, integer, boolean
        ({**base, "team": 1.5}, False, True),
        ({**base, "team": {"a": 1}}, False, True),
        ({**base, "team": ["a"]}, False, True),
        ({**base, "data_base64": "eA=="}, False, True),  # with data: one or the other
        ({**minimal, "data_base64": "not base64!"}, False, True),
    ]
    return docs


def test_the_envelope_schema_is_a_valid_2020_12_schema_with_valid_examples() -> None:
    schema = envelope_validator().schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["examples"]
    for example in schema["examples"]:
        envelope_validator().validate(example)
        assert document_problems(example) == []


@pytest.mark.parametrize(("doc", "ours", "theirs"), envelope_verdicts())
def test_envelope_schema_verdicts(doc: Any, ours: bool, theirs: bool) -> None:
    assert ours <= theirs, "the table says ours accepts what CloudEvents refuses"
    assert envelope_validator().is_valid(doc) is ours


@pytest.mark.parametrize(("doc", "ours", "theirs"), envelope_verdicts())
def test_cloudevents_gives_the_verdicts_the_table_says(
    conformance: Conformance, doc: Any, ours: bool, theirs: bool
) -> None:
    assert conformance.cloudevents.is_valid(doc) is theirs


EDGE_VALUES: list[Any] = [
    *("", "1.0", "0.3", "x", "a b", "/x/y", "https://example.com/s", "eA==", "eA=", "é"),
    *("2024-01-01T10:00:01Z", "2024-01-01T10:00:01", "2024-01-01"),
    *(None, 0, 1, 1.5, True, [], {}, ["x"], {"a": 1}),
]
ATTRIBUTE_NAMES = [*sorted(ENVELOPE), "dataschema", "data_base64", "Ext", "ext1", "e_x"]
attribute_values = st.one_of(st.sampled_from(EDGE_VALUES), json_values)


def test_envelope_schema_accepts_no_single_change_cloudevents_refuses(
    conformance: Conformance,
) -> None:
    """Every attribute dropped or set to each edge value, one at a time: deterministic."""
    docs = [{k: v for k, v in ENVELOPE.items() if k != drop} for drop in ENVELOPE]
    docs += [{**ENVELOPE, name: value} for name in ATTRIBUTE_NAMES for value in EDGE_VALUES]
    accepted_by_us_only = [
        doc
        for doc in docs
        if envelope_validator().is_valid(doc) and not conformance.cloudevents.is_valid(doc)
    ]
    assert accepted_by_us_only == []
    # ... and the table is not trivially satisfied: CloudEvents refuses some of these.
    assert not all(conformance.cloudevents.is_valid(doc) for doc in docs)


@settings(max_examples=500, deadline=None)
@given(
    drop=st.sets(st.sampled_from(sorted(ENVELOPE))),
    replace_with=st.dictionaries(st.sampled_from(ATTRIBUTE_NAMES), attribute_values, max_size=3),
)
def test_envelope_schema_accepts_nothing_cloudevents_refuses(
    conformance: Conformance, drop: set[str], replace_with: dict[str, Any]
) -> None:
    doc = {k: v for k, v in ENVELOPE.items() if k not in drop} | replace_with
    if envelope_validator().is_valid(doc):
        assert conformance.cloudevents.is_valid(doc), doc
