"""Property-based fuzzing of every endpoint (issue 10): no request, however malformed, gets an
answer of 500 or more.

- The notifications API: Schemathesis generates requests from its own OpenAPI document
  (notifications/openapi.py), valid ones and ones that break the schema.
- The REST API v1: Hypothesis strategies for each route's ids, query string and body (JSON
  or form), from real values to NUL bytes, huge and negative numbers, deep JSON.
- The pages' forms: each form posted with its fields filled at random.

Requests go through Django's test client in-process (the same middleware and views as the
server), as the tests' users. The budget is FUZZ_EXAMPLES examples per test (small in
`make test`; `make fuzz` runs thousands, with a fresh seed each time).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode

from graphspace import actions
from notifications.openapi import SPEC
from tests.conftest import PASSWORD, People
from tests.integration.helpers import GRAPH

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # `make test` repeats the same examples (a failure there is reproducible); `make fuzz`
    # sets FUZZ_RANDOM=1 for new ones each run.
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
COUNT: dict[str, int] = {}
FAILURES: dict[str, int] = {}
STATUSES: dict[str, int] = {}
# Count the 5xx answers instead of stopping at the first (to measure a version that has them).
COUNT_ONLY = os.environ.get("FUZZ_COUNT_ONLY") == "1"


def basic(user: Any) -> str:
    return "Basic " + base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()


@contextmanager
def rolled_back() -> Iterator[None]:
    """Each example starts from the same world: what a request changed (a deleted graph,
    a renamed group) is undone in a savepoint, so the next one still hits real resources."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def api_client(user: Any) -> Client:
    # A view's exception is answered as the server answers it (a 500), not raised in the test.
    return Client(HTTP_AUTHORIZATION=basic(user), HTTP_ACCEPT="application/json", raise_request_exception=False)


def answered(name: str, response: Any, request: str) -> None:
    COUNT[name] = COUNT.get(name, 0) + 1
    STATUSES[f"{name} {response.status_code}"] = STATUSES.get(f"{name} {response.status_code}", 0) + 1
    if COUNT_ONLY and response.status_code >= 500:
        FAILURES[name] = FAILURES.get(name, 0) + 1
        return
    assert response.status_code < 500, f"{request} -> {response.status_code}: {response.content[:500]!r}"


@pytest.fixture
def world(people: People) -> dict[str, Any]:
    """Real resources for the generated ids to hit: alice's graph, layout and group (bob a
    member), and a notification-free start."""
    graph = actions.upload_graph(people.alice, name="Net", graph_json=GRAPH, tags=["bio"])
    layout = actions.create_layout(people.alice, graph, name="Circle")
    group = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, group, people.bob)
    actions.share_graph(people.alice, group, graph)
    return {"people": people, "graph": graph.id, "layout": layout.id, "group": group.id,
            "user": people.bob.id}


@pytest.fixture(autouse=True, scope="module")
def report() -> Any:
    yield
    if COUNT:
        print(f"\nfuzz: {sum(COUNT.values())} requests ({', '.join(f'{k} {v}' for k, v in sorted(COUNT.items()))}), "
              f"{sum(FAILURES.values())} answered >= 500 ({', '.join(f'{k} {v}' for k, v in sorted(FAILURES.items()))})")
        if os.environ.get("FUZZ_STATUSES") == "1":
            print("statuses:", ", ".join(f"{k}: {v}" for k, v in sorted(STATUSES.items())))


# --- values ----------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\\", "a\\", "%", "_", "%%%%", "'", '"', "<b>", "\ud7ff", "ℵ", "0", "-1",
    "1e309", "NaN", "9" * 30, "x" * 300, "x" * 5000, "alice@example.com", "9999-12-31", "0001-01-01",
    "10000-01-01", "2024-02-30", "true", "null", "[]", "{}", "a:b", ":", "a:",
])
TEXT = st.one_of(NASTY_TEXT, st.text(max_size=40))
NUMBER = st.one_of(
    st.integers(min_value=-(10**25), max_value=10**25), st.sampled_from([0, 1, -1, 2**31, 2**63, 10**20]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON_VALUE = st.recursive(
    SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12,
)


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def graph_json() -> st.SearchStrategy[Any]:
    """Graph JSON: often valid, often broken in one place."""
    node = st.fixed_dictionaries({"data": st.fixed_dictionaries({"id": st.one_of(TEXT, NUMBER)})})
    edge = st.fixed_dictionaries({"data": st.fixed_dictionaries(
        {"source": st.one_of(st.just("a"), TEXT), "target": st.one_of(st.just("b"), TEXT)},
        optional={"name": JSON_VALUE, "is_directed": JSON_VALUE})})
    built = st.fixed_dictionaries({"elements": st.fixed_dictionaries({
        "nodes": st.lists(st.one_of(node, JSON_VALUE), max_size=4), "edges": st.lists(st.one_of(edge, JSON_VALUE), max_size=3),
    })}, optional={"data": JSON_VALUE})
    return st.one_of(st.just(GRAPH), built, JSON_VALUE, st.sampled_from([deep(150), deep(600)]))


def style_json() -> st.SearchStrategy[Any]:
    entry = st.fixed_dictionaries({"selector": TEXT}, optional={
        "style": st.dictionaries(st.sampled_from(["shape", "line-style", "background-color", "target-arrow-shape"]),
                                 JSON_VALUE, max_size=3)})
    return st.one_of(st.none(), JSON_VALUE, st.fixed_dictionaries({"style": st.one_of(st.lists(entry, max_size=3), JSON_VALUE)}))


# --- the REST API v1 -------------------------------------------------------------------

FIELDS = {
    "graph": {"name": TEXT, "graph_json": graph_json(), "style_json": style_json(), "tags": JSON_VALUE,
              "is_public": SCALAR, "owner_email": TEXT, "default_layout_id": SCALAR},
    "layout": {"name": TEXT, "positions_json": JSON_VALUE, "style_json": JSON_VALUE, "is_shared": SCALAR,
               "graph_id": SCALAR, "owner_email": TEXT},
    "group": {"name": TEXT, "description": TEXT, "owner_email": TEXT, "member_email": TEXT, "member_id": SCALAR,
              "graph_id": SCALAR, "group_id": SCALAR},
}
QUERY = ["owner_email", "member_email", "is_public", "is_shared", "names[]", "nodes[]", "edges[]", "tags[]",
         "names", "name", "description", "limit", "offset", "sort", "order"]
# (method, path template, body kind): the routes of graphspace/api/urls.py.
ROUTES = [
    ("GET", "graphs/", None), ("POST", "graphs/", "graph"),
    ("GET", "graphs/{graph}", None), ("PUT", "graphs/{graph}", "graph"), ("DELETE", "graphs/{graph}", None),
    ("GET", "graphs/{graph}/layouts/", None), ("POST", "graphs/{graph}/layouts/", "layout"),
    ("GET", "graphs/{graph}/layouts/{layout}", None), ("PUT", "graphs/{graph}/layouts/{layout}", "layout"),
    ("DELETE", "graphs/{graph}/layouts/{layout}", None),
    ("GET", "graphs/{graph}/groups", None), ("POST", "graphs/{graph}/groups", "group"),
    ("DELETE", "graphs/{graph}/groups/{group}", None),
    ("GET", "groups/", None), ("POST", "groups/", "group"),
    ("GET", "groups/{group}", None), ("PUT", "groups/{group}", "group"), ("DELETE", "groups/{group}", None),
    ("GET", "groups/{group}/members", None), ("POST", "groups/{group}/members", "group"),
    ("DELETE", "groups/{group}/members/{user}", None),
    ("GET", "groups/{group}/graphs", None), ("POST", "groups/{group}/graphs", "group"),
    ("DELETE", "groups/{group}/graphs/{graph}", None),
]
ID = st.one_of(st.just("real"), st.integers(min_value=0, max_value=10**22).map(str))


@st.composite
def v1_request(draw: Callable[..., Any]) -> tuple[str, str, str, str]:
    method, template, kind = draw(st.sampled_from(ROUTES))
    # Mostly the route's own method and real ids, so that most requests reach the parsing
    # and the action; the rest probe the routing.
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    path = template
    for name in ("graph", "layout", "group", "user"):
        token = "{" + name + "}"
        if token in path and draw(st.integers(0, 9)) < 2:
            path = path.replace(token, draw(ID).replace("real", "0"))
    query = draw(st.lists(st.tuples(st.sampled_from(QUERY), st.one_of(TEXT, NUMBER.map(str))), max_size=5))
    body, content_type = "", "application/json"
    if kind or draw(st.booleans()):
        fields = FIELDS[kind or "graph"]
        data = draw(st.fixed_dictionaries({}, optional=fields))
        if kind != "group" and draw(st.integers(0, 9)) < 8:
            body = json.dumps(data) if draw(st.integers(0, 9)) else draw(st.sampled_from(["{", "[1]", "nul\x00", '{"a": NaN}']))
        else:
            content_type = "application/x-www-form-urlencoded"
            body = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()})
    return method, path + ("?" + urlencode(query) if query else ""), body, content_type


@FUZZ
@given(request=v1_request())
def test_the_rest_api_never_answers_500(world: dict[str, Any], request: tuple[str, str, str, str]) -> None:
    method, path, body, content_type = request
    for name in ("graph", "layout", "group", "user"):
        path = path.replace("{" + name + "}", str(world[name]))
    client = api_client(world["people"].alice)
    with rolled_back():
        response = client.generic(method, f"/api/v1/{path}", body, content_type=content_type)
    answered("API v1", response, f"{method} {path} {body[:200]!r}")
    if response.status_code >= 400 and response["Content-Type"].startswith("application/json"):
        assert {"status_code", "error_code", "error_message"} <= set(response.json())


# --- the notifications API, from its OpenAPI document ----------------------------------

NOTIFICATIONS = schemathesis.openapi.from_dict(SPEC)
OPERATIONS = [result.ok() for result in NOTIFICATIONS.get_all_operations()]
CASES = st.one_of(*[
    operation.as_strategy(generation_mode=mode)
    for operation in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
])


@FUZZ
@given(case=CASES)
def test_the_notifications_api_never_answers_500(world: dict[str, Any], case: Any) -> None:
    client = api_client(world["people"].bob)
    path = "/api/v1/notifications" + case.formatted_path
    query = urlencode(case.query or {}, doseq=True)
    url = path + ("?" + query if query else "")
    with rolled_back():
        if isinstance(case.body, NotSet):
            response = client.generic(case.method, url)
        else:
            body = case.body if isinstance(case.body, str | bytes) else json.dumps(case.body)
            response = client.generic(case.method, url, body, content_type=case.media_type or "application/json")
    answered("notifications API", response, f"{case.method} {url} {case.body!r:.200}")


# --- the pages' forms ------------------------------------------------------------------

FORMS = [
    ("/graphs/", {"name": TEXT, "graph_json": graph_json().map(json.dumps), "style_json": style_json().map(json.dumps),
                  "tags": TEXT, "is_public": TEXT}),
    ("/graphs/{graph}/update/", {"name": TEXT, "graph_json": graph_json().map(json.dumps), "style_json": TEXT,
                                 "is_public": TEXT}),
    ("/graphs/{graph}/share/", {"group_id": st.one_of(TEXT, NUMBER.map(str))}),
    ("/graphs/{graph}/groups/{group}/unshare/", {"next": TEXT}),
    ("/graphs/{graph}/layouts/", {"name": TEXT, "positions_json": st.one_of(TEXT, JSON_VALUE.map(json.dumps)),
                                  "is_shared": TEXT}),
    ("/graphs/{graph}/layouts/{layout}/update/", {"name": TEXT, "positions_json": st.one_of(TEXT, JSON_VALUE.map(json.dumps))}),
    ("/graphs/{graph}/layouts/{layout}/share/", {"is_shared": TEXT}),
    ("/groups/", {"name": TEXT, "description": TEXT}),
    ("/groups/{group}/update/", {"name": TEXT, "description": TEXT}),
    ("/groups/{group}/members/", {"email": TEXT}),
    ("/groups/{group}/members/{user}/remove/", {}),
    ("/graphs/{graph}/watch/", {"watch": TEXT}),
    ("/graphs/{graph}/layouts/{layout}/watch/", {"watch": TEXT}),
    ("/notifications/preferences/", {"receive_notification_email": TEXT, "site.owner.update": TEXT, "email.group.share": TEXT}),
    ("/notifications/preferences/mute/", {"group_id": st.one_of(st.just("{group}"), TEXT, NUMBER.map(str)), "muted": TEXT}),
]
PAGES = ["/", "/graphs/", "/groups/", "/graphs/{graph}/", "/groups/{group}/", "/notifications/", "/notifications/preferences/"]


@st.composite
def form_post(draw: Callable[..., Any]) -> tuple[str, str, dict[str, str]]:
    if draw(st.integers(0, 4)) == 0:
        page = draw(st.sampled_from(PAGES))
        params = draw(st.dictionaries(st.sampled_from(["q", "since", "until", "state", "topic", "type", "resource", "group_id"]),
                                      TEXT, max_size=4))
        return "GET", page, params
    url, fields = draw(st.sampled_from(FORMS))
    return "POST", url, draw(st.fixed_dictionaries({}, optional=fields))


@FUZZ
@given(request=form_post())
def test_the_pages_never_answer_500(world: dict[str, Any], request: tuple[str, str, dict[str, str]]) -> None:
    method, url, data = request
    for name in ("graph", "layout", "group", "user"):
        url = url.replace("{" + name + "}", str(world[name]))
        data = {k: v.replace("{" + name + "}", str(world[name])) for k, v in data.items()}
    client = Client(raise_request_exception=False)  # a view's exception is the 500 a browser gets
    client.force_login(world["people"].alice)
    with rolled_back():
        response = client.get(url, data) if method == "GET" else client.post(url, data)
    answered("pages", response, f"{method} {url} {data!r:.300}")
