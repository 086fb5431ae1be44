"""Figures, not pass/fail timings: one update of a graph with 1,000 watchers, over the real
pipeline (outbox, relay, broker, bridge, worker), from the action's commit until the 1,000
watching rows exist; beside it, a share into a group of 1,000 members, the issue's budget.
Rounds alternate the two, so both see the same load. Also: the watchers query alone, and the
size the event would have had carrying its watchers (the alternative docs/watching.md weighs).

    .venv/bin/python -m pytest benchmarks/test_bench_watching.py -s -q -p no:warnings
"""

from __future__ import annotations

import json
import statistics
import time

from django.db import connection

from benchmarks.record import record
from graphspace import actions
from graphspace.models import Group, GroupMember, MembershipSpan, User
from notifications.events import new_event
from notifications.models import GroupNotification, OwnerNotification, Watch, WatchingNotification
from notifications.persist import _watchers, persist_events
from tests.integration.conftest import wait_for
from tests.integration.helpers import GRAPH

WATCHERS = 1_000
ROUNDS = 7


def _until(count_rows: object, expected: int) -> float:
    started = time.perf_counter()
    wait_for(lambda: count_rows() >= expected, timeout=120, interval=0.01, what=f"{expected} rows")  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def test_bench_one_update_of_a_graph_with_1000_watchers(pipeline: None) -> None:
    owner = User.objects.create_user("watched-owner@example.com", "x")
    people = User.objects.bulk_create([User(email=f"watcher{n}@example.com", password="x") for n in range(WATCHERS)])
    graph = actions.upload_graph(owner, name="Followed", graph_json=GRAPH, is_public=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('notification_watch_seq')")
        seq = cursor.fetchone()[0]
    Watch.objects.bulk_create([Watch(user=u, resource="graph", resource_id=graph.id, graph_id=graph.id, started_seq=seq)
                               for u in people])
    group = actions.create_group(owner, name="Thousand")
    GroupMember.objects.bulk_create([GroupMember(group=group, user=u) for u in people])
    members_seq = Group.objects.get(pk=group.pk).membership_seq
    MembershipSpan.objects.bulk_create([MembershipSpan(group=group, user=u, joined_seq=members_seq) for u in people])
    wait_for(lambda: OwnerNotification.objects.filter(owner_id=owner.email).count() >= 2, timeout=30, what="warm-up")

    updates: list[float] = []
    shares: list[float] = []
    for n in range(ROUNDS):
        actions.update_graph(owner, graph, name=f"Followed {n}")
        updates.append(_until(lambda n=n: WatchingNotification.objects.filter(resource_name=f"Followed {n}").count(),
                              WATCHERS))
        shared = actions.upload_graph(owner, name=f"Shared {n}", graph_json=GRAPH)
        actions.share_graph(owner, group, shared)
        shares.append(_until(lambda s=shared.id: GroupNotification.objects.filter(resource_id=s, type="share").count(),
                             WATCHERS + 1))
    # Each watcher once per update, never the owner.
    assert WatchingNotification.objects.count() == WATCHERS * ROUNDS
    assert not WatchingNotification.objects.filter(watcher_id=owner.email).exists()

    def summary(samples: list[float]) -> str:
        rest = sorted(samples[1:])  # the first round warms the worker's caches
        return f"p50 {statistics.median(rest):.0f} / max {rest[-1]:.0f} ms ({len(rest)} rounds)"

    print(f"\nupdate, 1,000 watchers: {summary(updates)}; share, 1,000 members: {summary(shares)}")
    record("watching", "one update of a graph with 1,000 watchers: commit to 1,000 rows", summary(updates),
           target="within a group share of that size")
    record("watching", "one share into a group of 1,000 members: commit to 1,001 rows (the budget)", summary(shares))

    # The persist part alone: one watching event for the 1,000 watchers, in this process.
    persisted = []
    for n in range(5):
        event = new_event("watching", {
            "graph_id": graph.id, "watch_seq": seq + 10**9, "owner_email": owner.email, "actor_email": owner.email,
            "message": "m", "resource": "graph", "resource_id": graph.id, "resource_name": f"Direct {n}", "type": "update"})
        started = time.perf_counter()
        assert len(persist_events([event]).watching_ids) == WATCHERS
        persisted.append((time.perf_counter() - started) * 1000)
    print(f"persist of one watching event for 1,000 watchers: p50 {statistics.median(persisted):.0f} ms")
    record("watching", "persist_events of one watching event for 1,000 watchers (in-process)",
           f"p50 {statistics.median(persisted):.0f} / max {max(persisted):.0f} ms")

    # The watchers query alone, and the event had it carried the watchers' addresses.
    timings = []
    for _ in range(30):
        started = time.perf_counter()
        found = _watchers([("graph", graph.id, seq + 10**9)])
        timings.append((time.perf_counter() - started) * 1000)
    assert sum(len(v) for v in found.values()) == WATCHERS
    carried = len(json.dumps([u.email for u in people]).encode())
    print(f"watchers query for 1,000: p50 {statistics.median(timings):.2f} ms; carried in the event: {carried:,} bytes")
    record("watching", "watchers of one graph at a watch number (1,000 watchers), one query",
           f"p50 {statistics.median(timings):.2f} / max {max(timings):.2f} ms",
           note=f"the same list carried in the event: {carried:,} bytes")
