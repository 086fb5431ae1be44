"""The event schema: what the bridge accepts, and the reason it gives for what it rejects."""

from __future__ import annotations

import json
import uuid

import pytest

from notifications.events import InvalidEvent, new_event, parse_message

SEED_EXAMPLE = {
    "owner_email": "alice@example.com",
    "message": "New graph XYZ uploaded.",
    "resource": "graph",
    "resource_id": 1,
    "type": "upload",
}


def raw(data: object) -> bytes:
    return json.dumps(data).encode()


def test_the_seeds_example_becomes_a_complete_event() -> None:
    event = new_event("owner", SEED_EXAMPLE)
    assert event.owner_email == "alice@example.com"
    assert event.actor == "alice@example.com"
    assert event.version == 1
    assert isinstance(event.event_id, uuid.UUID)
    assert event.occurred_at.tzinfo is not None


def test_an_event_survives_the_round_trip_through_kafka() -> None:
    event = new_event("group", {**SEED_EXAMPLE, "type": "share", "group_id": 3, "resource_name": "XYZ"})
    again = parse_message("group", raw(event.to_message()), partition=0, offset=5)
    assert again == event


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "message is not JSON"),
        (b"\xff\xfe", "message is not UTF-8"),
        (None, "empty message"),
        (raw([1, 2]), "message must be a JSON object, not list"),
        (raw({k: v for k, v in SEED_EXAMPLE.items() if k != "type"}), "type: Field required"),
        (raw({**SEED_EXAMPLE, "resource_id": "seven"}), "resource_id: Input should be a valid integer"),
        (raw({**SEED_EXAMPLE, "resource_id": True}), "resource_id: must be an integer"),
        (raw({**SEED_EXAMPLE, "type": "share"}), "type 'share' is not one of upload, create, update, delete"),
        (raw({**SEED_EXAMPLE, "resource": "planet"}), "resource 'planet' is not one of graph, layout, group"),
        (raw({**SEED_EXAMPLE, "type": "upload", "resource": "group"}), "type 'upload' does not apply to resource 'group'"),
        (raw({**SEED_EXAMPLE, "owner_email": "not-an-email"}), "owner_email is not an email address"),
        (raw({**SEED_EXAMPLE, "owner_email": None}), "owner_email (the recipient) is required"),
        (raw({**SEED_EXAMPLE, "message": ""}), "message: String should have at least 1 character"),
        (raw({**SEED_EXAMPLE, "version": 2}), "unsupported schema version 2"),
        (raw({**SEED_EXAMPLE, "event_id": "not-a-uuid"}), "event_id: Input should be a valid UUID"),
    ],
)
def test_each_kind_of_bad_owner_message_gets_a_clear_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as error:
        parse_message("owner", value, partition=0, offset=1)
    assert reason in error.value.reason


def test_a_group_message_needs_its_group() -> None:
    with pytest.raises(InvalidEvent) as error:
        parse_message("group", raw({**SEED_EXAMPLE, "type": "share"}), offset=1)
    assert "group_id is required on the group topic" in error.value.reason


def test_an_unknown_topic_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="unknown topic 'following'"):
        parse_message("following", raw(SEED_EXAMPLE), offset=1)


def test_a_message_without_event_id_gets_one_from_its_position_so_redelivery_is_recognised() -> None:
    first = parse_message("owner", raw(SEED_EXAMPLE), partition=2, offset=40)
    again = parse_message("owner", raw(SEED_EXAMPLE), partition=2, offset=40)
    other = parse_message("owner", raw(SEED_EXAMPLE), partition=2, offset=41)
    assert first.event_id == again.event_id
    assert first.event_id != other.event_id


def test_emails_are_compared_in_lower_case() -> None:
    event = parse_message("owner", raw({**SEED_EXAMPLE, "owner_email": "Alice@Example.COM"}), offset=1)
    assert event.owner_email == "alice@example.com"


def test_on_the_group_topic_the_seeds_owner_email_is_the_actor() -> None:
    event = parse_message("group", raw({**SEED_EXAMPLE, "type": "share", "group_id": 3}), offset=1)
    assert event.actor == "alice@example.com"


def seed(**fields: object) -> bytes:
    return raw({**SEED_EXAMPLE, **fields})


def group_share(**fields: object) -> bytes:
    return raw({**SEED_EXAMPLE, "type": "share", "group_id": 3, **fields})


DEEP = b"[" * 10_000 + b"]" * 10_000

# Every kind of hostile value a producer (or an attacker with the broker's address) could
# write. Each must become an InvalidEvent whose reason says what is wrong: never another
# exception, which would escape into the bridge's step and stall the partition behind it.
HOSTILE: list[tuple[str, str, bytes | None, str]] = [
    ("bad JSON", "owner", b'{"owner_email": ', "message is not JSON"),
    ("non-UTF-8", "owner", b'{"message": "\xe9t\xe9"}', "message is not UTF-8"),
    ("binary", "owner", bytes(range(256)), "message is not UTF-8"),
    ("a JSON array", "owner", b"[1, 2, 3]", "message must be a JSON object, not list"),
    ("a JSON string", "owner", b'"upload"', "message must be a JSON object, not str"),
    ("a JSON number", "owner", b"42", "message must be a JSON object, not int"),
    ("JSON null", "owner", b"null", "message must be a JSON object, not NoneType"),
    ("an empty value", "owner", b"", "message is not JSON"),
    ("no value", "owner", None, "empty message (no value)"),
    ("an id that is text", "owner", seed(resource_id="seven"), "resource_id: Input should be a valid integer"),
    ("an id past bigint", "owner", seed(resource_id=2**63),
     "resource_id: Input should be less than or equal to 9223372036854775807"),
    ("an id far past bigint", "owner", seed(resource_id=2**70), "resource_id: Input should be less than or equal to"),
    ("a negative id", "owner", seed(resource_id=-1), "resource_id: Input should be greater than or equal to 0"),
    ("a group past bigint", "group", group_share(group_id=2**63), "group_id: Input should be less than or equal to"),
    ("a negative group", "group", group_share(group_id=-1), "group_id: Input should be greater than or equal to 0"),
    ("a membership number past bigint", "group", group_share(membership_seq=2**64),
     "membership_seq: Input should be less than or equal to"),
    ("a negative membership number", "group", group_share(membership_seq=-5),
     "membership_seq: Input should be greater than or equal to 0"),
    ("a float id", "owner", seed(resource_id=1.0), "resource_id: must be an integer"),
    ("a boolean id", "owner", seed(resource_id=True), "resource_id: must be an integer"),
    ("a boolean group", "group", group_share(group_id=False), "group_id: must be an integer"),
    ("a boolean version", "owner", seed(version=True), "version: must be an integer"),
    ("an integer of 5,000 digits", "owner", b'{"resource_id": ' + b"9" * 5000 + b"}", "message is not JSON we can read"),
    ("NaN for an id", "owner", b'{"resource_id": NaN}', "resource_id: must be an integer"),
    ("a NUL in message", "owner", seed(message="hello\x00world"), "message: must not contain a NUL byte"),
    ("a NUL in resource_name", "owner", seed(resource_name="G\x00"), "resource_name: must not contain a NUL byte"),
    ("a NUL in type", "owner", seed(type="upload\x00"), "type: must not contain a NUL byte"),
    ("a NUL in resource", "owner", seed(resource="graph\x00"), "resource: must not contain a NUL byte"),
    ("a NUL in owner_email", "owner", seed(owner_email="alice@example.com\x00"), "owner_email: must not contain a NUL byte"),
    ("a NUL in actor_email", "owner", seed(actor_email="\x00bob@example.com"), "actor_email: must not contain a NUL byte"),
    ("a NUL in member_email", "group", group_share(type="add", resource="group_member", member_email="c\x00@x.org"),
     "member_email: must not contain a NUL byte"),
    ("an email of 255 characters", "owner", seed(owner_email="a" * 243 + "@example.com"),
     "owner_email is longer than 254 characters"),
    ("an actor of 1,000 characters", "owner", seed(actor_email="b" * 988 + "@example.com"),
     "actor_email is longer than 254 characters"),
    ("a lone surrogate", "owner", seed(message="\ud800"), "message: Input should be a valid string"),
    ("a huge message", "owner", seed(message="x" * 50_000), "message: String should have at most 1000 characters"),
    ("a huge type", "owner", seed(type="t" * 50_000), "(50002 characters) is not one of upload"),
    ("a value over 64 KiB", "owner", seed(resource_name="r" * 70_000), "more than the 65536 allowed"),
    ("a value over 1 MiB", "owner", seed(message="m" * (1 << 20)), "more than the 65536 allowed"),
    ("year 1 east of Greenwich", "owner", seed(occurred_at="0001-01-01T00:00:00+05:00"), "occurred_at: is out of range"),
    ("year 9999 west of Greenwich", "owner", seed(occurred_at="9999-12-31T23:59:59-05:00"), "occurred_at: is out of range"),
    ("a date before 1970", "owner", seed(occurred_at="1900-01-01T00:00:00Z"),
     "occurred_at: must be between 1970-01-01 and 2200-01-01"),
    ("a date far ahead", "owner", seed(occurred_at="3000-01-01T00:00:00Z"), "occurred_at: must be between"),
    ("a malformed date", "owner", seed(occurred_at="2026-13-45T25:61:00Z"), "occurred_at: Input should be a valid datetime"),
    ("a date that is a number", "owner", seed(occurred_at=1e20), "occurred_at: Input should be a valid datetime"),
    ("a date that is junk", "owner", seed(occurred_at={"year": 2026}), "occurred_at: Input should be a valid datetime"),
    ("nested junk for the message", "owner", seed(message={"a": [1, {"b": None}]}), "message: Input should be a valid string"),
    ("a list for the email", "owner", seed(owner_email=["alice@example.com"]), "owner_email: Input should be a valid string"),
    ("deeply nested junk in a field", "owner", seed(resource_name=[[[[[[[[[[[]]]]]]]]]]]),
     "resource_name: Input should be a valid string"),
    ("10,000 levels of nesting", "owner", DEEP, "nested too deeply"),
    ("10,000 levels inside an object", "owner", b'{"message": ' + DEEP + b"}", "nested too deeply"),
    ("an event id that is a number", "owner", seed(event_id=12345), "event_id: UUID input should be"),
    ("a version from the future", "owner", seed(version=2**70), "unsupported schema version"),
]


@pytest.mark.parametrize(("topic", "value", "reason"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_a_hostile_message_is_an_invalid_event_with_a_reason_never_another_exception(
    topic: str, value: bytes | None, reason: str,
) -> None:
    try:
        parse_message(topic, value, partition=0, offset=9, timestamp_ms=1_700_000_000_000)
    except InvalidEvent as error:
        assert reason in error.reason
        # A reason is for people: it never quotes a huge value back.
        assert len(error.reason) < 500
    else:
        pytest.fail("accepted")


@pytest.mark.parametrize("timestamp_ms", [None, 0, -1, 2**63, 10**20], ids=str)
def test_a_broker_timestamp_out_of_range_falls_back_to_now(timestamp_ms: int | None) -> None:
    event = parse_message("owner", raw(SEED_EXAMPLE), offset=1, timestamp_ms=timestamp_ms)
    assert event.occurred_at.year >= 2026


def test_the_bounds_themselves_are_accepted() -> None:
    event = parse_message("group", group_share(
        resource_id=2**63 - 1, group_id=0, membership_seq=2**63 - 1, owner_email="a" * 242 + "@example.com",
        occurred_at="1970-01-01T00:00:00+00:00", message="m" * 1000,
    ), offset=1)
    assert (event.resource_id, event.group_id, event.membership_seq) == (2**63 - 1, 0, 2**63 - 1)
    assert len(event.owner_email or "") == 254


def test_the_membership_number_travels_with_the_event() -> None:
    event = new_event("group", {**SEED_EXAMPLE, "type": "share", "group_id": 3, "membership_seq": 41})
    assert event.to_message()["membership_seq"] == 41
    assert event.to_task()["membership_seq"] == 41
    assert parse_message("group", raw(event.to_message()), offset=1).membership_seq == 41
    assert new_event("owner", SEED_EXAMPLE).membership_seq is None
