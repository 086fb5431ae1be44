"""The bridge's loop: poll -> validate -> submit one Celery task per batch -> commit.

At-least-once by construction: an offset is committed only after the task that covers it
was accepted by the Celery broker. A crash before the commit redelivers the batch; the
persist task's unique keys make the second delivery change nothing. Each batch commits
before the next poll, so a partition revoke (which happens inside poll) never finds work
handed on but not committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka.structs import OffsetAndMetadata, TopicPartition

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
                batch.rejections.append(Rejection(tp.topic, tp.partition, message.offset, error.reason))
            batch.offsets[tp] = OffsetAndMetadata(message.offset + 1, "", -1)
    return batch


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
    ) -> None:
        self.consumer = consumer
        self.submit = submit
        self.topics = dict(topics)
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.stats = Stats()
        self.shutdown = False

    def request_shutdown(self, *_: Any) -> None:
        """Signal handler: finish the batch in hand, commit, and stop."""
        self.shutdown = True

    def _submit(self, events: Sequence[Event]) -> bool:
        """Submit until the broker accepts, backing off; False if told to stop first."""
        delay = 0.2
        while True:
            try:
                task_id = self.submit(events)
            except Exception as error:
                self.stats.submit_failures += 1
                log.warning("celery broker did not accept a batch of %d: %s; retrying in %.1fs",
                            len(events), error, delay)
                if self.shutdown:
                    return False
                self.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            log.info("batch of %d events submitted as task %s", len(events), task_id)
            return True

    def step(self) -> bool:
        """One poll. Returns whether it found work, so the loop idles only when it did not."""
        records = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
        if not records:
            return False
        batch = validate(records, self.topics)
        self.stats.consumed += len(batch.events) + len(batch.rejections)
        for r in batch.rejections:
            self.stats.rejected += 1
            self.stats.rejections.append(r)
            del self.stats.rejections[:-100]
            log.warning("rejected message %s[%d]@%d: %s", r.topic, r.partition, r.offset, r.reason)
        if batch.events:
            if not self._submit(batch.events):
                # Stopping with the batch not accepted: leave its offsets uncommitted so the
                # next bridge to own the partitions delivers it again.
                return True
            self.stats.submitted += len(batch.events)
            self.stats.batches += 1
        self.consumer.commit(batch.offsets)
        return True

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
