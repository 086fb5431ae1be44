"""Persist one batch of events from the bridge."""

from __future__ import annotations

import logging
from typing import Any

from graphspace import metrics
from graphspace.celery import app
from notifications.events import Event
from notifications.persist import persist_events as persist
from tasks.base import GraphSpaceTask
from tasks.broadcast import broadcast_notifications

log = logging.getLogger(__name__)

PERSIST_TASK = "tasks.persist_events"


@app.task(base=GraphSpaceTask, name=PERSIST_TASK, ignore_result=True)
def persist_events(events: list[dict[str, Any]]) -> int:
    """Store the notifications of a batch; a redelivered batch inserts nothing new."""
    parsed = [Event.model_validate(e) for e in events]
    result = persist(parsed)
    metrics.notifications_persisted.labels("owner").inc(len(result.owner_ids))
    metrics.notifications_persisted.labels("group").inc(len(result.group_ids))
    log.info(
        "persisted %d events as %d notifications: %s",
        len(parsed), result.created, ", ".join(str(e.event_id) for e in parsed[:20]),
        extra={"event_ids": [str(e.event_id) for e in parsed]},
    )
    if result.created:
        # The rows are committed (persist's transaction has ended): the pages may hear of them.
        broadcast_notifications.delay(result.owner_ids, result.group_ids)
    return result.created
