"""Batches handed to Celery that no worker has confirmed stored yet, handed on again if lost.

Redis, as Celery's broker, can lose a task: a worker takes a task with BRPOP (Redis removes it
from the queue) and only then records it as unacknowledged, so a worker killed between the two
(kill -9, OOM) takes the task with it, and no visibility timeout brings it back. The fault
suite saw it: one batch in 400 events with three worker kills. The bridge has already committed
the batch's offsets by then, so it keeps each batch it submitted until the persist task
confirms it (a short-lived Redis key the task sets when it is done, `confirmation_key`), and
submits again a batch that stays unconfirmed while the queue is empty: a batch in the queue is
not lost, only waiting. A copy of a batch that was not lost after all changes nothing (the
persist task is idempotent); a batch that keeps failing is submitted again less and less often.

The same confirmations say when a worker is free (`ready`): a batch submitted while every
worker process is busy waits in the Celery queue for one to finish, and meanwhile the events
after it could have joined it. So the bridge hands a batch on only when no task waits in the
queue and fewer batches than the workers' processes (`in_flight`) are unconfirmed; until
then the batch gathers (kafka_bridge/batching.py). The wait adapts to how long the tasks
actually take, and a batch reaches a free worker at once instead of queueing behind a busy one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from notifications.events import Event
from ops import metrics

log = logging.getLogger(__name__)

KEY_PREFIX = "graphspace:stored:"
# How long a worker's confirmation stays in Redis: far longer than any batch waits for it.
CONFIRMATION_TTL_SECONDS = 3600


def confirmation_key(task_id: str) -> str:
    return f"{KEY_PREFIX}{task_id}"


class TooManyUnconfirmed(Exception):
    """The workers are not confirming: stop taking more until they do (backpressure)."""


@dataclass
class Pending:
    task_id: str
    events: Sequence[Event]
    since: float
    wait: float
    attempts: int = 1


class Confirmations:
    def __init__(
        self,
        submit: Callable[[Sequence[Event]], str],
        confirmed: Callable[[list[str]], list[bool]],
        queue_empty: Callable[[], bool],
        *,
        resubmit_after: float = 10.0,
        resubmit_after_max: float = 600.0,
        check_every: float = 1.0,
        max_pending_events: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        # The workers' processes, all of them: batches that may be with the workers at once
        # (`ready`). None: ready whenever the queue is empty.
        in_flight: int | None = None,
        # One look at Redis: the Celery queue's length, and which of these tasks are confirmed.
        look: Callable[[list[str]], tuple[int, list[bool]]] | None = None,
    ) -> None:
        if in_flight is not None and (in_flight < 1 or look is None):
            raise ValueError("in_flight needs a look at the queue and the confirmations, and at least 1")
        self.in_flight = in_flight
        self.look = look
        self._submit = submit
        self.confirmed = confirmed
        self.queue_empty = queue_empty
        self.resubmit_after = resubmit_after
        self.resubmit_after_max = resubmit_after_max
        self.check_every = check_every
        self.max_pending_events = max_pending_events
        self.clock = clock
        self.pending: dict[str, Pending] = {}
        self.pending_events = 0
        self.last_check = clock()

    def submit(self, events: Sequence[Event]) -> str:
        """The bridge's submit: hand the batch to Celery and keep it until it is confirmed."""
        if self.pending_events + len(events) > self.max_pending_events:
            raise TooManyUnconfirmed(f"{self.pending_events} events submitted and not confirmed stored")
        task_id = self._submit(events)
        self.pending[task_id] = Pending(task_id, events, self.clock(), self.resubmit_after)
        self.pending_events += len(events)
        return task_id

    def ready(self) -> bool:
        """Whether a worker can take a batch now: nothing waits in the Celery queue and fewer
        than `in_flight` batches submitted recently are unconfirmed (one Redis round trip).
        A batch unconfirmed past its resubmission time is likely lost, not running, and
        stops counting (check() submits it again)."""
        if self.in_flight is None or self.look is None:
            return self.queue_empty()
        now = self.clock()
        # Only those that count: a backlog of overdue batches (workers down) is check()'s.
        ids = [p.task_id for p in self.pending.values() if now - p.since < p.wait]
        queued, done = self.look(ids)
        for task_id, stored in zip(ids, done, strict=True):
            if stored:
                self.pending_events -= len(self.pending.pop(task_id).events)
        return not queued and len(ids) - sum(done) < self.in_flight

    def check(self) -> int:
        """Drop the confirmed batches; submit again those overdue while the queue is empty.
        Throttled to once per `check_every`; returns how many were submitted again."""
        now = self.clock()
        if not self.pending or now - self.last_check < self.check_every:
            return 0
        self.last_check = now
        ids = list(self.pending)
        for task_id, done in zip(ids, self.confirmed(ids), strict=True):
            if done:
                self.pending_events -= len(self.pending.pop(task_id).events)
        overdue = [p for p in self.pending.values() if now - p.since >= p.wait]
        if not overdue or not self.queue_empty():
            return 0
        for p in overdue:
            task_id = self._submit(p.events)
            del self.pending[p.task_id]
            self.pending[task_id] = Pending(task_id, p.events, now, min(p.wait * 2, self.resubmit_after_max),
                                            p.attempts + 1)
            metrics.batches_resubmitted.inc()
            log.warning("batch of %d events (task %s) not confirmed after %.0fs with the queue empty; "
                        "submitted again as task %s", len(p.events), p.task_id, now - p.since, task_id,
                        extra={"event_ids": [str(e.event_id) for e in p.events[:20]]})
        return len(overdue)
