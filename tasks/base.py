"""The base every GraphSpace task shares: retry policy, time limit, failure logging."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Task
from celery.signals import worker_process_shutdown, worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from ops import metrics

log = logging.getLogger(__name__)

# Errors that a later attempt can cure: the database restarting, a dropped connection,
# a lock timeout. Anything else is a bug or bad data, and retrying would only repeat it.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)


class GraphSpaceTask(Task):  # type: ignore[misc]
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 1
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 10
    soft_time_limit = 120
    time_limit = 150

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        # A worker keeps connections between tasks; drop the ones that failed in the last task
        # (Django checks those with a query), are past CONN_MAX_AGE or left autocommit off.
        close_old_connections()
        # Not pinged before every task too: with CONN_HEALTH_CHECKS, Django would run a
        # `SELECT 1` before this task's first query, a round trip per task as long as the
        # commit's on a loaded machine (py-spy of the worker at 200 events/s, docs/latency.md).
        # A connection the database dropped since then fails that first query instead: the
        # task is retried (TRANSIENT_ERRORS), and Django has marked the error, so the retry's
        # close_old_connections() checks it and connects anew. Stored rows make the retry
        # change nothing.
        for wrapper in connections.all(initialized_only=True):
            wrapper.health_check_done = True

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        metrics.task_retries.labels(self.name).inc()
        log.warning("task %s %s retrying after %r", self.name, task_id, exc,
                    extra={"task_id": task_id, "event_ids": event_ids(args)})

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        metrics.task_failures.labels(self.name).inc()
        log.error("task %s %s failed: %r; payload %r", self.name, task_id, exc, args,
                  extra={"task_id": task_id, "event_ids": event_ids(args)})


def event_ids(args: Any) -> list[str] | None:
    """The event ids in a task's arguments (the persist task takes a list of events)."""
    found = [
        str(item["event_id"])
        for arg in args or ()
        if isinstance(arg, list)
        for item in arg
        if isinstance(item, dict) and "event_id" in item
    ]
    return found or None


# The worker's /metrics: served by the main process once the pool is up, adding up what the
# pool's processes count (ops/metrics.py explains the multiprocess mode).
@worker_ready.connect
def serve_worker_metrics(**_: Any) -> None:
    metrics.serve(settings.WORKER_METRICS_PORT, settings.METRICS_HOST)


@worker_process_shutdown.connect
def forget_pool_process(**_: Any) -> None:
    metrics.process_ended(os.getpid())
