"""Persist throughput with 1, 2 and 4 writers at once: 20,000 owner events over 200 recipients
in batches of 500, every batch for all 200 recipients (so every writer adds to the same
clusters and unread counters). Shows whether writers contend (a lock convoy makes 4 no faster
than 2). Prints, per run, the machine's idle CPU and what the writers' sessions were doing
(Sampler): cores all busy, or sessions waiting for each other's locks. Asserts only that
every row was stored once, and one open cluster per recipient and key.

The writers are processes forked from this one, each with its own database connection,
taking the next batch from a shared queue: what the worker is (Celery's prefork pool, one
process per concurrency slot, each taking the next task). Threads of one process, as this
benchmark had before, measured Python's GIL too: a writer holding its row locks waited for
its turn at the interpreter before it could commit, which the worker's processes never do.
The batches are what the bridge makes today (kafka_bridge/batching.py: the messages polled,
all partitions and topics together), so two batches at once share their recipients, as in
the pipeline. A second measurement mixes the topics as the bridge does: one event in ten is
a share into a group of 10 of the same 200 recipients (20,000 events: 18,000 owner rows and
20,000 group rows), and also checks the unread counters against the rows."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import Counter
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.db.models import Count

from benchmarks.record import record
from graphspace.models import Group, MembershipSpan, User
from notifications.events import Event, new_event
from notifications.models import GroupNotification, NotificationCluster, OwnerNotification
from notifications.persist import persist_events
from tests.integration.test_unread_counter import counted_by_rows, counters

RECIPIENTS = 200
EVENTS = 20_000
BATCH = 500


def upload(run: int, n: int) -> Event:
    return new_event("owner", {
        "owner_email": f"r{n % RECIPIENTS}@example.com", "message": f"New graph G{n} uploaded.",
        "resource": "graph", "resource_id": run * EVENTS + n, "resource_name": f"G{n}", "type": "upload",
    })


def events(run: int, count: int = EVENTS, first: int = 0) -> list[Event]:
    return [upload(run, first + n) for n in range(count)]


GROUP_SIZE = 10


def mixed_events(run: int, groups: list[int]) -> list[Event]:
    """One event in ten a share into one of the groups (each of 10 of the recipients), the
    others owner events for the 200 recipients in turn."""
    def share(n: int) -> Event:
        actor = f"r{n % RECIPIENTS}@example.com"
        return new_event("group", {
            "group_id": groups[(n // 10) % len(groups)], "owner_email": actor, "actor_email": actor,
            "message": f"Graph S{n} shared.", "resource": "graph", "resource_id": run * EVENTS + n,
            "resource_name": f"S{n}", "type": "share"})
    return [share(n) if n % 10 == 9 else upload(run, n) for n in range(EVENTS)]


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


def _writer(batches: list[list[Event]], warm_up: list[Event], ready: Any, next_batch: Any, errors: Any) -> None:
    """One writer process: store the next batch until none is left (forked: `batches` is the
    parent's, copied on write). It first opens its own database connection and stores one
    event of its own, then waits for the others: a pool process is long-lived, and a new
    backend's first statements (catalog lookups, plans) are not what this measures."""
    try:
        persist_events(warm_up)
        ready.wait()
        while True:
            with next_batch.get_lock():
                n = next_batch.value
                next_batch.value += 1
            if n >= len(batches):
                return
            persist_events(batches[n])
    except BaseException as error:
        errors.put(repr(error))
        ready.abort()
    finally:
        connection.close()


def run_writers(batches: list[list[Event]], writers: int, warm_up: list[Event], sampler: Sampler) -> float:
    """Seconds from the moment every writer is ready until the last batch is stored, and
    the sampler running over the same time."""
    fork = multiprocessing.get_context("fork")
    next_batch = fork.Value("i", 0)
    ready = fork.Barrier(writers + 1)
    errors = fork.Queue()
    # No connection crosses the fork: each writer opens its own, as a pool process does.
    connection.close()
    processes = [fork.Process(target=_writer, args=(batches, warm_up[k:k + 1], ready, next_batch, errors))
                 for k in range(writers)]
    for p in processes:
        p.start()
    try:
        ready.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    with sampler:
        started = time.perf_counter()
        for p in processes:
            p.join()
        took = time.perf_counter() - started
    failed = []
    while not errors.empty():
        failed.append(errors.get())
    assert failed == [] and all(p.exitcode == 0 for p in processes), failed
    return took


def test_bench_persist_with_concurrent_writers(transactional_db: Any) -> None:
    User.objects.bulk_create([User(email=f"r{n}@example.com", password="x") for n in range(RECIPIENTS)])
    print()
    for run, writers in enumerate((1, 2, 4)):
        evs = events(run)
        sampler = Sampler()
        # Each writer's warm-up event is outside the range counted below.
        took = run_writers([evs[i:i + BATCH] for i in range(0, EVENTS, BATCH)], writers,
                           events(run, writers, first=10 * EVENTS), sampler)
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

    users = list(User.objects.order_by("id"))
    groups = []
    for g in range(RECIPIENTS // GROUP_SIZE):
        group = Group.objects.create(name=f"Team {g}", owner=users[g * GROUP_SIZE], membership_seq=GROUP_SIZE)
        groups.append(group.id)
        MembershipSpan.objects.bulk_create([MembershipSpan(group=group, user=u, joined_seq=seq) for seq, u in
                                            enumerate(users[g * GROUP_SIZE:(g + 1) * GROUP_SIZE], start=1)])
    for run, writers in enumerate((2, 4), start=3):
        evs = mixed_events(run, groups)
        sampler = Sampler()
        took = run_writers([evs[i:i + BATCH] for i in range(0, EVENTS, BATCH)], writers,
                           events(run, writers, first=10 * EVENTS), sampler)
        in_run = {"resource_id__gte": run * EVENTS, "resource_id__lt": (run + 1) * EVENTS}
        owner_rows = OwnerNotification.objects.filter(**in_run).count()
        group_rows = GroupNotification.objects.filter(**in_run).count()
        assert (owner_rows, group_rows) == (EVENTS * 9 // 10, EVENTS // 10 * GROUP_SIZE)
        print(f"persist, mixed batches, {writers} writer(s): {EVENTS / took:,.0f} events/s "
              f"({(owner_rows + group_rows) / took:,.0f} rows/s, {took:.2f} s); {sampler.summary()}")
        record("throughput", f"persist_events, {writers} writer(s) at once, batches of owner and group events "
               "(20,000 events, 38,000 rows, 200 recipients)", f"{EVENTS / took:,.0f} events/s",
               target={4: "faster than 2 writers"}.get(writers, ""), note=sampler.summary())
    assert not NotificationCluster.objects.values("recipient", "key").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert counters() == counted_by_rows()
