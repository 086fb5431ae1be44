"""Figures, not pass/fail timings: how long one event takes from the commit of the action that
made it to its notification row, one event at a time (a quiet system, not a loaded one).

Runs against either design of graphspace/producer.py: the transactional outbox (the event is
written in the action's transaction; the relay, woken by NOTIFY, publishes it) or the older
publish-after-commit (`transaction.on_commit` hands it to the web process's Kafka producer).
Either way the bridge and one Celery worker take it from Kafka to the row.

    .venv/bin/python -m pytest benchmarks/test_bench_latency.py -s -q -p no:warnings
"""

from __future__ import annotations

import math
import time

from django.db import transaction

from graphspace import producer
from notifications.models import OwnerNotification
from tests.conftest import People

EVENTS = 300
WARM_UP = 20
GAP = 0.020  # seconds between one event's row and the next event
POLL = 0.002  # seconds between two looks for the row
TIMEOUT = 30.0  # seconds one event may take before the run fails


def design() -> str:
    if hasattr(producer, "write_to_outbox"):
        return "transactional outbox + relay (NOTIFY)"
    return "publish on commit (transaction.on_commit -> web producer)"


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest sample with at least p% of the samples at or below it."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def test_bench_latency_from_commit_to_row_one_event_at_a_time(people: People, pipeline: None) -> None:
    latencies: list[float] = []
    for n in range(EVENTS):
        with transaction.atomic():
            producer.send_message("owner", {"owner_email": "alice@example.com", "message": f"New graph G{n} uploaded.",
                                            "resource": "graph", "resource_id": n, "resource_name": f"G{n}",
                                            "type": "upload"})
        committed = time.perf_counter()
        # No flush here: the publish-on-commit design's web process never flushed per request
        # either; its producer sends on its own after linger_ms.
        deadline = committed + TIMEOUT
        while not OwnerNotification.objects.filter(resource_id=n).exists():
            if time.perf_counter() > deadline:
                raise AssertionError(f"event {n}: no row {TIMEOUT:.0f}s after the commit")
            time.sleep(POLL)
        latencies.append((time.perf_counter() - committed) * 1000)
        time.sleep(GAP)

    # The older design's producer may still hold something; the newer has no flush (the relay
    # waits for the broker itself).
    flush = getattr(producer, "flush", None)
    if flush is not None:
        flush()
    # Time for a duplicate to show up before counting.
    time.sleep(1.0)
    ids = list(OwnerNotification.objects.values_list("resource_id", flat=True))
    assert sorted(ids) == list(range(EVENTS)), "every event's row, exactly once"

    measured = sorted(latencies[WARM_UP:])
    print(f"\ncommit -> row, {len(measured)} events one at a time ({WARM_UP} warm-up dropped), "
          f"{design()}: p50 {percentile(measured, 50):.1f} ms, p90 {percentile(measured, 90):.1f} ms, "
          f"p99 {percentile(measured, 99):.1f} ms, max {measured[-1]:.1f} ms")
