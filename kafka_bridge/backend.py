"""The Kafka side of the bridge: a consumer in the notification consumer group."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.conf import settings
from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import TopicPartition

log = logging.getLogger(__name__)


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Say which partitions this bridge owns, and tell the bridge what a rebalance took.

    Each batch is committed before the next poll, and a rebalance happens inside poll, so a
    revoke finds uncommitted work only while the bridge holds a batch it cannot hand on; the
    bridge then drops it (Bridge.partitions_revoked)."""

    def __init__(self) -> None:
        self.on_revoked: Callable[[set[TopicPartition]], None] | None = None

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        taken = set(revoked)
        log.info("partitions revoked: %s", _names(taken))
        if self.on_revoked is not None:
            self.on_revoked(taken)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("partitions assigned: %s", _names(assigned))


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)) or "none"


def make_consumer(
    topics: Iterable[str], *, group_id: str | None = None, listener: Rebalance | None = None,
) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        group_id=group_id or settings.KAFKA_CONSUMER_GROUP,
        client_id="graphspace-bridge",
        # Offsets are committed by the bridge, and only for what Celery has accepted.
        enable_auto_commit=False,
        # Tansu reports a wrong "latest" offset when a batch holds several records; a new
        # group starts from the beginning, and committed offsets make that exact.
        auto_offset_reset="earliest",
        session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=max(500, settings.KAFKA_SESSION_TIMEOUT_MS // 3),
        max_poll_records=settings.KAFKA_BATCH_MAX,
        # The bridge polls at least every few seconds, also while Redis is away (it pauses its
        # partitions and keeps polling); one hand-off attempt is the longest gap between
        # polls (the dead-letter topic's timeout, Celery's publish retries). A minute is
        # ample, and a bridge that is truly hung leaves its partitions to another within it.
        max_poll_interval_ms=60_000,
        # How long the broker may hold a fetch that found nothing new. On Tansu, which answers
        # a waiting fetch only when the wait ends, it sets the latency (232 ms p50 from publish
        # to the bridge at 500, 33 ms at 100, 3.6 ms at 10); the batch size is the bridge's
        # own (kafka_bridge/batching.py); see KAFKA_FETCH_MAX_WAIT_MS in settings.
        fetch_max_wait_ms=settings.KAFKA_FETCH_MAX_WAIT_MS,
    )
    consumer.subscribe(list(topics), listener=listener or Rebalance())
    return consumer


def create_topics(topics: Iterable[str], partitions: int | None = None) -> list[str]:
    """Create the topics that do not exist yet (auto-created ones get 4 partitions on Tansu,
    so every topic is made here, explicitly). Returns the names created."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, client_id="graphspace-setup"
    )
    created = []
    try:
        existing = set(admin.list_topics())
        for name in topics:
            if name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(name, partitions or settings.KAFKA_TOPIC_PARTITIONS, 1)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return created
