"""The page's clusters sort by last_at although their index holds only the minute, and adding to
a cluster within its minute is a HOT update (docs/storage.md), against PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection

from graphspace.models import User
from notifications.models import NotificationCluster
from notifications.persist import persist_events
from notifications.queries import Filters, cluster_page
from tests.conftest import People
from tests.integration.test_notification_center import B, upload


def test_pages_follow_last_at_across_and_within_minutes_whatever_the_ids(people: People) -> None:
    bob = User.objects.get(email=B)
    noon = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    # Created in an order that is not the order of their last_at: within one minute, across
    # minutes, and two clusters with the same last_at (then the higher id first).
    moments = [noon + timedelta(seconds=s) for s in (5, 59, 30, 61, 0, 119, 30, 60, 600, 1)]
    made = [NotificationCluster.objects.create(
        recipient=bob, topic="owner", type="upload", resource="graph", key=f"k{i}",
        first_at=at, last_at=at, size=1, unread=1) for i, at in enumerate(moments)]
    expected = [c.id for c in sorted(made, key=lambda c: (c.last_at, c.id), reverse=True)]

    seen: list[int] = []
    cursor = None
    while True:
        views, cursor = cluster_page(bob, Filters(), cursor, 3)
        seen += [v.cluster.id for v in views]
        if not cursor:
            break
    assert seen == expected
    assert made[0].last_minute == noon  # PostgreSQL keeps the minute


def test_adding_to_a_cluster_within_its_minute_writes_no_index_entries(people: People) -> None:
    def hot_and_all() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_get_xact_tuples_hot_updated('notification_cluster'::regclass), "
                           "pg_stat_get_xact_tuples_updated('notification_cluster'::regclass)")
            hot, updated = cursor.fetchone()
            return int(hot), int(updated)

    persist_events([upload(B, 1)])
    before = hot_and_all()
    # Two more batches into the same open cluster, well within a second: at most one of the
    # two can cross a minute's boundary.
    persist_events([upload(B, 2)])
    persist_events([upload(B, 3)])
    hot, updated = (now - then for now, then in zip(hot_and_all(), before, strict=True))
    assert NotificationCluster.objects.get(recipient__email=B).size == 3
    assert updated == 2
    assert hot >= 1
