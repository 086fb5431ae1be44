"""From the outbox to rows: the relay, the broker, the bridge and a worker together. (The
reads a page makes are in test_bench_storage.py, at 2,000,000 rows.)"""

from __future__ import annotations

import time

from django.db import transaction

from benchmarks.record import record
from graphspace import producer
from notifications.events import new_event
from notifications.models import OwnerNotification
from tests.conftest import People
from tests.integration.conftest import wait_for


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
    record("throughput", f"{total:,} events written to the outbox in one transaction, until all are rows",
           f"{total / took:,.0f} events/s (relay, bridge, worker)")
