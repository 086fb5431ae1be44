"""The bridge's loop: poll -> validate -> submit one Celery task per batch -> commit.

At-least-once by construction: an offset is committed only after the task that covers it
was accepted by the Celery broker. A crash before the commit redelivers the batch; the
persist task's unique keys make the second delivery change nothing. Each batch commits
before the next poll, so a partition revoke (which happens inside poll) never finds work
handed on but not committed.

The loop also reports that it is alive: the Prometheus counters in graphspace/metrics.py,
and a heartbeat file whose age a supervisor reads (docker-compose's health check).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kafka.structs import OffsetAndMetadata, TopicPartition

from graphspace import metrics
from notifications.events import Event, InvalidEvent, parse_message

log = logging.getLogger(__name__)


class Consumer(Protocol):
    def poll(self, timeout_ms: int = ..., max_records: int | None = ...) -> Mapping[TopicPartition, Sequence[Any]]: ...
    def commit(self, offsets: Any = ...) -> Any: ...
    def close(self, autocommit: bool = ...) -> Any: ...
    def assignment(self) -> set[TopicPartition]: ...
    def committed(self, partition: TopicPartition) -> int | None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...


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


@dataclass
class Stats:
    consumed: int = 0
    rejected: int = 0
    submitted: int = 0
    batches: int = 0
    submit_failures: int = 0
    rejections: list[Rejection] = field(default_factory=list)


@dataclass
class Batch:
    events: list[Event]
    rejections: list[Rejection]
    offsets: dict[TopicPartition, OffsetAndMetadata]


def validate(records: Mapping[TopicPartition, Sequence[Any]], topics: Mapping[str, str]) -> Batch:
    """Split polled records into valid events and rejections; note the offsets to commit.

    `topics` maps a Kafka topic name to its logical topic ("owner" or "group").
    """
    batch = Batch(events=[], rejections=[], offsets={})
    for tp, messages in records.items():
        for message in messages:
            try:
                logical = topics.get(tp.topic, tp.topic)
                event = parse_message(
                    logical, message.value, partition=tp.partition, offset=message.offset,
                    timestamp_ms=getattr(message, "timestamp", None),
                )
                batch.events.append(event)
            except InvalidEvent as error:
                batch.rejections.append(Rejection(
                    tp.topic, tp.partition, message.offset, error.reason, claimed_event_id(message.value),
                    key=getattr(message, "key", None), value=message.value,
                ))
            batch.offsets[tp] = OffsetAndMetadata(message.offset + 1, "", -1)
    return batch


def claimed_event_id(value: bytes | None) -> str | None:
    """The event_id of a message that failed validation, if it is JSON with one."""
    try:
        data = json.loads(value or b"")
    except ValueError:  # not JSON, not UTF-8
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    return event_id[:64] if isinstance(event_id, str) else None


class Heartbeat:
    """Touches a file at most once per `interval` seconds; its age says whether the loop
    still turns. The write is throttled because the loop turns every poll (200 ms)."""

    def __init__(self, path: Path, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        self.last: float | None = None
        self.failing = False

    def beat(self) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return
        self.last = now
        try:
            self.path.touch()
        except OSError as error:
            # Not a reason to stop consuming; the health check will report the stale file.
            if not self.failing:
                log.error("cannot touch the heartbeat file %s: %s", self.path, error)
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
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        heartbeat: Heartbeat | None = None,
        dead_letter: Callable[[Sequence[Rejection]], None] | None = None,
    ) -> None:
        self.consumer = consumer
        self.submit = submit
        self.topics = dict(topics)
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.heartbeat = heartbeat
        self.dead_letter = dead_letter
        self.stats = Stats()
        self.shutdown = False

    def request_shutdown(self, *_: Any) -> None:
        """Signal handler: finish the batch in hand, commit, and stop."""
        self.shutdown = True

    def _hand_on(self, action: Callable[[], str], what: str, extra: dict[str, Any] | None = None) -> bool:
        """Run `action` until it succeeds, backing off; False if told to stop first."""
        delay = 0.2
        while True:
            try:
                done = action()
            except Exception as error:
                self.stats.submit_failures += 1
                metrics.submit_failures.inc()
                log.warning("%s not accepted: %s; retrying in %.1fs", what, error, delay)
                if self.shutdown:
                    return False
                # Waiting for Redis or Kafka is not being stuck: keep the heartbeat going.
                self.beat()
                self.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            log.info("%s %s", what, done, extra=extra)
            return True

    def _submit(self, events: Sequence[Event]) -> bool:
        """Submit until the Celery broker accepts the batch; False if told to stop first."""
        def submit() -> str:
            return f"submitted as task {self.submit(events)}"

        return self._hand_on(submit, f"batch of {len(events)} events", {"event_ids": [str(e.event_id) for e in events]})

    def _dead_letter(self, rejections: Sequence[Rejection]) -> bool:
        """Copy the rejected messages to the dead-letter topic before their offsets are
        committed, so that none is lost for good; False if told to stop first."""
        if self.dead_letter is None:
            return True
        dead_letter = self.dead_letter

        def copy() -> str:
            dead_letter(rejections)
            return "copied to the dead-letter topic"

        return self._hand_on(copy, f"{len(rejections)} rejected messages")

    def step(self) -> bool:
        """One poll. Returns whether it found work, so the loop idles only when it did not."""
        records = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
        if not records:
            return False
        batch = validate(records, self.topics)
        self.stats.consumed += len(batch.events) + len(batch.rejections)
        self.count_consumed(batch)
        for r in batch.rejections:
            self.stats.rejected += 1
            self.stats.rejections.append(r)
            del self.stats.rejections[:-100]
            log.warning("rejected message %s[%d]@%d: %s", r.topic, r.partition, r.offset, r.reason,
                        extra={"event_id": r.event_id, "topic": r.topic, "partition": r.partition, "offset": r.offset})
        if batch.rejections and not self._dead_letter(batch.rejections):
            return True
        if batch.events:
            if not self._submit(batch.events):
                # Stopping with the batch not accepted: leave its offsets uncommitted so the
                # next bridge to own the partitions delivers it again.
                return True
            self.stats.submitted += len(batch.events)
            self.stats.batches += 1
            self.count_submitted(batch.events)
        self.consumer.commit(batch.offsets)
        self.count_committed(batch.offsets)
        return True

    def count_consumed(self, batch: Batch) -> None:
        rejected = Counter(self.topics.get(r.topic, r.topic) for r in batch.rejections)
        for topic, n in (Counter(e.topic for e in batch.events) + rejected).items():
            metrics.events_consumed.labels(topic).inc(n)
        for topic, n in rejected.items():
            metrics.events_rejected.labels(topic).inc(n)

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

    def beat(self) -> None:
        metrics.bridge_heartbeat.set_to_current_time()
        if self.heartbeat is not None:
            self.heartbeat.beat()

    def rewind(self) -> None:
        """Go back to the last committed offsets: a batch that failed half-way was polled
        (the position moved past it) but not committed, and must be read again, not skipped."""
        try:
            for tp in self.consumer.assignment():
                self.consumer.seek(tp, self.consumer.committed(tp) or 0)
        except Exception:
            log.exception("could not rewind to the committed offsets")

    def run(self) -> None:
        delay = 0.5
        try:
            while not self.shutdown:
                self.beat()
                try:
                    self.step()
                    delay = 0.5
                except Exception:
                    # Nothing stops the bridge: log, back off, and poll again. Uncommitted
                    # offsets are redelivered, so nothing is lost.
                    log.exception("bridge step failed; retrying in %.1fs", delay)
                    self.rewind()
                    self.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
        finally:
            self.consumer.close(autocommit=False)
            log.info("bridge stopped: %s", self.stats_line())

    def stats_line(self) -> str:
        s = self.stats
        return (f"consumed={s.consumed} submitted={s.submitted} rejected={s.rejected} "
                f"batches={s.batches} submit_failures={s.submit_failures}")
