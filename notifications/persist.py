"""Write a batch of events as notification rows: bulk, idempotent, in one transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from graphspace.models import Group, GroupMember, User
from notifications.events import Event
from notifications.messages import message_for
from notifications.recipients import recipients

log = logging.getLogger(__name__)

# Rows per INSERT statement: 1,000 rows x 15 columns stays far below PostgreSQL's 65,535
# bind parameters and keeps each statement's plan cheap.
CHUNK = 1000

_COMMON = (
    "event_id", "message", "type", "resource", "resource_id", "resource_name", "actor_email",
    "is_read", "is_email_sent", "occurred_at", "created_at", "updated_at",
)
OWNER_COLUMNS = _COMMON + ("owner_email",)
GROUP_COLUMNS = _COMMON + ("member_email", "owner_email", "group_id")


@dataclass
class PersistResult:
    owner_ids: list[int] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)
    # Recipients that are not GraphSpace users (an event about an unknown email).
    unknown_recipients: set[str] = field(default_factory=set)

    @property
    def created(self) -> int:
        return len(self.owner_ids) + len(self.group_ids)


def _common(event: Event, recipient: str, now: datetime) -> list[Any]:
    return [
        event.event_id, message_for(event, recipient), event.type, event.resource,
        event.resource_id, event.resource_name, event.actor, False, False,
        event.occurred_at, now, now,
    ]


def _insert(table: str, columns: Sequence[str], key: str, rows: list[list[Any]]) -> list[int]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: only the rows that are new come back,
    so a redelivered batch returns nothing and changes nothing."""
    ids: list[int] = []
    cols = ", ".join(f'"{c}"' for c in columns)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            sql = (
                f'INSERT INTO "{table}" ({cols}) VALUES {", ".join([one] * len(chunk))} '
                f'ON CONFLICT ("event_id", "{key}") DO NOTHING RETURNING "id"'
            )
            cursor.execute(sql, [value for row in chunk for value in row])
            ids.extend(r[0] for r in cursor.fetchall())
    return ids


def _group_members(group_ids: Iterable[int]) -> dict[int, list[str]]:
    """Members per group, read under a lock that keeps each group from being deleted until
    this transaction ends (its rows reference the group)."""
    wanted = sorted(set(group_ids))
    if not wanted:
        return {}
    existing = list(
        Group.objects.select_for_update(no_key=True)
        .filter(id__in=wanted)
        .order_by("id")
        .values_list("id", flat=True)
    )
    members: dict[int, list[str]] = {gid: [] for gid in existing}
    for gid, email in GroupMember.objects.filter(group_id__in=existing).values_list(
        "group_id", "user__email"
    ):
        members[gid].append(email)
    return members


def persist_events(events: Sequence[Event]) -> PersistResult:
    """Store every notification the events produce; return the ids of the new rows."""
    result = PersistResult()
    now = timezone.now()
    with transaction.atomic():
        members = _group_members(e.group_id for e in events if e.group_id is not None)
        planned: list[tuple[Event, str]] = []
        for event in events:
            group_members = members.get(event.group_id, []) if event.group_id else []
            if event.topic == "group" and event.group_id not in members:
                log.info("event %s: group %s no longer exists", event.event_id, event.group_id)
                continue
            planned.extend((event, r) for r in recipients(event, group_members))
        emails = {r for _, r in planned}
        known = set(User.objects.filter(email__in=emails).values_list("email", flat=True))
        result.unknown_recipients = emails - known

        owner_rows: list[list[Any]] = []
        group_rows: list[list[Any]] = []
        seen: set[tuple[uuid.UUID, str]] = set()
        for event, recipient in planned:
            if recipient not in known or (event.event_id, recipient) in seen:
                continue
            seen.add((event.event_id, recipient))
            row = _common(event, recipient, now)
            if event.topic == "owner":
                owner_rows.append(row + [recipient])
            else:
                group_rows.append(row + [recipient, event.actor, event.group_id])
        if owner_rows:
            result.owner_ids = _insert("owner_notification", OWNER_COLUMNS, "owner_email", owner_rows)
        if group_rows:
            result.group_ids = _insert("group_notification", GROUP_COLUMNS, "member_email", group_rows)
    if result.unknown_recipients:
        log.warning("no such users, not notified: %s", ", ".join(sorted(result.unknown_recipients)))
    return result

