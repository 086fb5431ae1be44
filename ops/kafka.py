"""What every producer of the project takes for an acknowledgement (the outbox relay, the
bridge's dead-letter topic): a broker's answer that names a place in the log.

Tansu 0.6.0, just restarted, answers a produce that kafka-python retried across the restart
with no error and offset -1, and stores nothing; kafka-python reports that as a success. It
lost the relay's events in the chaos suite's broker restart (docs/guarantee.md). Here that
answer becomes a retriable error, so each producer's own error path keeps the message and
sends it again.
"""

from __future__ import annotations

from typing import Any

from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata


class NotStored(KafkaError):
    """The broker answered without an error and without an offset: nothing was stored."""

    retriable = True


def acknowledged(future: Any, timeout: float | None = None) -> RecordMetadata:
    """Where the broker stored the message of a send's future; raises what the send raised,
    or NotStored when the answer names no offset."""
    where: RecordMetadata = future.get(timeout=timeout)
    if where.offset < 0:
        raise NotStored(f"answered without an offset in {where.topic}[{where.partition}]")
    return where
