"""The daily digest: the periodic fan-out and one task per user (the rules: notifications/digest.py).

Unlike the pipeline tasks these two keep their results (django-celery-results), so the admin
and Flower show each night's run and each user's outcome.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from celery import Task
from celery.utils.time import get_exponential_backoff_interval

from graphspace.celery import app
from notifications import digest
from notifications.email import TransportError
from tasks.base import GraphSpaceTask

log = logging.getLogger(__name__)

SEND_DIGESTS = "tasks.send_digests"
SEND_DIGEST = "tasks.send_digest"
# Users read per query, and tasks published per broker connection checkout.
FANOUT_CHUNK = 500


@app.task(base=GraphSpaceTask, name=SEND_DIGESTS, ignore_result=False)
def send_digests(period: str | None = None) -> dict[str, Any]:
    """One send_digest task per due user. A rerun (or a retry after a crash half-way) enqueues
    some users again; their claim on the (user, period) row makes the extra tasks no-ops."""
    day = date.fromisoformat(period) if period else digest.current_period()
    users = 0
    for chunk in digest.due_user_id_chunks(day, FANOUT_CHUNK):
        with app.producer_or_acquire() as producer:
            for user_id in chunk:
                send_digest.apply_async((user_id, day.isoformat()), producer=producer)
        users += len(chunk)
    log.info("digest %s: %d users", day, users)
    return {"period": day.isoformat(), "users": users}


@app.task(
    base=GraphSpaceTask, name=SEND_DIGEST, bind=True, ignore_result=False,
    # Mail servers ask to come back in minutes, not seconds: 1, 2, 4 ... 60 minutes, jittered.
    max_retries=10, retry_backoff=60, retry_backoff_max=3600, retry_jitter=True,
)
def send_digest(self: Task, user_id: int, period: str) -> str:  # type: ignore[type-arg]
    try:
        result = digest.send_digest(user_id, date.fromisoformat(period))
    except TransportError as exc:
        if exc.permanent:
            raise
        countdown = get_exponential_backoff_interval(
            self.retry_backoff, self.request.retries, self.retry_backoff_max, self.retry_jitter,
        )
        raise self.retry(exc=exc, countdown=countdown)
    if result.outcome is digest.Outcome.IN_FLIGHT:
        # Another worker holds the claim, or died holding it: look again once its lease is over.
        raise self.retry(countdown=result.retry_in)
    return result.outcome.value
