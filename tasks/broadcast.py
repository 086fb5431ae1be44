"""Broadcast notifications already committed. The persist task pushes its own rows now; this
task stays registered for broadcast messages queued by an older persist task during an
upgrade, and for pushing rows stored by other means."""

from __future__ import annotations

from graphspace.celery import app
from notifications.broadcast import broadcast
from tasks.base import GraphSpaceTask

BROADCAST_TASK = "tasks.broadcast_notifications"


@app.task(base=GraphSpaceTask, name=BROADCAST_TASK, ignore_result=True, max_retries=3)
def broadcast_notifications(owner_ids: list[int], group_ids: list[int], watching_ids: list[int] | None = None) -> int:
    # watching_ids: optional, so a message queued with two arguments still runs.
    return broadcast(owner_ids, group_ids, watching_ids or ())
