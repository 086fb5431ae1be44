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
    with pytest.raises(InvalidEvent, match="unknown topic 'watching'"):
        parse_message("watching", raw(SEED_EXAMPLE), offset=1)


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
