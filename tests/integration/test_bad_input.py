"""Malformed requests (issue 10, "Zero 500s from input"): each one gets a 4xx with GraphSpace's
JSON error body on the API, a form error on the pages, and the server answers the next
request as before. Uniqueness races end in the same clear error as the check they slipped by.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection, transaction
from django.test import Client

from graphspace import actions
from graphspace.models import Graph, Group, GroupMember, Layout, User
from tests.conftest import PASSWORD, People
from tests.integration.helpers import GRAPH

NUL = "\x00"
HUGE = 10**20
LONG = "x" * 300


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def api_client(user: Any) -> Client:
    token = base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()
    return Client(HTTP_AUTHORIZATION=f"Basic {token}", HTTP_ACCEPT="application/json")


@pytest.fixture
def world(people: People) -> dict[str, Any]:
    graph = actions.upload_graph(people.alice, name="Net", graph_json=GRAPH)
    layout = actions.create_layout(people.alice, graph, name="Circle")
    group = actions.create_group(people.alice, name="Lab")
    return {"graph": graph.id, "layout": layout.id, "group": group.id, "people": people}


def graph_with(**changes: Any) -> dict[str, Any]:
    return {"name": "G", "graph_json": GRAPH, **changes}


def deep_graph(depth: int) -> dict[str, Any]:
    return {**GRAPH, "data": {"deep": nested(depth)}}


def big_body() -> str:
    return json.dumps(graph_with(name="Big", graph_json={**GRAPH, "data": {"blob": "x" * (20 * 1024 * 1024)}}))


def many_params(n: int = 1500) -> str:
    return "&".join(f"p{i}=1" for i in range(n))


# (what, method, path, body, content type): path and body may name {graph}, {layout}, {group}.
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
API_CASES: list[tuple[str, str, str, Any, str]] = [
    # NUL bytes in any string
    ("NUL in a graph name", "POST", "graphs/", graph_with(name=f"a{NUL}b"), JSON),
    ("NUL in graph JSON", "POST", "graphs/",
     graph_with(graph_json={"elements": {"nodes": [{"data": {"id": NUL}}], "edges": []}}), JSON),
    ("NUL in a graph JSON key", "POST", "graphs/", graph_with(graph_json={**GRAPH, "data": {NUL: 1}}), JSON),
    ("NUL in style JSON", "POST", "graphs/", graph_with(style_json={"style": [{"selector": NUL, "style": {}}]}), JSON),
    ("NUL in a tag", "POST", "graphs/", graph_with(tags=[NUL]), JSON),
    ("NUL in a renamed graph", "PUT", "graphs/{graph}", {"name": NUL}, JSON),
    ("NUL in names[]", "GET", f"graphs/?owner_email=alice@example.com&names[]=a{quote(NUL)}", None, JSON),
    ("NUL in nodes[]", "GET", f"graphs/?owner_email=alice@example.com&nodes[]={quote(NUL)}", None, JSON),
    ("NUL in owner_email", "GET", f"graphs/?owner_email={quote(NUL)}", None, JSON),
    ("NUL in a group name", "POST", "groups/", f"name=a{quote(NUL)}", FORM),
    ("NUL in a group description", "POST", "groups/", f"name=ok&description={quote(NUL)}", FORM),
    ("NUL in a group search", "GET", f"groups/?member_email=alice@example.com&name={quote(NUL)}", None, JSON),
    ("NUL in a layout name", "POST", "graphs/{graph}/layouts/", {"name": NUL}, JSON),
    ("NUL in layout positions", "PUT", "graphs/{graph}/layouts/{layout}", {"positions_json": {NUL: {"x": 1}}}, JSON),
    ("NUL in a member email", "POST", "groups/{group}/members", f"member_email={quote(NUL)}", FORM),
    ("NUL in q", "GET", f"notifications/?q={quote(NUL)}", None, JSON),
    ("NUL in q of items", "GET", f"notifications/items?q={quote(NUL)}", None, JSON),
    ("NUL in a cursor", "GET", f"notifications/?cursor={quote(NUL)}", None, JSON),
    ("NUL in q of mark-all-read", "POST", "notifications/read", {"q": NUL}, JSON),
    # names over their column length
    ("a graph name over 256", "POST", "graphs/", graph_with(name=LONG), JSON),
    ("a graph renamed over 256", "PUT", "graphs/{graph}", {"name": LONG}, JSON),
    ("a layout name over 256", "POST", "graphs/{graph}/layouts/", {"name": LONG}, JSON),
    ("a layout renamed over 256", "PUT", "graphs/{graph}/layouts/{layout}", {"name": LONG}, JSON),
    ("a group name over 256", "POST", "groups/", f"name={LONG}", FORM),
    ("a group renamed over 256", "PUT", "groups/{group}", f"name={LONG}", FORM),
    # limit and offset out of range
    ("limit 10**20", "GET", f"graphs/?owner_email=alice@example.com&limit={HUGE}", None, JSON),
    ("offset 10**20", "GET", f"graphs/?owner_email=alice@example.com&offset={HUGE}", None, JSON),
    ("negative limit", "GET", "graphs/?owner_email=alice@example.com&limit=-1", None, JSON),
    ("negative offset", "GET", "graphs/?owner_email=alice@example.com&offset=-5", None, JSON),
    ("group limit 10**20", "GET", f"groups/?member_email=alice@example.com&limit={HUGE}", None, JSON),
    ("layout offset 10**20", "GET", f"graphs/{{graph}}/layouts/?owner_email=alice@example.com&offset={HUGE}", None, JSON),
    ("group graphs offset -1", "GET", "groups/{group}/graphs?offset=-1", None, JSON),
    ("notifications limit 10**20", "GET", f"notifications/?limit={HUGE}", None, JSON),
    ("notification items limit -1", "GET", "notifications/items?limit=-1", None, JSON),
    ("cluster limit 10**20", "GET", f"notifications/clusters/1?limit={HUGE}", None, JSON),
    ("a group_id filter of 10**20", "GET", f"notifications/?group_id={HUGE}", None, JSON),
    # flags and ids that are not integers
    ("is_public not an integer", "POST", "graphs/", graph_with(is_public="yes please"), JSON),
    ("is_public an object", "PUT", "graphs/{graph}", {"is_public": {"a": 1}}, JSON),
    ("is_shared not an integer", "POST", "graphs/{graph}/layouts/", {"name": "L", "is_shared": "x"}, JSON),
    ("is_shared a list", "PUT", "graphs/{graph}/layouts/{layout}", {"is_shared": [1]}, JSON),
    ("default_layout_id not an integer", "PUT", "graphs/{graph}", {"default_layout_id": "first"}, JSON),
    ("default_layout_id 10**30", "PUT", "graphs/{graph}", {"default_layout_id": 10**30}, JSON),
    ("graph_id not an integer", "POST", "groups/{group}/graphs", "graph_id=abc", FORM),
    ("member_id not an integer", "POST", "groups/{group}/members", "member_id=abc", FORM),
    ("member_id 10**30", "POST", "groups/{group}/members", f"member_id={10**30}", FORM),
    ("layout graph_id 10**30", "POST", "graphs/{graph}/layouts/", {"name": "L", "graph_id": 10**30}, JSON),
    ("receive_notification_email not a bool", "PUT", "notifications/settings",
     {"receive_notification_email": "maybe"}, JSON),
    # tags that are not a list
    ("tags a string", "POST", "graphs/", graph_with(tags="bio"), JSON),
    ("tags a number", "POST", "graphs/", graph_with(tags=5), JSON),
    ("tags an object", "POST", "graphs/", graph_with(tags={"a": 1}), JSON),
    ("a tag an object", "POST", "graphs/", graph_with(tags=[{"a": 1}]), JSON),
    # JSON nested 500+ deep, and JSON PostgreSQL refuses
    ("graph JSON 600 deep", "POST", "graphs/", graph_with(graph_json=deep_graph(600)), JSON),
    ("a body 100,000 deep", "POST", "graphs/", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", JSON),
    ("positions 600 deep", "POST", "graphs/{graph}/layouts/", {"name": "L", "positions_json": {"a": nested(600)}}, JSON),
    ("NaN in graph JSON", "POST", "graphs/",
     '{"name": "G", "graph_json": {"data": {"x": NaN}, "elements": {"nodes": [], "edges": []}}}', JSON),
    ("an integer of 5,000 digits", "POST", "graphs/", '{"name": "G", "graph_json": ' + "9" * 5000 + "}", JSON),
    ("a body that is not JSON", "POST", "graphs/", "{nope", JSON),
    ("a body that is a list", "POST", "graphs/", "[1, 2]", JSON),
    ("a body not UTF-8", "POST", "graphs/", b'{"name": "\xff"}', JSON),
    ("graph JSON a list", "POST", "graphs/", graph_with(graph_json=[1]), JSON),
    ("style with a list for a shape", "POST", "graphs/",
     graph_with(style_json={"style": [{"selector": "node", "style": {"shape": ["x"]}}]}), JSON),
    # a 20 MB body, and more than 1,000 parameters
    ("a 20 MB body", "POST", "graphs/", "BIG", JSON),
    ("1,500 query parameters", "GET", "graphs/?owner_email=alice@example.com&" + many_params(), None, JSON),
    ("1,500 form fields", "POST", "groups/", "name=Many&" + many_params(), FORM),
    # dates out of range
    ("until 9999-12-31", "GET", "notifications/?until=9999-12-31", None, JSON),
    ("since 0001-01-01", "GET", "notifications/items?since=0001-01-01", None, JSON),
    ("since with an offset past year 9999", "GET", "notifications/?since=" + quote("9999-12-31T23:59:59-23:59"), None, JSON),
    ("until of five digits", "GET", "notifications/?until=10000-01-01", None, JSON),
    ("until not a date", "POST", "notifications/read", {"until": "yesterday"}, JSON),
    # ids past bigint in the URL
    ("a graph id past bigint", "GET", f"graphs/{10**25}", None, JSON),
    ("a layout id past bigint", "GET", f"graphs/{{graph}}/layouts/{10**25}", None, JSON),
    ("a member id past bigint", "DELETE", f"groups/{{group}}/members/{10**25}", None, JSON),
    ("a notification id past bigint", "GET", f"notifications/owner/{10**25}", None, JSON),
    ("a cluster id past bigint", "POST", f"notifications/clusters/{10**25}/read", None, JSON),
]


def _ids(path: str, ids: dict[str, Any]) -> str:
    for name in ("graph", "layout", "group"):
        path = path.replace("{" + name + "}", str(ids[name]))
    return path


def _send(client: Client, method: str, path: str, body: Any, content_type: str, ids: dict[str, Any]) -> Any:
    path = _ids(path, ids)
    if body == "BIG":
        data: Any = big_body()
    elif isinstance(body, dict):
        data = json.dumps(body)
    else:
        data = body or ""
    return client.generic(method, f"/api/v1/{path}", data, content_type=content_type)


@pytest.mark.parametrize(("what", "method", "path", "body", "content_type"), API_CASES, ids=[c[0] for c in API_CASES])
def test_the_api_answers_a_malformed_request_with_a_4xx_json_error(
    world: dict[str, Any], what: str, method: str, path: str, body: Any, content_type: str,
) -> None:
    alice = world["people"].alice
    client = api_client(alice)
    before = (Graph.objects.count(), Layout.objects.count(), Group.objects.count(), GroupMember.objects.count())
    response = _send(client, method, path, body, content_type, world)
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    error = response.json()
    assert error["status_code"] == response.status_code
    assert isinstance(error["error_code"], int) and error["error_message"]
    assert error["error_details"].startswith("http://manual.graphspace.org/")
    if body == "BIG":
        assert response.status_code == 413
    # Nothing was stored, and the server answers the next request.
    assert (Graph.objects.count(), Layout.objects.count(), Group.objects.count(), GroupMember.objects.count()) == before
    assert client.get("/api/v1/graphs/?owner_email=alice@example.com").status_code == 200


def test_a_node_search_ending_in_a_backslash_finds_that_node(world: dict[str, Any]) -> None:
    """A backslash is a character like another (not ILIKE's escape): GraphSpace's node names
    may hold one."""
    alice = world["people"].alice
    actions.upload_graph(alice, name="Slashed", graph_json={"elements": {"nodes": [{"data": {"id": "a\\"}}], "edges": []}})
    response = api_client(alice).get("/api/v1/graphs/", {"owner_email": "alice@example.com", "nodes[]": "a\\"})
    assert response.status_code == 200
    assert [g["name"] for g in response.json()["graphs"]] == ["Slashed"]


# --- the pages -------------------------------------------------------------------------

PAGE_CASES: list[tuple[str, str, str, Any]] = [
    ("NUL in a graph name", "POST", "/graphs/", {"name": f"a{NUL}", "graph_json": json.dumps(GRAPH)}),
    ("NUL in graph JSON", "POST", "/graphs/", {"name": "G", "graph_json": json.dumps(deep_graph(1)).replace("1", "\\u0000")}),
    ("NUL in tags", "POST", "/graphs/", {"name": "G", "graph_json": json.dumps(GRAPH), "tags": f"a{NUL}"}),
    ("a graph name over 256", "POST", "/graphs/", {"name": LONG, "graph_json": json.dumps(GRAPH)}),
    ("graph JSON 600 deep", "POST", "/graphs/", {"name": "G", "graph_json": json.dumps(deep_graph(600))}),
    ("graph JSON 100,000 deep", "POST", "/graphs/", {"name": "G", "graph_json": "[" * 100_000 + "]" * 100_000}),
    ("NaN in graph JSON", "POST", "/graphs/",
     {"name": "G", "graph_json": '{"elements": {"nodes": [], "edges": []}, "data": {"x": NaN}}'}),
    ("a graph renamed over 256", "POST", "/graphs/{graph}/update/", {"name": LONG, "graph_json": json.dumps(GRAPH)}),
    ("NUL in a renamed graph", "POST", "/graphs/{graph}/update/", {"name": NUL, "graph_json": json.dumps(GRAPH)}),
    ("NUL in a layout name", "POST", "/graphs/{graph}/layouts/", {"name": NUL}),
    ("a layout name over 256", "POST", "/graphs/{graph}/layouts/", {"name": LONG}),
    ("positions 600 deep", "POST", "/graphs/{graph}/layouts/", {"name": "L", "positions_json": json.dumps({"a": nested(600)})}),
    ("a layout renamed over 256", "POST", "/graphs/{graph}/layouts/{layout}/update/", {"name": LONG}),
    ("NUL in a group name", "POST", "/groups/", {"name": NUL}),
    ("NUL in a group description", "POST", "/groups/", {"name": "ok", "description": NUL}),
    ("a group name over 256", "POST", "/groups/", {"name": LONG}),
    ("a group renamed over 256", "POST", "/groups/{group}/update/", {"name": LONG}),
    ("NUL in a member email", "POST", "/groups/{group}/members/", {"email": f"bob{NUL}@example.com"}),
    ("a group id not an integer", "POST", "/graphs/{graph}/share/", {"group_id": "abc"}),
    ("a group id past bigint", "POST", "/graphs/{graph}/share/", {"group_id": str(10**30)}),
    ("NUL in q", "GET", f"/graphs/?q={quote(NUL)}", None),
    ("1,500 form fields", "POST", "/groups/", "MANY"),
    ("a 20 MB form", "POST", "/graphs/", "BIG"),
    ("until 9999-12-31", "GET", "/notifications/?until=9999-12-31", None),
    ("since 0001-01-01", "GET", "/notifications/?since=0001-01-01", None),
    ("NUL in the notifications search", "GET", f"/notifications/?q={quote(NUL)}", None),
    ("a graph id past bigint", "GET", f"/graphs/{10**25}/", None),
]


@pytest.mark.parametrize(("what", "method", "path", "data"), PAGE_CASES, ids=[c[0] for c in PAGE_CASES])
def test_a_page_answers_a_malformed_form_with_a_form_error(
    world: dict[str, Any], what: str, method: str, path: str, data: Any,
) -> None:
    client = Client()
    client.force_login(world["people"].alice)
    path = _ids(path, world)
    before = (Graph.objects.count(), Layout.objects.count(), Group.objects.count(), GroupMember.objects.count())
    if data == "MANY":
        response = client.post(path, "name=Many&" + many_params(), content_type=FORM)
    elif data == "BIG":
        response = client.post(path, f"name=Big&graph_json={'x' * (20 * 1024 * 1024)}", content_type=FORM)
    elif method == "GET":
        response = client.get(path)
    else:
        response = client.post(path, data, follow=True)
    assert response.status_code < 500, (response.status_code, response.content[:300])
    page = response.content.decode()
    if data in ("MANY", "BIG"):  # Django refuses these before any view: its own bare 400
        assert response.status_code == 400
    elif "past bigint" in what and method == "GET":
        assert response.status_code == 404
    else:  # the form shown again (400), or the page redirected back to (200): with the error
        assert response.status_code in (200, 400)
        assert '<li class="error">' in page or '<p class="error" role="alert">' in page, page[-1500:]
    assert (Graph.objects.count(), Layout.objects.count(), Group.objects.count(), GroupMember.objects.count()) == before
    assert client.get("/graphs/").status_code == 200


# --- uniqueness races ------------------------------------------------------------------

def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return bool(cursor.fetchone()[0])


@pytest.mark.parametrize("kind", ["group", "graph", "layout", "member"])
def test_a_uniqueness_race_ends_in_the_checks_4xx_not_an_integrity_error(transactional_db: None, kind: str) -> None:
    """The other request's row is written but not committed when this one checks, so the
    check passes and the insert waits on the unique index; the other commits, the insert
    fails. The caller gets the check's own answer."""
    alice = User.objects.create_user("alice@example.com", PASSWORD)
    bob = User.objects.create_user("bob@example.com", PASSWORD)
    graph = actions.upload_graph(alice, name="Net", graph_json=GRAPH)
    group = actions.create_group(alice, name="Lab")
    requests = {
        "group": ("POST", "/api/v1/groups/", "name=Race", FORM, 1002,
                  "Group Race already exists for alice@example.com!"),
        "graph": ("POST", "/api/v1/graphs/", json.dumps(graph_with(name="Race")), JSON, 1002,
                  "Graph Race already exists for alice@example.com!"),
        "layout": ("POST", f"/api/v1/graphs/{graph.id}/layouts/", json.dumps({"name": "Race"}), JSON, 1014,
                   "Layout with name `Race` already exists."),
        "member": ("POST", f"/api/v1/groups/{group.id}/members", "member_email=bob@example.com", FORM, 1000,
                   "User with `bob@example.com` email id already exists!"),
    }
    method, path, body, content_type, code, message = requests[kind]
    answers: list[Any] = []

    def other_request() -> None:
        try:
            answers.append(api_client(alice).generic(method, path, body, content_type=content_type))
        finally:
            connection.close()

    with transaction.atomic():
        if kind == "group":
            Group.objects.create(owner=alice, name="Race", membership_seq=1)
        elif kind == "graph":
            Graph.objects.create(owner=alice, name="Race", graph_json=GRAPH)
        elif kind == "layout":
            Layout.objects.create(graph=graph, owner=alice, name="Race")
        else:
            GroupMember.objects.create(group=group, user=bob)
        racer = threading.Thread(target=other_request)
        racer.start()
        deadline = time.monotonic() + 20
        while not _waiting_on_a_lock():
            assert time.monotonic() < deadline, "the other request never reached the insert"
            time.sleep(0.02)
    racer.join(20)
    [response] = answers
    assert response.status_code == 400, response.content
    assert response.json()["error_code"] == code
    assert response.json()["error_message"] == message


def test_the_running_server_stays_up_after_malformed_requests(web: str, transactional_db: None) -> None:
    """The same through the real web process (uvicorn): each gets its 4xx, and then it
    answers a good request."""
    import requests

    alice = User.objects.create_user("alice@example.com", PASSWORD)
    session = requests.Session()
    session.auth = (alice.email, PASSWORD)
    session.headers["Accept"] = "application/json"
    bad = [
        ("POST", "/api/v1/graphs/", big_body(), JSON, 413),
        ("POST", "/api/v1/graphs/", json.dumps(graph_with(name=f"a{NUL}")), JSON, 400),
        ("POST", "/api/v1/graphs/", json.dumps(graph_with(graph_json=deep_graph(600))), JSON, 400),
        ("POST", "/api/v1/graphs/", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", JSON, 400),
        ("GET", "/api/v1/graphs/?owner_email=alice@example.com&" + many_params(), None, None, 400),
        ("GET", f"/api/v1/graphs/?owner_email=alice@example.com&limit={HUGE}", None, None, 400),
        ("GET", "/api/v1/notifications/?until=9999-12-31", None, None, 400),
    ]
    for method, path, body, content_type, status in bad:
        headers = {"Content-Type": content_type} if content_type else {}
        response = session.request(method, web + path, data=body, headers=headers, timeout=60)
        assert response.status_code == status, (path[:80], response.status_code, response.text[:300])
        assert response.json()["status_code"] == status
    good = session.get(web + "/api/v1/graphs/?owner_email=alice@example.com", timeout=30)
    assert good.status_code == 200 and good.json()["total"] == 0


# --- the request schemas alone (graphspace/api/schemas.py, notifications/api.py), no server ---


def schema(name: str) -> Any:
    from graphspace.api import schemas
    from notifications import api

    return getattr(schemas, name, None) or getattr(api, name)


@pytest.mark.parametrize(("model", "data", "expected"), [
    # What the official client sends, and the forms the original accepted.
    ("GraphCreate", {"name": "G", "graph_json": {}, "is_public": 1, "tags": ["a"]}, {"is_public": True, "tags": ["a"]}),
    ("GraphCreate", {"name": 5, "is_public": "0", "tags": None}, {"name": "5", "is_public": False, "tags": []}),
    ("GraphCreate", {"is_public": True}, {"is_public": True}),
    ("GraphUpdate", {"default_layout_id": "12"}, {"default_layout_id": 12}),
    ("GraphUpdate", {"default_layout_id": 0}, {"default_layout_id": 0}),
    ("LayoutCreate", {"name": "L", "is_shared": "1", "graph_id": "3"}, {"is_shared": True, "graph_id": 3}),
    ("MemberAdd", {"member_id": "7"}, {"member_id": 7}),
    ("NotificationSettings", {"receive_notification_email": "false"}, {"receive_notification_email": False}),
    ("Page", {"limit": "0", "offset": str(2**31 - 1)}, {"limit": 0, "offset": 2**31 - 1}),
])
def test_a_schema_takes_what_the_client_sends(model: str, data: dict[str, Any], expected: dict[str, Any]) -> None:
    from apiedge.schemas import validate

    parsed = validate(schema(model), data)
    assert {k: getattr(parsed, k) for k in expected} == expected


@pytest.mark.parametrize(("model", "data", "message"), [
    ("GraphCreate", {"is_public": "yes"}, "is_public must be 0 or 1."),
    ("GraphCreate", {"is_public": 1.5}, "is_public must be 0 or 1."),
    ("GraphCreate", {"tags": "bio"}, "tags must be a list of strings."),
    ("GraphCreate", {"tags": [None]}, "tags.0 must be a string."),
    ("GraphCreate", {"name": f"a{NUL}"}, "name must not contain NUL characters."),
    ("GraphCreate", {"graph_json": nested(101)}, "graph_json is nested more than 100 levels deep."),
    ("GraphUpdate", {"default_layout_id": "first"}, "default_layout_id must be an integer."),
    ("GraphUpdate", {"default_layout_id": 2**63}, "default_layout_id Input should be less than or equal to 9223372036854775807."),
    ("LayoutCreate", {"positions_json": [1]}, "positions_json Input should be a valid dictionary."),
    ("MemberAdd", {"member_id": -1}, "member_id Input should be greater than or equal to 0."),
    ("Page", {"limit": str(HUGE)}, "limit must be an integer."),
    ("Page", {"offset": 2**31}, "offset Input should be less than or equal to 2147483647."),
    ("GraphQuery", {"names": [f"a{NUL}"]}, "names.0 must not contain NUL characters."),
    ("NotificationSettings", {"receive_notification_email": "maybe"}, "receive_notification_email must be true or false."),
])
def test_a_schema_refuses_a_bad_value_with_a_400_naming_it(model: str, data: dict[str, Any], message: str) -> None:
    from apiedge.errors import ApiError
    from apiedge.schemas import validate

    with pytest.raises(ApiError) as raised:
        validate(schema(model), data)
    assert (raised.value.status, raised.value.code, raised.value.message) == (400, 1002, message)
