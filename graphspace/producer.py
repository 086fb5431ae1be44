"""The one door to Kafka for the web app.

`send_message(topic, message)` keeps the seed's signature. It completes and validates the
event at once (a programming error shows up in the request that made it), and publishes it
only after the surrounding database transaction commits, so nobody hears of a change that
was rolled back. Publishing never fails the user's request: an event that the broker does
not take within KAFKA_PRODUCER_MAX_BLOCK_MS (or refuses later) is logged, counted and held in
the `held_event` table, and the `tasks.republish_events` beat task publishes it again.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from kafka import KafkaProducer
from kafka.errors import KafkaError

from graphspace.models import HeldEvent
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
                # Joining the cluster (first use) waits no longer than a send may.
                bootstrap_timeout_ms=settings.KAFKA_PRODUCER_MAX_BLOCK_MS,
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


def _send(event: Event) -> Any:
    """Give the event to the producer; returns the future of the broker's acknowledgement."""
    value = json.dumps(event.to_message(), separators=(",", ":")).encode("utf-8")
    return _get_producer().send(settings.KAFKA_TOPICS[event.topic], key=message_key(event).encode("utf-8"), value=value)


def publish_rollback_unsafe(event: Event) -> bool:
    """Hand the event to Kafka now, whatever happens to the caller's transaction.

    Named so that nobody uses it from a view by accident; `send_message` is the safe door.
    """
    try:
        _send(event).add_errback(_on_error, event)
    except KafkaError as error:
        _hold(event, error)
        return False
    return True


def _on_error(error: BaseException, event: Event) -> None:
    """Delivery failed after the producer's own retries (runs in kafka-python's I/O thread)."""
    try:
        _hold(event, error)
    finally:
        connection.close()


def _hold(event: Event, error: BaseException) -> None:
    global failed_sends
    failed_sends += 1
    log.error("event %s not published (%r); held for republishing", event.event_id, error,
              extra={"event_id": str(event.event_id)})
    try:
        HeldEvent.objects.get_or_create(
            event_id=event.event_id,
            defaults={"topic": event.topic, "event": event.to_task(), "error": repr(error)[:2000]},
        )
    except DatabaseError:
        log.exception("event %s could not be held either", event.event_id, extra={"event_id": str(event.event_id)})


def republish_held(limit: int = 500, timeout: float = 10.0) -> tuple[int, int]:
    """Publish held events again, oldest first; returns (published, still held). Rows are
    claimed with SKIP LOCKED so two workers never publish the same one at once, and a row is
    deleted only once the broker has acknowledged it."""
    published: list[int] = []
    with transaction.atomic():
        held = list(HeldEvent.objects.select_for_update(skip_locked=True).order_by("created_at", "id")[:limit])
        for row in held:
            try:
                _send(Event.model_validate(row.event)).get(timeout=timeout)
            except KafkaError as error:
                HeldEvent.objects.filter(pk=row.pk).update(attempts=row.attempts + 1, error=repr(error)[:2000])
                # The broker is still away: the rest would wait just as long for nothing.
                break
            published.append(row.pk)
        HeldEvent.objects.filter(pk__in=published).delete()
    return len(published), HeldEvent.objects.count()


def send_message(topic: str, message: dict[str, Any]) -> Event:
    """Publish a notification event after the current transaction commits (the seed's API)."""
    event = new_event(topic, message)
    transaction.on_commit(lambda: publish_rollback_unsafe(event))
    return event
