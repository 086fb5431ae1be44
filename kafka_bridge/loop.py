"""The bridge's loop: poll -> gather a batch -> validate -> submit one Celery task per batch -> commit.

A batch is what several polls returned, until it holds `max_records` messages or
`batch_wait_ms` have passed since its first one (kafka_bridge/batching.py says why): one task
and one offset commit per batch, however short the broker's fetch wait.

At-least-once by construction: an offset is committed only after the task that covers it
was accepted by the Celery broker, and after every rejected message in it was kept as a dead
letter. A crash before the commit redelivers the batch; the persist task's unique keys make
the second delivery change nothing.

Backpressure without leaving the group (arroyo's shape): when Redis, or the place that keeps
dead letters, cannot take a batch, the bridge holds it, pauses every partition it owns and
keeps polling, with the backoff delay as the poll's timeout. Polling is what keeps a
kafka-python consumer in its group (past `max_poll_interval_ms` without a poll it would
leave it), and paused partitions return nothing, so the loop never sleeps and never reads
past the batch it holds. When the hand-off succeeds it commits, resumes and goes on. If a
rebalance takes the partitions meanwhile, the held batch is dropped uncommitted: its new
owner reads it again, and persisting is idempotent.

The loop also reports that it is alive, and whether it makes progress: the Prometheus
metrics in ops/metrics.py, and a heartbeat file (a small JSON document, rewritten at
most once a second) whose age a supervisor reads and whose `state` says idle, busy or paused.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from kafka.structs import OffsetAndMetadata, TopicPartition

from kafka_bridge.batching import Accumulator
from notifications.events import Event, InvalidEvent, parse_message
from ops import metrics

log = logging.getLogger(__name__)

State = Literal["idle", "busy", "paused"]


class Consumer(Protocol):
    def poll(self, timeout_ms: int = ..., max_records: int | None = ...) -> Mapping[TopicPartition, Sequence[Any]]: ...
    def commit(self, offsets: Any = ...) -> Any: ...
    def close(self, autocommit: bool = ...) -> Any: ...
    def assignment(self) -> set[TopicPartition]: ...
    def committed(self, partition: TopicPartition) -> int | None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...


@dataclass
class Rejection:
    topic: str
    partition: int
    offset: int
    reason: str
    # The event_id the message claims, when it got as far as having one (for the log line).
    event_id: str | None = None
    # The message as it came, for the dead-letter topic.
    key: bytes | None = field(default=None, repr=False)
    value: bytes | None = field(default=None, repr=False)
    # Where it was kept ("topic" or "table"), so a retried hand-off never copies it twice.
    kept: str | None = None


@dataclass
class Stats:
    consumed: int = 0
    rejected: int = 0
    submitted: int = 0
    batches: int = 0
    submit_failures: int = 0
    dead_letter_failures: int = 0
    dropped: int = 0
    rejections: list[Rejection] = field(default_factory=list)


@dataclass
class Batch:
    events: list[Event]
    rejections: list[Rejection]
    # What to commit once the batch is handed on: the offset after its last message.
    offsets: dict[TopicPartition, OffsetAndMetadata]
    # Its first offset per partition: where to read again if it is given up.
    starts: dict[TopicPartition, int] = field(default_factory=dict)
    # The hand-off's progress, so a retry repeats only what failed.
    dead_lettered: bool = False
    submitted: bool = False

    @property
    def size(self) -> int:
        return len(self.events) + len(self.rejections)


def validate(records: Mapping[TopicPartition, Sequence[Any]], topics: Mapping[str, str]) -> Batch:
    """Split polled records into valid events and rejections; note the offsets to commit.

    `topics` maps a Kafka topic name to its logical topic ("owner" or "group"). Nothing one
    message holds can make this raise: whatever goes wrong with it makes it a rejection.
    """
    batch = Batch(events=[], rejections=[], offsets={})
    for tp, messages in records.items():
        for message in messages:
            value = getattr(message, "value", None)
            try:
                logical = topics.get(tp.topic, tp.topic)
                event = parse_message(
                    logical, value, partition=tp.partition, offset=message.offset,
                    timestamp_ms=getattr(message, "timestamp", None),
                )
                batch.events.append(event)
            except Exception as error:
                reason = error.reason if isinstance(error, InvalidEvent) else f"cannot be read: {type(error).__name__}"
                batch.rejections.append(Rejection(
                    tp.topic, tp.partition, message.offset, reason, claimed_event_id(value),
                    key=getattr(message, "key", None), value=value,
                ))
            batch.starts.setdefault(tp, message.offset)
            batch.offsets[tp] = OffsetAndMetadata(message.offset + 1, "", -1)
    return batch


def span(batch: Batch) -> str:
    """The offsets a batch covers, per partition, for the log: "owner[0]@120-131"."""
    return ", ".join(f"{tp.topic}[{tp.partition}]@{batch.starts.get(tp, '?')}-{end.offset - 1}"
                     for tp, end in sorted(batch.offsets.items()))


# Reading the event id a rejected message claims costs a JSON parse: a few milliseconds for
# the largest a broker takes by default (1 MiB), and worth it for the dead letter. Beyond
# this, the message is not worth the time.
CLAIM_MAX_BYTES = 8 * 1024 * 1024


def claimed_event_id(value: bytes | None) -> str | None:
    """The event_id of a message that failed validation, if it is JSON with one."""
    try:
        if not value or len(value) > CLAIM_MAX_BYTES:
            return None
        data = json.loads(value)
    except Exception:  # not JSON, not UTF-8, nested too deeply, not even bytes
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    return event_id[:64] if isinstance(event_id, str) else None


class Heartbeat:
    """Rewrites a small JSON file at most once per `interval` seconds: its age says whether
    the loop still turns, its content what the loop is doing (a paused bridge is alive but
    stuck). The write is throttled because the loop turns every poll (200 ms)."""

    def __init__(self, path: Path, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        self.last: float | None = None
        self.failing = False

    def beat(self, status: Mapping[str, Any] | None = None) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return
        self.last = now
        # Written beside it and renamed over it, so a health check never reads half a file.
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            partial.write_text(json.dumps(dict(status or {}), sort_keys=True))
            os.replace(partial, self.path)
        except OSError as error:
            # Not a reason to stop consuming; the health check will report the stale file.
            if not self.failing:
                log.error("cannot write the heartbeat file %s: %s", self.path, error)
            self.failing = True
            return
        self.failing = False


class Bridge:
    def __init__(
        self,
        consumer: Consumer,
        submit: Callable[[Sequence[Event]], str],
        topics: Mapping[str, str],
        *,
        poll_timeout_ms: int = 200,
        max_records: int = 500,
        # How long a batch may gather messages after its first one (0: one poll, one batch),
        # and how long while a task still waits in the Celery queue (kafka_bridge/batching.py).
        batch_wait_ms: int = 0,
        batch_wait_busy_ms: int = 0,
        # Whether the Celery queue is empty (no task waits for a worker); None: always.
        queue_empty: Callable[[], bool] | None = None,
        backoff_start: float = 0.2,
        # A few seconds: a returning Redis is noticed soon, and the loop (one poll per retry)
        # beats often enough for any health check.
        backoff_max: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        heartbeat: Heartbeat | None = None,
        dead_letter: Callable[[Sequence[Rejection]], None] | None = None,
        clock: Callable[[], float] = time.time,
        # Called once per turn of the loop, busy or idle (kafka_bridge/confirmations.py).
        on_turn: Callable[[], object] | None = None,
        # Times a batch's wait (a clock that never goes back).
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_turn = on_turn
        self.consumer = consumer
        self.submit = submit
        self.topics = dict(topics)
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.monotonic = monotonic
        # The batch being gathered: polled, not yet validated, handed on or committed.
        self.window = Accumulator(max_records, batch_wait_ms / 1000, batch_wait_busy_ms / 1000)
        self.queue_empty = queue_empty
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.heartbeat = heartbeat
        self.dead_letter = dead_letter
        self.clock = clock
        self.stats = Stats()
        self.shutdown = False
        # The batch polled but not yet handed on, while its partitions are paused.
        self.held: Batch | None = None
        self.delay = backoff_start
        self.state: State = "idle"
        self.held_since: float | None = None
        self.last_progress = clock()
        # Partitions a rebalance took during the latest poll (partitions_revoked).
        self.revoked: set[TopicPartition] = set()
        metrics.bridge_last_progress.set(self.last_progress)
        metrics.bridge_paused.set(0)
        metrics.bridge_held_messages.set(0)

    def request_shutdown(self, *_: Any) -> None:
        """Signal handler: stop after the step in hand. A batch just polled gets its hand-off
        and commit; a batch held (Redis away) stays uncommitted, and the next owner of its
        partitions reads it again."""
        self.shutdown = True

    def partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        """Called by the consumer's rebalance listener, inside poll, while the partitions are
        still this bridge's: the batch being gathered is handed on and committed now, so the
        next owner reads on after it (or, if it cannot be handed on, read again from the
        committed offsets: nothing is lost either way)."""
        self.revoked |= set(partitions)
        if self.window.size:
            self.flush("partitions revoked")

    def step(self) -> bool:
        """One poll. Returns whether it found work, so the loop idles only when it did not."""
        if self.held is not None:
            self._retry_held(self.held)
            return True
        timeout = self.window.poll_timeout_ms(self.monotonic(), self.poll_timeout_ms)
        records = self.consumer.poll(timeout_ms=timeout, max_records=self.window.room())
        # Nothing was held: whatever a rebalance took, every batch before it was committed
        # (partitions_revoked flushed the one being gathered).
        self.revoked.clear()
        self.window.add(records or {}, self.monotonic())
        if not self.window.size:
            self.state = "idle"
            return False
        self.state = "busy"
        if not self._batch_due():
            return True
        batch = validate(self.window.take(), self.topics)
        self.count_consumed(batch)
        if self._hand_on(batch, retry_in=self.backoff_start):
            self._commit(batch)
        else:
            self._hold(batch)
        return True

    def _batch_due(self) -> bool:
        now = self.monotonic()
        if self.queue_empty is None:
            return self.window.due(now)
        # Full, or it has waited for busy workers as long as it may.
        if self.window.due(now, queue_empty=False):
            return True
        if not self.window.waited(now):
            return False
        try:
            return self.queue_empty()
        except Exception as error:
            # Redis away: hand the batch on; the submit will find out (and hold it).
            log.debug("cannot see the Celery queue: %r", error)
            return True

    def flush(self, why: str) -> None:
        """Hand on and commit the batch being gathered, once, before it is due (a revoke, a
        stop). If that fails it is dropped uncommitted: the partitions' next reader, this
        bridge or another, reads it again from the committed offsets."""
        records = self.window.take()
        batch = validate(records, self.topics)
        self.count_consumed(batch)
        try:
            if self._hand_on(batch, retry_in=0):
                self._commit(batch)
                log.info("%s: batch of %d messages handed on early", why, batch.size)
                return
        except Exception:
            log.exception("%s: could not commit a batch of %d messages handed on", why, batch.size)
            return
        self.stats.dropped += 1
        metrics.batches_dropped.inc()
        log.warning("%s: batch of %d messages not handed on, left uncommitted (read again later)", why, batch.size)

    def _hand_on(self, batch: Batch, *, retry_in: float) -> bool:
        """Keep the batch's rejections as dead letters, then submit its events, each part once.
        False if either part failed (the batch must not be committed yet)."""
        if batch.rejections and not batch.dead_lettered and self.dead_letter is not None:
            try:
                self.dead_letter(batch.rejections)
            except Exception as error:
                self.stats.dead_letter_failures += 1
                metrics.dead_letter_failures.inc()
                log.warning("%d rejected messages not kept: %s; retrying in %.1fs", len(batch.rejections), error, retry_in)
                return False
            log.info("%d rejected messages kept as dead letters", len(batch.rejections))
        batch.dead_lettered = True
        if batch.events and not batch.submitted:
            try:
                task_id = self.submit(batch.events)
            except Exception as error:
                self.stats.submit_failures += 1
                metrics.submit_failures.inc()
                log.warning("batch of %d events not accepted: %s; retrying in %.1fs", len(batch.events), error, retry_in)
                return False
            self.stats.submitted += len(batch.events)
            self.stats.batches += 1
            self.count_submitted(batch.events)
            log.info("batch of %d events submitted as task %s (%s)", len(batch.events), task_id, span(batch),
                     extra={"event_ids": [str(e.event_id) for e in batch.events]})
        batch.submitted = True
        return True

    def _commit(self, batch: Batch) -> None:
        self.consumer.commit(batch.offsets)
        self.count_committed(batch.offsets)
        self.last_progress = self.clock()
        metrics.bridge_last_progress.set(self.last_progress)

    def _hold(self, batch: Batch) -> None:
        """Keep the batch and stop reading: pause every partition, keep polling (step)."""
        self.held = batch
        self.held_since = self.clock()
        self.delay = self.backoff_start
        self.state = "paused"
        self.consumer.pause(*self.consumer.assignment())
        metrics.bridge_paused.set(1)
        metrics.bridge_held_messages.set(batch.size)
        log.warning("holding a batch of %d messages; partitions paused until it is handed on", batch.size)

    def _retry_held(self, held: Batch) -> None:
        # The poll is the wait: it keeps the consumer in its group while paused partitions
        # return nothing.
        records = self.consumer.poll(timeout_ms=int(self.delay * 1000), max_records=self.max_records)
        if records:
            self._put_back(records)
        if self.revoked & set(held.starts):
            self._drop(held)
            return
        self.revoked.clear()
        if self.shutdown:
            return
        retry_in = min(self.delay * 2, self.backoff_max)
        if self._hand_on(held, retry_in=retry_in):
            self._commit(held)
            log.info("held batch of %d messages handed on after %.1fs; partitions resumed",
                     held.size, self.clock() - (self.held_since or self.clock()))
            self._release()
            self.state = "busy"
        else:
            self.delay = retry_in

    def _put_back(self, records: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Records polled while holding (a partition newly assigned is not paused) are not
        ours to take yet: go back to the first of them, and pause what they came from."""
        for tp, messages in records.items():
            if messages:
                self.consumer.seek(tp, min(m.offset for m in messages))
        log.info("records of %s polled while holding a batch: read again later",
                 ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in records)))
        self.consumer.pause(*self.consumer.assignment())

    def _drop(self, held: Batch) -> None:
        """A rebalance took partitions of the held batch: give it up, uncommitted."""
        self.stats.dropped += 1
        metrics.batches_dropped.inc()
        log.warning("partitions revoked while holding a batch of %d messages: dropped uncommitted "
                    "(their owner reads them again)", held.size)
        assigned = self.consumer.assignment()
        for tp, start in held.starts.items():
            # Still ours (a cooperative rebalance keeps some): read them again, not skip them.
            if tp in assigned:
                self.consumer.seek(tp, start)
        self._release()
        self.state = "idle"

    def _release(self) -> None:
        self.held = None
        self.held_since = None
        self.delay = self.backoff_start
        self.revoked.clear()
        self.consumer.resume(*self.consumer.assignment())
        metrics.bridge_paused.set(0)
        metrics.bridge_held_messages.set(0)

    def count_consumed(self, batch: Batch) -> None:
        self.stats.consumed += batch.size
        rejected = Counter(self.topics.get(r.topic, r.topic) for r in batch.rejections)
        for topic, n in (Counter(e.topic for e in batch.events) + rejected).items():
            metrics.events_consumed.labels(topic).inc(n)
        for topic, n in rejected.items():
            metrics.events_rejected.labels(topic).inc(n)
        for r in batch.rejections:
            self.stats.rejected += 1
            self.stats.rejections.append(r)
            del self.stats.rejections[:-100]
            log.warning("rejected message %s[%d]@%d: %s", r.topic, r.partition, r.offset, r.reason,
                        extra={"event_id": r.event_id, "topic": r.topic, "partition": r.partition, "offset": r.offset})

    def count_submitted(self, events: Sequence[Event]) -> None:
        for topic, n in Counter(e.topic for e in events).items():
            metrics.events_submitted.labels(topic).inc(n)
        metrics.batches_submitted.inc()

    def count_committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        # kafka-python learns each partition's high watermark from its fetch responses, so
        # the lag costs no request. Not part of the Consumer protocol: test doubles lack it.
        highwater = getattr(self.consumer, "highwater", None)
        for tp, committed in offsets.items():
            metrics.committed_offset.labels(tp.topic, str(tp.partition)).set(committed.offset)
            end = highwater(tp) if highwater else None
            if end is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - committed.offset))

    def status(self) -> dict[str, Any]:
        """What the heartbeat file says: a health check tells stuck (paused, no progress for
        long) from idle (nothing to read) by it."""
        return {
            "state": self.state,
            "pid": os.getpid(),
            "updated_at": round(self.clock(), 3),
            "last_progress_at": round(self.last_progress, 3),
            "paused_since": round(self.held_since, 3) if self.held_since is not None else None,
            "held_messages": self.held.size if self.held is not None else 0,
        }

    def beat(self) -> None:
        metrics.bridge_heartbeat.set_to_current_time()
        if self.heartbeat is not None:
            self.heartbeat.beat(self.status())

    def abandon(self) -> None:
        """After a failed step: whatever was held is read again from the committed offsets."""
        if self.held is not None:
            try:
                self._release()
            except Exception:
                log.exception("could not resume the partitions")
                self.held = None
        # A batch being gathered is read again too: from its own first offsets if the broker
        # cannot say what was committed (it may be the failure), since everything before them
        # was handed on; dropping it and not rewinding would skip it.
        starts = {tp: messages[0].offset for tp, messages in self.window.take().items() if messages}
        self.state = "idle"
        self.rewind(starts)

    def rewind(self, starts: Mapping[TopicPartition, int] | None = None) -> None:
        """Go back to the last committed offsets: a batch that failed half-way was polled
        (the position moved past it) but not committed, and must be read again, not skipped.
        `starts`: where the batch being gathered began, the place to go back to at least."""
        starts = starts or {}
        try:
            assigned = self.consumer.assignment()
        except Exception:
            log.exception("could not rewind to the committed offsets")
            return
        for tp in assigned:
            try:
                target = self.consumer.committed(tp) or 0
                if tp in starts:
                    target = min(target, starts[tp])
            except Exception:
                if tp not in starts:
                    log.exception("could not rewind %s to its committed offset", tp)
                    continue
                target = starts[tp]
            try:
                self.consumer.seek(tp, target)
            except Exception:
                log.exception("could not rewind %s", tp)

    def run(self) -> None:
        delay = 0.5
        try:
            while not self.shutdown:
                self.beat()
                try:
                    self.step()
                    delay = 0.5
                    self.turn()
                except Exception:
                    # Nothing stops the bridge: log, back off, and poll again. Uncommitted
                    # offsets are redelivered, so nothing is lost. Only an unexpected failure
                    # (the commit, the poll itself) comes here, and the wait is a few seconds
                    # at most, far inside max_poll_interval_ms.
                    log.exception("bridge step failed; retrying in %.1fs", delay)
                    self.abandon()
                    self.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
            # Stopping: the batch being gathered is handed on and committed, not left half-read.
            if self.window.size and self.held is None:
                self.flush("stopping")
        finally:
            self.consumer.close(autocommit=False)
            log.info("bridge stopped: %s", self.stats_line())

    def turn(self) -> None:
        """The per-turn hook, never while a batch is held (the broker it asks is likely the one
        that refused it), and whose failure is its own: it never drops what the loop holds."""
        if self.on_turn is None or self.held is not None:
            return
        try:
            self.on_turn()
        except Exception as error:
            log.warning("bridge: %r; trying again next turn", error)

    def stats_line(self) -> str:
        s = self.stats
        return (f"consumed={s.consumed} submitted={s.submitted} rejected={s.rejected} "
                f"batches={s.batches} submit_failures={s.submit_failures} "
                f"dead_letter_failures={s.dead_letter_failures} dropped={s.dropped}")
