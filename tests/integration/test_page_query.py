"""The first page's one query (queries.cluster_page_and_count) against what it replaced: the
clusters that `clusters()` selects with the ORM (the same selection mark-all-read flips), each
with its newest items read through the models, worded by the same serializer. For every filter
the API takes, paged by cursor to the end, the answers must be identical."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from graphspace import actions
from graphspace.models import User
from notifications import marking
from notifications.events import Event, new_event
from notifications.models import NotificationCluster, WatchingNotification
from notifications.persist import persist_events
from notifications.queries import PREVIEW, TABLE_MODEL, ClusterView, Filters, clusters, recipient_of, unread_count
from notifications.serializers import cluster_json
from tests.conftest import People

A, B, C = "alice@example.com", "bob@example.com", "carol@example.com"


def owner(email: str, n: int, type: str = "upload", resource: str = "graph", name: str | None = None) -> Event:
    return new_event("owner", {"owner_email": email, "actor_email": email, "message": f"Graph {n}: {type}.",
                               "resource": resource, "resource_id": n, "resource_name": name or f"G{n}", "type": type})


def group(group_id: int, actor: str, n: int, type: str = "share", name: str | None = None) -> Event:
    return new_event("group", {"group_id": group_id, "owner_email": actor, "actor_email": actor, "message": "m",
                               "resource": "graph", "resource_id": n, "resource_name": name or f"S{n}", "type": type})


def watching_cluster(user: User, names: list[str], at: Any, actor: str = A) -> None:
    """Watching rows written as persist stores them (the pipeline that fans them out is tested
    elsewhere): a cluster, its items, the counter kept by the triggers."""
    cluster = NotificationCluster.objects.create(
        recipient=user, topic="watching", type="update", resource="graph", actor_email=actor,
        key=f"watching:{actor}:update:graph:{uuid.uuid4()}", first_at=at, last_at=at, size=len(names),
        unread=len(names))
    for n, name in enumerate(names):
        WatchingNotification.objects.create(
            event_id=uuid.uuid4(), message=f"{name} changed", resource_id=n, resource_name=name, actor_email=actor,
            occurred_at=at, cluster=cluster, watcher=user, type="update", resource="graph", graph_id=n)


@pytest.fixture
def stored(people: People) -> dict[str, Any]:
    lab = actions.create_group(people.alice, name="Lab & <friends>")
    other = actions.create_group(people.alice, name="Other")
    for g in (lab, other):
        actions.add_member(people.alice, g, people.bob)
        actions.add_member(people.alice, g, people.carol)
    batches = [
        [owner(B, n) for n in range(5)],
        [owner(B, 10, "create", "layout", name="100% done"), owner(B, 11, "create", "layout", name="a_b")],
        [owner(B, 20, "delete", name="back\\slash")],
        [group(lab.id, A, n) for n in range(4)],
        [group(other.id, A, 30, "unshare")],
        [owner(B, 40, "update", "group", name="Ünïcode")],
        [group(lab.id, A, 50, "share", name="G1 shared")],
        [owner(C, n) for n in range(3)],
        [owner(B, 60, "update")],
    ]
    for batch in batches:
        persist_events(batch)
    at = timezone.now() + timedelta(seconds=1)
    watching_cluster(people.bob, ["W1", "W2", "W3", "W4"], at)
    watching_cluster(people.bob, ["W5"], at)  # the same last_at: the id decides
    watching_cluster(people.carol, ["Wc"], at)
    # Some read, so that the unread filter shows fewer.
    first = NotificationCluster.objects.filter(recipient=people.bob, topic="owner", type="upload").get()
    marking.mark_cluster(people.bob, first.id)
    return {"lab": lab.id, "other": other.id, "since": at - timedelta(seconds=1)}


def reference(user: User, filters: Filters) -> list[dict[str, Any]]:
    """Every cluster the filters show, newest first, as the API worded them before: the ORM's
    clusters, their group, and their newest items through the models."""
    out = []
    for cluster in clusters(user, filters).select_related("group"):
        model = TABLE_MODEL[cluster.topic]
        items = list(model.objects.filter(recipient_of(model, user), cluster_id=cluster.id)
                     .order_by("-created_at", "-id")[:PREVIEW])
        out.append(cluster_json(ClusterView(cluster, items), user.email))
    return out


def every_page(client: Client, params: dict[str, Any], limit: int) -> tuple[list[dict[str, Any]], set[int]]:
    found: list[dict[str, Any]] = []
    counts = set()
    cursor = None
    for _ in range(100):
        response = client.get("/api/v1/notifications/", {**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["clusters"]) <= limit
        found += body["clusters"]
        counts.add(body["unread_count"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found, counts
        assert len(body["clusters"]) == limit
    raise AssertionError("the cursor never ended")


def test_every_filter_pages_through_the_same_clusters_as_the_orm(people: People, stored: dict[str, Any]) -> None:
    client = Client()
    client.force_login(people.bob)
    cases: list[dict[str, Any]] = [
        {}, {"state": "unread"}, {"topic": "owner"}, {"topic": "group"}, {"topic": "watching"},
        {"group_id": stored["lab"]}, {"group_id": stored["other"], "state": "unread"}, {"type": "share"},
        {"resource": "layout"}, {"type": "update", "resource": "group"}, {"q": "G1"}, {"q": "%"}, {"q": "_"},
        {"q": "\\"}, {"q": "ünï"}, {"q": "ALICE@"}, {"q": "w5"}, {"q": "nothing like it"}, {"topic": "group", "q": "s3"},
        {"since": stored["since"].isoformat()}, {"until": stored["since"].isoformat()},
        {"since": stored["since"].date().isoformat(), "state": "unread", "topic": "watching"},
    ]
    seen_sizes = set()
    for params in cases:
        expected = reference(people.bob, Filters.parse(params))
        for limit in (1, 3, 20):
            found, counts = every_page(client, params, limit)
            assert found == expected, (params, limit)
            assert counts == {unread_count(B)}
        seen_sizes |= {c["size"] for c in expected}
    # The cases covered clusters of one (shown as their item) and larger ones, of every topic.
    assert {1, 2, 4} <= seen_sizes
    assert {c["topic"] for c in reference(people.bob, Filters())} == {"owner", "group", "watching"}
    assert all(c["group_name"] == "Lab & <friends>" for c in reference(people.bob, Filters(group_id=stored["lab"])))


def test_the_page_shows_only_the_readers_own(people: People, stored: dict[str, Any]) -> None:
    client = Client()
    client.force_login(people.carol)
    client.get("/api/v1/notifications/count")
    body = client.get("/api/v1/notifications/").json()
    assert body["unread_count"] == unread_count(C) > 0
    assert body["clusters"] == reference(people.carol, Filters())
    bob_ids = set(clusters(people.bob, Filters()).values_list("id", flat=True))
    assert body["clusters"] and not bob_ids & {c["id"] for c in body["clusters"]}


def test_a_reader_without_notifications_gets_an_empty_page_and_a_count_of_zero(db: None) -> None:
    dave = User.objects.create_user("dave@example.com", "pw-dave-1234")
    client = Client()
    client.force_login(dave)
    body = client.get("/api/v1/notifications/").json()
    assert body == {"clusters": [], "next_cursor": None, "unread_count": 0}
    assert client.get("/api/v1/notifications/", {"q": "x", "state": "unread"}).json()["clusters"] == []


def test_the_hot_statements_are_planned_once_per_connection(people: People, stored: dict[str, Any]) -> None:
    client = Client()
    client.force_login(people.bob)
    for _ in range(2):
        assert client.get("/api/v1/notifications/").status_code == 200
        assert client.get("/api/v1/notifications/count").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(s.startswith("SELECT session_data FROM django_session") for s in prepared)
    assert any(s.startswith('SELECT "id", "password"') for s in prepared)
    assert any(s.startswith("SELECT count FROM notification_unread_count") for s in prepared)
    assert any(s.startswith("SELECT k.n, p.id") for s in prepared)
