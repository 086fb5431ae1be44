"""Push new notifications and the new unread count to their recipients' open pages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from graphspace import metrics
from graphspace.models import User
from notifications.channels import send_to_users
from notifications.models import GroupNotification, OwnerNotification
from notifications.queries import unread_count, unread_counts
from notifications.serializers import item_json

# Items carried in one push; the page refetches when a message says there are more.
MAX_ITEMS = 20


def broadcast(owner_ids: Sequence[int], group_ids: Sequence[int]) -> int:
    """One message per recipient, sent in one coroutine. Four queries whatever the batch."""
    per_user: dict[str, list[Any]] = defaultdict(list)
    for row in OwnerNotification.objects.filter(id__in=owner_ids).order_by("-created_at", "-id"):
        per_user[row.owner_id].append(item_json(row, row.owner_id))
    rows = GroupNotification.objects.filter(id__in=group_ids).select_related("group").order_by("-created_at", "-id")
    for row in rows:
        per_user[row.member_id].append(item_json(row, row.member_id, row.group.name))
    if not per_user:
        return 0
    emails = sorted(per_user)
    user_ids = dict(User.objects.filter(email__in=emails).values_list("email", "id"))
    counts = unread_counts(emails)
    messages = [
        (user_ids[email], {
            "type": "notifications.new",
            "items": per_user[email][:MAX_ITEMS],
            "more": max(0, len(per_user[email]) - MAX_ITEMS),
            "unread_count": counts.get(email, 0),
        })
        for email in emails if email in user_ids
    ]
    sent = send_to_users(messages)
    metrics.notifications_broadcast.inc(sent)
    return sent


def push_count(user: User) -> None:
    """After a mark-read: every open page of this user shows the new count."""
    send_to_users([(user.id, {"type": "notifications.count", "unread_count": unread_count(user.email)})])
