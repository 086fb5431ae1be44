"""`python manage.py kafka_bridge`: the long-running Kafka -> Celery bridge."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from kafka import KafkaConsumer

from kafka_bridge.backend import Rebalance, create_topics, make_consumer
from kafka_bridge.confirmations import Confirmations
from kafka_bridge.dead_letter import DeadLetterTopic
from kafka_bridge.loop import Bridge, Heartbeat
from kafka_bridge.submit import confirmed, look, queue_empty, submit_batch
from ops import metrics

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Consume notification events from Kafka and hand each batch to Celery."

    stopping = False

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def connect(self, topics: dict[str, str], listener: Rebalance) -> KafkaConsumer | None:
        """Create the topics and join the consumer group, waiting for the broker with
        backoff: a bridge started before Kafka comes up waits instead of exiting."""
        delay = 0.5
        while not self.stopping:
            try:
                create_topics([*topics, settings.KAFKA_DEAD_LETTER_TOPIC])
                return make_consumer(topics, listener=listener)
            except Exception as error:
                log.warning("kafka not reachable (%r); retrying in %.1fs", error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        return None

    def handle(self, *args: Any, **options: Any) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        topics = {name: logical for logical, name in settings.KAFKA_TOPICS.items()}
        metrics.serve(settings.BRIDGE_METRICS_PORT, settings.METRICS_HOST)
        listener = Rebalance()
        consumer = self.connect(topics, listener)
        if consumer is None:
            return
        # Batches stay in hand until a worker confirms them stored (a worker killed as it
        # takes a task from Redis loses it); see kafka_bridge/confirmations.py.
        # They also say when a worker is free to take the next batch (`ready`).
        confirmations = Confirmations(submit_batch, confirmed, queue_empty,
                                      in_flight=settings.KAFKA_BATCH_IN_FLIGHT or None, look=look)
        bridge = Bridge(
            consumer,
            confirmations.submit,
            topics,
            on_turn=confirmations.check,
            poll_timeout_ms=settings.KAFKA_POLL_TIMEOUT_MS,
            max_records=settings.KAFKA_BATCH_MAX,
            batch_wait_ms=settings.KAFKA_BATCH_WAIT_MS,
            batch_wait_busy_ms=settings.KAFKA_BATCH_WAIT_BUSY_MS,
            queue_empty=confirmations.ready,
            heartbeat=Heartbeat(Path(settings.BRIDGE_HEARTBEAT_FILE)) if settings.BRIDGE_HEARTBEAT_FILE else None,
            dead_letter=DeadLetterTopic(),
        )
        # A rebalance while the bridge holds a batch it cannot hand on drops that batch.
        listener.on_revoked = bridge.partitions_revoked
        signal.signal(signal.SIGTERM, bridge.request_shutdown)
        signal.signal(signal.SIGINT, bridge.request_shutdown)
        # A log line, not stdout, so that LOG_FORMAT=json output stays one JSON object per line.
        log.info("kafka_bridge: consuming %s as %s", ", ".join(topics), settings.KAFKA_CONSUMER_GROUP)
        bridge.run()
