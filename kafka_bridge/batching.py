"""The bridge's batching rule: gather polled messages into one batch until it holds
`max_records` messages or `max_wait` seconds have passed since its first message, and, while
a task still waits in the Celery queue, on until `max_wait_busy` has passed.

Why the bridge batches by time itself: a Kafka fetch returns what the broker gathered while it
waited, and Tansu answers a waiting fetch only when its wait ends. A long fetch wait (500 ms)
made large batches but cost every event a quarter of a second on average; a short one (20 ms)
made batches of about 2 events, each its own Celery task and its own offset commit, and a
bridge on a broker with slow commits fell behind 333 events/s. With this rule the fetch wait
can be short (latency) while a batch still spans `max_wait` of arrivals (a bounded count of
tasks and commits per second), and a backlog still fills a batch to `max_records` at once.

While the workers are busy, a new task would wait for one of them anyway: the batch goes on
gathering, at no cost in latency, until a worker is free (or `max_wait_busy` has passed). The
loop asks `queue_empty`, which the bridge command answers with Confirmations.ready
(kafka_bridge/confirmations.py): no task waits in the Celery queue, and fewer batches than
the workers' processes are unconfirmed. So the batches grow when the workers are busy and
stay small when they are idle; with a fixed wait, a loaded worker was handed 50 small tasks a
second and fell behind on their fixed cost (about 30 ms each: a transaction, four queries to
broadcast, a confirmation). Asking only whether the queue was empty let a batch wait in the
queue behind two running tasks (queue wait p99 108-209 ms; docs/latency.md).

No I/O here: the loop (kafka_bridge/loop.py) polls, and asks this rule how long it may wait
and whether the batch is due.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka.structs import TopicPartition


@dataclass
class Accumulator:
    max_records: int
    # Seconds from a batch's first message until it is due, however few it holds. 0: every
    # poll's messages are a batch of their own.
    max_wait: float
    # Seconds from a batch's first message until it is due even while the queue is not
    # empty: bounds what one batch may wait for busy workers. At least max_wait.
    max_wait_busy: float | None = None
    records: dict[TopicPartition, list[Any]] = field(default_factory=dict)
    size: int = 0
    first_at: float | None = None

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_wait < 0:
            raise ValueError(f"a batch needs max_records >= 1 and max_wait >= 0, not {self.max_records}, {self.max_wait}")
        if self.max_wait_busy is None or self.max_wait_busy < self.max_wait:
            self.max_wait_busy = self.max_wait

    def add(self, polled: Mapping[TopicPartition, Sequence[Any]], now: float) -> None:
        """Append what one poll returned, in order, per partition."""
        for tp, messages in polled.items():
            if messages:
                self.records.setdefault(tp, []).extend(messages)
                self.size += len(messages)
                if self.first_at is None:
                    self.first_at = now

    def due(self, now: float, queue_empty: bool = True) -> bool:
        """Full, or waited long enough: `max_wait` when the queue is empty, `max_wait_busy`
        when a task still waits in it."""
        if self.size == 0:
            return False
        assert self.first_at is not None and self.max_wait_busy is not None
        if self.size >= self.max_records:
            return True
        return now >= self.first_at + (self.max_wait if queue_empty else self.max_wait_busy)

    def waited(self, now: float) -> bool:
        """Past `max_wait`: due if the queue is empty (the loop asks only then, one look at
        the queue per poll)."""
        return self.size > 0 and self.first_at is not None and now >= self.first_at + self.max_wait

    def room(self) -> int:
        """How many more messages the next poll may return."""
        return max(0, self.max_records - self.size)

    def poll_timeout_ms(self, now: float, idle_ms: int, busy_look_ms: int = 5) -> int:
        """How long the next poll may wait: the idle timeout when the batch is empty, else
        what is left of its wait (never past the moment it is due); past `max_wait`, waiting
        for the queue to empty, `busy_look_ms` between two looks at it."""
        if self.size == 0:
            return idle_ms
        assert self.first_at is not None and self.max_wait_busy is not None
        left = self.first_at + self.max_wait - now
        if left <= 0:
            left = min(busy_look_ms / 1000, self.first_at + self.max_wait_busy - now)
        # (less a nanosecond: 0.5 - 0.497 is 3.0000000000000027 ms in floating point)
        return max(0, min(idle_ms, math.ceil(left * 1000 - 1e-6)))

    def take(self) -> dict[TopicPartition, list[Any]]:
        """The batch, and an empty accumulator for the next one."""
        records = self.records
        self.records, self.size, self.first_at = {}, 0, None
        return records
