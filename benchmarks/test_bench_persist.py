"""Persist throughput with 1, 2 and 4 writers at once (threads in one process, each with its
own database connection, as Celery's pool processes would be): 20,000 owner events over 200
recipients in batches of 500. Shows whether writers contend (a lock convoy makes 4 no faster
than 1). Prints, per run, the machine's idle CPU and what the writers' sessions were doing
(Sampler): cores all busy, or sessions waiting for each other's locks. Asserts only that
every row was stored once."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

from benchmarks.record import record
from graphspace.models import User
from notifications.events import Event, new_event
from notifications.models import NotificationCluster, OwnerNotification
from notifications.persist import persist_events

RECIPIENTS = 200
EVENTS = 20_000
BATCH = 500


def events(run: int) -> list[Event]:
    return [new_event("owner", {
        "owner_email": f"r{n % RECIPIENTS}@example.com", "message": f"New graph G{n} uploaded.",
        "resource": "graph", "resource_id": run * EVENTS + n, "resource_name": f"G{n}", "type": "upload",
    }) for n in range(EVENTS)]


def cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all cores since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields)


class Sampler(threading.Thread):
    """What the writers' database sessions are doing, every 20 ms (pg_stat_activity): on a
    CPU in PostgreSQL, waiting for a lock (heavyweight: a row, an advisory lock, a
    transaction), for a lightweight lock or I/O, or idle in their transaction waiting for
    the writer's Python; and the machine's idle CPU over the run. Tells a lock convoy from
    cores that are simply all busy."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.states: Counter[str] = Counter()
        self.samples = 0
        db = settings.DATABASES["default"]
        self.dsn = dict(host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"],
                        dbname=db["NAME"])

    def run(self) -> None:
        with psycopg.connect(**self.dsn, autocommit=True) as conn:
            while not self.stop.wait(0.02):
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle'").fetchall()
                self.samples += 1
                for state, kind, event in rows:
                    if state == "active":
                        self.states["on CPU" if kind is None else f"{kind} {event}"] += 1
                    else:
                        self.states["idle in transaction (Python's turn)"] += 1

    def __enter__(self) -> Sampler:
        self.idle0 = cpu_times()
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.join()
        idle, total = cpu_times()
        self.cpu_idle = (idle - self.idle0[0]) / max(1, total - self.idle0[1])

    def summary(self) -> str:
        sessions = sum(self.states.values()) / max(1, self.samples)
        shares = ", ".join(f"{name} {n / max(1, self.samples):.2f}" for name, n in self.states.most_common(5))
        return (f"CPU idle {self.cpu_idle:.0%} (load {os.getloadavg()[0]:.1f}); writer sessions in a transaction, "
                f"mean {sessions:.2f}: {shares}")


def run_writers(batches: list[list[Event]], writers: int) -> float:
    work: queue.Queue[list[Event]] = queue.Queue()
    for b in batches:
        work.put(b)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                persist_events(batch)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return time.perf_counter() - started


def test_bench_persist_with_concurrent_writers(transactional_db: Any) -> None:
    User.objects.bulk_create([User(email=f"r{n}@example.com", password="x") for n in range(RECIPIENTS)])
    print()
    for run, writers in enumerate((1, 2, 4)):
        evs = events(run)
        with Sampler() as sampler:
            took = run_writers([evs[i:i + BATCH] for i in range(0, EVENTS, BATCH)], writers)
        stored = OwnerNotification.objects.filter(resource_id__gte=run * EVENTS, resource_id__lt=(run + 1) * EVENTS).count()
        assert stored == EVENTS
        print(f"persist, {writers} writer(s): {EVENTS / took:,.0f} events/s ({took:.2f} s for {EVENTS:,}); "
              f"{sampler.summary()}")
        record("throughput", f"persist_events, {writers} writer(s) at once, 20,000 events over 200 recipients",
               f"{EVENTS / took:,.0f} events/s",
               baseline={1: "", 2: "6,259/s", 4: "5,313/s (slower than 2)"}[writers],
               target={4: "faster than 2 writers"}.get(writers, ""), note=sampler.summary())
    # One open cluster per recipient and key: concurrent writers never split one.
    assert NotificationCluster.objects.count() == RECIPIENTS
