"""Notifications and clusters as JSON, worded for the person who reads them."""

from __future__ import annotations

from typing import Any

from notifications.models import GroupNotification
from notifications.queries import ClusterRow, ClusterView, ItemRow, Notification, topic_of
from notifications.wording import cluster_text, item_text, name_preview


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def item_json(row: Notification | ItemRow, viewer: str, group_name: str | None = None) -> dict[str, Any]:
    """A notification: a model instance, or a row as the page reads it (queries.ItemRow)."""
    if isinstance(row, ItemRow):
        topic, group_id = row.topic, row.group_id
    else:
        topic = topic_of(row)
        group_id = row.group_id if isinstance(row, GroupNotification) else None
    return {
        "id": f"{topic}-{row.id}",
        "pk": row.id,
        "topic": topic,
        "type": row.type,
        "resource": row.resource,
        "resource_id": row.resource_id,
        "resource_name": row.resource_name,
        "actor_email": row.actor_email,
        "group_id": group_id,
        "group_name": group_name,
        "message": row.message,
        "text": item_text(type=row.type, resource=row.resource, name=row.resource_name or str(row.resource_id),
                          actor=row.actor_email, viewer=viewer, group_name=group_name, topic=topic),
        "is_read": row.is_read,
        "cluster_id": row.cluster_id,
        "created_at": _iso(row.created_at),
        "occurred_at": _iso(row.occurred_at),
        "url": f"/notifications/open/{topic}/{row.id}/",
    }


def cluster_json(view: ClusterView, viewer: str) -> dict[str, Any]:
    c = view.cluster
    if isinstance(c, ClusterRow):
        group_name = c.group_name
    else:
        group_name = c.group.name if c.group_id and c.group else None
    # A cluster of one is shown as its one notification.
    items = [item_json(i, viewer, group_name) for i in view.items] if c.size == 1 else []
    if items:
        text = items[0]["text"]
    else:
        text = cluster_text(topic=c.topic, type=c.type, resource=c.resource, count=c.size,
                            actor=c.actor_email or None, viewer=viewer, group_name=group_name)
    return {
        "id": c.id,
        "topic": c.topic,
        "type": c.type,
        "resource": c.resource,
        "group_id": c.group_id,
        "group_name": group_name,
        "actor_email": c.actor_email or None,
        "size": c.size,
        "unread": c.unread,
        "is_read": c.unread == 0,
        "text": text,
        "preview": name_preview([i.resource_name for i in view.items], c.size) if c.size > 1 else "",
        "first_at": _iso(c.first_at),
        "last_at": _iso(c.last_at),
        "items": items,
    }
