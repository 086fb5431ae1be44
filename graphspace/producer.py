"""The one door to Kafka for the web app.

`send_message(topic, message)` keeps the seed's signature. It completes and validates the
event at once (a programming error shows up in the request that made it), and publishes it
only after the surrounding database transaction commits, so nobody hears of a change that
was rolled back. Publishing never fails the user's request: a broker that cannot be reached
within KAFKA_PRODUCER_MAX_BLOCK_MS is logged and counted, and the request goes on.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from typing import Any

from django.conf import settings
from django.db import transaction
from kafka import KafkaProducer
from kafka.errors import KafkaError

from notifications.events import Event, new_event

log = logging.getLogger(__name__)

_producer: KafkaProducer | None = None
_lock = threading.Lock()

# Events that could not be handed to the producer (broker unreachable); read by tests and,
# later, exported as a metric.
failed_sends = 0


def _get_producer() -> KafkaProducer:
    global _producer
    with _lock:
        if _producer is None:
            _producer = KafkaProducer(
                bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
                client_id="graphspace-web",
                acks="all",
                retries=5,
                linger_ms=5,
                max_block_ms=settings.KAFKA_PRODUCER_MAX_BLOCK_MS,
                request_timeout_ms=10000,
            )
            atexit.register(close)
        return _producer


def close(timeout: float = 5.0) -> None:
    """Flush what is buffered and close the connection (process exit, tests)."""
    global _producer
    with _lock:
        producer, _producer = _producer, None
    if producer is not None:
        producer.flush(timeout=timeout)
        producer.close(timeout=timeout)


def flush(timeout: float = 10.0) -> None:
    if _producer is not None:
        _producer.flush(timeout=timeout)


def message_key(event: Event) -> str:
    """One recipient's or one group's events share a partition, so they stay in order."""
    if event.topic == "group":
        return f"group:{event.group_id}"
    return f"owner:{event.owner_email}"


def publish_rollback_unsafe(event: Event) -> bool:
    """Hand the event to Kafka now, whatever happens to the caller's transaction.

    Named so that nobody uses it from a view by accident; `send_message` is the safe door.
    """
    global failed_sends
    topic = settings.KAFKA_TOPICS[event.topic]
    try:
        value = json.dumps(event.to_message(), separators=(",", ":")).encode("utf-8")
        future = _get_producer().send(topic, key=message_key(event).encode("utf-8"), value=value)
        future.add_errback(_on_error, event)
    except KafkaError as error:
        failed_sends += 1
        log.error("event %s not published to %s: %r", event.event_id, topic, error)
        return False
    return True


def _on_error(error: BaseException, event: Event) -> None:
    global failed_sends
    failed_sends += 1
    log.error("event %s not delivered: %r", event.event_id, error)


def send_message(topic: str, message: dict[str, Any]) -> Event:
    """Publish a notification event after the current transaction commits (the seed's API)."""
    event = new_event(topic, message)
    transaction.on_commit(lambda: publish_rollback_unsafe(event))
    return event
