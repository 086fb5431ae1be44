"""Persist one batch of events from the bridge, then push the new rows to the open pages."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task
from django.conf import settings
from pydantic import ValidationError

from graphspace.celery import app
from kafka_bridge.confirmations import CONFIRMATION_TTL_SECONDS, confirmation_key
from notifications.broadcast import broadcast
from notifications.events import Event
from notifications.persist import persist_events as persist
from notifications.persist import refuse_payload
from ops import metrics
from tasks.base import GraphSpaceTask

log = logging.getLogger(__name__)

PERSIST_TASK = "tasks.persist_events"


@app.task(base=GraphSpaceTask, name=PERSIST_TASK, ignore_result=True, bind=True)
def persist_events(self: Task, events: list[dict[str, Any]]) -> int:  # type: ignore[type-arg]
    """Store the notifications of a batch; a redelivered batch inserts nothing new."""
    parsed: list[Event] = []
    for data in events:
        try:
            parsed.append(Event.model_validate(data))
        except ValidationError as error:
            # The bridge validated it; a task payload that no longer parses (a schema change
            # between the bridge and this worker) is kept, not retried.
            refuse_payload(data, error)
    result = persist(parsed)
    metrics.notifications_persisted.labels("owner").inc(len(result.owner_ids))
    metrics.notifications_persisted.labels("group").inc(len(result.group_ids))
    metrics.notifications_persisted.labels("watching").inc(len(result.watching_ids))
    log.info(
        "persisted %d events as %d notifications (%d refused): %s",
        len(parsed), result.created, result.refused, ", ".join(str(e.event_id) for e in parsed[:20]),
        extra={"event_ids": [str(e.event_id) for e in parsed]},
    )
    if result.created:
        # The rows are committed (persist's transaction has ended): the pages may hear of
        # them, from this task, without a second task's trip through the queue. A push is
        # at-most-once: if the channel layer is away, the rows are still stored, and a page
        # shows them on its next load; the batch is not retried for it.
        try:
            broadcast(result.owner_ids, result.group_ids, result.watching_ids)
        except Exception:
            log.exception("broadcast of %d notifications failed", result.created,
                          extra={"event_ids": [str(e.event_id) for e in parsed]})
    confirm_stored(self.request.id)
    return result.created


_broker: redis.Redis | None = None


def confirm_stored(task_id: str | None) -> None:
    """Tell the bridge the batch is stored (kafka_bridge/confirmations.py). Best effort: an
    unconfirmed batch is only submitted again, and storing it again changes nothing."""
    if not task_id:
        return
    global _broker
    try:
        if _broker is None:  # one per pool process, made after the fork
            _broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5, socket_connect_timeout=5)
        _broker.set(confirmation_key(task_id), b"1", ex=CONFIRMATION_TTL_SECONDS)
    except Exception:
        log.warning("could not confirm task %s stored; the bridge will submit it again", task_id, exc_info=True)
