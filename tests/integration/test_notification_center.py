"""Stored clusters, the notifications API and its permission matrix, against PostgreSQL.

The persist function is called directly here (the pipeline tests cover Kafka and Celery):
these tests are about what is stored and what each user can read and change.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from graphspace import actions
from notifications.events import Event, new_event
from notifications.models import GroupNotification, NotificationCluster, OwnerNotification
from notifications.persist import persist_events
from tests.conftest import PASSWORD, People
from tests.integration.helpers import GRAPH

A, B, C = "alice@example.com", "bob@example.com", "carol@example.com"


def upload(owner: str, n: int, name: str | None = None) -> Event:
    return new_event("owner", {"owner_email": owner, "actor_email": owner, "message": f"New graph G{n} uploaded.",
                               "resource": "graph", "resource_id": n, "resource_name": name or f"G{n}", "type": "upload"})


def share(group_id: int, actor: str, n: int) -> Event:
    return new_event("group", {"group_id": group_id, "owner_email": actor, "actor_email": actor, "message": "m",
                               "resource": "graph", "resource_id": n, "resource_name": f"S{n}", "type": "share"})


def basic(email: str) -> Client:
    token = base64.b64encode(f"{email}:{PASSWORD}".encode()).decode()
    return Client(HTTP_AUTHORIZATION=f"Basic {token}", HTTP_ACCEPT="application/json")


def get(client: Client, path: str, status: int = 200) -> Any:
    response = client.get(f"/api/v1/notifications/{path}")
    assert response.status_code == status, response.content
    return response.json()


def post(client: Client, path: str, data: dict[str, Any] | None = None, status: int = 200) -> Any:
    response = client.post(f"/api/v1/notifications/{path}", data or {}, content_type="application/json")
    assert response.status_code == status, response.content
    return response.json()


@pytest.fixture
def lab(people: People) -> int:
    group = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, group, people.bob)
    return group.id


# --- clusters as stored --------------------------------------------------------------

def test_similar_notifications_are_stored_as_one_cluster_and_a_redelivery_changes_nothing(people: People) -> None:
    batch = [upload(A, n) for n in range(5)]
    assert persist_events(batch).created == 5
    assert persist_events(batch).created == 0
    cluster = NotificationCluster.objects.get()
    assert (cluster.size, cluster.unread, cluster.type, cluster.resource) == (5, 5, "upload", "graph")
    assert set(OwnerNotification.objects.values_list("cluster_id", flat=True)) == {cluster.id}


def test_group_clusters_are_per_actor(people: People, lab: int) -> None:
    persist_events([share(lab, A, 1), share(lab, B, 2), share(lab, A, 3)])
    bobs = NotificationCluster.objects.filter(recipient=people.bob).order_by("actor_email")
    assert [(c.actor_email, c.size) for c in bobs] == [(A, 2), (B, 1)]


def test_a_persisted_batch_stays_within_its_query_budget(people: People, lab: int, django_assert_max_num_queries: Any) -> None:
    events = [upload(A, n) for n in range(150)] + [share(lab, A, n) for n in range(150)]
    # groups, members, users, locks, 2 duplicate checks, open clusters, new clusters,
    # unread counters, 2 inserts, cluster counts, savepoint bookkeeping
    with django_assert_max_num_queries(15):
        result = persist_events(events)
    assert result.created == 150 + 300


@pytest.mark.django_db(transaction=True)
def test_two_workers_writing_for_one_user_at_once_open_one_cluster(people: People) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            start.wait()
            persist_events([upload(A, offset + n) for n in range(20)])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i * 100,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    cluster = NotificationCluster.objects.get()
    assert (cluster.size, cluster.unread) == (40, 40)


# --- the API -----------------------------------------------------------------------------

def test_the_list_shows_clusters_newest_first_worded_for_the_reader(people: People, lab: int) -> None:
    persist_events([upload(B, n, name) for n, name in enumerate(["XYZ", "ABC", "DEF", "GHI", "JKL"])])
    persist_events([share(lab, A, 7)])
    page = get(basic(B), "")
    assert [c["text"] for c in page["clusters"]] == ["alice@example.com shared graph S7 with Lab", "5 graphs uploaded"]
    # One batch arrives at one instant: the newest first is the one written last.
    assert page["clusters"][1]["preview"] == "JKL, GHI, DEF and 2 more"
    assert page["unread_count"] == 6
    mine = get(basic(A), "?topic=group")
    assert mine["clusters"][0]["text"] == "You shared graph S7 with Lab"


def test_filters_narrow_the_clusters(people: People, lab: int) -> None:
    persist_events([upload(B, 1, "Yeast net"), share(lab, A, 2)])
    bob = basic(B)
    assert [c["topic"] for c in get(bob, "?topic=owner")["clusters"]] == ["owner"]
    assert [c["group_id"] for c in get(bob, f"?group_id={lab}")["clusters"]] == [lab]
    assert [c["type"] for c in get(bob, "?type=share")["clusters"]] == ["share"]
    assert [c["resource"] for c in get(bob, "?resource=graph&q=yeast")["clusters"]] == ["graph"]
    assert get(bob, "?q=nothing-like-this")["clusters"] == []
    assert len(get(bob, "?since=2000-01-01&until=2999-12-31")["clusters"]) == 2
    assert get(bob, "?until=2000-01-01")["clusters"] == []
    assert get(bob, "?type=explode", status=400)["error_code"] == 1002


def test_cursor_paging_has_no_duplicates_or_gaps_while_new_rows_arrive(people: People) -> None:
    for n in range(7):
        # Each upload of a different kind is its own cluster: 7 clusters.
        persist_events([new_event("owner", {"owner_email": B, "message": "m", "resource": ["graph", "layout", "group"][n % 3],
                                            "resource_id": n, "resource_name": f"R{n}",
                                            "type": ["create", "update", "delete"][n // 3 % 3]})])
    bob = basic(B)
    first = get(bob, "?limit=3")
    seen = [c["id"] for c in first["clusters"]]
    persist_events([upload(B, 100)])  # arrives between pages: shows at the top, not in the next page
    cursor = first["next_cursor"]
    while cursor:
        page = get(bob, f"?limit=3&cursor={cursor}")
        seen += [c["id"] for c in page["clusters"]]
        cursor = page["next_cursor"]
    bobs = NotificationCluster.objects.filter(recipient=people.bob)
    stored_before = set(bobs.exclude(type="upload").values_list("id", flat=True))
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == stored_before


def test_expand_shows_exactly_the_clusters_items_and_marking_the_cluster_marks_only_those(people: People) -> None:
    persist_events([upload(B, n) for n in range(4)])
    persist_events([new_event("owner", {"owner_email": B, "message": "m", "resource": "layout", "resource_id": 9,
                                        "resource_name": "L", "type": "create"})])
    bob = basic(B)
    uploads = next(c for c in get(bob, "")["clusters"] if c["type"] == "upload")
    expanded = get(bob, f"clusters/{uploads['id']}")
    assert sorted(i["resource_id"] for i in expanded["items"]) == [0, 1, 2, 3]
    first = get(bob, f"clusters/{uploads['id']}?limit=3")
    rest = get(bob, f"clusters/{uploads['id']}?limit=3&cursor={first['next_cursor']}")
    assert [i["id"] for i in first["items"] + rest["items"]] == [i["id"] for i in expanded["items"]]
    assert rest["next_cursor"] is None
    assert post(bob, f"clusters/{uploads['id']}/read") == {"changed": 4, "unread_count": 1}
    assert post(bob, f"clusters/{uploads['id']}/read") == {"changed": 0, "unread_count": 1}
    assert NotificationCluster.objects.get(pk=uploads["id"]).unread == 0
    assert OwnerNotification.objects.filter(is_read=False).count() == 1
    assert [c["type"] for c in get(bob, "?state=unread")["clusters"]] == ["create"]


def test_marking_one_item_and_everything_a_filter_shows(people: People, lab: int) -> None:
    persist_events([upload(B, n) for n in range(3)] + [share(lab, A, 5)])
    bob = basic(B)
    one = OwnerNotification.objects.filter(owner_id=B).first()
    assert one is not None
    assert post(bob, f"owner/{one.id}/read") == {"changed": 1, "unread_count": 3}
    assert post(bob, "read?topic=owner") == {"changed": 2, "unread_count": 1}
    assert post(bob, "read") == {"changed": 1, "unread_count": 0}
    assert get(bob, "count") == {"unread_count": 0}
    assert not NotificationCluster.objects.filter(recipient=people.bob, unread__gt=0).exists()


def test_the_email_opt_in_is_set_never_toggled(people: People) -> None:
    bob = basic(B)
    assert get(bob, "settings") == {"receive_notification_email": False}
    for _ in range(2):
        response = bob.put("/api/v1/notifications/settings", {"receive_notification_email": True},
                           content_type="application/json")
        assert response.json() == {"receive_notification_email": True}
    people.bob.refresh_from_db()
    assert people.bob.receive_notification_email is True
    assert bob.put("/api/v1/notifications/settings", {"receive_notification_email": "maybe"},
                   content_type="application/json").status_code == 400


def test_another_users_notifications_are_404_and_anonymous_is_401(people: People, lab: int) -> None:
    persist_events([upload(B, 1), share(lab, A, 2)])
    cluster = NotificationCluster.objects.filter(recipient=people.bob).first()
    owner_row = OwnerNotification.objects.get(owner_id=B)
    group_row = GroupNotification.objects.get(member_id=B)
    carol = basic(C)
    for path in (f"clusters/{cluster.id}", f"owner/{owner_row.id}", f"group/{group_row.id}", "clusters/999999"):
        body = get(carol, path, status=404)
        assert body["status_code"] == 404 and "not found" in body["error_message"]
    for path in (f"clusters/{cluster.id}/read", f"owner/{owner_row.id}/read", f"group/{group_row.id}/read"):
        post(carol, path, status=404)
    # Carol's "mark all" and lists see nothing of Bob's.
    assert post(carol, "read") == {"changed": 0, "unread_count": 0}
    assert get(carol, "")["clusters"] == []
    assert OwnerNotification.objects.get(pk=owner_row.id).is_read is False
    anonymous = Client(HTTP_ACCEPT="application/json")
    for path in ("", "items", "count", "settings", f"clusters/{cluster.id}"):
        assert anonymous.get(f"/api/v1/notifications/{path}").status_code == 401
    assert anonymous.post("/api/v1/notifications/read").status_code == 401


def test_a_session_post_needs_the_csrf_token(people: People) -> None:
    persist_events([upload(B, 1)])
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(people.bob)
    assert browser.post("/api/v1/notifications/read").status_code == 403
    assert OwnerNotification.objects.filter(is_read=False).count() == 1


def test_the_count_and_the_first_page_are_cheap(people: People, django_assert_num_queries: Any) -> None:
    persist_events([upload(B, n) for n in range(30)])
    bob = basic(B)
    get(bob, "count")  # warm the credential cache and the session
    with django_assert_num_queries(2):  # the user, the count
        get(bob, "count")
    with django_assert_num_queries(2):  # the user; the clusters, their preview items and the count in one
        get(bob, "")


def test_the_openapi_document_describes_every_route(db: None) -> None:
    spec = Client().get("/api/v1/notifications/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/", "/items", "/count", "/read", "/settings", "/clusters/{cluster_id}", "/clusters/{cluster_id}/read",
            "/{topic}/{item_id}", "/{topic}/{item_id}/read"} <= set(spec["paths"])


def test_opening_a_notification_goes_to_the_resource_or_says_it_is_gone(people: People) -> None:
    graph = actions.upload_graph(people.bob, name="Live", graph_json=GRAPH)
    persist_events([upload(B, graph.id, "Live"), upload(B, 424242, "Gone")])
    live = OwnerNotification.objects.get(resource_id=graph.id)
    gone = OwnerNotification.objects.get(resource_id=424242)
    browser = Client()
    browser.force_login(people.bob)
    response = browser.get(f"/notifications/open/owner/{live.id}/")
    assert response.status_code == 302 and response["Location"] == f"/graphs/{graph.id}/"
    response = browser.get(f"/notifications/open/owner/{gone.id}/")
    assert response.status_code == 410 and b"has been deleted" in response.content
    # A GET changes nothing (test_security_defaults.py: the page's click marks it read).
    assert set(OwnerNotification.objects.values_list("is_read", flat=True)) == {False}
    other = Client()
    other.force_login(people.carol)
    assert other.get(f"/notifications/open/owner/{live.id}/").status_code == 404


def test_the_flat_item_list_merges_both_kinds_by_cursor_without_duplicates_or_gaps(people: People, lab: int) -> None:
    # One batch: every row of it shares one arrival instant, across both tables.
    persist_events([upload(B, n) for n in range(5)] + [share(lab, A, n) for n in range(4)])
    persist_events([upload(B, 50)])
    bob = basic(B)
    seen: list[str] = []
    cursor = ""
    while True:
        page = get(bob, f"items?limit=2&cursor={cursor}")
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
        if len(seen) == 2:
            persist_events([upload(B, 99)])  # arrives mid-way: newer than the cursor, not in later pages
    owner_ids = OwnerNotification.objects.filter(owner_id=B).exclude(resource_id=99).values_list("id", flat=True)
    mine = {f"owner-{i}" for i in owner_ids}
    mine |= {f"group-{i}" for i in GroupNotification.objects.filter(member_id=B).values_list("id", flat=True)}
    assert len(seen) == len(set(seen)) == 10
    assert set(seen) == mine
    assert seen[0] == f"owner-{OwnerNotification.objects.get(resource_id=50).id}"
    shares = get(bob, f"items?group_id={lab}")["items"]
    assert len(shares) == 4 and {i["topic"] for i in shares} == {"group"}
    assert sorted(i["text"] for i in shares)[0] == "alice@example.com shared graph S0 with Lab"
    assert {i["type"] for i in get(bob, "items?state=unread&type=upload&limit=100")["items"]} == {"upload"}
    assert get(basic(C), "items")["items"] == []
