"""`python manage.py replay_topic --topic owner --partition 0 --offset N`: rewind (or skip)
the bridges' consumer group on one partition, so that they read it again from offset N.

Stop every bridge first: a running bridge commits its own position over this one. Replaying
is safe because persisting is idempotent (one row per event and recipient): events already
stored are read again and change nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition


class Command(BaseCommand):
    help = "Set the consumer group's committed offset on one partition (the bridges must be stopped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--topic", required=True,
                            help="owner or group (the names in settings), or a topic name on the broker")
        parser.add_argument("--partition", type=int, default=0)
        parser.add_argument("--offset", type=int, required=True, help="the next offset the bridges will read")
        parser.add_argument("--group", default=settings.KAFKA_CONSUMER_GROUP)

    def handle(self, *args: Any, **options: Any) -> None:
        topic = settings.KAFKA_TOPICS.get(options["topic"], options["topic"])
        partition, offset, group = options["partition"], options["offset"], options["group"]
        if offset < 0:
            raise CommandError("--offset must be 0 or more")
        consumer = KafkaConsumer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=group,
            client_id="graphspace-replay",
            enable_auto_commit=False,
        )
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions or partition not in partitions:
                raise CommandError(f"{topic} has no partition {partition} (partitions: {sorted(partitions or [])})")
            tp = TopicPartition(topic, partition)
            # assign, not subscribe: this consumer never joins the group, it only commits for it.
            consumer.assign([tp])
            before = consumer.committed(tp)
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
        finally:
            consumer.close(autocommit=False)
        self.stdout.write(f"{group}: {topic}[{partition}] committed offset {before} -> {offset}")
