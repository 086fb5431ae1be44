"""The notification event: one schema for the producer, the bridge and the persist task.

A Kafka message value is UTF-8 JSON carrying at least the seed's fields (`owner_email`,
`message`, `resource`, `resource_id`, `type`, and `group_id` on the group topic) plus
`event_id`, `actor_email`, `resource_name`, `occurred_at` and `version`. The producer fills
the added fields; the bridge turns raw bytes into an `Event` or an `InvalidEvent` with a
reason a person can act on.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from uuid6 import uuid7

SCHEMA_VERSION = 1

Topic = Literal["owner", "group", "watching"]
TOPICS: tuple[Topic, ...] = ("owner", "group", "watching")

# The seed's Table 1: which types and resource kinds each topic carries.
OWNER_TYPES = ("upload", "create", "update", "delete")
OWNER_RESOURCES = ("graph", "layout", "group")
GROUP_TYPES = ("share", "unshare", "add", "remove")
GROUP_RESOURCES = ("graph", "layout", "group_member")
# The watching topic (issue 11): what happened to a watched graph or layout, or to a layout
# of a watched graph. publish/unpublish: a graph made public or private.
WATCHING_TYPES = ("create", "update", "delete", "share", "unshare", "publish", "unpublish")
WATCHING_RESOURCES = ("graph", "layout")
TOPIC_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "owner": (OWNER_TYPES, OWNER_RESOURCES),
    "group": (GROUP_TYPES, GROUP_RESOURCES),
    "watching": (WATCHING_TYPES, WATCHING_RESOURCES),
}
# At most this many (group, membership number) pairs on a watching event: the groups whose
# members the action told by a group event (a graph shared with more groups than this is
# refused at the action; GraphSpace graphs are shared with a handful).
ANNOUNCED_GROUPS_MAX = 1000
TYPE_RESOURCES: dict[str, tuple[str, ...]] = {
    "publish": ("graph",),
    "unpublish": ("graph",),
    "upload": ("graph",),
    "create": ("graph", "layout", "group"),
    "update": ("graph", "layout", "group"),
    "delete": ("graph", "layout", "group"),
    "share": ("graph", "layout"),
    "unshare": ("graph", "layout"),
    "add": ("group_member",),
    "remove": ("group_member",),
}

# Deliberately loose: one @, something on each side, no spaces. The user table decides
# whether the address belongs to anyone.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

# Every bound below is where a value enters the system (STYLE.md 22): whatever passes the schema
# must also fit its column, so PostgreSQL never refuses an event the bridge accepted.
BIGINT_MAX = 2**63 - 1
# notification rows keep emails in varchar(254), the longest address SMTP allows.
EMAIL_MAX = 254
# The producer's events are a few hundred bytes; a cap keeps a hostile message from costing
# the bridge memory and time (and keeps the reason short of quoting it).
MESSAGE_MAX_BYTES = 64 * 1024
# occurred_at must be a moment this system can have seen, and one every later date
# computation (clusters, digests, local time on the page) can shift without overflowing.
OCCURRED_MIN = datetime(1970, 1, 1, tzinfo=UTC)
OCCURRED_MAX = datetime(2200, 1, 1, tzinfo=UTC)
# Fields PostgreSQL stores as text: a NUL byte there makes it refuse the whole insert.
_TEXT_FIELDS = ("type", "resource", "message", "resource_name", "owner_email", "actor_email", "member_email")
_INTEGER_FIELDS = ("version", "resource_id", "group_id", "membership_seq", "graph_id", "watch_seq")

# The namespace that turns a Kafka position into a stable event id for a message that came
# without one, so a redelivered copy of it is still recognised as the same event.
_POSITION_NAMESPACE = uuid.UUID("6f1c0d52-3d55-4c1e-9a34-3f1b5bd1a0c7")


class InvalidEvent(ValueError):
    """A message that can never become a notification; retrying it cannot help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _short(value: object, limit: int = 40) -> str:
    """A value quoted in a reason: enough to recognise it, never the whole of a huge one."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _check_email(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) > EMAIL_MAX:
        raise ValueError(f"{field} is longer than {EMAIL_MAX} characters")
    if not _EMAIL.match(value):
        raise ValueError(f"{field} is not an email address")
    return value


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    topic: Topic
    version: int = SCHEMA_VERSION
    event_id: uuid.UUID
    type: str
    resource: str
    resource_id: int = Field(ge=0, le=BIGINT_MAX)
    message: str = Field(min_length=1, max_length=1000)
    # Owner topic: the recipient. Group topic: the actor (the seed's column meaning).
    owner_email: str | None = None
    actor_email: str | None = None
    resource_name: str = Field(default="", max_length=512)
    group_id: int | None = Field(default=None, ge=0, le=BIGINT_MAX)
    # The member an add or remove event is about; a removed member hears of it too.
    member_email: str | None = None
    # Group topic: the group's membership number when the action committed; the recipients
    # are the members of that moment (notifications/persist.py).
    membership_seq: int | None = Field(default=None, ge=0, le=BIGINT_MAX)
    # Watching topic: the graph the event is about (the layout's graph for a layout), the
    # watch number when the action committed (the watchers are those of that moment:
    # notifications/persist.py), and the (group, membership number) pairs the same action
    # told by group events, whose members the watching event leaves out (never twice).
    graph_id: int | None = Field(default=None, ge=0, le=BIGINT_MAX)
    watch_seq: int | None = Field(default=None, ge=0, le=BIGINT_MAX)
    announced_groups: tuple[tuple[int, int | None], ...] = Field(default=(), max_length=ANNOUNCED_GROUPS_MAX)
    occurred_at: datetime

    @field_validator("owner_email", "actor_email", "member_email")
    @classmethod
    def _emails(cls, value: str | None, info: Any) -> str | None:
        return _check_email(value, info.field_name)

    @field_validator(*_TEXT_FIELDS, mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL byte")
        return value

    @field_validator(*_INTEGER_FIELDS, mode="before")
    @classmethod
    def _no_bool_ids(cls, value: Any) -> Any:
        # Lax mode would take true as 1 and 7.0 as 7: neither is an id a producer meant.
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError("must be an integer")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        try:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            # 0001-01-01T00:00:00+05:00 is a valid ISO date whose UTC moment is not.
            raise ValueError("is out of range") from None
        if not OCCURRED_MIN <= value < OCCURRED_MAX:
            raise ValueError(f"must be between {OCCURRED_MIN:%Y-%m-%d} and {OCCURRED_MAX:%Y-%m-%d}")
        return value

    @model_validator(mode="after")
    def _fits_topic(self) -> Event:
        types, resources = TOPIC_KINDS[self.topic]
        if self.version != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema version {self.version}")
        if self.type not in types:
            raise ValueError(f"type {_short(self.type)} is not one of {', '.join(types)}")
        if self.resource not in resources:
            raise ValueError(f"resource {_short(self.resource)} is not one of {', '.join(resources)}")
        if self.resource not in TYPE_RESOURCES[self.type]:
            raise ValueError(f"type {self.type!r} does not apply to resource {self.resource!r}")
        if self.topic == "owner" and not self.owner_email:
            raise ValueError("owner_email (the recipient) is required on the owner topic")
        if self.topic == "group" and self.group_id is None:
            raise ValueError("group_id is required on the group topic")
        if self.topic == "watching" and self.graph_id is None:
            raise ValueError("graph_id is required on the watching topic")
        for gid, seq in self.announced_groups:
            if not (0 <= gid <= BIGINT_MAX and (seq is None or 0 <= seq <= BIGINT_MAX)):
                raise ValueError("announced_groups must hold (group id, membership number) pairs")
        return self

    @property
    def actor(self) -> str | None:
        """Who acted: `actor_email`, else the seed's `owner_email` on the group topic."""
        if self.actor_email:
            return self.actor_email
        return self.owner_email if self.topic == "group" else None

    def to_message(self) -> dict[str, Any]:
        """The Kafka message value (the topic travels as the Kafka topic, not in the value)."""
        return self.model_dump(mode="json", exclude={"topic"})

    def to_task(self) -> dict[str, Any]:
        """Plain JSON data for a Celery task argument."""
        return self.model_dump(mode="json")


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        msg = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def event_from_dict(
    topic: str, data: Any, *, fallback_event_id: uuid.UUID | None = None,
    fallback_occurred_at: datetime | None = None,
) -> Event:
    """Validate one decoded message; raise InvalidEvent with every problem found."""
    if topic not in TOPICS:
        raise InvalidEvent(f"unknown topic {topic!r}")
    if not isinstance(data, dict):
        raise InvalidEvent(f"message must be a JSON object, not {type(data).__name__}")
    fields = {k: v for k, v in data.items() if k != "topic"}
    if fields.get("event_id") is None and fallback_event_id is not None:
        fields["event_id"] = fallback_event_id
    if fields.get("occurred_at") is None and fallback_occurred_at is not None:
        fields["occurred_at"] = fallback_occurred_at
    try:
        return Event.model_validate({**fields, "topic": topic})
    except ValidationError as error:
        raise InvalidEvent(_reason(error)) from None
    except Exception as error:
        # A validator that met something no bound foresaw: still this message's fault, and
        # still only this message's (no exception may escape into the bridge's step).
        raise InvalidEvent(f"message cannot be validated: {type(error).__name__}: {_short(str(error), 200)}") from None


def parse_message(
    topic: str, value: bytes | None, *, partition: int = 0, offset: int | None = None,
    timestamp_ms: int | None = None,
) -> Event:
    """Bytes from Kafka to an Event. A message with only the seed's fields gets an event_id
    derived from its position (so the same message delivered twice is still one event) and
    the record's timestamp as occurred_at."""
    if value is None:
        raise InvalidEvent("empty message (no value)")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidEvent(f"message value is {type(value).__name__}, not bytes")
    if len(value) > MESSAGE_MAX_BYTES:
        raise InvalidEvent(f"message is {len(value)} bytes, more than the {MESSAGE_MAX_BYTES} allowed")
    try:
        data = json.loads(bytes(value).decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidEvent("message is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise InvalidEvent(f"message is not JSON: {error.msg} at position {error.pos}") from None
    except RecursionError:
        raise InvalidEvent("message is not JSON we can read: nested too deeply") from None
    except Exception as error:
        # json.loads also raises ValueError for an integer of more than 4300 digits.
        raise InvalidEvent(f"message is not JSON we can read: {_short(str(error), 200)}") from None
    fallback = None
    if offset is not None:
        fallback = uuid.uuid5(_POSITION_NAMESPACE, f"{topic}:{partition}:{offset}")
    return event_from_dict(topic, data, fallback_event_id=fallback, fallback_occurred_at=_record_time(timestamp_ms))


def _record_time(timestamp_ms: int | None) -> datetime:
    """The record's timestamp, when the broker gave a usable one; else now."""
    if isinstance(timestamp_ms, int) and not isinstance(timestamp_ms, bool) and timestamp_ms > 0:
        try:
            when = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return datetime.now(UTC)
        if OCCURRED_MIN <= when < OCCURRED_MAX:
            return when
    return datetime.now(UTC)


def new_event_id() -> uuid.UUID:
    """A time-ordered event id (UUIDv7, RFC 9562): its first 48 bits are the time in ms, so
    the indexes that lead with event_id (each table's once key, the outbox's) grow at their
    right end, with full pages, instead of splitting a random page for each event as a
    random id does (docs/storage.md)."""
    return uuid.UUID(int=uuid7().int)


def new_event(topic: str, message: dict[str, Any], *, now: datetime | None = None) -> Event:
    """Complete a producer's message (the seed's fields) into an Event: event_id,
    occurred_at and version are set when absent; the actor defaults to the owner."""
    data = dict(message)
    data.setdefault("event_id", new_event_id())
    data.setdefault("occurred_at", (now or datetime.now(UTC)).isoformat())
    data.setdefault("version", SCHEMA_VERSION)
    if topic == "owner":
        data.setdefault("actor_email", data.get("owner_email"))
    return event_from_dict(topic, data)
