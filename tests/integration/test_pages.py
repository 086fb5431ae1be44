"""The GraphSpace pages: each form does its action, announces it, and keeps to the API's
permission rules.

The events an action announces are the rows it wrote to the outbox (no relay runs here, so
they stay there): their number is the number of notification events the action announced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from django.test import Client

from graphspace import actions
from graphspace.models import Graph, Group, GroupGraph, GroupMember, Layout, OutboxEvent, User
from tests.conftest import People
from tests.integration.helpers import GRAPH

Capture = Callable[..., AbstractContextManager[list[OutboxEvent]]]
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def capture(db: None) -> Capture:
    """The events written to the outbox inside the block (filled in when it ends)."""
    @contextmanager
    def start() -> Iterator[list[OutboxEvent]]:
        last = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        written: list[OutboxEvent] = []
        yield written
        written.extend(OutboxEvent.objects.filter(id__gt=last).order_by("id"))
    return start


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def graph_of(owner: User, name: str = "Net", **extra: Any) -> Graph:
    return actions.upload_graph(owner, name=name, graph_json=GRAPH, **extra)


def group_of(owner: User, name: str = "Lab", members: tuple[User, ...] = ()) -> Group:
    group = actions.create_group(owner, name=name)
    for member in members:
        actions.add_member(owner, group, member)
    return group


def text(response: Any) -> str:
    return response.content.decode()


# --- graphs ----------------------------------------------------------------------------

def test_it_uploads_a_graph(people: People, client: Client, capture: Capture) -> None:
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post("/graphs/", {
            "name": "Yeast", "graph_json": json.dumps(GRAPH), "style_json": "", "tags": "bio, yeast ,", "is_public": "on",
        })
    graph = Graph.objects.get(owner=people.alice, name="Yeast")
    assert response.status_code == 302 and response["Location"] == f"/graphs/{graph.id}/"
    assert graph.tags == ["bio", "yeast"] and graph.is_public
    assert len(callbacks) == 1
    page = text(client.get(response["Location"]))
    assert "Uploaded graph Yeast." in page
    assert "Nodes</dt><dd>2" in page and "Edges</dt><dd>1" in page


def test_it_lists_my_shared_and_public_graphs(people: People, client: Client) -> None:
    graph_of(people.alice, "Mine")
    shared = graph_of(people.bob, "Bobs shared")
    actions.share_graph(people.bob, group_of(people.bob, members=(people.alice,)), shared)
    graph_of(people.carol, "Carols public", is_public=True)
    graph_of(people.carol, "Carols private")
    page = text(login(client, people.alice).get("/graphs/"))
    assert "Mine" in page and "Bobs shared" in page and "Carols public" in page
    assert "Carols private" not in page
    assert "Carols public" in text(client.get("/graphs/?q=public")) and "Mine" not in text(client.get("/graphs/?q=public"))


def test_it_updates_a_graph(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    bigger = {"elements": {"nodes": [{"data": {"id": "a"}}, {"data": {"id": "b"}}, {"data": {"id": "c"}}], "edges": []}}
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/update/", {
            "name": "Renamed", "is_public": "on", "graph_json": json.dumps(bigger), "style_json": "",
        })
    assert response.status_code == 302
    graph.refresh_from_db()
    assert graph.name == "Renamed" and graph.is_public and len(graph.graph_json["elements"]["nodes"]) == 3
    assert len(callbacks) == 1


def test_it_deletes_a_graph_after_a_confirm_step(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    login(client, people.alice)
    confirm = client.get(f"/graphs/{graph.id}/delete/")
    assert confirm.status_code == 200 and "Delete graph" in text(confirm)
    assert Graph.objects.filter(pk=graph.id).exists()
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/delete/")
    assert response.status_code == 302 and response["Location"] == "/graphs/"
    assert not Graph.objects.filter(pk=graph.id).exists()
    assert len(callbacks) == 1


def test_it_shows_invalid_graph_json_and_keeps_the_input(people: People, client: Client, capture: Capture) -> None:
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post("/graphs/", {"name": "Broken", "graph_json": "{not json", "tags": "kept-tag"})
    assert response.status_code == 400
    page = text(response)
    assert "Graph JSON is not valid JSON" in page
    assert 'value="Broken"' in page and "{not json" in page and 'value="kept-tag"' in page
    broken = {"elements": {"nodes": [{"data": {"id": "a"}}], "edges": [{"data": {"source": "a", "target": "zz"}}]}}
    with capture() as more:
        response = client.post("/graphs/", {"name": "Broken", "graph_json": json.dumps(broken)})
    assert response.status_code == 400 and "Edge end &#x27;zz&#x27; is not a node of the graph." in text(response)
    assert not Graph.objects.exists()
    assert callbacks == [] and more == []


def test_it_reports_a_duplicate_name_from_the_action(people: People, client: Client, capture: Capture) -> None:
    graph_of(people.alice, "Dup")
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post("/graphs/", {"name": "Dup", "graph_json": json.dumps(GRAPH)})
    assert response.status_code == 400
    assert "Graph Dup already exists for alice@example.com!" in text(response)
    assert Graph.objects.count() == 1 and callbacks == []


# --- layouts ---------------------------------------------------------------------------

def test_it_creates_a_layout(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/layouts/", {"name": "Circle", "positions_json": '{"a": {"x": 1, "y": 2}}'})
    assert response.status_code == 302
    layout = Layout.objects.get(graph=graph, name="Circle")
    assert layout.positions_json == {"a": {"x": 1, "y": 2}} and not layout.is_shared
    assert len(callbacks) == 1


def test_it_creates_a_shared_layout_announced_to_each_group(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    actions.share_graph(people.alice, group_of(people.alice, members=(people.bob,)), graph)
    login(client, people.alice)
    with capture() as callbacks:
        client.post(f"/graphs/{graph.id}/layouts/", {"name": "Circle", "positions_json": "", "is_shared": "on"})
    assert Layout.objects.get(name="Circle").is_shared
    assert len(callbacks) == 2  # created, to the owner; shared, to the one group


def test_it_updates_a_layout(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    layout = actions.create_layout(people.alice, graph, name="Circle")
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/layouts/{layout.id}/update/", {
            "name": "Grid", "positions_json": '{"b": {"x": 3, "y": 4}}',
        })
    assert response.status_code == 302
    layout.refresh_from_db()
    assert layout.name == "Grid" and layout.positions_json == {"b": {"x": 3, "y": 4}}
    assert len(callbacks) == 1


def test_it_keeps_a_layouts_input_when_its_positions_are_not_an_object(people: People, client: Client) -> None:
    graph = graph_of(people.alice)
    layout = actions.create_layout(people.alice, graph, name="Circle")
    response = login(client, people.alice).post(f"/graphs/{graph.id}/layouts/{layout.id}/update/", {
        "name": "Grid", "positions_json": "[1, 2]",
    })
    assert response.status_code == 400
    assert "Positions JSON must be a JSON object." in text(response) and 'value="Grid"' in text(response)
    layout.refresh_from_db()
    assert layout.name == "Circle"


def test_it_shares_a_layout_with_the_groups_of_its_graph(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    actions.share_graph(people.alice, group_of(people.alice, members=(people.bob,)), graph)
    layout = actions.create_layout(people.alice, graph, name="Circle")
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/layouts/{layout.id}/share/", {"is_shared": "1"})
    assert response.status_code == 302
    layout.refresh_from_db()
    assert layout.is_shared
    assert len(callbacks) == 1
    # It should now be in bob's view of the graph.
    assert "Circle" in text(login(Client(), people.bob).get(f"/graphs/{graph.id}/"))


def test_it_unshares_a_layout(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    actions.share_graph(people.alice, group_of(people.alice, members=(people.bob,)), graph)
    layout = actions.create_layout(people.alice, graph, name="Circle", is_shared=True)
    login(client, people.alice)
    with capture() as callbacks:
        client.post(f"/graphs/{graph.id}/layouts/{layout.id}/share/", {"is_shared": "0"})
    layout.refresh_from_db()
    assert not layout.is_shared
    assert len(callbacks) == 1
    assert "Circle" not in text(login(Client(), people.bob).get(f"/graphs/{graph.id}/"))


def test_it_deletes_a_layout(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    layout = actions.create_layout(people.alice, graph, name="Circle")
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/layouts/{layout.id}/delete/")
    assert response.status_code == 302
    assert not Layout.objects.filter(pk=layout.id).exists()
    assert len(callbacks) == 1


# --- groups ----------------------------------------------------------------------------

def test_it_creates_a_group(people: People, client: Client, capture: Capture) -> None:
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post("/groups/", {"name": "Lab", "description": "Wet lab"})
    group = Group.objects.get(owner=people.alice, name="Lab")
    assert response.status_code == 302 and response["Location"] == f"/groups/{group.id}/"
    assert group.description == "Wet lab"
    assert GroupMember.objects.filter(group=group, user=people.alice).exists()
    assert len(callbacks) == 1
    assert "Lab" in text(client.get("/groups/"))


def test_it_updates_a_group(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice)
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/groups/{group.id}/update/", {"name": "Dry lab", "description": "Now computational"})
    assert response.status_code == 302
    group.refresh_from_db()
    assert (group.name, group.description) == ("Dry lab", "Now computational")
    assert len(callbacks) == 1


def test_it_deletes_a_group_after_a_confirm_step(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice)
    login(client, people.alice)
    assert "Delete group" in text(client.get(f"/groups/{group.id}/delete/"))
    with capture() as callbacks:
        response = client.post(f"/groups/{group.id}/delete/")
    assert response.status_code == 302 and response["Location"] == "/groups/"
    assert not Group.objects.filter(pk=group.id).exists()
    assert len(callbacks) == 1


def test_it_adds_a_member_by_email(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice)
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/groups/{group.id}/members/", {"email": " Bob@Example.com "})
    assert response.status_code == 302
    assert GroupMember.objects.filter(group=group, user=people.bob).exists()
    assert len(callbacks) == 1


def test_it_keeps_an_unknown_email_and_adds_nobody(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice)
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/groups/{group.id}/members/", {"email": "nobody@example.com"})
    assert response.status_code == 400
    assert "No GraphSpace user has the email nobody@example.com." in text(response)
    assert 'value="nobody@example.com"' in text(response)
    assert GroupMember.objects.filter(group=group).count() == 1 and callbacks == []


def test_it_removes_a_member(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice, members=(people.bob,))
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/groups/{group.id}/members/{people.bob.id}/remove/")
    assert response.status_code == 302
    assert not GroupMember.objects.filter(group=group, user=people.bob).exists()
    assert len(callbacks) == 1


def test_a_member_can_leave_but_not_remove_others(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice, members=(people.bob, people.carol))
    login(client, people.bob)
    with capture() as refused:
        assert client.post(f"/groups/{group.id}/members/{people.carol.id}/remove/").status_code == 403
    with capture() as callbacks:
        response = client.post(f"/groups/{group.id}/members/{people.bob.id}/remove/")
    assert response.status_code == 302 and response["Location"] == "/groups/"
    assert list(GroupMember.objects.filter(group=group).values_list("user__email", flat=True).order_by("user__email")) == [
        "alice@example.com", "carol@example.com",
    ]
    assert refused == [] and len(callbacks) == 1


def test_the_owner_cannot_be_removed(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice)
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/groups/{group.id}/members/{people.alice.id}/remove/", follow=True)
    assert "Cannot remove group owner from the group." in text(response)
    assert GroupMember.objects.filter(group=group, user=people.alice).exists() and callbacks == []


# --- sharing ---------------------------------------------------------------------------

def test_it_shares_a_graph_with_one_of_my_groups(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    group = group_of(people.alice, members=(people.bob,))
    login(client, people.alice)
    assert f'<option value="{group.id}">Lab</option>' in text(client.get(f"/graphs/{graph.id}/"))
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/share/", {"group_id": str(group.id)})
    assert response.status_code == 302
    assert GroupGraph.objects.filter(group=group, graph=graph).exists()
    assert len(callbacks) == 1
    assert login(Client(), people.bob).get(f"/graphs/{graph.id}/").status_code == 200


def test_it_unshares_a_graph_from_the_graph_page(people: People, client: Client, capture: Capture) -> None:
    graph = graph_of(people.alice)
    group = group_of(people.alice, members=(people.bob,))
    actions.share_graph(people.alice, group, graph)
    login(client, people.alice)
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/groups/{group.id}/unshare/")
    assert response.status_code == 302 and response["Location"] == f"/graphs/{graph.id}/"
    assert not GroupGraph.objects.filter(group=group, graph=graph).exists()
    assert len(callbacks) == 1


def test_the_group_owner_unshares_a_members_graph_from_the_group_page(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice, members=(people.bob,))
    graph = graph_of(people.bob)
    actions.share_graph(people.bob, group, graph)
    login(client, people.alice)
    assert f"/graphs/{graph.id}/groups/{group.id}/unshare/" in text(client.get(f"/groups/{group.id}/"))
    with capture() as callbacks:
        response = client.post(f"/graphs/{graph.id}/groups/{group.id}/unshare/", {"next": "group"})
    assert response.status_code == 302 and response["Location"] == f"/groups/{group.id}/"
    assert not GroupGraph.objects.exists()
    assert len(callbacks) == 1


# --- permissions -----------------------------------------------------------------------

def test_it_sends_anonymous_visitors_to_log_in(db: None, client: Client) -> None:
    for url in ("/", "/graphs/", "/groups/", "/graphs/1/", "/groups/1/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_bob_cannot_see_alices_private_graph(people: People, client: Client) -> None:
    graph = graph_of(people.alice, "Secret")
    login(client, people.bob)
    assert client.get(f"/graphs/{graph.id}/").status_code == 404
    assert client.get("/graphs/999999/").status_code == 404
    assert "Secret" not in text(client.get("/graphs/"))


def test_bob_cannot_post_alices_graph_forms(people: People, client: Client, capture: Capture) -> None:
    private = graph_of(people.alice, "Secret")
    public = graph_of(people.alice, "Open", is_public=True)
    layout = actions.create_layout(people.alice, public, name="Circle", is_shared=True)
    alices_group = group_of(people.alice)
    bobs_group = group_of(people.bob, "Bobs")
    actions.share_graph(people.alice, alices_group, public)
    login(client, people.bob)
    posts: list[tuple[str, dict[str, str]]] = [
        (f"/graphs/{private.id}/update/", {"name": "Hacked", "graph_json": json.dumps(GRAPH)}),
        (f"/graphs/{private.id}/delete/", {}),
        (f"/graphs/{private.id}/share/", {"group_id": str(bobs_group.id)}),
        (f"/graphs/{private.id}/layouts/", {"name": "Mine"}),
        (f"/graphs/{public.id}/update/", {"name": "Hacked", "graph_json": json.dumps(GRAPH)}),
        (f"/graphs/{public.id}/delete/", {}),
        (f"/graphs/{public.id}/layouts/{layout.id}/update/", {"name": "Hacked"}),
        (f"/graphs/{public.id}/layouts/{layout.id}/share/", {"is_shared": "0"}),
        (f"/graphs/{public.id}/layouts/{layout.id}/delete/", {}),
        (f"/graphs/{public.id}/groups/{alices_group.id}/unshare/", {}),
        (f"/graphs/{public.id}/share/", {"group_id": str(alices_group.id)}),
    ]
    with capture() as callbacks:
        for url, data in posts:
            assert client.post(url, data).status_code in (403, 404), url
    assert callbacks == []
    assert sorted(Graph.objects.values_list("name", flat=True)) == ["Open", "Secret"]
    assert not Graph.objects.get(pk=private.id).is_public
    assert Layout.objects.get(pk=layout.id).name == "Circle" and Layout.objects.get(pk=layout.id).is_shared
    assert list(GroupGraph.objects.values_list("group_id", flat=True)) == [alices_group.id]


def test_bob_cannot_see_or_post_alices_group_forms(people: People, client: Client, capture: Capture) -> None:
    group = group_of(people.alice, members=(people.carol,))
    login(client, people.bob)
    assert client.get(f"/groups/{group.id}/").status_code == 404
    with capture() as callbacks:
        for url, data in [
            (f"/groups/{group.id}/update/", {"name": "Hacked"}),
            (f"/groups/{group.id}/delete/", {}),
            (f"/groups/{group.id}/members/", {"email": "bob@example.com"}),
            (f"/groups/{group.id}/members/{people.carol.id}/remove/", {}),
        ]:
            assert client.post(url, data).status_code == 404, url
    # A member reads the group but cannot manage it.
    member = login(Client(), people.carol)
    page = text(member.get(f"/groups/{group.id}/"))
    assert "Leave group" in page and "Add member" not in page and "Delete group" not in page
    with capture() as member_callbacks:
        assert member.post(f"/groups/{group.id}/update/", {"name": "Hacked"}).status_code == 403
        assert member.post(f"/groups/{group.id}/members/", {"email": "bob@example.com"}).status_code == 403
        assert member.post(f"/groups/{group.id}/delete/").status_code == 403
    assert callbacks == [] and member_callbacks == []
    group.refresh_from_db()
    assert group.name == "Lab" and GroupMember.objects.filter(group=group).count() == 2


def test_it_only_shows_owner_forms_to_the_owner(people: People, client: Client) -> None:
    graph = graph_of(people.alice, "Open", is_public=True)
    page = text(login(client, people.bob).get(f"/graphs/{graph.id}/"))
    assert f"/graphs/{graph.id}/update/" not in page and f"/graphs/{graph.id}/delete/" not in page
    assert f"/graphs/{graph.id}/layouts/" in page  # anyone who sees a graph may lay it out
    owner_page = text(login(Client(), people.alice).get(f"/graphs/{graph.id}/"))
    assert f"/graphs/{graph.id}/update/" in owner_page and f"/graphs/{graph.id}/delete/" in owner_page


def test_forms_carry_the_csrf_token_and_need_it(people: People) -> None:
    client = login(Client(enforce_csrf_checks=True), people.alice)
    assert "csrfmiddlewaretoken" in text(client.get("/graphs/"))
    assert client.post("/groups/", {"name": "Lab"}).status_code == 403
    assert not Group.objects.exists()


# --- escaping --------------------------------------------------------------------------

def test_it_escapes_what_users_typed(people: People, client: Client) -> None:
    graph = graph_of(people.alice, XSS, tags=[XSS])
    group = group_of(people.alice, XSS)
    actions.share_graph(people.alice, group, graph)
    actions.create_layout(people.alice, graph, name=XSS)
    login(client, people.alice)
    for url in ("/", "/graphs/", f"/graphs/{graph.id}/", "/groups/", f"/groups/{group.id}/"):
        page = text(client.get(url))
        assert "&lt;img src=x onerror=alert(1)&gt;" in page, url
        assert "<img" not in page, url
    # The success message repeats the name too.
    response = client.post("/graphs/", {"name": XSS + "!", "graph_json": json.dumps(GRAPH)}, follow=True)
    assert "Uploaded graph &lt;img src=x onerror=alert(1)&gt;!." in text(response) and "<img" not in text(response)


def test_a_layout_of_a_graph_no_longer_readable_is_not_found(people: People, client: Client, capture: Capture) -> None:
    """Bob laid out alice's public graph; once she makes it private his layout shows nothing
    of it: not in the API, not on a page (a failed form would render the graph)."""
    graph = graph_of(people.alice, "Secret", is_public=True)
    layout = actions.create_layout(people.bob, graph, name="Bobs")
    actions.update_graph(people.alice, graph, is_public=False)
    login(client, people.bob)
    with capture() as callbacks:
        for url, data in [
            (f"/graphs/{graph.id}/layouts/{layout.id}/update/", {"name": "", "positions_json": "[1]"}),
            (f"/graphs/{graph.id}/layouts/{layout.id}/share/", {"is_shared": "1"}),
            (f"/graphs/{graph.id}/layouts/{layout.id}/delete/", {}),
        ]:
            response = client.post(url, data)
            assert response.status_code == 404, url
            assert "Secret" not in text(response)
    assert callbacks == [] and Layout.objects.filter(pk=layout.id).exists()


def test_a_form_error_names_the_field_and_keeps_the_input(people: People, client: Client) -> None:
    login(client, people.alice)
    response = client.post("/groups/", {"name": "x" * 300, "description": "kept"})
    assert response.status_code == 400
    assert "Group name cannot be more than 256 characters long." in text(response) and "kept" in text(response)
    response = client.post("/graphs/", {"name": "G", "graph_json": json.dumps(GRAPH), "tags": "a\x00b"})
    assert response.status_code == 400 and "Null characters are not allowed." in text(response)
    assert not Graph.objects.exists() and not Group.objects.exists()
