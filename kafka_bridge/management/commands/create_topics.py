"""`python manage.py create_topics`: create the notification topics (idempotent)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from kafka_bridge.backend import create_topics


class Command(BaseCommand):
    help = "Create the Kafka topics the notification system uses."

    def handle(self, *args: Any, **options: Any) -> None:
        created = create_topics([*settings.KAFKA_TOPICS.values(), settings.KAFKA_DEAD_LETTER_TOPIC])
        self.stdout.write(f"topics created: {', '.join(created) or 'none (all exist)'}")
