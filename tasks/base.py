"""The base every GraphSpace task shares: retry policy, time limit, failure logging."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import InterfaceError, OperationalError, close_old_connections

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
        # A worker keeps connections between tasks; drop the ones the database has closed.
        close_old_connections()

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        log.warning("task %s %s retrying after %r", self.name, task_id, exc)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        log.error("task %s %s failed: %r; payload %r", self.name, task_id, exc, args)
