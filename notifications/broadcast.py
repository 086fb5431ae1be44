"""Push new notifications and the new unread count to their recipients' open pages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

from graphspace.models import Group, User
from notifications.channels import listening, send_to_users
from notifications.models import GroupNotification, OwnerNotification, UnreadCount, WatchingNotification
from notifications.queries import ItemRow, prepared_cursor, unread_count
from notifications.serializers import item_json
from ops import metrics

# Items carried in one push; the page refetches when a message says there are more.
MAX_ITEMS = 20

MODELS = {"owner": OwnerNotification, "group": GroupNotification, "watching": WatchingNotification}
RECIPIENT = {OwnerNotification: "owner", GroupNotification: "member", WatchingNotification: "watcher"}
# The columns of an item (queries.ItemRow, which item_json takes as it takes a model instance).
ITEM_COLUMNS = ItemRow._fields[1:]


def _column(model: Any, attname: str) -> str:
    return f'"{next(f.column for f in model._meta.concrete_fields if f.attname == attname)}"'


def _new_rows() -> str:
    """The batch's rows of the three tables: (kind, recipient email, topic, *ITEM_COLUMNS),
    group_id NULL outside the group table; parameters: the three id lists."""
    parts = []
    for kind, (topic, model) in enumerate(MODELS.items()):
        columns = [_column(model, c) if c != "group_id" or model is GroupNotification else "NULL::bigint"
                   for c in ITEM_COLUMNS]
        parts.append(f'SELECT {kind} AS kind, "{model._meta.get_field(RECIPIENT[model]).column}" AS email, '
                     f"'{topic}' AS topic, "
                     f'{", ".join(f"{c} AS {a}" for c, a in zip(columns, ITEM_COLUMNS, strict=True))} '
                     f'FROM "{model._meta.db_table}" WHERE id = ANY(%s::bigint[])')
    return " UNION ALL ".join(parts)


_USER, _GROUP, _COUNT = User._meta, Group._meta, UnreadCount._meta

# Every recipient's share of the batch, for the recipients with a page open (user ids): its
# newest MAX_ITEMS rows (owner rows before group rows before watching rows, newest first), how
# many rows the batch has for it, its user id and unread count, and each group row's group
# name. One statement for what took four to six (the rows' recipients; their user ids; the
# rows as model instances, one query per table; the unread counts): broadcast was half of a
# 200 events/s worker's time, most of it in those queries (docs/latency.md).
FRAMES_SQL = (
    f"WITH new AS ({_new_rows()}), "
    f"mine AS (SELECT new.*, u.id AS user_id, "
    f"row_number() OVER (PARTITION BY u.id ORDER BY new.kind, new.created_at DESC, new.id DESC) AS place, "
    f"count(*) OVER (PARTITION BY u.id) AS total "
    f'FROM new JOIN "{_USER.db_table}" AS u ON u.{_column(User, "email")} = new.email '
    f"WHERE u.id = ANY(%s::bigint[])) "
    f"SELECT mine.user_id, mine.email, mine.total, COALESCE(c.{_column(UnreadCount, 'count')}, 0), "
    f"g.{_column(Group, 'name')}, mine.topic, {', '.join(f'mine.{c}' for c in ITEM_COLUMNS)} "
    f'FROM mine LEFT JOIN "{_GROUP.db_table}" AS g ON g.id = mine.group_id '
    f'LEFT JOIN "{_COUNT.db_table}" AS c ON c.{_column(UnreadCount, "recipient_id")} = mine.email '
    f"WHERE mine.place <= {MAX_ITEMS} ORDER BY mine.email, mine.place"
)

# The user ids of the batch's recipients (when the caller has not asked who is listening).
RECIPIENTS_SQL = (
    f"SELECT DISTINCT u.id FROM ({_new_rows()}) AS new "
    f'JOIN "{_USER.db_table}" AS u ON u.{_column(User, "email")} = new.email'
)


def frames(owner_ids: Sequence[int], group_ids: Sequence[int], watching_ids: Sequence[int],
           online: Iterable[int]) -> list[tuple[int, dict[str, Any]]]:
    """(user id, message) for each recipient among `online` of these rows: one query, a
    prepared statement (PostgreSQL planned it in 0.3-0.5 ms to run it in 0.2-0.3 ms; a worker
    process keeps its connection, and the statement, from task to task)."""
    with prepared_cursor() as cursor:
        cursor.execute(FRAMES_SQL, [list(owner_ids), list(group_ids), list(watching_ids), sorted(online)])
        found = cursor.fetchall()
    messages: list[tuple[int, dict[str, Any]]] = []
    items: list[dict[str, Any]] = []
    for user_id, email, total, unread, group_name, *item in found:
        if not messages or messages[-1][0] != user_id:
            items = []
            messages.append((user_id, {"type": "notifications.new", "items": items,
                                       "more": max(0, total - MAX_ITEMS), "unread_count": int(unread)}))
        items.append(item_json(ItemRow(*item), email, group_name))
    return messages


def broadcast(owner_ids: Sequence[int], group_ids: Sequence[int], watching_ids: Sequence[int] = (),
              online: set[int] | None = None) -> int:
    """One message per recipient with an open page, sent from one coroutine. One query when
    the caller says who has a page open (`online`: channels.listening, asked by the persist
    task), two otherwise (the recipients' ids, then the look in Redis); the rows are read,
    and the messages built, only for the recipients who are listening: a share into a group of
    10,000 members, 1,000 of them online, builds 1,000 messages, not 10,000."""
    if not owner_ids and not group_ids and not watching_ids:
        return 0
    if online is None:
        with connection.cursor() as cursor:
            cursor.execute(RECIPIENTS_SQL, [list(owner_ids), list(group_ids), list(watching_ids)])
            online = listening(row[0] for row in cursor.fetchall())
    if not online:
        return 0
    sent = send_to_users(frames(owner_ids, group_ids, watching_ids, online))
    metrics.notifications_broadcast.inc(sent)
    return sent


def push_count(user: User) -> None:
    """After a mark-read: every open page of this user shows the new count."""
    send_to_users([(user.id, {"type": "notifications.count", "unread_count": unread_count(user.email)})])
