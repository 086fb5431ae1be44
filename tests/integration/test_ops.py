"""What an operator watches: /healthz (liveness) and /healthz/dependencies against real
services that stop, the bridge's and the
worker's /metrics after a known stream of events, the bridge's heartbeat, JSON logs, and
Flower's password on its /metrics.

The shared Redis on 6379 is never stopped: a test that needs Redis to die starts a
redis-server of its own on a free port and stops that one.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connections
from django.test import Client
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pytest_django.fixtures import Settings

from graphspace import actions
from kafka_bridge.backend import create_topics
from notifications.events import new_event
from notifications.models import OwnerNotification
from tests.conftest import People
from tests.integration.conftest import ARTIFACTS, RUN_ID, Process, free_port, wait_for
from tests.integration.helpers import GRAPH


class RedisServer:
    """A redis-server of the test's own, on a free port, that the test may stop."""

    def __init__(self, label: str) -> None:
        self.port = free_port()
        self.log_path = ARTIFACTS / f"{label}-{RUN_ID}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT,
            )

        def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"redis-server exited; see {self.log_path}"
            try:
                return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, 10, 0.05, f"redis-server on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer("redis-healthz")
    server.start()
    yield server
    server.stop()


def use_redis(settings: Settings, url: str) -> None:
    """Point everything /healthz pings in Redis (the Celery broker, the channel layer) at url."""
    settings.CELERY_BROKER_URL = url
    settings.CHANNEL_LAYERS = {"default": {**settings.CHANNEL_LAYERS["default"], "CONFIG": {"hosts": [url]}}}


def healthz(client: Client, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    response = client.get(path)
    return response.status_code, response.json()


def dependencies(client: Client) -> tuple[int, dict[str, Any]]:
    return healthz(client, "/healthz/dependencies")


def kafka_io_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "kafka-io-graphspace-healthz"]


# --- /healthz and /healthz/dependencies --------------------------------------------------------


def test_both_answer_200_when_the_database_redis_and_kafka_answer(db: None, client: Client) -> None:
    status, body = healthz(client)
    assert status == 200, body
    assert body == {"status": "ok", "failed": [], "checks": {"database": body["checks"]["database"]}}
    assert body["checks"]["database"]["ok"] is True

    status, body = dependencies(client)
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "kafka"}
    for name in ("database", "redis", "kafka"):
        check = body["checks"][name]
        assert check["ok"] is True and check["error"] is None, (name, check)
        assert check["ms"] >= 0


def test_the_dependency_report_names_redis_when_redis_stops_and_liveness_stays_up(
    db: None, client: Client, settings: Settings, own_redis: RedisServer,
) -> None:
    use_redis(settings, own_redis.url)
    status, body = dependencies(client)
    assert status == 200, body

    own_redis.stop()
    status, body = dependencies(client)
    # It names Redis, and still vouches for the others.
    assert status == 503, body
    assert body["status"] == "fail"
    assert body["failed"] == ["redis"]
    assert body["checks"]["redis"]["ok"] is False
    assert str(own_redis.port) in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["kafka"]["ok"] is True
    # Restarting web would not bring Redis back: liveness does not ask it.
    assert healthz(client)[0] == 200


def test_a_kafka_outage_fails_the_dependency_report_but_not_liveness(
    db: None, client: Client, settings: Settings,
) -> None:
    closed = free_port()
    settings.KAFKA_BOOTSTRAP_SERVERS = [f"127.0.0.1:{closed}"]
    settings.HEALTHZ_TIMEOUT = 1.0
    threads_before = kafka_io_threads()

    status, body = healthz(client)
    assert status == 200, body
    assert body["failed"] == []

    status, body = dependencies(client)
    assert status == 503, body
    assert body["failed"] == ["kafka"]
    assert body["checks"]["kafka"]["ok"] is False
    assert f"127.0.0.1:{closed}" in body["checks"]["kafka"]["error"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    # A failed bootstrap leaves no kafka-python I/O thread behind.
    assert kafka_io_threads() == threads_before


def test_a_web_process_whose_kafka_is_unreachable_stays_live(process_env: dict[str, str]) -> None:
    """daphne as compose runs it, its KAFKA_BOOTSTRAP_SERVERS a closed port: the URL the
    container's health check asks answers 200, the dependency report 503 naming Kafka."""
    port, closed = free_port(), free_port()
    web = Process("web", {**process_env, "WEB_PORT": str(port), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}",
                          "HEALTHZ_TIMEOUT": "1"}, label="web-no-kafka")
    web.start(ready="Listening on")
    try:
        def get(path: str) -> tuple[int, dict[str, Any]]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                    return int(response.status), json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        status, body = get("/healthz")
        assert status == 200, body
        status, body = get("/healthz/dependencies")
        assert status == 503, body
        assert body["failed"] == ["kafka"]
        assert f"127.0.0.1:{closed}" in body["checks"]["kafka"]["error"]
    finally:
        web.stop()


def test_both_name_the_database_when_postgresql_does_not_answer(
    db: None, client: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The check opens a connection of its own from these parameters; the test's connection,
    # already open, is left alone.
    monkeypatch.setitem(connections["default"].settings_dict, "PORT", str(free_port()))
    status, body = healthz(client)
    assert status == 503, body
    assert body["failed"] == ["database"]
    status, body = dependencies(client)
    assert status == 503, body
    assert body["failed"] == ["database"]
    assert body["checks"]["redis"]["ok"] is True


# --- /metrics on web --------------------------------------------------------------------------


def test_web_metrics_answer_the_loopback_without_a_token(client: Client, people: People) -> None:
    # An action whose event no relay has published yet is in the outbox.
    actions.upload_graph(people.alice, name="Waiting", graph_json=GRAPH)
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "graphspace_outbox_events 1.0" in response.content.decode()
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 403


def test_web_metrics_with_a_token_want_it_from_everyone(client: Client, settings: Settings) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7", HTTP_AUTHORIZATION="s3cret-token").status_code == 403
    response = client.get("/metrics", REMOTE_ADDR="10.0.0.7", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200


# --- the bridge and the worker, as processes ---------------------------------------------------


class Observed:
    def __init__(self, topic: str, bridge: Process, bridge_port: int, worker: Process, worker_port: int,
                 heartbeat: Path) -> None:
        self.topic = topic
        self.bridge = bridge
        self.bridge_port = bridge_port
        self.worker = worker
        self.worker_port = worker_port
        self.heartbeat = heartbeat


@pytest.fixture(scope="module")
def observed(process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """A worker and a bridge of this module's own: a private Redis as their Celery broker (no
    other worker takes their tasks), their own topics and group, /metrics on free ports,
    JSON logs."""
    broker = RedisServer("redis-ops-broker")
    broker.start()
    name = f"t{RUN_ID}-ops-{uuid.uuid4().hex[:6]}"
    # All three topics its own: with the session's watching topic, the bridge also read what
    # other tests left there, and counted it.
    create_topics([f"{name}-owner", f"{name}-group", f"{name}-watching"])
    heartbeat = tmp_path_factory.mktemp("bridge") / "heartbeat"
    env = {**process_env, "CELERY_BROKER_URL": broker.url, "LOG_FORMAT": "json",
           "KAFKA_TOPIC_OWNER": f"{name}-owner", "KAFKA_TOPIC_GROUP": f"{name}-group",
           "KAFKA_TOPIC_WATCHING": f"{name}-watching",
           "KAFKA_CONSUMER_GROUP": f"{name}-notifications", "KAFKA_BATCH_MAX": "10"}
    worker_port, bridge_port = free_port(), free_port()
    worker = Process("worker", {**env, "WORKER_METRICS_PORT": str(worker_port)}, label="worker-ops")
    bridge = Process("bridge", {**env, "BRIDGE_METRICS_PORT": str(bridge_port), "BRIDGE_HEARTBEAT_FILE": str(heartbeat)},
                     label="bridge-ops")
    try:
        worker.start(ready="ready.")
        bridge.start(ready="kafka_bridge: consuming")
        yield Observed(f"{name}-owner", bridge, bridge_port, worker, worker_port, heartbeat)
    finally:
        bridge.stop()
        worker.stop()
        broker.stop()


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def upload(n: int) -> bytes:
    event = new_event("owner", {"owner_email": "alice@example.com", "message": f"New graph G{n} uploaded.",
                                "resource": "graph", "resource_id": n, "type": "upload"})
    return json.dumps(event.to_message()).encode()


def test_metrics_count_a_known_stream_of_events_once_they_are_persisted(
    people: People, transactional_db: None, observed: Observed,
) -> None:
    from django.conf import settings

    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, linger_ms=2)
    bad = [b"{not json", b"[]", json.dumps({"owner_email": "alice@example.com", "type": "upload",
                                            "event_id": "7d0c5a1e-0000-4000-8000-000000000003"}).encode()]
    for n in range(25):
        producer.send(observed.topic, value=upload(n))
        if n % 10 == 4:
            producer.send(observed.topic, value=bad[n // 10])
    producer.flush()
    producer.close()

    wait_for(lambda: OwnerNotification.objects.count() >= 25, timeout=40, what="25 notifications")

    def bridge_counted() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        samples = scrape(observed.bridge_port)
        done = value(samples, "graphspace_bridge_committed_offset", topic=observed.topic, partition="0") == 28
        return samples if done else None

    samples = wait_for(bridge_counted, timeout=20, interval=0.2, what="the bridge to commit offset 28")
    assert value(samples, "graphspace_bridge_events_consumed_total", topic="owner") == 28
    assert value(samples, "graphspace_bridge_events_rejected_total", topic="owner") == 3
    assert value(samples, "graphspace_bridge_events_submitted_total", topic="owner") == 25
    assert value(samples, "graphspace_bridge_lag", topic=observed.topic, partition="0") == 0
    assert (value(samples, "graphspace_bridge_submit_failures_total") or 0) == 0

    # The worker's main process adds up what its pool's processes counted.
    def worker_counted() -> float | None:
        return value(scrape(observed.worker_port), "graphspace_notifications_persisted_total", topic="owner")

    assert wait_for(lambda: worker_counted() == 25, timeout=20, interval=0.2, what="the worker's count of 25")
    time.sleep(0.5)
    assert OwnerNotification.objects.count() == 25
    assert worker_counted() == 25

    # LOG_FORMAT=json: the bridge writes nothing but JSON lines, and a rejection carries its
    # position and, when the message had one, its event id.
    lines = [json.loads(line) for line in observed.bridge.output().splitlines() if line.strip()]
    rejections = [line for line in lines if line["message"].startswith("rejected message")]
    assert [(r["topic"], r["partition"], r["offset"]) for r in rejections] == [
        (observed.topic, 0, 5), (observed.topic, 0, 16), (observed.topic, 0, 27),
    ]
    assert rejections[2]["event_id"] == "7d0c5a1e-0000-4000-8000-000000000003"
    assert "event_id" not in rejections[0]
    # The persist task's lines name every event of their batch.
    worker_lines = [json.loads(line) for line in observed.worker.output().splitlines() if line.startswith("{")]
    persisted = [line for line in worker_lines if line["message"].startswith("persisted ")]
    assert sum(len(line["event_ids"]) for line in persisted) == 25


def test_the_bridge_touches_its_heartbeat_file_even_when_idle(observed: Observed) -> None:
    wait_for(observed.heartbeat.exists, what="the heartbeat file")
    first = observed.heartbeat.stat().st_mtime
    assert time.time() - first < 3
    time.sleep(2.5)
    # Nothing to consume, and the file is fresh again: the loop is turning.
    latest = observed.heartbeat.stat().st_mtime
    assert latest > first
    assert time.time() - latest < 2
    samples = scrape(observed.bridge_port)
    assert time.time() - (value(samples, "graphspace_bridge_heartbeat_timestamp_seconds") or 0) < 2


# --- replaying a topic -------------------------------------------------------------------------


def test_replay_topic_commits_the_groups_offset_for_the_bridges_to_read_from() -> None:
    from django.conf import settings
    from django.core.management import CommandError, call_command
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    topic = f"t{RUN_ID}-replay-{uuid.uuid4().hex[:6]}"
    group = f"{topic}-notifications"
    create_topics([topic])
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    for n in range(5):
        producer.send(topic, value=upload(n))
    producer.flush()
    producer.close()

    call_command("replay_topic", "--topic", topic, "--partition", "0", "--offset", "3", "--group", group)

    consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=group, enable_auto_commit=False)
    try:
        assert consumer.committed(TopicPartition(topic, 0)) == 3
    finally:
        consumer.close(autocommit=False)
    with pytest.raises(CommandError, match="no partition 7"):
        call_command("replay_topic", "--topic", topic, "--partition", "7", "--offset", "0", "--group", group)


# --- Flower ------------------------------------------------------------------------------------


def test_flower_asks_for_its_password_on_metrics_too(process_env: dict[str, str]) -> None:
    """Flower 2.2 leaves /metrics out of --basic-auth; scripts/flowerconfig.py puts it back in."""
    port = free_port()
    flower = Process("flower", {**process_env, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": "admin:flower-test"})
    try:
        flower.start(ready="Visit me at")

        def status(path: str, password: str | None = None) -> int:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            if password is not None:
                token = base64.b64encode(f"admin:{password}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return error.code

        assert status("/metrics") == 401
        assert status("/metrics", "wrong") == 401
        assert status("/metrics", "flower-test") == 200
        assert status("/") == 401  # as the rest of Flower
        assert status("/healthcheck") == 200  # the container's health check needs no password
    finally:
        flower.stop()
