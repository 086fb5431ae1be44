"""The dead-letter topic: every message the bridge rejects, kept as it came.

Each copy carries headers saying where it came from and why it was rejected, so an operator
can read the topic, fix the producer, and replay what matters. The bridge commits a batch's
offsets only after the broker has acknowledged these copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from kafka import KafkaProducer

from kafka_bridge.loop import Rejection


class DeadLetterTopic:
    def __init__(self, topic: str | None = None, timeout: float = 10.0) -> None:
        self.topic = topic or settings.KAFKA_DEAD_LETTER_TOPIC
        self.timeout = timeout
        self._producer: KafkaProducer | None = None

    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, client_id="graphspace-bridge-dlq", acks="all",
                max_block_ms=int(self.timeout * 1000), bootstrap_timeout_ms=int(self.timeout * 1000),
            )
        return self._producer

    def __call__(self, rejections: Sequence[Rejection]) -> None:
        """Copy the rejected messages; raise unless the broker acknowledged every one."""
        producer = self.producer()
        futures: list[Any] = []
        for r in rejections:
            headers = [
                ("reason", r.reason.encode("utf-8")),
                ("source-topic", r.topic.encode("utf-8")),
                ("source-partition", str(r.partition).encode()),
                ("source-offset", str(r.offset).encode()),
            ]
            futures.append(producer.send(self.topic, key=r.key, value=r.value or b"", headers=headers))
        producer.flush(timeout=self.timeout)
        for future in futures:
            future.get(timeout=self.timeout)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self.timeout)
            self._producer = None
