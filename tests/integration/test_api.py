"""API v1's contract: GraphSpace's error bodies and codes, permissions, queries, shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from graphspace import actions
from tests.conftest import People
from tests.integration.helpers import GRAPH, Api


@pytest.fixture
def api(people: People) -> dict[str, Api]:
    return {"alice": Api(people.alice), "bob": Api(people.bob), "carol": Api(people.carol)}


def error(api: Api, method: str, path: str, status: int, code: int, data: dict[str, Any] | None = None,
          form: bool = False) -> dict[str, Any]:
    body = api.call(method, path, data, form=form, expect=status)
    assert body["status_code"] == status
    assert body["error_code"] == code
    assert body["error_details"].startswith("http://manual.graphspace.org/")
    assert body["http_request"].startswith(f"{method} /api/v1/{path.split('?')[0]}")
    return body


def test_it_answers_anonymous_requests_with_401_json(db: None) -> None:
    response = Client().get("/api/v1/graphs/?is_public=1")
    assert response.status_code == 401
    assert response.json()["error_code"] == 1005


def test_it_lists_graphs_only_with_a_filter_the_user_may_use(api: dict[str, Api]) -> None:
    error(api["alice"], "GET", "graphs/", 400, 1006)
    error(api["alice"], "GET", "graphs/?owner_email=bob@example.com", 400, 1007)
    error(api["alice"], "GET", "graphs/?member_email=bob@example.com", 400, 1007)


def test_it_refuses_a_graph_for_another_owner_and_a_too_long_name(api: dict[str, Api]) -> None:
    error(api["alice"], "POST", "graphs/", 400, 1008, {"name": "x", "graph_json": GRAPH, "owner_email": "bob@example.com"})
    error(api["alice"], "POST", "graphs/", 400, 1015, {"name": "x" * 257, "graph_json": GRAPH})


def test_it_reports_a_duplicate_graph_and_a_broken_graph_as_bad_requests(api: dict[str, Api]) -> None:
    api["alice"].call("POST", "graphs/", {"name": "Dup", "graph_json": GRAPH}, expect=201)
    body = error(api["alice"], "POST", "graphs/", 400, 1002, {"name": "Dup", "graph_json": GRAPH})
    assert body["error_message"] == "Graph Dup already exists for alice@example.com!"
    broken = {"elements": {"nodes": [{"data": {"id": "a"}}], "edges": [{"data": {"source": "a", "target": "zz"}}]}}
    body = error(api["alice"], "POST", "graphs/", 400, 1002, {"name": "Broken", "graph_json": broken})
    assert "zz" in body["error_message"]
    blob = {"style": [{"selector": "node", "style": {"shape": "blob"}}]}
    body = error(api["alice"], "POST", "graphs/", 400, 1002, {"name": "Styled", "graph_json": GRAPH, "style_json": blob})
    assert "blob" in body["error_message"]


def test_a_missing_or_private_graph_is_403_never_404(api: dict[str, Api]) -> None:
    graph = api["alice"].call("POST", "graphs/", {"name": "Private", "graph_json": GRAPH}, expect=201)
    error(api["bob"], "GET", f"graphs/{graph['id']}", 403, 1004)
    error(api["bob"], "PUT", f"graphs/{graph['id']}", 403, 1004, {"is_public": 1})
    error(api["bob"], "DELETE", f"graphs/{graph['id']}", 403, 1004)
    error(api["alice"], "GET", "graphs/999999", 403, 1004)


def test_an_unsupported_method_is_405(api: dict[str, Api]) -> None:
    error(api["alice"], "PUT", "graphs/", 405, 1001)
    error(api["alice"], "POST", "groups/1", 405, 1001)


def test_graph_shapes_and_queries_follow_graphspace(api: dict[str, Api]) -> None:
    alice = api["alice"]
    for name, tags in (("Yeast net", ["bio", "yeast"]), ("Yeast small", ["bio"]), ("Other", [])):
        alice.call("POST", "graphs/", {"name": name, "graph_json": GRAPH, "tags": tags}, expect=201)
    page = alice.call("GET", "graphs/?owner_email=alice@example.com&limit=2&offset=0")
    assert page["total"] == 3
    assert [g["name"] for g in page["graphs"]] == ["Yeast small", "Yeast net"]  # name, descending
    assert "graph_json" not in page["graphs"][0]
    found = alice.call("GET", "graphs/?owner_email=alice@example.com&names[]=yeast%25&tags[]=yeast")
    assert [g["name"] for g in found["graphs"]] == ["Yeast net"]
    asc = alice.call("GET", "graphs/?owner_email=alice@example.com&sort=name&order=asc")
    assert [g["name"] for g in asc["graphs"]] == ["Other", "Yeast net", "Yeast small"]
    full = alice.call("GET", f"graphs/{page['graphs'][0]['id']}")
    edge = full["graph_json"]["elements"]["edges"][0]["data"]
    assert edge["name"] == "a-b" and edge["is_directed"] is False
    assert full["graph_json"]["data"]["name"] == "Yeast small"
    assert set(full) == {"id", "owner_email", "name", "graph_json", "style_json", "is_public", "tags",
                         "default_layout_id", "created_at", "updated_at"}


def test_graphs_are_found_by_names_or_by_their_nodes_and_edges(api: dict[str, Api]) -> None:
    alice = api["alice"]

    def graph(name: str, nodes: list[tuple[str, str]], edges: list[tuple[str, str]]) -> None:
        body = {"elements": {"nodes": [{"data": {"id": i, "label": label}} for i, label in nodes],
                             "edges": [{"data": {"source": a, "target": b}} for a, b in edges]}}
        alice.call("POST", "graphs/", {"name": name, "graph_json": body}, expect=201)

    graph("Kinases", [("MAPK1", "ERK2"), ("MAPK3", "ERK1")], [("MAPK1", "MAPK3")])
    graph("Receptors", [("EGFR", ""), ("MAPK1", "")], [("EGFR", "MAPK1")])
    graph("Other", [("x", ""), ("y", "")], [("x", "y")])

    def found(query: str) -> list[str]:
        return sorted(g["name"] for g in alice.call("GET", f"graphs/?owner_email=alice@example.com&{query}")["graphs"])

    assert found("nodes[]=mapk1") == ["Kinases", "Receptors"]
    assert found("nodes[]=erk2") == ["Kinases"]  # by label
    assert found("nodes[]=mapk1&nodes[]=egfr") == ["Receptors"]  # nodes are AND-ed
    assert found("edges[]=MAPK3:MAPK1") == ["Kinases"]  # either direction
    assert found("nodes[]=MAPK%25") == ["Kinases", "Receptors"]  # wildcard
    assert found("names[]=Other&nodes[]=EGFR") == ["Other", "Receptors"]  # names OR elements
    error(alice, "GET", "graphs/?owner_email=alice@example.com&edges[]=nocolon", 400, 1002)


def test_layouts_keep_their_json_as_strings_and_their_name_unique(api: dict[str, Api]) -> None:
    alice = api["alice"]
    graph = alice.call("POST", "graphs/", {"name": "G", "graph_json": GRAPH}, expect=201)
    body = {"name": "L", "is_shared": 0, "positions_json": {"a": {"x": 1, "y": 2}}, "style_json": {"style": []},
            "graph_id": graph["id"], "owner_email": "alice@example.com"}
    layout = alice.call("POST", f"graphs/{graph['id']}/layouts/", body, expect=201)
    assert json.loads(layout["positions_json"]) == {"a": {"x": 1, "y": 2}}
    assert isinstance(layout["style_json"], str)
    error(alice, "POST", f"graphs/{graph['id']}/layouts/", 400, 1014, body)
    error(alice, "POST", f"graphs/{graph['id']}/layouts/", 400, 1013, {**body, "owner_email": "bob@example.com"})
    error(alice, "GET", f"graphs/{graph['id']}/layouts/", 400, 1012)
    error(api["bob"], "GET", f"graphs/{graph['id']}/layouts/{layout['id']}", 403, 1004)
    # A deleted layout frees its name (the original's soft delete kept it taken).
    alice.call("DELETE", f"graphs/{graph['id']}/layouts/{layout['id']}")
    alice.call("POST", f"graphs/{graph['id']}/layouts/", body, expect=201)


def test_groups_members_and_sharing_follow_graphspace(api: dict[str, Api], people: People) -> None:
    alice, bob = api["alice"], api["bob"]
    error(alice, "GET", "groups/", 400, 1010)
    error(alice, "POST", "groups/", 400, 1011, {"name": "X", "owner_email": "bob@example.com"}, form=True)
    group = alice.call("POST", "groups/", {"name": "Lab", "description": "d"}, form=True, expect=201)
    assert group["total_members"] == 1 and len(group["invite_code"]) == 10
    added = alice.call("POST", f"groups/{group['id']}/members", {"member_email": "bob@example.com"}, form=True, expect=201)
    assert added == {"user_id": people.bob.id, "group_id": str(group["id"])}
    error(alice, "POST", f"groups/{group['id']}/members", 400, 1000, {"member_email": "bob@example.com"}, form=True)
    body = error(alice, "POST", f"groups/{group['id']}/members", 400, 1002, {"member_email": "nobody@example.com"}, form=True)
    assert body["error_message"] == "User does not exist."
    error(bob, "PUT", f"groups/{group['id']}", 403, 1004, {"name": "Mine"}, form=True)
    error(api["carol"], "GET", f"groups/{group['id']}", 403, 1004)
    members = alice.call("GET", f"groups/{group['id']}/members")
    assert members["total"] == 2 and {m["email"] for m in members["members"]} == {"alice@example.com", "bob@example.com"}
    # The owner cannot be removed (the original's guard never fired).
    error(alice, "DELETE", f"groups/{group['id']}/members/{people.alice.id}", 400, 1002)
    graph = bob.call("POST", "graphs/", {"name": "Bobs", "graph_json": GRAPH}, expect=201)
    error(alice, "POST", f"groups/{group['id']}/graphs", 403, 1004, {"graph_id": graph["id"]}, form=True)
    shared = bob.call("POST", f"groups/{group['id']}/graphs", {"graph_id": graph["id"]}, form=True, expect=201)
    assert shared["graph_id"] == graph["id"] and shared["group_id"] == str(group["id"])
    assert alice.call("GET", f"graphs/{graph['id']}")["name"] == "Bobs"
    listed = alice.call("GET", f"groups/{group['id']}/graphs")
    assert listed["total"] == 1 and "graph_json" in listed["graphs"][0]
    assert [g["name"] for g in alice.call("GET", "graphs/?member_email=alice@example.com")["graphs"]] == ["Bobs"]
    # A member may leave.
    bob.call("DELETE", f"groups/{group['id']}/members/{people.bob.id}")
    error(bob, "GET", f"groups/{group['id']}", 403, 1004)


def test_a_failed_action_changes_nothing(people: People) -> None:
    with pytest.raises(actions.ActionError):
        actions.upload_graph(people.alice, name="x" * 300, graph_json=GRAPH)
    from graphspace.models import Graph

    assert not Graph.objects.exists()


def test_adding_members_by_id_reveals_no_email(api: dict[str, Api], people: People) -> None:
    """Carol adds ids 1..N to her own group: every id of a user she does not already know
    (who shares no group with her) gets the answer an unknown id gets, and her member list
    and the errors show no new email."""
    from graphspace.models import User

    carol = api["carol"]
    dave = User.objects.create_user("dave@example.com", "x")
    group = carol.call("POST", "groups/", {"name": "Carols"}, form=True, expect=201)
    answers = {}
    for user_id in range(1, dave.id + 5):
        body = carol.call("POST", f"groups/{group['id']}/members", {"member_id": user_id}, form=True, expect=400)
        answers[user_id] = (body["error_code"], body["error_message"])
    strangers = {people.alice.id, people.bob.id, dave.id}
    assert {answers[i] for i in strangers} == {(1002, "User does not exist.")}
    assert answers[dave.id + 3] == answers[dave.id]  # an id nobody has: the same answer
    # Carol herself: she knows her own email.
    assert answers[people.carol.id] == (1000, "User with `carol@example.com` email id already exists!")
    listed = carol.call("GET", f"groups/{group['id']}/members")
    assert [m["email"] for m in listed["members"]] == ["carol@example.com"]
    # Once bob shares a group with her, she knows his email and may name him by id.
    lab = api["alice"].call("POST", "groups/", {"name": "Lab"}, form=True, expect=201)
    for email in ("bob@example.com", "carol@example.com"):
        api["alice"].call("POST", f"groups/{lab['id']}/members", {"member_email": email}, form=True, expect=201)
    carol.call("POST", f"groups/{group['id']}/members", {"member_id": people.bob.id}, form=True, expect=201)
    # By email anyone may be added, as in GraphSpace: the caller typed the address.
    carol.call("POST", f"groups/{group['id']}/members", {"member_email": "dave@example.com"}, form=True, expect=201)


def test_a_layout_is_found_only_under_its_own_graph(api: dict[str, Api]) -> None:
    """One rule for the API and the pages: the graph in the URL must be the layout's."""
    alice = api["alice"]
    graph = alice.call("POST", "graphs/", {"name": "G", "graph_json": GRAPH}, expect=201)
    other = alice.call("POST", "graphs/", {"name": "H", "graph_json": GRAPH}, expect=201)
    layout = alice.call("POST", f"graphs/{graph['id']}/layouts/", {"name": "L"}, expect=201)
    assert alice.call("GET", f"graphs/{graph['id']}/layouts/{layout['id']}")["id"] == layout["id"]
    error(alice, "GET", f"graphs/{other['id']}/layouts/{layout['id']}", 403, 1004)
    error(alice, "PUT", f"graphs/{other['id']}/layouts/{layout['id']}", 403, 1004, {"name": "M"})
    error(alice, "DELETE", f"graphs/{other['id']}/layouts/{layout['id']}", 403, 1004)


@pytest.mark.parametrize(("body", "message"), [
    ({"name": "G", "graph_json": GRAPH, "is_public": "yes"}, "is_public must be 0 or 1."),
    ({"name": "G", "graph_json": GRAPH, "tags": "bio"}, "tags must be a list of strings."),
])
def test_a_bad_value_is_named_in_the_error(api: dict[str, Api], body: dict[str, Any], message: str) -> None:
    assert error(api["alice"], "POST", "graphs/", 400, 1002, body)["error_message"] == message


# --- the permission rules, through the actions (graphspace/permissions.py) ---------------
# Who: the owner, a member of the group the graph is shared with, an outsider, an admin.
# What each may do: True, or the domain error the action raises (NotFound when the user may
# not even see the resource, Forbidden when they see it but may not do this).
RULES: list[tuple[str, dict[str, Any]]] = [
    ("read the graph", {"owner": True, "member": True, "outsider": actions.NotFound, "admin": True}),
    ("edit the graph", {"owner": True, "member": actions.Forbidden, "outsider": actions.NotFound, "admin": True}),
    ("delete the graph",
     {"owner": True, "member": actions.Forbidden, "outsider": actions.NotFound, "admin": actions.Forbidden}),
    ("share the graph", {"owner": True, "member": actions.Forbidden, "outsider": actions.NotFound, "admin": True}),
    ("lay out the graph", {"owner": True, "member": True, "outsider": actions.NotFound, "admin": True}),
    ("read the private layout", {"owner": True, "member": actions.NotFound, "outsider": actions.NotFound, "admin": True}),
    ("edit the layout",
     {"owner": True, "member": actions.NotFound, "outsider": actions.NotFound, "admin": actions.Forbidden}),
    ("read the group", {"owner": True, "member": True, "outsider": actions.NotFound, "admin": True}),
    ("manage the group", {"owner": True, "member": actions.Forbidden, "outsider": actions.NotFound, "admin": True}),
    ("unshare the graph", {"owner": True, "member": actions.Forbidden, "outsider": actions.NotFound, "admin": True}),
    ("leave the group",
     {"owner": actions.ActionError, "member": True, "outsider": actions.NotFound, "admin": actions.NoSuchUser}),
]


@pytest.mark.parametrize(("what", "expected"), RULES, ids=[r[0] for r in RULES])
@pytest.mark.parametrize("who", ["owner", "member", "outsider", "admin"])
def test_each_rule_holds_for_owner_member_outsider_and_admin(
    people: People, what: str, expected: dict[str, Any], who: str,
) -> None:
    from graphspace.models import User

    owner, member, outsider = people.alice, people.bob, people.carol
    admin = User.objects.create_user("admin@example.com", "x")
    User.objects.filter(pk=admin.pk).update(is_admin=True)
    admin.refresh_from_db()
    user = {"owner": owner, "member": member, "outsider": outsider, "admin": admin}[who]
    graph = actions.upload_graph(owner, name="Net", graph_json=GRAPH)
    layout = actions.create_layout(owner, graph, name="Mine")
    group = actions.create_group(owner, name="Lab")
    actions.add_member(owner, group, member)
    actions.share_graph(owner, group, graph)
    attempts = {
        "read the graph": lambda: actions.find_graph(user, graph.id),
        "edit the graph": lambda: actions.update_graph(user, graph, is_public=True),
        "delete the graph": lambda: actions.delete_graph(user, graph),
        "share the graph": lambda: actions.find_graph(user, graph.id, "share"),
        "lay out the graph": lambda: actions.create_layout(user, graph, name=f"{who}'s"),
        "read the private layout": lambda: actions.find_layout(user, graph.id, layout.id),
        "edit the layout": lambda: actions.update_layout(user, actions.find_layout(user, graph.id, layout.id), name="X"),
        "read the group": lambda: actions.find_group(user, group.id),
        "manage the group": lambda: actions.update_group(user, group, name="Renamed"),
        "unshare the graph": lambda: actions.unshare_graph(user, group, graph),
        "leave the group": lambda: actions.remove_member(
            user, group, actions.find_member(user, actions.find_group(user, group.id), user.id)),
    }
    outcome = expected[who]
    if outcome is True:
        attempts[what]()
    else:
        with pytest.raises(outcome) as raised:
            attempts[what]()
        assert type(raised.value) is outcome
