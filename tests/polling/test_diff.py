"""runner.polling.diff: normalizing Cognito users, fingerprints, and the diff's rules.

The rules of created / updated / deleted detection are specified by the whole-scan oracle
(`tests.polling.oracle.diff_scan`); each test of a rule checks that `diff_chunk`, which the
runner runs on every chunk of a streamed scan, agrees with it on one chunk. How a streamed
scan as a whole comes to the oracle is tests/polling/test_stream_property.py's.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.utils import parse_timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from runner._kits.rfc3339 import rfc3339
from runner.errors import SourceRejected
from runner.model import SnapshotEntry
from runner.polling.diff import Change, UserRecord, diff_chunk, normalize_user, to_record
from runner.schemas import validator
from tests.conformance import Conformance
from tests.polling.oracle import apply, diff_scan, diff_users, latest_copies

SUB = "8f3b6a52-9b0d-4c47-a5c4-0e7d9c1f2a11"
EMAIL = "johndoe@example.com"


def boto3_user(**overrides: Any) -> dict[str, Any]:
    """A user as the runner's Cognito client returns it: dates as the epoch seconds of the
    JSON response (botocore's default parser would make tzlocal datetimes of them)."""
    user: dict[str, Any] = {
        "Username": "johndoe",
        "Attributes": [
            {"Name": "sub", "Value": SUB},
            {"Name": "email", "Value": EMAIL},
        ],
        "UserCreateDate": 1_704_103_200.0,  # 2024-01-01T10:00:00Z
        "UserLastModifiedDate": 1_704_193_200.25,  # 2024-01-02T11:00:00.25Z
        "Enabled": True,
        "UserStatus": "CONFIRMED",
    }
    user.update(overrides)
    return user


# -- normalize_user -------------------------------------------------------------------------


def with_mfa_and_a_future_field() -> dict[str, Any]:
    raw = boto3_user(MFAOptions=[{"AttributeName": "phone_number", "DeliveryMedium": "SMS"}])
    raw["SomeFutureField"] = "ignored"
    return raw


def without_mfa_and_an_attribute_value() -> dict[str, Any]:
    return boto3_user(Attributes=[{"Name": "custom:empty"}])  # the API makes Value optional


def test_normalize_user_gives_exactly_the_sync_trigger_data() -> None:
    raw = with_mfa_and_a_future_field()

    data = normalize_user(raw)

    assert data == {
        "Username": "johndoe",
        "Attributes": [{"Name": "sub", "Value": SUB}, {"Name": "email", "Value": EMAIL}],
        "UserCreateDate": "2024-01-01T10:00:00Z",
        "UserLastModifiedDate": "2024-01-02T11:00:00.25Z",
        "Enabled": True,
        "UserStatus": "CONFIRMED",
        "MFAOptions": [{"AttributeName": "phone_number", "DeliveryMedium": "SMS"}],
    }
    assert list(data) == [
        "Username",
        "Attributes",
        "UserCreateDate",
        "UserLastModifiedDate",
        "Enabled",
        "UserStatus",
        "MFAOptions",
    ]
    validator("sync_trigger").validate(data)


def test_normalize_user_fills_what_the_api_may_leave_out() -> None:
    data = normalize_user(without_mfa_and_an_attribute_value())

    assert data["MFAOptions"] == []
    assert data["Attributes"] == [{"Name": "custom:empty", "Value": ""}]
    validator("sync_trigger").validate(data)
    assert normalize_user({**boto3_user(), "Attributes": None})["Attributes"] == []


@pytest.mark.parametrize(
    "raw", [with_mfa_and_a_future_field(), without_mfa_and_an_attribute_value()]
)
def test_normalized_users_are_valid_for_triggermeshs_schema(
    conformance: Conformance, raw: dict[str, Any]
) -> None:
    conformance.sync_trigger.validate(normalize_user(raw))


def test_normalize_user_is_idempotent_and_does_not_touch_its_input() -> None:
    raw = boto3_user()
    before = copy.deepcopy(raw)
    data = normalize_user(raw)
    assert raw == before
    assert normalize_user(data) == data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Username", None),
        ("UserCreateDate", None),
        ("UserLastModifiedDate", None),
        ("Enabled", None),
        ("UserStatus", None),
        ("UserCreateDate", "yesterday"),
        ("UserLastModifiedDate", "2024-01-02T11:00:00"),  # no offset: ambiguous
        ("UserCreateDate", True),  # an int to isinstance, not a date
        ("UserCreateDate", math.nan),
        ("UserLastModifiedDate", math.inf),
        ("UserLastModifiedDate", 1e15),  # epoch seconds beyond the year 9999
        ("UserCreateDate", [1_704_103_200]),
        ("MFAOptions", [{"AttributeName": "phone_number"}]),
    ],
)
def test_an_unreadable_user_is_rejected_without_its_data(field: str, value: Any) -> None:
    raw = boto3_user()
    if value is None:
        del raw[field]
    else:
        raw[field] = value

    for convert in (normalize_user, to_record):
        with pytest.raises(SourceRejected) as caught:
            convert(raw)
        assert caught.value.reason == "InvalidUserRecord"
        for value_seen in (EMAIL, SUB, *([value] if isinstance(value, str) else [])):
            assert value_seen not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 5, 1, 10, 0, tzinfo=UTC), "2024-05-01T10:00:00Z"),
        (
            datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T10:00:00.25Z",
        ),
        (datetime(2024, 5, 1, 10, 0, 0, 1), "2024-05-01T10:00:00.000001Z"),  # naive: UTC
        (parse_timestamp(1_714_557_600.123), "2024-05-01T10:00:00.123Z"),  # tzlocal
        (1_714_557_600.123, "2024-05-01T10:00:00.123Z"),  # epoch seconds, as Cognito sends
        (1_714_557_600, "2024-05-01T10:00:00Z"),
        (0.0000005, "1970-01-01T00:00:00Z"),  # half a microsecond: to even, as datetime does
        (0.0000015, "1970-01-01T00:00:00.000002Z"),
        (-0.25, "1969-12-31T23:59:59.75Z"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
        ("2024-05-01T10:00:00.500+00:00", "2024-05-01T10:00:00.5Z"),
        ("2024-05-01T05:00:00-05:00", "2024-05-01T10:00:00Z"),
    ],
)
def test_rfc3339_writes_utc_like_go_rfc3339nano(
    value: float | datetime | str, expected: str
) -> None:
    assert rfc3339(value) == expected


def test_rfc3339_refuses_strings_without_an_offset() -> None:
    with pytest.raises(ValueError, match="offset"):
        rfc3339("2024-05-01T10:00:00")
    with pytest.raises(ValueError, match="offset"):
        rfc3339("2024-05-01")


# -- to_record and the fingerprint ----------------------------------------------------------


def test_to_record_reads_sub_and_keeps_data_lazy_but_stable() -> None:
    raw = boto3_user()
    record = to_record(raw)

    assert record.username == "johndoe"
    assert record.sub == SUB
    assert len(record.fingerprint) == 32
    assert record.data == normalize_user(raw)
    assert record.data is not record.data  # a fresh dict each time: callers may mutate it
    assert to_record(boto3_user(Attributes=[{"Name": "email", "Value": EMAIL}])).sub is None


def test_record_repr_shows_no_user_data() -> None:
    text = repr(to_record(boto3_user()))
    assert "johndoe" in text
    assert EMAIL not in text


def test_the_fingerprint_is_pinned() -> None:
    # Fingerprints are stored in every snapshot: a change to the canonical form makes every
    # user of every pool look updated once. If this fails on purpose, bump
    # FINGERPRINT_VERSION and say so in the release notes.
    canonical = (
        "('1', 'johndoe', [('email', 'johndoe@example.com'),"
        f" ('sub', '{SUB}')], 1704103200000000, 1704193200250000, True, 'CONFIRMED', [])"
    )
    expected = hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
    assert expected == "a90125ae77b53258265dc68b03331dbb"
    assert to_record(boto3_user()).fingerprint == expected


def test_same_record_same_fingerprint_whatever_its_form() -> None:
    raw = boto3_user()
    tzlocal_dates = boto3_user(  # as botocore's default timestamp parser gives them
        UserCreateDate=parse_timestamp(raw["UserCreateDate"]),
        UserLastModifiedDate=parse_timestamp(raw["UserLastModifiedDate"]),
    )
    utc_dates = boto3_user(
        UserCreateDate=tzlocal_dates["UserCreateDate"].astimezone(UTC),
        UserLastModifiedDate=tzlocal_dates["UserLastModifiedDate"].astimezone(UTC),
    )
    reordered = boto3_user(Attributes=list(reversed(raw["Attributes"])))
    expected = to_record(raw)
    assert to_record(normalize_user(raw)) == expected
    assert to_record(tzlocal_dates) == expected
    assert to_record(utc_dates) == expected
    assert to_record(reordered) == expected
    assert to_record({**raw, "MFAOptions": []}) == expected
    assert to_record({**raw, "SomeFutureField": 1}) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"Username": "janedoe"},
        {
            "Attributes": [
                {"Name": "sub", "Value": SUB},
                {"Name": "email", "Value": "x@example.com"},
            ]
        },
        {"Attributes": [{"Name": "sub", "Value": SUB}]},
        {
            "Attributes": [
                {"Name": "sub", "Value": SUB},
                {"Name": "email", "Value": EMAIL},
                {"Name": "name", "Value": ""},
            ]
        },
        {"UserCreateDate": 1_704_103_200.001},
        {"UserLastModifiedDate": 1_704_193_201.25},
        {"Enabled": False},
        {"UserStatus": "RESET_REQUIRED"},
        {"MFAOptions": [{"AttributeName": "phone_number", "DeliveryMedium": "SMS"}]},
    ],
)
def test_any_change_to_the_record_changes_the_fingerprint(change: Mapping[str, Any]) -> None:
    assert to_record(boto3_user(**change)).fingerprint != to_record(boto3_user()).fingerprint


def test_values_cannot_be_shifted_between_fields_without_changing_the_fingerprint() -> None:
    a = boto3_user(Attributes=[{"Name": "a", "Value": "b,c"}])
    b = boto3_user(Attributes=[{"Name": "a,b", "Value": "c"}])
    c = boto3_user(Attributes=[{"Name": "a", "Value": "b"}, {"Name": "c", "Value": ""}])
    assert len({to_record(u).fingerprint for u in (a, b, c)}) == 3


# Fingerprints stored while the client still let botocore make tzlocal datetimes of the
# dates must stay valid now that it keeps epoch seconds: otherwise every user of every pool
# would look updated once after the upgrade.
epoch_seconds = (
    st.floats(min_value=-2e9, max_value=4e9, allow_nan=False)
    | st.integers(min_value=0, max_value=4 * 10**15).map(lambda n: n / 1e6 + 5e-7)  # ties
    | st.integers(min_value=-(2 * 10**9), max_value=4 * 10**9)
)


@settings(max_examples=300, deadline=None)
@given(created=epoch_seconds, modified=epoch_seconds)
def test_epoch_seconds_fingerprint_and_format_as_botocore_datetimes_do(
    created: float, modified: float
) -> None:
    as_sent = boto3_user(UserCreateDate=created, UserLastModifiedDate=modified)
    as_datetimes = boto3_user(
        UserCreateDate=parse_timestamp(created), UserLastModifiedDate=parse_timestamp(modified)
    )
    assert to_record(as_sent) == to_record(as_datetimes)
    assert normalize_user(as_sent) == normalize_user(as_datetimes)


def test_non_ascii_values_are_fingerprinted_by_code_point() -> None:
    composed = to_record(boto3_user(Attributes=[{"Name": "name", "Value": "Jos\u00e9"}]))
    decomposed = to_record(boto3_user(Attributes=[{"Name": "name", "Value": "Jose\u0301"}]))
    assert composed.fingerprint != decomposed.fingerprint  # Cognito stores what it is given


# -- the diff's rules: the oracle, and diff_chunk on one chunk ---------------------------------


def user(name: str, modified: float = 0.0, **attributes: str) -> UserRecord:
    attrs = [{"Name": "sub", "Value": f"sub-{name}"}]
    attrs += [{"Name": k, "Value": v} for k, v in attributes.items()]
    return to_record(
        boto3_user(
            Username=name,
            Attributes=attrs,
            UserLastModifiedDate=1_704_193_200 + modified,
        )
    )


def entry(record: UserRecord) -> SnapshotEntry:
    return SnapshotEntry(record.fingerprint, record.sub)


def chunk_agrees(snapshot: Mapping[str, SnapshotEntry], scan: list[UserRecord]) -> None:
    """`diff_chunk`, given the scan as one chunk and the entries of its usernames, finds the
    oracle's changes of an incomplete scan, in order; every other user it read is unchanged."""
    known = {u.username: snapshot[u.username] for u in scan if u.username in snapshot}
    diff = diff_chunk(known, scan)
    expected = diff_scan(snapshot, scan, complete=False)
    assert diff.changes == expected
    changed = {c.username for c in expected}
    assert diff.unchanged == [u for u in latest_copies(scan).values() if u.username not in changed]


def test_diff_scan_finds_created_updated_and_deleted() -> None:
    kept, changed, gone = user("kept"), user("changed"), user("gone")
    snapshot = {u.username: entry(u) for u in (kept, changed, gone)}
    changed_now = user("changed", 5, email="new@example.com")
    new = user("new")

    changes = diff_scan(snapshot, [kept, changed_now, new], complete=True)

    assert changes == [
        Change("updated", "changed", changed_now, snapshot["changed"]),
        Change("created", "new", new, None),
        Change("deleted", "gone", None, snapshot["gone"]),
    ]
    assert changes[0].entry() == entry(changed_now)
    assert changes[2].entry() is None
    chunk_agrees(snapshot, [kept, changed_now, new])


def test_an_incomplete_scan_never_deletes() -> None:
    a, b = user("a"), user("b")
    snapshot = {"a": entry(a), "b": entry(b)}
    assert diff_scan(snapshot, [a], complete=False) == []
    assert diff_scan(snapshot, [], complete=False) == []
    assert [c.kind for c in diff_scan(snapshot, [], complete=True)] == ["deleted", "deleted"]
    chunk_agrees(snapshot, [a])  # a chunk never deletes: only the stream's sweep does
    chunk_agrees(snapshot, [])


def test_an_unchanged_scan_has_no_changes_and_an_empty_pool_is_a_baseline() -> None:
    users = [user(f"u{i}") for i in range(5)]
    assert diff_scan({u.username: entry(u) for u in users}, users, complete=True) == []
    assert diff_scan({}, [], complete=True) == []
    chunk_agrees({u.username: entry(u) for u in users}, users)


def test_deletions_come_after_the_scan_in_username_order() -> None:
    snapshot = {name: entry(user(name)) for name in ("zed", "amy", "max")}
    changes = diff_scan(snapshot, [user("new")], complete=True)
    assert [(c.kind, c.username) for c in changes] == [
        ("created", "new"),
        ("deleted", "amy"),
        ("deleted", "max"),
        ("deleted", "zed"),
    ]


def test_a_user_seen_twice_in_one_scan_counts_once_latest_modification_wins() -> None:
    older, newer = user("dup", 1, email="old@example.com"), user("dup", 2, email="new@example.com")
    other = user("other")

    for scan in ([older, other, newer], [newer, other, older]):
        changes = diff_scan({}, scan, complete=True)
        assert [(c.kind, c.username) for c in changes] == [("created", "dup"), ("created", "other")]
        assert changes[0].record == newer
        chunk_agrees({}, scan)
        chunk_agrees({"dup": entry(older)}, scan)

    # Equal modification times: the copy read later wins.
    first, second = user("tie", 3, email="a@example.com"), user("tie", 3, email="b@example.com")
    assert diff_scan({}, [first, second], complete=True)[0].record == second
    chunk_agrees({}, [first, second])
    chunk_agrees({"tie": entry(second)}, [first, second])


def test_sub_second_modification_times_are_compared_as_instants() -> None:
    whole, later = user("dup", 0, email="whole@example.com"), user("dup", 0.5, email="x@e.com")
    assert diff_scan({}, [later, whole], complete=True)[0].record == later
    chunk_agrees({}, [later, whole])


def test_a_user_deleted_and_created_again_is_a_deletion_then_a_creation() -> None:
    old = user("reborn")
    snapshot = {"reborn": entry(old), "changed": entry(user("changed")), "gone": entry(user("g"))}
    new = to_record(boto3_user(Username="reborn", Attributes=[{"Name": "sub", "Value": "sub-2"}]))
    changed_now = user("changed", 5)
    first = user("first")

    for complete in (True, False):  # the new sub proves the old user gone, even mid-scan
        changes = diff_scan(snapshot, [first, new, changed_now], complete=complete)

        assert changes[:4] == [
            Change("created", "first", first, None),
            Change("deleted", "reborn", None, snapshot["reborn"]),
            Change("created", "reborn", new, None),
            Change("updated", "changed", changed_now, snapshot["changed"]),
        ]
        assert changes[4:] == (
            [Change("deleted", "gone", None, snapshot["gone"])] if complete else []
        )
        assert apply(snapshot, changes)["reborn"] == entry(new)
    chunk_agrees(snapshot, [first, new, changed_now])


def test_a_changed_record_without_a_sub_on_either_side_is_an_update() -> None:
    with_sub = user("u")
    without_sub = to_record(boto3_user(Username="u", Attributes=[]))
    for before, after in ((with_sub, without_sub), (without_sub, with_sub)):
        changes = diff_scan({"u": entry(before)}, [after], complete=True)
        assert [(c.kind, c.username) for c in changes] == [("updated", "u")]
        chunk_agrees({"u": entry(before)}, [after])


# -- properties -----------------------------------------------------------------------------

NAMES = st.sampled_from([f"user{i}" for i in range(12)])
scanned_users = st.builds(
    lambda name, modified, value: user(name, modified, email=value),
    NAMES,
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["a@example.com", "b@example.com"]),
)
# Entries without a modified date, so that no scanned copy is stale: staleness has its own
# tests (test_diff_chunk.py, test_stream_property.py).
snapshots = st.dictionaries(
    NAMES,
    st.builds(
        SnapshotEntry,
        st.sampled_from(["f1", "f2"]),
        st.none() | st.just("s"),
        seen_gen=st.just(0),
        modified_us=st.none(),
        parts=st.none(),
        resync=st.just(False),
    ),
)


@settings(max_examples=200, deadline=None)
@given(snapshot=snapshots, scan=st.lists(scanned_users, max_size=20))
def test_applying_the_changes_of_a_complete_scan_gives_the_scanned_set(
    snapshot: dict[str, SnapshotEntry], scan: list[UserRecord]
) -> None:
    changes = diff_scan(snapshot, scan, complete=True)

    assert set(apply(snapshot, changes)) == {u.username for u in scan}
    for username, after in apply(snapshot, changes).items():
        assert after.fingerprint in {u.fingerprint for u in scan if u.username == username}
    assert_real_changes(snapshot, changes)


def assert_real_changes(snapshot: Mapping[str, SnapshotEntry], changes: list[Change]) -> None:
    """One change per user per scan, or one replacement pair (`deleted` then `created`, when
    the scanned `sub` differs from the remembered one); and every change is real."""
    kinds: dict[str, list[str]] = {}
    for change in changes:
        kinds.setdefault(change.username, []).append(change.kind)
    for i, change in enumerate(changes):
        before, after = snapshot.get(change.username), change.entry()
        if kinds[change.username] == ["deleted", "created"]:
            assert before is not None and before.sub is not None
            if change.kind == "deleted":
                assert change.previous == before and after is None
                created = changes[i + 1]  # the pair is adjacent, deletion first
                assert (created.kind, created.username) == ("created", change.username)
                assert created.record is not None and created.record.sub not in (None, before.sub)
            else:
                assert change.previous is None and after is not None
            continue
        assert len(kinds[change.username]) == 1
        assert change.previous == before
        if before is None:
            assert change.kind == "created"
        elif after is None:
            assert change.kind == "deleted"
        else:
            assert change.kind == "updated"
            assert after.fingerprint != before.fingerprint
            assert before.sub is None or after.sub is None or before.sub == after.sub


@settings(max_examples=200, deadline=None)
@given(snapshot=snapshots, scan=st.lists(scanned_users, max_size=20))
def test_an_incomplete_scan_only_adds_and_updates(
    snapshot: dict[str, SnapshotEntry], scan: list[UserRecord]
) -> None:
    changes = diff_scan(snapshot, scan, complete=False)

    assert_real_changes(snapshot, changes)  # so a deletion only ever precedes a re-creation
    scanned = {u.username for u in scan}
    assert all(c.username in scanned for c in changes)
    assert set(apply(snapshot, changes)) == set(snapshot) | scanned


@settings(max_examples=100, deadline=None)
@given(snapshot=snapshots, scan=st.lists(scanned_users, max_size=20))
def test_a_rescan_after_applying_finds_nothing(
    snapshot: dict[str, SnapshotEntry], scan: list[UserRecord]
) -> None:
    after = apply(snapshot, diff_scan(snapshot, scan, complete=True))
    latest = diff_scan({}, scan, complete=True)  # the deduplicated scan, as diff_scan sees it
    assert diff_scan(after, [c.record for c in latest if c.record], complete=True) == []


@settings(max_examples=200, deadline=None)
@given(snapshot=snapshots, scan=st.lists(scanned_users, max_size=20))
def test_diff_chunk_finds_the_oracles_changes_in_one_chunk(
    snapshot: dict[str, SnapshotEntry], scan: list[UserRecord]
) -> None:
    chunk_agrees(snapshot, scan)


# -- diff_users: the oracle of a raw scan (the poller's path: ScanStream, which
# test_stream_property.py holds to it, with the garbage collector paused) ----------------------


def test_diff_users_fingerprints_and_diffs_the_raw_scan() -> None:
    kept, changed, new = (boto3_user(Username=name) for name in ("kept", "changed", "new"))
    snapshot = {
        "kept": entry(to_record(kept)),
        "changed": SnapshotEntry("0" * 32, SUB),
        "gone": SnapshotEntry("1" * 32, "sub-gone"),
    }
    scan = [kept, changed, new]

    changes = diff_users(snapshot, scan, complete=True)

    assert changes == diff_scan(snapshot, [to_record(raw) for raw in scan], complete=True)
    assert [(c.kind, c.username) for c in changes] == [
        ("updated", "changed"),
        ("created", "new"),
        ("deleted", "gone"),
    ]
    assert changes[0].record == to_record(changed)
    assert diff_users(snapshot, scan, complete=False) == changes[:2]
