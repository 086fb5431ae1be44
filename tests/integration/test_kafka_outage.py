"""A Kafka outage never fails the user's request and loses no notification: the event is
held in PostgreSQL and published again, with its own event id, once the broker is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.conf import settings

from graphspace import producer
from graphspace.models import HeldEvent
from notifications.models import OwnerNotification
from tasks.republish import republish_events
from tests.conftest import People
from tests.integration.conftest import free_port, wait_for
from tests.integration.helpers import GRAPH, Api


@pytest.fixture
def kafka_down() -> Iterator[list[str]]:
    """The producer pointed at a port nobody listens on; yields the real broker's address
    for the test to bring Kafka "back", and restores it in any case."""
    real, block = settings.KAFKA_BOOTSTRAP_SERVERS, settings.KAFKA_PRODUCER_MAX_BLOCK_MS
    producer.close()
    settings.KAFKA_BOOTSTRAP_SERVERS = [f"127.0.0.1:{free_port()}"]
    settings.KAFKA_PRODUCER_MAX_BLOCK_MS = 500
    yield real
    producer.close()
    settings.KAFKA_BOOTSTRAP_SERVERS, settings.KAFKA_PRODUCER_MAX_BLOCK_MS = real, block


def test_an_action_during_a_kafka_outage_succeeds_and_its_notification_arrives_later(
    people: People, pipeline: None, kafka_down: list[str],
) -> None:
    started = time.monotonic()
    created = Api(people.alice).call("POST", "graphs/", {"name": "Outage", "graph_json": GRAPH}, expect=201)
    # The request waited at most about KAFKA_PRODUCER_MAX_BLOCK_MS for the broker.
    assert time.monotonic() - started < 5
    held = HeldEvent.objects.get()
    assert (held.topic, held.event["resource_id"], held.event["type"]) == ("owner", created["id"], "upload")
    # Publishing again while the broker is still away keeps the event and counts the try.
    assert producer.republish_held(timeout=1) == (0, 1)
    assert HeldEvent.objects.get().attempts == 1

    producer.close()
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_down
    # What beat runs every REPUBLISH_INTERVAL_SECONDS.
    assert settings.CELERY_BEAT_SCHEDULE["republish held events"]["task"] == republish_events.name
    assert republish_events() == 1
    assert not HeldEvent.objects.exists()
    wait_for(lambda: OwnerNotification.objects.filter(resource_id=created["id"]).exists(), what="the late notification")
    row = OwnerNotification.objects.get(resource_id=created["id"])
    assert (row.owner_id, row.message) == ("alice@example.com", "New graph Outage uploaded.")
    assert str(row.event_id) == held.event["event_id"]
