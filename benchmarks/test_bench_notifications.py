"""Figures, not pass/fail timings: run with `make bench` (or
`.venv/bin/python -m pytest benchmarks -s -p no:warnings`) and read the printed lines."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.test import Client

from graphspace import actions, producer
from notifications.events import new_event
from notifications.models import GroupNotification, OwnerNotification
from notifications.persist import persist_events
from notifications.queries import Filters, cluster_page, unread_count
from notifications.serializers import cluster_json
from tests.conftest import People
from tests.integration.conftest import wait_for

TYPES = [("upload", "graph"), ("update", "graph"), ("create", "layout"), ("update", "layout"), ("delete", "graph")]


def timed(fn: Callable[[], Any], runs: int = 50) -> tuple[float, float]:
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def test_bench_count_and_first_page_for_a_user_with_10000_notifications(people: People) -> None:
    group = actions.create_group(people.alice, name="Bench lab")
    actions.add_member(people.alice, group, people.bob)
    started = time.perf_counter()
    for batch in range(20):
        events = []
        for n in range(400):
            kind, resource = TYPES[(batch + n // 80) % len(TYPES)]
            events.append(new_event("owner", {"owner_email": "bob@example.com", "message": "m", "resource": resource,
                                              "resource_id": batch * 1000 + n, "resource_name": f"R{n}", "type": kind}))
        for n in range(100):
            events.append(new_event("group", {"group_id": group.id, "owner_email": "alice@example.com", "message": "m",
                                              "resource": "graph", "resource_id": n, "resource_name": f"S{n}", "type": "share"}))
        persist_events(events)
    took = time.perf_counter() - started
    with connection.cursor() as cursor:
        # What autovacuum does on a live database after this many writes: fresh statistics.
        cursor.execute("ANALYZE")
    total = OwnerNotification.objects.filter(owner_id="bob@example.com").count() + \
        GroupNotification.objects.filter(member_id="bob@example.com").count()
    assert total == 10_000
    print(f"\nwrote {total} notifications for one user (+2,000 for the actor) in {took:.2f}s "
          f"({(total + 2000) / took:.0f} rows/s through persist_events, in batches of 500 events)")
    bob = people.bob
    median, p95 = timed(lambda: unread_count(bob.email))
    print(f"unread count (one query):        median {median:.2f} ms, p95 {p95:.2f} ms")

    def first_page() -> None:
        views, _ = cluster_page(bob, Filters(), None, 20)
        [cluster_json(v, bob.email) for v in views]

    median, p95 = timed(first_page)
    print(f"first page of 20 clusters:       median {median:.2f} ms, p95 {p95:.2f} ms")
    median, p95 = timed(lambda: cluster_page(bob, Filters(unread_only=True, q="R7"), None, 20))
    print(f"first page, unread + text filter: median {median:.2f} ms, p95 {p95:.2f} ms")
    client = Client()
    client.force_login(bob)
    median, p95 = timed(lambda: client.get("/api/v1/notifications/", HTTP_ACCEPT="application/json"), runs=30)
    print(f"GET /api/v1/notifications/ (HTTP, in-process): median {median:.2f} ms, p95 {p95:.2f} ms")


def test_bench_events_per_second_from_producer_to_rows(people: People, pipeline: None) -> None:
    total = 5000
    events = [new_event("owner", {"owner_email": "alice@example.com", "message": "m", "resource": "graph",
                                  "resource_id": n, "resource_name": f"G{n}", "type": "upload"}) for n in range(total)]
    started = time.perf_counter()
    with transaction.atomic():
        for event in events:
            producer.write_to_outbox(event)
    produced = time.perf_counter() - started
    wait_for(lambda: OwnerNotification.objects.count() >= total, timeout=120, interval=0.2, what="all rows")
    took = time.perf_counter() - started
    print(f"\n{total} events: written to the outbox in {produced:.2f}s; all stored after {took:.2f}s "
          f"= {total / took:.0f} events/s from outbox to rows (relay + bridge + 1 worker, this 2-core machine)")
