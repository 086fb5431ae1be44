"""The daily digest: the periodic fan-out, one task per chunk of users, and one task per user
for a retry (the rules: notifications/digest.py).

Unlike the pipeline tasks these keep their results (django-celery-results), so the admin
and Flower show each night's run and each chunk's and user's outcome.
"""

from __future__ import annotations

import logging
from collections import Counter
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
SEND_DIGEST_CHUNK = "tasks.send_digest_chunk"
SEND_DIGEST = "tasks.send_digest"
# Mail servers ask to come back in minutes, not seconds: 1, 2, 4 ... 60 minutes, jittered.
RETRY_BACKOFF, RETRY_BACKOFF_MAX = 60, 3600


@app.task(base=GraphSpaceTask, name=SEND_DIGESTS, ignore_result=False)
def send_digests(period: str | None = None) -> dict[str, Any]:
    """One send_digest_chunk task per chunk of due users (digest.CHUNK_SIZE). A rerun (or a
    retry after a crash half-way) enqueues some users again; their claim on the (user,
    period) row makes the extra work a no-op."""
    day = date.fromisoformat(period) if period else digest.current_period()
    users = chunks = 0
    for chunk in digest.due_user_id_chunks(day, digest.CHUNK_SIZE):
        with app.producer_or_acquire() as producer:
            send_digest_chunk.apply_async((chunk, day.isoformat()), producer=producer)
        users += len(chunk)
        chunks += 1
    log.info("digest %s: %d users in %d chunks", day, users, chunks)
    return {"period": day.isoformat(), "users": users, "chunks": chunks}


@app.task(base=GraphSpaceTask, name=SEND_DIGEST_CHUNK, ignore_result=False)
def send_digest_chunk(user_ids: list[int], period: str) -> dict[str, int]:
    """A chunk's digests over one SMTP session. Whoever the mail server refused for now, or
    whose claim another worker holds, gets a send_digest task of their own, which retries with
    backoff; a permanent refusal is only recorded. A worker that dies before the chunk's
    record leaves the claims leased; this task is then delivered again (acks_late) and sends
    once the lease is over."""
    results = digest.send_chunk(user_ids, date.fromisoformat(period))
    summary: Counter[str] = Counter()
    for user_id, result in results.items():
        if result.outcome is digest.Outcome.IN_FLIGHT:
            send_digest.apply_async((user_id, period), countdown=result.retry_in)
        elif result.retryable:
            send_digest.apply_async((user_id, period), countdown=get_exponential_backoff_interval(
                RETRY_BACKOFF, 0, RETRY_BACKOFF_MAX, True))
            summary["retrying"] += 1
            continue
        elif result.outcome is digest.Outcome.FAILED:
            log.warning("digest %s for user %s not sent, not retried: %s", period, user_id, result.error)
        summary[result.outcome.value] += 1
    return dict(summary)


@app.task(
    base=GraphSpaceTask, name=SEND_DIGEST, bind=True, ignore_result=False,
    max_retries=10, retry_backoff=RETRY_BACKOFF, retry_backoff_max=RETRY_BACKOFF_MAX, retry_jitter=True,
)
def send_digest(self: Task, user_id: int, period: str) -> str:  # type: ignore[type-arg]
    """One user's digest: the retry of a chunk's refused or in-flight user."""
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
