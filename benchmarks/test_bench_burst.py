"""A burst: 20,000 owner events over 200 recipients already in a topic, consumed three ways
in the same run, on the same broker and database:

- raw: a kafka-python consumer that only reads them (the ceiling: no system is faster);
- the seed's design: a kafka-python consumer that stores each message with one ORM insert,
  as the original GraphSpace consumer did;
- ours: the bridge and a Celery worker (2 processes), rows stored, clustered and counted.

Prints events/s for each and the ratios; asserts that each way stored every event once.
"""

from __future__ import annotations

import json
import os
import time
import uuid

from django.conf import settings
from django.db import connection
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from benchmarks.record import record
from graphspace import producer
from graphspace.models import User
from kafka_bridge.backend import create_topics
from notifications.events import new_event
from notifications.models import OwnerNotification
from tests.integration.conftest import Process, wait_for

EVENTS = int(os.environ.get("BENCH_BURST_EVENTS", "20000"))
RECIPIENTS = 200


def fill_topic(topic: str) -> None:
    out = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all", linger_ms=5,
                        batch_size=256 * 1024)
    for n in range(EVENTS):
        event = new_event("owner", {
            "owner_email": f"r{n % RECIPIENTS}@example.com", "actor_email": f"r{(n + 1) % RECIPIENTS}@example.com",
            "message": "m", "resource": "graph", "resource_id": n, "resource_name": f"G{n}", "type": "upload"})
        out.send(topic, key=producer.message_key(event).encode(), value=producer.encode(event))
    out.flush()
    out.close()


def consumer(topic: str) -> KafkaConsumer:
    """Every partition assigned by hand, from the beginning: no group to join, so the clock
    measures reading, not a rebalance (ours is timed from its "partitions assigned")."""
    c = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=None,
                      auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=500)
    partitions = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    c.assign(partitions)
    c.seek_to_beginning(*partitions)
    return c


def raw_consume(topic: str) -> float:
    c = consumer(topic)
    started = time.perf_counter()
    seen = 0
    while seen < EVENTS:
        for records in c.poll(timeout_ms=1000).values():
            seen += len(records)
    c.close()
    return EVENTS / (time.perf_counter() - started)


def seed_design(topic: str) -> float:
    """One ORM insert per message, as the seed's consumer did (its columns; no clusters)."""
    c = consumer(topic)
    started = time.perf_counter()
    stored = 0
    while stored < EVENTS:
        for records in c.poll(timeout_ms=1000).values():
            for record_ in records:
                m = json.loads(record_.value)
                OwnerNotification.objects.create(
                    event_id=m["event_id"], owner_id=m["owner_email"], message=m["message"], type=m["type"],
                    resource=m["resource"], resource_id=m["resource_id"], resource_name=m.get("resource_name", ""),
                    actor_email=m.get("actor_email"), occurred_at=m["occurred_at"])
                stored += 1
    c.close()
    return EVENTS / (time.perf_counter() - started)


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its living descendants have used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / TICK
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            kids = [int(c) for c in children.read().split()]
    except (OSError, ValueError):
        return 0.0
    return own + sum(cpu_seconds(k) for k in kids)


def backends() -> dict[int, float]:
    """The CPU time of each PostgreSQL backend serving this database (same machine)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return {pid: cpu_seconds(pid) for (pid,) in cursor.fetchall()}


def test_bench_a_burst_against_the_seed_design_and_a_raw_consume(process_env: dict[str, str], worker: Process,
                                                                transactional_db: None) -> None:
    User.objects.bulk_create([User(email=f"r{i}@example.com", password="!") for i in range(RECIPIENTS)])
    topic = f"bench-burst-{uuid.uuid4().hex[:8]}"
    create_topics([topic])
    fill_topic(topic)

    raw = raw_consume(topic)
    seed = seed_design(topic)
    assert OwnerNotification.objects.count() == EVENTS
    OwnerNotification.objects.all().delete()

    bridge = Process("bridge", {**process_env, "KAFKA_TOPIC_OWNER": topic,
                                "KAFKA_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}"}, label="bench-bridge")
    bridge.start(ready="partitions assigned: ")
    assert bridge.proc is not None and worker.proc is not None
    cpu = {"bridge": cpu_seconds(bridge.proc.pid), "worker": cpu_seconds(worker.proc.pid)}
    db_before = backends()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        wait_for(lambda: OwnerNotification.objects.count() >= EVENTS, timeout=600, interval=0.1, what="every row")
        took = time.perf_counter() - started
        ours = EVENTS / took
        used = {"bridge": cpu_seconds(bridge.proc.pid) - cpu["bridge"],
                "worker": cpu_seconds(worker.proc.pid) - cpu["worker"],
                "PostgreSQL": sum(t - db_before.get(pid, 0.0) for pid, t in backends().items())}
    finally:
        bridge.stop()
    assert OwnerNotification.objects.count() == EVENTS
    # What each process spent, whatever else ran on the machine: the ceiling on 2 cores is
    # 2 CPU-seconds per second of wall time, shared by all of them.
    total = sum(used.values())
    print(f"\nburst: {took:.2f} s of wall time (load {load:.1f} when it began); CPU seconds for {EVENTS:,} events: "
          + ", ".join(f"{name} {s:.2f}" for name, s in used.items())
          + f" (total {total:.2f}: at most {2 * EVENTS / total:,.0f} events/s on 2 free cores)")
    record("throughput", f"burst of {EVENTS:,} events already in Kafka, 200 recipients",
           f"{ours:,.0f} events/s = {ours / seed:.1f}x the seed design ({seed:,.0f}/s), "
           f"{ours / raw:.2f}x raw consume ({raw:,.0f}/s)",
           baseline="3,148/s; 2.5x seed; 0.49x raw", target=">= 10x seed; >= 0.5x raw")
