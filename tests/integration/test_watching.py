"""Watching (issue 11): who hears of what happens to a watched graph or layout.

Watches are made through the notifications API; the actions write their events to the
outbox, and the events are persisted from it in-process (as in
test_recipients_as_of_the_action.py), so a test can play a lagging pipeline. The last test
runs the whole pipeline with a real worker.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client

from graphspace import actions
from graphspace.models import Graph, Group, OutboxEvent, User
from notifications.events import Event, parse_message
from notifications.models import GroupNotification, OwnerNotification, Watch, WatchingNotification
from notifications.persist import persist_events
from tests.conftest import PASSWORD, People
from tests.integration.conftest import wait_for
from tests.integration.helpers import GRAPH, Api
from tests.integration.test_browser import chromium, log_in  # noqa: F401 - the browser fixture

A, B, C, D = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"


def client(email: str) -> Client:
    token = base64.b64encode(f"{email}:{PASSWORD}".encode()).decode()
    return Client(HTTP_AUTHORIZATION=f"Basic {token}", HTTP_ACCEPT="application/json")


def call(email: str, method: str, path: str, data: dict[str, Any] | None = None, status: int = 200) -> Any:
    import json
    response = client(email).generic(method, f"/api/v1/notifications/{path}", json.dumps(data or {}),
                                     content_type="application/json")
    assert response.status_code == status, response.content
    return response.json()


def watch(email: str, resource: str, resource_id: int, status: int = 200) -> Any:
    return call(email, "POST", "watches", {"resource": resource, "resource_id": resource_id}, status)


def process() -> None:
    """What the relay would publish, read as the bridge would, persisted; the outbox emptied."""
    events: list[Event] = [parse_message(r.topic, bytes(r.value)) for r in OutboxEvent.objects.order_by("id")]
    OutboxEvent.objects.all().delete()
    persist_events(events)


def watching_rows(**filters: Any) -> list[tuple[str, str, str]]:
    return sorted(WatchingNotification.objects.filter(**filters).values_list("watcher_id", "type", "resource"))


@pytest.fixture
def dave(people: People) -> User:
    return User.objects.create_user(D, PASSWORD)


@pytest.fixture
def public_graph(people: People) -> Graph:
    return actions.upload_graph(people.alice, name="XYZ", graph_json=GRAPH, is_public=True)


def test_a_watcher_hears_of_an_update_once_worded_for_them_and_nobody_else_does(people: People, public_graph: Graph) -> None:
    watch(B, "graph", public_graph.id)
    watch(B, "graph", public_graph.id)  # idempotent
    assert [w["resource_id"] for w in call(B, "GET", "watches")["watches"]] == [public_graph.id]
    actions.update_graph(people.alice, public_graph, graph_json=GRAPH | {"data": {"description": "new"}})
    process()

    assert watching_rows() == [(B, "update", "graph")]
    items = call(B, "GET", "items?topic=watching")["items"]
    assert [(i["topic"], i["text"]) for i in items] == [("watching", "alice@example.com updated graph XYZ, which you watch")]
    assert call(B, "GET", "count")["unread_count"] == 1
    assert call(C, "GET", "count")["unread_count"] == 0
    clusters = call(B, "GET", "?topic=watching")["clusters"]
    assert [c["topic"] for c in clusters] == ["watching"]
    # Mark-all-read covers the watching rows like the others.
    assert call(B, "POST", "read", {"topic": "watching"})["changed"] == 1
    assert call(B, "GET", "count")["unread_count"] == 0
    # The owner heard of it by her owner event only.
    assert OwnerNotification.objects.filter(owner_id=A, type="update").count() == 1
    assert not WatchingNotification.objects.filter(watcher_id=A).exists()


def test_the_watchers_are_those_of_the_moment_of_the_action_however_late_it_is_processed(
    people: People, public_graph: Graph,
) -> None:
    watch(B, "graph", public_graph.id)
    actions.update_graph(people.alice, public_graph, name="Then")
    # The pipeline lags: bob unwatches and carol starts watching before anything is processed.
    call(B, "DELETE", f"watches/graph/{public_graph.id}")
    watch(C, "graph", public_graph.id)
    process()
    assert watching_rows() == [(B, "update", "graph")]
    # A later update reaches the watchers of its own moment.
    actions.update_graph(people.alice, public_graph, name="Now")
    process()
    assert watching_rows() == [(B, "update", "graph"), (C, "update", "graph")]


def test_watching_what_you_cannot_read_is_a_404_and_your_own_a_400(people: People) -> None:
    private = actions.upload_graph(people.alice, name="Private", graph_json=GRAPH)
    assert watch(B, "graph", private.id, status=404)["error_code"] == 1016
    assert watch(B, "graph", 10**12, status=404)["error_code"] == 1016
    assert watch(B, "layout", 10**12, status=404)["error_code"] == 1016
    watch(A, "graph", private.id, status=400)
    watch(B, "group", private.id, status=400)
    assert not Watch.objects.exists()


def test_unwatching_stops_the_news(people: People, public_graph: Graph) -> None:
    watch(B, "graph", public_graph.id)
    assert call(B, "DELETE", f"watches/graph/{public_graph.id}") == {"unwatched": True}
    assert call(B, "DELETE", f"watches/graph/{public_graph.id}") == {"unwatched": False}
    actions.update_graph(people.alice, public_graph, name="XYZ2")
    process()
    assert watching_rows() == []


def test_losing_access_ends_the_watch_and_the_watcher_hears_nothing_more(people: People, dave: User) -> None:
    lab = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, lab, people.bob)
    graph = actions.upload_graph(people.alice, name="G", graph_json=GRAPH)
    actions.share_graph(people.alice, lab, graph)
    watch(B, "graph", graph.id)
    process()

    # An update before bob leaves reaches him, even processed after he left (as of the action).
    actions.update_graph(people.alice, graph, name="G1")
    actions.remove_member(people.alice, lab, people.bob)
    actions.update_graph(people.alice, graph, name="G2")
    process()
    assert sorted(WatchingNotification.objects.values_list("watcher_id", "resource_name")) == [(B, "G1")]
    assert not Watch.objects.filter(ended_seq__isnull=True).exists()

    # Made private: the public's watchers are not told, and their watches end.
    actions.update_graph(people.alice, graph, is_public=True)
    watch(D, "graph", graph.id)
    actions.update_graph(people.alice, graph, is_public=False)
    actions.update_graph(people.alice, graph, name="G3")
    process()
    assert not WatchingNotification.objects.filter(watcher_id=D).exists()
    assert call(D, "GET", "watches")["watches"] == []


def test_unsharing_a_watched_layout_tells_its_watchers_then_ends_their_watch(people: People, public_graph: Graph) -> None:
    layout = actions.create_layout(people.alice, public_graph, name="L1", is_shared=True)
    watch(B, "layout", layout.id)
    actions.update_layout(people.alice, layout, positions_json={"a": {"x": 1, "y": 1}})
    actions.update_layout(people.alice, layout, is_shared=False)
    actions.update_layout(people.alice, layout, is_shared=True)
    process()
    assert watching_rows() == [(B, "unshare", "layout"), (B, "update", "layout")]
    assert call(B, "GET", "watches")["watches"] == []


def test_a_member_who_watches_hears_of_a_layout_share_once_by_the_group(people: People, dave: User) -> None:
    """The owner event and the group event win: bob, in Lab and watching the graph, gets the
    Lab notification only; dave, who watches the public graph from outside, the watching one."""
    lab = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, lab, people.bob)
    graph = actions.upload_graph(people.alice, name="G", graph_json=GRAPH, is_public=True)
    actions.share_graph(people.alice, lab, graph)
    watch(B, "graph", graph.id)
    watch(D, "graph", graph.id)
    process()
    GroupNotification.objects.all().delete()

    actions.create_layout(people.alice, graph, name="L1", is_shared=True)
    process()

    assert sorted(GroupNotification.objects.values_list("member_id", "type")) == [(A, "share"), (B, "share")]
    assert watching_rows() == [(D, "create", "layout")]
    assert call(D, "GET", "items")["items"][0]["text"] == "alice@example.com created layout L1 on a graph you watch"


def test_a_deleted_graph_is_news_to_its_watchers_and_ends_the_watches(people: People, public_graph: Graph) -> None:
    watch(B, "graph", public_graph.id)
    watch(C, "graph", public_graph.id)
    actions.delete_graph(people.alice, public_graph)
    process()
    assert watching_rows() == [(B, "delete", "graph"), (C, "delete", "graph")]
    assert not Watch.objects.filter(ended_seq__isnull=True).exists()


def test_an_unwatched_graph_writes_no_watching_event(people: People, public_graph: Graph) -> None:
    actions.update_graph(people.alice, public_graph, name="Other")
    assert sorted(OutboxEvent.objects.values_list("topic", flat=True)) == ["owner", "owner"]


def test_a_batch_with_watching_events_stays_within_its_query_budget(
    people: People, public_graph: Graph, dave: User, django_assert_max_num_queries: Any,
) -> None:
    lab = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, lab, people.bob)
    actions.share_graph(people.alice, lab, public_graph)
    for who in (C, D):
        watch(who, "graph", public_graph.id)
    call(C, "PUT", "preferences", {"kinds": {"watching": {"delete": {"site": False}}}})
    OutboxEvent.objects.all().delete()
    for n in range(30):
        actions.update_graph(people.alice, public_graph, name=f"N{n}")
        actions.create_layout(people.alice, public_graph, name=f"L{n}", is_shared=True)
    events = [parse_message(r.topic, bytes(r.value)) for r in OutboxEvent.objects.order_by("id")]
    assert {e.topic for e in events} == {"owner", "group", "watching"}
    # The 15 of an owner-and-group batch (test_notification_center.py), plus what the
    # watching table needs: the watchers, its duplicate check and its insert.
    with django_assert_max_num_queries(18):
        result = persist_events(events)
    assert len(result.watching_ids) == 2 * 60


@pytest.mark.usefixtures("pipeline")
def test_through_the_pipeline_bob_watches_alices_public_graph_and_only_his_bell_rises(people: People) -> None:
    alice = Api(people.alice)
    graph = alice.call("POST", "graphs/", {"name": "XYZ", "is_public": 1, "graph_json": GRAPH, "owner_email": A},
                       expect=201)
    watch(B, "graph", graph["id"])
    alice.call("PUT", f"graphs/{graph['id']}", {"name": "XYZ", "graph_json": GRAPH | {"data": {"v": 2}}})
    wait_for(lambda: WatchingNotification.objects.exists(), what="bob's watching notification")
    wait_for(lambda: OwnerNotification.objects.filter(type="update").exists(), what="alice's owner notification")
    assert watching_rows() == [(B, "update", "graph")]
    assert call(B, "GET", "count")["unread_count"] == 1
    assert call(C, "GET", "count")["unread_count"] == 0
    assert not Group.objects.exists()


def test_in_the_browser_bob_watches_by_the_button_and_turns_updates_off_on_the_preferences_page(
    chromium: Any, web: str, people: People, pipeline: None,  # noqa: F811
) -> None:
    graph = actions.upload_graph(people.alice, name="XYZ", graph_json=GRAPH, is_public=True)
    dialogs: list[str] = []
    violations: list[str] = []
    page = log_in(chromium, web, B, dialogs, violations)
    page.goto(f"{web}/graphs/{graph.id}/")
    page.click("#watch-graph button")
    page.wait_for_selector("#watch-graph button:has-text('Unwatch')")
    assert call(B, "GET", "watches")["watches"][0]["resource_id"] == graph.id

    actions.update_graph(people.alice, graph, name="XYZ2")
    wait_for(lambda: WatchingNotification.objects.filter(watcher_id=B).exists(), what="bob's watching row")
    # Pushed live: the bell of the open page rises.
    wait_for(lambda: page.get_attribute("#notification-bell", "data-unread-count") == "1", what="bob's bell")

    # The preferences page, from the notifications page (the Watching filter shows the row).
    page.goto(f"{web}/notifications/?topic=watching")
    page.wait_for_selector("text=alice@example.com updated graph XYZ2, which you watch")
    page.click("#preferences-link")
    page.uncheck("input[name='site.watching.update']")
    page.click("#preferences-form button[type=submit]")
    page.wait_for_selector("text=Preferences saved.")
    assert not page.is_checked("input[name='site.watching.update']")
    assert page.is_checked("input[name='site.watching.delete']")

    actions.update_graph(people.alice, graph, name="XYZ3")
    # Same graph, same partition: once the deletion is stored, the update before it was too.
    actions.delete_graph(people.alice, graph)
    wait_for(lambda: WatchingNotification.objects.filter(watcher_id=B, type="delete").exists(), what="the deletion")
    assert watching_rows() == [(B, "delete", "graph"), (B, "update", "graph")]

    # Unwatch by the button on another graph's page, and no CSP violation anywhere.
    other = actions.upload_graph(people.alice, name="Other", graph_json=GRAPH, is_public=True)
    page.goto(f"{web}/graphs/{other.id}/")
    page.click("#watch-graph button")
    page.wait_for_selector("#watch-graph button:has-text('Unwatch')")
    page.click("#watch-graph button")
    page.wait_for_selector("#watch-graph button:has-text('Watch')")
    assert call(B, "GET", "watches")["watches"] == []
    assert violations == [] and dialogs == []
