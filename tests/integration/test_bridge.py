"""The bridge as a process: restarts and crashes mid-stream lose nothing and duplicate
nothing; malformed messages are logged with their position and skipped."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kafka import KafkaProducer

from kafka_bridge.backend import create_topics
from notifications.events import new_event
from notifications.models import DeadLetter, OwnerNotification
from tests.conftest import People
from tests.integration.conftest import RUN_ID, Process, free_port, wait_for


@pytest.fixture
def own_topics(process_env: dict[str, str], worker: Process, transactional_db: Any) -> Iterator[tuple[str, dict[str, str]]]:
    """Topics and a consumer group for one test, so its bridges share them with no other (all
    three: with the session's watching topic, a bridge also read what other tests left there)."""
    name = f"t{RUN_ID}-{uuid.uuid4().hex[:6]}"
    owner_topic = f"{name}-owner"
    create_topics([owner_topic, f"{name}-group", f"{name}-watching"])
    env = {**process_env, "KAFKA_TOPIC_OWNER": owner_topic, "KAFKA_TOPIC_GROUP": f"{name}-group",
           "KAFKA_TOPIC_WATCHING": f"{name}-watching",
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


def test_a_burst_and_a_trickle_are_each_stored_exactly_once_in_batches_of_at_most_the_max(
    people: People, own_topics: tuple[str, dict[str, str]], kafka: KafkaProducer,
) -> None:
    topic, env = own_topics
    # A long wait, so that a batch is nearly always being gathered during the trickle, and
    # the stop in its middle finds one to hand on.
    env = {**env, "KAFKA_BATCH_WAIT_MS": "2000", "KAFKA_FETCH_MAX_WAIT_MS": "20"}
    bridge = Process("bridge", env, label="bridge-batching")
    bridge.start(ready="kafka_bridge: consuming")
    burst, trickle = 300, 40
    for n in range(burst):
        kafka.send(topic, key=b"owner:alice@example.com", value=upload(n))
    kafka.flush()
    wait_for(lambda: stored() >= burst, what="the burst")
    for n in range(burst, burst + trickle):
        kafka.send(topic, key=b"owner:alice@example.com", value=upload(n))
        kafka.flush()
        if n == burst + trickle // 2:
            # It should hand on and commit the batch it is gathering, then exit cleanly.
            assert bridge.stop(signal.SIGTERM) == 0, bridge.output()[-2000:]
            assert "stopping: batch of" in bridge.output()
            bridge.start(ready="kafka_bridge: consuming")
        time.sleep(0.02)
    wait_for(lambda: stored() >= burst + trickle, timeout=40, what=f"all {burst + trickle} events")
    time.sleep(1.0)
    bridge.stop()
    rows = list(OwnerNotification.objects.values_list("resource_id", flat=True))
    assert sorted(rows) == list(range(burst + trickle))
    sizes = [int(size) for size in re.findall(r"batch of (\d+) events submitted", bridge.output())]
    assert max(sizes) <= 50, "no batch over KAFKA_BATCH_MAX"
    # Every event was handed on, and none twice: the batch in hand at the stop was committed.
    assert sum(sizes) == burst + trickle


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


def test_a_message_over_a_mebibyte_becomes_a_dead_letter_row_and_the_events_behind_it_flow(
    people: People, own_topics: tuple[str, dict[str, str]], tmp_path: Path,
) -> None:
    from django.conf import settings

    topic, env = own_topics
    heartbeat = tmp_path / "bridge-heartbeat"
    bridge = Process("bridge", {**env, "BRIDGE_HEARTBEAT_FILE": str(heartbeat), "BRIDGE_METRICS_PORT": "0"},
                     label="bridge-huge")
    bridge.start(ready="kafka_bridge: consuming")
    # The broker takes it; the bridge's dead-letter producer (1 MiB by default) cannot copy it.
    big_producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, max_request_size=4 << 20)
    claimed = str(uuid.uuid4())
    huge = json.dumps({"event_id": claimed, "owner_email": "alice@example.com", "message": "m" * (1 << 20) + "m",
                       "resource": "graph", "resource_id": 1, "type": "upload"}).encode()
    # The two other ways one message stopped the bridge: a date whose UTC moment overflows,
    # and a NUL byte PostgreSQL refuses.
    year_one = json.dumps({"owner_email": "alice@example.com", "message": "m", "resource": "graph",
                           "resource_id": 2, "type": "upload", "occurred_at": "0001-01-01T00:00:00+05:00"}).encode()
    nul = json.dumps({"owner_email": "alice@example.com", "message": "a\x00b", "resource": "graph",
                      "resource_id": 3, "type": "upload"}).encode()
    started = time.monotonic()
    try:
        big_producer.send(topic, key=b"owner:alice@example.com", value=huge)
        big_producer.send(topic, value=year_one)
        big_producer.send(topic, value=nul)
        for n in range(100, 150):
            big_producer.send(topic, key=b"owner:alice@example.com", value=upload(n))
        big_producer.flush()
    finally:
        big_producer.close()
    wait_for(lambda: stored() >= 50, timeout=30, what="the 50 valid events behind the huge one")
    elapsed = time.monotonic() - started
    wait_for(lambda: '"state": "idle"' in heartbeat.read_text(), timeout=10, what="the bridge to be idle")
    status = json.loads(heartbeat.read_text())
    bridge.stop()

    assert sorted(OwnerNotification.objects.values_list("resource_id", flat=True)) == list(range(100, 150))
    [letter] = DeadLetter.objects.all()
    assert (letter.stage, letter.topic, letter.partition, letter.offset) == (DeadLetter.BRIDGE, topic, 0, 0)
    assert (letter.event_id, bytes(letter.key or b"")) == (claimed, b"owner:alice@example.com")
    assert bytes(letter.value) == huge
    assert letter.reason.startswith(f"message is {len(huge)} bytes, more than the 65536 allowed")
    assert "MessageSizeTooLargeError" in letter.reason
    # The small ones are on the dead-letter topic, with their reasons.
    dead = read_all(env["KAFKA_DEAD_LETTER_TOPIC"], 2)
    assert [dict(m.headers)["reason"].decode() for m in dead] == [
        "occurred_at: is out of range", "message: must not contain a NUL byte"]
    log = bridge.output()
    assert f"rejected message {topic}[0]@0 kept in the dead-letter table" in log
    assert "not accepted" not in log and "not kept" not in log and "holding a batch" not in log
    assert status["held_messages"] == 0 and status["paused_since"] is None
    print(f"\n50 events behind a {len(huge)}-byte message stored {elapsed:.1f}s after it was produced")


class Cuttable:
    """A TCP relay to the Celery broker that the test cuts and restores: a Redis outage for
    one bridge only (the services are shared with everyone on this machine)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            for conn in [*self.connections, *([listener] if listener else [])]:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def test_while_redis_is_away_the_bridge_pauses_keeps_its_partitions_and_resumes_where_it_was(
    people: People, own_topics: tuple[str, dict[str, str]], kafka: KafkaProducer, tmp_path: Path,
) -> None:
    topic, env = own_topics
    broker = urlsplit(env["CELERY_BROKER_URL"])
    relay = Cuttable((broker.hostname or "127.0.0.1", broker.port or 6379))
    relay.up()
    heartbeat = tmp_path / "bridge-heartbeat"
    bridge = Process("bridge", {**env, "CELERY_BROKER_URL": broker._replace(netloc=f"127.0.0.1:{relay.port}").geturl(),
                                "BRIDGE_HEARTBEAT_FILE": str(heartbeat), "BRIDGE_METRICS_PORT": "0"},
                     label="bridge-redis-away")
    bridge.start(ready="kafka_bridge: consuming")

    def status() -> dict[str, Any]:
        return json.loads(heartbeat.read_text()) if heartbeat.exists() else {}

    def send(numbers: range) -> None:
        for n in numbers:
            kafka.send(topic, key=b"owner:alice@example.com", value=upload(n))
        kafka.flush()

    try:
        send(range(0, 50))
        wait_for(lambda: stored() >= 50, what="the events before the outage")
        relay.cut()
        send(range(50, 150))
        wait_for(lambda: status().get("state") == "paused", timeout=20, what="the bridge to pause")
        paused = status()
        # The outage: several session timeouts (2 s here) long. The bridge must neither store,
        # nor commit, nor leave its group meanwhile, and its heartbeat must keep saying so.
        outage_end = time.monotonic() + 8
        while time.monotonic() < outage_end:
            assert stored() == 50
            time.sleep(0.5)
        during = status()
        relay.up()
        back = time.monotonic()
        wait_for(lambda: stored() >= 150, timeout=30, what="every event after the outage")
        recovered = time.monotonic() - back
        wait_for(lambda: status().get("state") == "idle", timeout=10, what="the bridge to be idle again")
        after = status()
    finally:
        bridge.stop()
        relay.cut()

    assert sorted(OwnerNotification.objects.values_list("resource_id", flat=True)) == list(range(150))
    assert paused["held_messages"] > 0 and paused["paused_since"] is not None
    # Alive (rewritten during the outage) and stuck (no progress since it paused).
    assert during["state"] == "paused" and during["updated_at"] > paused["updated_at"] + 5
    assert during["last_progress_at"] == paused["last_progress_at"]
    assert after["last_progress_at"] > during["updated_at"]
    log = bridge.output()
    # It kept its partitions all along: one assignment, no revoke, no batch dropped.
    assert log.count("partitions assigned: t") == 1, log[-3000:]
    assert "dropped uncommitted" not in log
    assert "holding a batch of" in log and "handed on after" in log
    print(f"\nRedis away 8 s: every event stored {recovered:.1f}s after it returned")


def test_a_rebalance_while_a_bridge_holds_a_batch_loses_and_duplicates_nothing(
    people: People, own_topics: tuple[str, dict[str, str]], kafka: KafkaProducer,
) -> None:
    topic, env = own_topics
    broker = urlsplit(env["CELERY_BROKER_URL"])
    relay = Cuttable((broker.hostname or "127.0.0.1", broker.port or 6379))
    relay.up()
    stuck = Process("bridge", {**env, "CELERY_BROKER_URL": broker._replace(netloc=f"127.0.0.1:{relay.port}").geturl(),
                               "BRIDGE_METRICS_PORT": "0"}, label="bridge-rebalance-stuck")
    other = Process("bridge", {**env, "BRIDGE_METRICS_PORT": "0"}, label="bridge-rebalance-other")
    stuck.start(ready="partitions assigned: t")
    try:
        relay.cut()
        for n in range(100):
            kafka.send(topic, key=b"owner:alice@example.com", value=upload(n))
        kafka.flush()
        wait_for(lambda: "holding a batch of" in stuck.output(), timeout=20, what="the first bridge to hold a batch")
        # A second bridge joins the group: the first gives up what it holds, uncommitted.
        other.start(ready="kafka_bridge: consuming")
        wait_for(lambda: "dropped uncommitted" in stuck.output(), timeout=30, what="the held batch to be dropped")
        relay.up()
        wait_for(lambda: stored() >= 100, timeout=40, what="every event, by whichever bridge owns the partition")
        time.sleep(1.0)
    finally:
        other.stop()
        stuck.stop()
        relay.cut()
    rows = list(OwnerNotification.objects.values_list("resource_id", flat=True))
    assert sorted(rows) == list(range(100))
