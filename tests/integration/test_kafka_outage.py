"""A Kafka outage never slows or fails the user's request and loses no notification: the
event waits in the outbox, written in the action's own transaction, and the relay publishes
it once the broker is back, without being restarted."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from graphspace import actions
from graphspace.models import OutboxEvent
from notifications.models import OwnerNotification
from tests.conftest import People
from tests.integration.conftest import ARTIFACTS, ROOT, RUN_ID, Process, free_port, wait_for
from tests.integration.helpers import GRAPH, Api

FAST = {"RELAY_METRICS_PORT": "0", "KAFKA_RELAY_TIMEOUT_MS": "1000"}


class Broker:
    """A Tansu broker of this test's own, on a port of its own, started and stopped at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        url = f"tcp://{self.address}"
        self.proc = subprocess.Popen(
            [str(ROOT / "var" / "bin" / "tansu"), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=open(ARTIFACTS / f"tansu-outage-{RUN_ID}.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    broker = Broker()
    yield broker
    broker.stop()


def test_actions_while_kafka_is_down_succeed_and_arrive_once_it_returns(
    people: People, pipeline: None, relay: Process, process_env: dict[str, str],
) -> None:
    # The relay is the only process that talks to Kafka on the way in: one that cannot reach
    # any broker is what a Kafka outage looks like from the web app.
    relay.stop()
    cut_off = Process("relay", {**process_env, **FAST, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"},
                      label="relay-cut-off")
    cut_off.start(ready="relay_outbox: publishing")
    try:
        alice = Api(people.alice)
        made = [alice.call("POST", "graphs/", {"name": f"Outage {n}", "graph_json": GRAPH}, expect=201)["id"]
                for n in range(20)]
        # Every event waits in the outbox; the relay keeps trying and keeps them.
        wait_for(lambda: "retrying in" in cut_off.output(), what="the relay to fail to publish")
        assert OutboxEvent.objects.count() == 20
        assert not OwnerNotification.objects.exists()
    finally:
        cut_off.stop()
    relay.start(ready="relay_outbox: publishing")
    wait_for(lambda: OwnerNotification.objects.count() == 20, what="the 20 late notifications")
    wait_for(lambda: not OutboxEvent.objects.exists(), what="the outbox to empty")
    assert sorted(OwnerNotification.objects.values_list("resource_id", flat=True)) == sorted(made)


def test_the_relay_publishes_once_a_broker_that_was_down_comes_back_without_a_restart(
    people: People, transactional_db: None, relay: Process, process_env: dict[str, str], own_broker: Broker,
) -> None:
    relay.stop()
    topic = f"t{RUN_ID}-outage-{uuid.uuid4().hex[:6]}"
    env = {**process_env, **FAST, "KAFKA_BOOTSTRAP_SERVERS": own_broker.address, "KAFKA_TOPIC_OWNER": topic}
    waiting = Process("relay", env, label="relay-own-broker")
    waiting.start(ready="relay_outbox: publishing")
    try:
        graph = actions.upload_graph(people.alice, name="Before", graph_json=GRAPH)
        wait_for(lambda: "retrying in" in waiting.output(), what="the relay to find no broker")
        own_broker.start()
        admin = wait_for(lambda: _admin(own_broker.address), timeout=20, what="the new broker")
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.close()
        # The same relay process, whose producer failed against the absent broker, publishes.
        wait_for(lambda: not OutboxEvent.objects.exists(), timeout=30, what="the outbox to empty")
        consumer = KafkaConsumer(topic, bootstrap_servers=own_broker.address, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10000)
        values = [json.loads(m.value) for m in consumer]
        consumer.close()
    finally:
        waiting.stop()
        relay.start(ready="relay_outbox: publishing")
    assert [(v["resource_id"], v["type"]) for v in values] == [(graph.id, "upload")]


def _admin(address: str) -> KafkaAdminClient | None:
    try:
        return KafkaAdminClient(bootstrap_servers=address, request_timeout_ms=2000)
    except Exception:
        return None
