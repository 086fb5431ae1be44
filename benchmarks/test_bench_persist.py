"""Persist throughput with 1, 2 and 4 writers at once (threads in one process, each with its
own database connection, as Celery's pool processes would be): 20,000 owner events over 200
recipients in batches of 500. Shows whether writers contend (a lock convoy makes 4 no faster
than 1). Asserts only that every row was stored once."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

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
        took = run_writers([evs[i:i + BATCH] for i in range(0, EVENTS, BATCH)], writers)
        stored = OwnerNotification.objects.filter(resource_id__gte=run * EVENTS, resource_id__lt=(run + 1) * EVENTS).count()
        assert stored == EVENTS
        print(f"persist, {writers} writer(s): {EVENTS / took:,.0f} events/s ({took:.2f} s for {EVENTS:,})")
        record("throughput", f"persist_events, {writers} writer(s) at once, 20,000 events over 200 recipients",
               f"{EVENTS / took:,.0f} events/s",
               baseline={1: "", 2: "6,259/s", 4: "5,313/s (slower than 2)"}[writers],
               target={4: "faster than 2 writers"}.get(writers, ""))
    # One open cluster per recipient and key: concurrent writers never split one.
    assert NotificationCluster.objects.count() == RECIPIENTS
