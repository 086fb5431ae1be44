"""Persist one batch of events from the bridge, then push the new rows to the open pages."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task
from django.conf import settings
from pydantic import ValidationError

from graphspace.celery import app
from kafka_bridge.confirmations import CONFIRMATION_TTL_SECONDS, confirmation_key
from notifications.broadcast import broadcast
from notifications.channels import listening
from notifications.events import Event
from notifications.persist import Part, Split, refuse_payload
from notifications.persist import persist_events as persist
from ops import metrics
from tasks.base import GraphSpaceTask

log = logging.getLogger(__name__)

PERSIST_TASK = "tasks.persist_events"


# A batch whose recipients number at least twice this is split into parts stored by several
# worker processes at once (notifications.persist.Part), at most PARTS_MAX of them: one per
# process of the default pool (CELERY_CONCURRENCY 2). A 10,000-member share took 0.95 s in
# one process and 0.55 s in two (benchmarks/test_bench_fanout.py).
PART_MIN = settings.PERSIST_PART_MIN_RECIPIENTS
PARTS_MAX = settings.PERSIST_PARTS_MAX


@app.task(base=GraphSpaceTask, name=PERSIST_TASK, ignore_result=True, bind=True)
def persist_events(self: Task, events: list[dict[str, Any]],  # type: ignore[type-arg]
                   part: list[int] | None = None, batch: str | None = None) -> int:
    """Store the notifications of a batch; a redelivered batch inserts nothing new.

    `part` ([index, count]) and `batch` (the id of the task the bridge submitted): this task
    stores one part of a batch split because of its many recipients (Split), and the batch
    is confirmed stored to the bridge when its last part is done."""
    started = time.perf_counter()
    parsed: list[Event] = []
    for data in events:
        try:
            parsed.append(Event.model_validate(data))
        except ValidationError as error:
            # The bridge validated it; a task payload that no longer parses (a schema change
            # between the bridge and this worker) is kept, not retried.
            refuse_payload(data, error)
    batch_id = batch or self.request.id
    split = None
    if part is None:
        split = Split(lambda count: hand_on(events, count, batch_id), part_min=PART_MIN, parts_max=PARTS_MAX)
        result = persist(parsed, split=split)
    else:
        result = persist(parsed, part=Part(part[0], part[1]))
    stored = time.perf_counter()
    metrics.notifications_persisted.labels("owner").inc(len(result.owner_ids))
    metrics.notifications_persisted.labels("group").inc(len(result.group_ids))
    metrics.notifications_persisted.labels("watching").inc(len(result.watching_ids))
    if result.created:
        # The rows are committed (persist's transaction has ended): the pages may hear of
        # them, from this task, without a second task's trip through the queue. A push is
        # at-most-once: if the channel layer is away, the rows are still stored, and a page
        # shows them on its next load; the batch is not retried for it. When none of the
        # recipients has a page open (one look in Redis), broadcast's queries are skipped.
        try:
            online = listening(result.recipient_ids)
            if online:
                broadcast(result.owner_ids, result.group_ids, result.watching_ids, online=online)
        except Exception:
            log.exception("broadcast of %d notifications failed", result.created,
                          extra={"event_ids": [str(e.event_id) for e in parsed]})
    pushed = time.perf_counter()
    of = part or ([0, split.part.count] if split is not None and split.part is not None else None)
    log.info(
        "persisted %d events as %d notifications (%d refused)%s in %.0f ms, pushed in %.0f ms: %s",
        len(parsed), result.created, result.refused, f", part {of[0] + 1} of {of[1]}" if of else "",
        (stored - started) * 1000, (pushed - stored) * 1000, ", ".join(str(e.event_id) for e in parsed[:20]),
        extra={"event_ids": [str(e.event_id) for e in parsed], "persist_ms": round((stored - started) * 1000, 1),
               "push_ms": round((pushed - stored) * 1000, 1)},
    )
    # Confirmed after the push, not as soon as the rows are committed: the confirmation is also
    # what tells the bridge this process is free (kafka_bridge/confirmations.py). Confirming
    # before the push was tried: the next batch then waited for this process in the worker's
    # queue instead of gathering events in the bridge (docs/latency.md, round 2).
    if of:
        part_done(batch_id, of[0], of[1])
    else:
        confirm_stored(batch_id)
    return result.created


def hand_on(events: list[dict[str, Any]], count: int, batch_id: str | None) -> bool:
    """Queue parts 1 .. count-1 of a batch for the other worker processes; the caller stores
    part 0. The batch is confirmed to the bridge only when all `count` parts are done (a set
    of the parts done, in Redis): a part lost with a killed worker leaves it unconfirmed, and the
    bridge submits the whole batch again (kafka_bridge/confirmations.py). False if Redis
    did not take them all: the caller then stores the whole batch itself."""
    if not batch_id:
        return False
    try:
        for index in range(1, count):
            persist_events.apply_async((events,), {"part": [index, count], "batch": batch_id})
    except Exception:
        log.warning("could not hand on the parts of batch %s; storing it whole", batch_id, exc_info=True)
        return False
    log.info("batch %s split into %d parts by recipient", batch_id, count)
    return True


def parts_key(batch_id: str) -> str:
    return f"graphspace:parts:{batch_id}"


def part_done(batch_id: str | None, index: int, count: int) -> None:
    """Part `index` of a split batch is stored: the last of the `count` confirms the batch.
    A set, not a counter: a part delivered twice (a worker killed before its ack) is one
    part done, and cannot confirm the batch while another part is still being stored."""
    if not batch_id:
        return
    try:
        pipe = _redis().pipeline()
        pipe.sadd(parts_key(batch_id), index)
        pipe.expire(parts_key(batch_id), CONFIRMATION_TTL_SECONDS)
        pipe.scard(parts_key(batch_id))
        done = pipe.execute()[-1]
    except Exception:
        log.warning("could not count a part of batch %s done; the bridge will submit it again", batch_id,
                    exc_info=True)
        return
    if int(done) >= count:
        confirm_stored(batch_id)


_broker: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _broker
    if _broker is None:  # one per pool process, made after the fork
        _broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5, socket_connect_timeout=5)
    return _broker


def confirm_stored(task_id: str | None) -> None:
    """Tell the bridge the batch is stored (kafka_bridge/confirmations.py). Best effort: an
    unconfirmed batch is only submitted again, and storing it again changes nothing."""
    if not task_id:
        return
    try:
        _redis().set(confirmation_key(task_id), b"1", ex=CONFIRMATION_TTL_SECONDS)
    except Exception:
        log.warning("could not confirm task %s stored; the bridge will submit it again", task_id, exc_info=True)
