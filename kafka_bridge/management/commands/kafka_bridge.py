"""`python manage.py kafka_bridge`: the long-running Kafka -> Celery bridge."""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from kafka_bridge.backend import create_topics, make_consumer
from kafka_bridge.loop import Bridge
from kafka_bridge.submit import submit_batch


class Command(BaseCommand):
    help = "Consume notification events from Kafka and hand each batch to Celery."

    def handle(self, *args: Any, **options: Any) -> None:
        topics = {name: logical for logical, name in settings.KAFKA_TOPICS.items()}
        create_topics(topics)
        consumer = make_consumer(topics)
        bridge = Bridge(
            consumer,
            submit_batch,
            topics,
            poll_timeout_ms=settings.KAFKA_POLL_TIMEOUT_MS,
            max_records=settings.KAFKA_BATCH_MAX,
        )
        signal.signal(signal.SIGTERM, bridge.request_shutdown)
        signal.signal(signal.SIGINT, bridge.request_shutdown)
        self.stdout.write(f"kafka_bridge: consuming {', '.join(topics)} as {settings.KAFKA_CONSUMER_GROUP}")
        self.stdout.flush()
        bridge.run()
