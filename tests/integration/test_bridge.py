"""The bridge as a process: restarts and crashes mid-stream lose nothing and duplicate
nothing; malformed messages are logged with their position and skipped."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaProducer

from kafka_bridge.backend import create_topics
from notifications.events import new_event
from notifications.models import OwnerNotification
from tests.conftest import People
from tests.integration.conftest import RUN_ID, Process, wait_for


@pytest.fixture
def own_topics(process_env: dict[str, str], worker: Process, transactional_db: Any) -> Iterator[tuple[str, dict[str, str]]]:
    """Topics and a consumer group for one test, so its bridges share them with no other."""
    name = f"t{RUN_ID}-{uuid.uuid4().hex[:6]}"
    owner_topic = f"{name}-owner"
    create_topics([owner_topic, f"{name}-group"])
    env = {**process_env, "KAFKA_TOPIC_OWNER": owner_topic, "KAFKA_TOPIC_GROUP": f"{name}-group",
           "KAFKA_CONSUMER_GROUP": f"{name}-notifications", "KAFKA_BATCH_MAX": "50",
           "KAFKA_DEAD_LETTER_TOPIC": f"{name}-dead-letter"}
    yield owner_topic, env


@pytest.fixture
def kafka() -> Iterator[KafkaProducer]:
    from django.conf import settings

    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, linger_ms=2)
    yield producer
    producer.close()


def upload(n: int) -> bytes:
    event = new_event("owner", {"owner_email": "alice@example.com", "message": f"New graph G{n} uploaded.",
                                "resource": "graph", "resource_id": n, "type": "upload"})
    return json.dumps(event.to_message()).encode()


def stored() -> int:
    return OwnerNotification.objects.count()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_bridge_stopped_mid_stream_and_started_again_stores_every_event_exactly_once(
    people: People, own_topics: tuple[str, dict[str, str]], kafka: KafkaProducer, stop_signal: int,
) -> None:
    topic, env = own_topics
    total = 600
    bridge = Process("bridge", env, label=f"bridge-restart-{stop_signal}")
    bridge.start(ready="kafka_bridge: consuming")

    def stream() -> None:
        for n in range(total):
            kafka.send(topic, key=b"owner:alice@example.com", value=upload(n))
            if n % 20 == 0:
                kafka.flush()
                time.sleep(0.02)
        kafka.flush()

    producer = threading.Thread(target=stream)
    producer.start()
    wait_for(lambda: stored() >= 60, what="the first events to be stored")
    code = bridge.stop(stop_signal)
    stopped_at = stored()
    if stop_signal == signal.SIGTERM:
        # A clean stop: the batch in hand was finished, committed, and the process exited 0.
        assert code == 0, bridge.output()[-2000:]
        assert "bridge stopped:" in bridge.output()
    bridge.start(ready="kafka_bridge: consuming")
    producer.join()
    wait_for(lambda: stored() >= total, timeout=40, what=f"all {total} events")
    time.sleep(1.0)
    bridge.stop()
    rows = list(OwnerNotification.objects.values_list("resource_id", flat=True))
    assert sorted(rows) == list(range(total)), f"stopped at {stopped_at}; {len(rows)} rows"


def test_malformed_messages_are_logged_with_their_position_and_never_block_the_rest(
    people: People, own_topics: tuple[str, dict[str, str]], kafka: KafkaProducer,
) -> None:
    topic, env = own_topics
    bridge = Process("bridge", env, label="bridge-malformed")
    bridge.start(ready="kafka_bridge: consuming")
    bad = [b"{not json", b"[]", json.dumps({"owner_email": "alice@example.com", "type": "upload"}).encode(),
           json.dumps({"owner_email": "alice@example.com", "message": "m", "resource": "graph",
                       "resource_id": "seven", "type": "upload"}).encode()]
    for n in range(3):
        kafka.send(topic, value=upload(n))
        kafka.send(topic, value=bad[n])
    kafka.send(topic, value=bad[3])
    kafka.send(topic, value=upload(3))
    kafka.flush()
    wait_for(lambda: stored() >= 4, what="the valid events behind the bad ones")
    time.sleep(0.5)
    bridge.stop()
    assert sorted(OwnerNotification.objects.values_list("resource_id", flat=True)) == [0, 1, 2, 3]
    log = bridge.output()
    assert f"rejected message {topic}[0]@1: message is not JSON" in log
    assert f"rejected message {topic}[0]@3: message must be a JSON object, not list" in log
    assert f"rejected message {topic}[0]@5: resource: Field required; resource_id: Field required; message: Field required" in log
    assert f"rejected message {topic}[0]@6: resource_id: Input should be a valid integer" in log
    assert "rejected=4" in log
    # Every rejected message was kept, as it came, on the dead-letter topic.
    dead = read_all(env["KAFKA_DEAD_LETTER_TOPIC"], 4)
    assert [m.value for m in dead] == bad
    headers = [dict(m.headers) for m in dead]
    positions = [(h["source-topic"].decode(), int(h["source-offset"])) for h in headers]
    assert positions == [(topic, 1), (topic, 3), (topic, 5), (topic, 6)]
    assert headers[0]["reason"].decode().startswith("message is not JSON")


def read_all(topic: str, expected: int) -> list[Any]:
    from django.conf import settings
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000)
    found: list[Any] = []
    try:
        for message in consumer:
            found.append(message)
            if len(found) >= expected:
                break
    finally:
        consumer.close()
    return sorted(found, key=lambda m: m.offset)
