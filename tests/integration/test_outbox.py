"""The outbox relay against the real database: claims, order per key, what a failure keeps.

The broker side is a recording stand-in here (the real broker is in test_kafka_outage.py and
every pipeline test); what is under test is the claim query and the delete-after-ack rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from kafka.errors import KafkaTimeoutError
from kafka.producer.future import RecordMetadata
from kafka.structs import TopicPartition

from graphspace import producer
from graphspace.models import OutboxEvent
from notifications.events import new_event
from tests.integration.conftest import Process


class Acked:
    def __init__(self, on_get: Callable[[], None], topic: str, offset: int) -> None:
        self.on_get, self.topic, self.offset = on_get, topic, offset

    def get(self, timeout: float | None = None) -> RecordMetadata:
        self.on_get()
        # Where the broker says it put the message (-1: nowhere, and no error).
        return RecordMetadata(self.topic, 0, TopicPartition(self.topic, 0), self.offset, 0, None, 0, 0, 0)


class RecordingProducer:
    """Acknowledges every send and records, in one list shared by all relays, the order in
    which the acknowledgements were seen."""

    def __init__(self, log: list[tuple[str, bytes]], lock: threading.Lock, fail: bool = False,
                 no_offset_from: int | None = None) -> None:
        self.log, self.lock, self.fail = log, lock, fail
        # From this send on, answer as Tansu 0.6.0 answers a produce retried across its
        # restart: no error, offset -1, nothing stored.
        self.no_offset_from = no_offset_from
        self.sent = 0
        self.closed = False

    def send(self, topic: str, key: bytes, value: bytes) -> Acked:
        if self.fail:
            raise KafkaTimeoutError("no broker")

        offset = self.sent
        self.sent += 1
        if self.no_offset_from is not None and offset >= self.no_offset_from:
            return Acked(lambda: None, topic, -1)

        def ack() -> None:
            time.sleep(0.0005)  # let the other relay's claim run in between
            with self.lock:
                self.log.append((key.decode(), value))
        return Acked(ack, topic, offset)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture
def transactional_db(transactional_db: None, relay: Process) -> Iterator[None]:
    """The suite's relay process would publish these tests' rows before they could: it is
    stopped for each test here and started again after."""
    relay.stop()
    yield
    relay.start(ready="relay_outbox: publishing")


def write(n: int, keys: int) -> list[OutboxEvent]:
    with transaction.atomic():
        for i in range(n):
            producer.write_to_outbox(new_event("owner", {
                "owner_email": f"user{i % keys}@example.com", "message": "m", "resource": "graph",
                "resource_id": i, "type": "upload",
            }))
    return list(OutboxEvent.objects.order_by("id"))


def test_two_relays_publish_each_row_once_and_each_key_in_order(transactional_db: None) -> None:
    rows = write(600, keys=60)
    log: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def relay() -> None:
        try:
            r = producer.Relay(batch=40, producer_factory=lambda: RecordingProducer(log, lock))
            while OutboxEvent.objects.exists():
                r.step()
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert not OutboxEvent.objects.exists()
    # Every row exactly once.
    assert sorted(value for _, value in log) == sorted(bytes(r.value) for r in rows)
    # Each key's rows reached the broker in the order their transactions wrote them.
    position = {bytes(r.value): r.id for r in rows}
    for key in {r.key for r in rows}:
        published = [position[value] for k, value in log if k == key]
        assert published == sorted(published), key


def test_a_batch_the_broker_does_not_take_stays_in_the_outbox(transactional_db: None) -> None:
    write(5, keys=1)
    made: list[RecordingProducer] = []
    log: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def factory() -> Any:
        made.append(RecordingProducer(log, lock, fail=len(made) == 0))
        return made[-1]

    relay = producer.Relay(producer_factory=factory)
    with pytest.raises(producer.PublishError):
        relay.step()
    assert OutboxEvent.objects.count() == 5 and log == []
    # The failed producer is thrown away; the next attempt makes a new one and succeeds.
    assert made[0].closed
    assert relay.step() == 5
    assert len(made) == 2 and len(log) == 5 and not OutboxEvent.objects.exists()


def test_an_answer_without_an_offset_is_not_a_delivery(transactional_db: None) -> None:
    """The chaos suite's broker restart lost events this way: the retried produce was
    answered without an error and with offset -1, and the relay deleted its rows."""
    write(5, keys=1)
    made: list[RecordingProducer] = []
    log: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def factory() -> Any:
        made.append(RecordingProducer(log, lock, no_offset_from=3 if not made else None))
        return made[-1]

    relay = producer.Relay(producer_factory=factory)
    with pytest.raises(producer.PublishError, match="without an offset"):
        relay.step()
    # Nothing was deleted: the three the broker did store are published again (a copy
    # persisting ignores), and the two it did not are not lost.
    assert OutboxEvent.objects.count() == 5 and len(log) == 3
    assert made[0].closed
    assert relay.step() == 5
    assert len(log) == 8 and not OutboxEvent.objects.exists()


def test_a_rolled_back_change_leaves_no_event(transactional_db: None) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        producer.send_message("owner", {"owner_email": "a@example.com", "message": "m", "resource": "graph",
                                        "resource_id": 1, "type": "upload"})
        raise Abort
    assert not OutboxEvent.objects.exists()
