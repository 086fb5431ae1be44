"""Hand a batch of valid events to Celery as one persist task."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from django.conf import settings

from graphspace.celery import app
from kafka_bridge.confirmations import confirmation_key
from notifications.events import Event

# The name under which tasks/persist.py registers the persist task; the bridge names it
# rather than importing it, so the bridge never loads the task code.
PERSIST_TASK = "tasks.persist_events"


class SubmitError(Exception):
    """The Celery broker did not accept the task; the batch must not be committed."""


def submit_batch(events: Sequence[Event]) -> str:
    """Publish one task for the whole batch; return its id once the broker has accepted it."""
    try:
        result = app.send_task(
            PERSIST_TASK,
            args=[[event.to_task() for event in events]],
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception as error:  # kombu and redis raise several unrelated types here
        raise SubmitError(repr(error)) from error
    return str(result.id)


def _broker() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5, socket_connect_timeout=5)
    return _client


_client: redis.Redis | None = None


def confirmed(task_ids: list[str]) -> list[bool]:
    """Which persist tasks have confirmed their batch stored (kafka_bridge/confirmations.py)."""
    if not task_ids:
        return []
    return [value is not None for value in _broker().mget([confirmation_key(t) for t in task_ids])]


def queue_empty() -> bool:
    """No persist task waits in the Celery queue (every one submitted has been taken)."""
    return int(_broker().llen(settings.CELERY_TASK_DEFAULT_QUEUE)) == 0


def look(task_ids: list[str]) -> tuple[int, list[bool]]:
    """The Celery queue's length and which of these persist tasks have confirmed their batch,
    in one round trip (Confirmations.ready asks every few milliseconds while a batch waits)."""
    pipe = _broker().pipeline(transaction=False)
    pipe.llen(settings.CELERY_TASK_DEFAULT_QUEUE)
    if task_ids:
        pipe.mget([confirmation_key(t) for t in task_ids])
    answers = pipe.execute()
    stored = [value is not None for value in answers[1]] if task_ids else []
    return int(answers[0]), stored
