"""API v1: graphs and their layouts."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest

from graphspace import actions
from graphspace.api import errors, serializers
from graphspace.api.http import as_int, body, query_flag, query_int, query_list
from graphspace.models import Graph, Layout, User
from graphspace.permissions import can_read_graph, can_read_layout

Answer = tuple[int, Any]

GRAPH_SORTS = {"id", "name", "owner_email", "is_public", "created_at", "updated_at"}
LAYOUT_SORTS = {"name": "name", "update_at": "updated_at", "updated_at": "updated_at", "owner_email": "owner__email"}


def like_regex(pattern: str) -> str:
    """GraphSpace matches with ILIKE: `%` and `_` are wildcards, the rest is literal."""
    out = []
    for char in pattern:
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return "^" + "".join(out) + "$"


# A node matches by name or label; an edge "u:v" matches in either direction by its ends'
# names (node ids). ILIKE keeps GraphSpace's wildcards: % and _.
NODE_SQL = (
    "EXISTS (SELECT 1 FROM jsonb_array_elements(\"graph\".\"graph_json\"->'elements'->'nodes') AS n "
    "WHERE n->'data'->>'name' ILIKE %s OR n->'data'->>'label' ILIKE %s)"
)
EDGE_SQL = (
    "EXISTS (SELECT 1 FROM jsonb_array_elements(\"graph\".\"graph_json\"->'elements'->'edges') AS e "
    "WHERE (e->'data'->>'source' ILIKE %s AND e->'data'->>'target' ILIKE %s) "
    "OR (e->'data'->>'source' ILIKE %s AND e->'data'->>'target' ILIKE %s))"
)


def name_or_elements(names: list[str], nodes: list[str], edges: list[str]) -> Q | None:
    """GraphSpace's search: any of the names, OR all of the nodes and edges."""
    by_name = Q()
    for name in names:
        by_name |= Q(name__iregex=like_regex(name))
    by_elements = Q()
    for node in nodes:
        by_elements &= Q(RawSQL(NODE_SQL, [node, node], output_field=BooleanField()))
    for edge in edges:
        source, sep, target = edge.partition(":")
        if not sep or not source or not target:
            raise errors.bad_request(f"An edge is written source:target, not {edge!r}.")
        by_elements &= Q(RawSQL(EDGE_SQL, [source, target, target, source], output_field=BooleanField()))
    if names and (nodes or edges):
        return by_name | by_elements
    if names:
        return by_name
    if nodes or edges:
        return by_elements
    return None


def _ordered(qs: QuerySet[Any], request: HttpRequest, allowed: dict[str, str], default: str) -> QuerySet[Any]:
    sort = allowed.get(request.GET.get("sort") or default)
    if sort is None:
        raise errors.bad_request(f"Cannot sort by {request.GET.get('sort')}.")
    order = (request.GET.get("order") or "desc").lower()
    prefix = "" if order == "asc" else "-"
    return qs.order_by(prefix + sort, prefix + "id")


def _page(qs: QuerySet[Any], request: HttpRequest) -> tuple[int, list[Any]]:
    limit = query_int(request, "limit", 20)
    offset = query_int(request, "offset", 0)
    total = qs.count()
    return total, list(qs[offset : offset + limit])


def get_graph_or_403(user: User, graph_id: int) -> Graph:
    graph = Graph.objects.select_related("owner").filter(pk=graph_id).first()
    if graph is None or not can_read_graph(user, graph):
        raise errors.not_authorized()
    return graph


def _owned_graph_or_403(user: User, graph_id: int) -> Graph:
    graph = Graph.objects.select_related("owner").filter(pk=graph_id).first()
    if graph is None or not (graph.owner_id == user.id or user.is_admin):
        raise errors.not_authorized()
    return graph


# --- /api/v1/graphs/ -------------------------------------------------------------------

def list_graphs(request: HttpRequest, user: User) -> Answer:
    owner_email = (request.GET.get("owner_email") or "").lower() or None
    member_email = (request.GET.get("member_email") or "").lower() or None
    is_public = query_flag(request, "is_public")
    if not user.is_admin:
        if owner_email is None and member_email is None and not is_public:
            raise errors.bad_request(
                "Atleast one of these variables is required: is_public, owner_email or member_email.",
                errors.IS_PUBLIC_NOT_SET,
            )
        if owner_email and owner_email != user.email and not is_public:
            raise errors.bad_request(
                f"User is not authorized to access private graphs created by {owner_email}.",
                errors.NOT_ALLOWED_GRAPH_ACCESS,
            )
        if member_email and member_email != user.email:
            raise errors.bad_request(
                f"User is not authorized to access private graphs created by {member_email}.",
                errors.NOT_ALLOWED_GRAPH_ACCESS,
            )
    qs = Graph.objects.select_related("owner")
    if owner_email:
        qs = qs.filter(owner__email=owner_email)
    if member_email:
        qs = qs.filter(shared_groups__groupmember__user__email=member_email)
    if is_public is not None:
        qs = qs.filter(is_public=is_public)
    match = name_or_elements(query_list(request, "names"), query_list(request, "nodes"), query_list(request, "edges"))
    if match is not None:
        qs = qs.filter(match)
    for tag in query_list(request, "tags"):
        qs = qs.filter(tags__contains=[tag])
    qs = qs.distinct()
    sorts = {s: ("owner__email" if s == "owner_email" else s) for s in GRAPH_SORTS}
    total, graphs = _page(_ordered(qs, request, sorts, "name"), request)
    return 200, {"total": total, "graphs": [serializers.graph_summary(g) for g in graphs]}


def create_graph(request: HttpRequest, user: User) -> Answer:
    data = body(request)
    owner_email = (data.get("owner_email") or user.email).lower()
    if owner_email != user.email:
        raise errors.bad_request(
            "Cannot create graph with owner email other than the requesting user.",
            errors.CANNOT_CREATE_GRAPH_FOR_OTHER_USER,
        )
    name = data.get("name")
    if not name:
        raise errors.bad_request("name is required.")
    if data.get("graph_json") is None:
        raise errors.bad_request("graph_json is required.")
    graph = actions.upload_graph(
        user,
        name=str(name),
        graph_json=data["graph_json"],
        style_json=data.get("style_json"),
        tags=data.get("tags") or [],
        is_public=bool(int(data.get("is_public") or 0)),
    )
    return 201, serializers.graph_full(graph)


# --- /api/v1/graphs/<id> ---------------------------------------------------------------

def get_graph(request: HttpRequest, user: User, graph_id: int) -> Answer:
    return 200, serializers.graph_full(get_graph_or_403(user, graph_id))


def update_graph(request: HttpRequest, user: User, graph_id: int) -> Answer:
    graph = _owned_graph_or_403(user, graph_id)
    data = body(request)
    graph = actions.update_graph(user, graph, data)
    return 200, serializers.graph_full(graph)


def delete_graph(request: HttpRequest, user: User, graph_id: int) -> Answer:
    graph = Graph.objects.select_related("owner").filter(pk=graph_id).first()
    if graph is None or graph.owner_id != user.id:
        raise errors.not_authorized()
    actions.delete_graph(user, graph)
    return 200, {"message": f"Successfully deleted graph with id={graph_id}"}


# --- /api/v1/graphs/<id>/layouts/ ------------------------------------------------------

def list_layouts(request: HttpRequest, user: User, graph_id: int) -> Answer:
    graph = get_graph_or_403(user, graph_id)
    owner_email = (request.GET.get("owner_email") or "").lower() or None
    is_shared = query_flag(request, "is_shared")
    if not user.is_admin and owner_email != user.email and not is_shared:
        raise errors.bad_request(
            "User is not authorized to access layouts which are not shared.",
            errors.NOT_ALLOWED_LAYOUT_ACCESS,
        )
    qs = Layout.objects.select_related("owner").filter(graph=graph)
    if owner_email:
        qs = qs.filter(owner__email=owner_email)
    if is_shared is not None:
        qs = qs.filter(is_shared=is_shared)
    name = request.GET.get("name")
    if name:
        qs = qs.filter(name__iregex=like_regex(name))
    total, layouts = _page(_ordered(qs, request, LAYOUT_SORTS, "name"), request)
    return 200, {"total": total, "layouts": [serializers.layout(item) for item in layouts]}


def create_layout(request: HttpRequest, user: User, graph_id: int) -> Answer:
    data = body(request)
    owner_email = (data.get("owner_email") or user.email).lower()
    if owner_email != user.email:
        raise errors.bad_request(
            "Cannot create layout with owner email other than the requesting user.",
            errors.CANNOT_CREATE_LAYOUT_FOR_OTHER_USER,
        )
    # GraphSpace takes the graph from the body (the client sends it); the URL's is the default.
    graph = get_graph_or_403(user, as_int(data.get("graph_id") or graph_id, "graph_id"))
    name = data.get("name")
    if not name:
        raise errors.bad_request("name is required.")
    layout = actions.create_layout(
        user,
        graph,
        name=str(name),
        positions_json=data.get("positions_json"),
        style_json=data.get("style_json"),
        is_shared=bool(int(data.get("is_shared") or 0)),
    )
    return 201, serializers.layout(layout)


# --- /api/v1/graphs/<id>/layouts/<id> --------------------------------------------------

def _layout_or_403(user: User, layout_id: int, *, owner_only: bool) -> Layout:
    layout = Layout.objects.select_related("owner", "graph").filter(pk=layout_id).first()
    if layout is None:
        raise errors.not_authorized()
    allowed = layout.owner_id == user.id if owner_only else can_read_layout(user, layout)
    if not allowed:
        raise errors.not_authorized()
    return layout


def get_layout(request: HttpRequest, user: User, graph_id: int, layout_id: int) -> Answer:
    return 200, serializers.layout(_layout_or_403(user, layout_id, owner_only=False))


def update_layout(request: HttpRequest, user: User, graph_id: int, layout_id: int) -> Answer:
    layout = _layout_or_403(user, layout_id, owner_only=True)
    layout = actions.update_layout(user, layout, body(request))
    return 200, serializers.layout(layout)


def delete_layout(request: HttpRequest, user: User, graph_id: int, layout_id: int) -> Answer:
    layout = _layout_or_403(user, layout_id, owner_only=True)
    actions.delete_layout(user, layout)
    return 200, {"message": f"Successfully deleted layout with id={layout_id}"}
