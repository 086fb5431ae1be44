"""`python manage.py relay_outbox`: publish the event outbox to Kafka (graphspace/producer.py)."""

from __future__ import annotations

import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from graphspace.producer import Relay
from ops import metrics

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Publish the events that actions wrote to the outbox, in order, and delete each once Kafka has it."

    def handle(self, *args: Any, **options: Any) -> None:
        relay = Relay()
        # SIGTERM finishes the batch in hand: its rows are deleted only if the broker took them.
        signal.signal(signal.SIGTERM, relay.request_shutdown)
        signal.signal(signal.SIGINT, relay.request_shutdown)
        metrics.serve(settings.RELAY_METRICS_PORT, settings.METRICS_HOST)
        log.info("relay_outbox: publishing the outbox to %s", ", ".join(settings.KAFKA_BOOTSTRAP_SERVERS))
        relay.run()
