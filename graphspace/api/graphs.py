"""API v1: graphs and their layouts."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest

from apiedge import errors
from apiedge.schemas import body
from graphspace import actions, permissions
from graphspace.api import schemas, serializers
from graphspace.models import Graph, User

Answer = tuple[int, Any]

GRAPH_SORTS = {"id", "name", "owner_email", "is_public", "created_at", "updated_at"}
LAYOUT_SORTS = {"name": "name", "update_at": "updated_at", "updated_at": "updated_at", "owner_email": "owner__email"}


def like_regex(pattern: str) -> str:
    """GraphSpace matches with ILIKE: `%` and `_` are wildcards, the rest is literal."""
    out: list[str] = []
    for char in pattern:
        if char == "%":
            if out[-1:] != [".*"]:  # %% is %: PostgreSQL finds a long run of .* too complex
                out.append(".*")
        else:
            out.append("." if char == "_" else re.escape(char))
    return "^" + "".join(out) + "$"


def like_pattern(text: str) -> str:
    """An ILIKE pattern with GraphSpace's wildcards, % and _, and a backslash taken as itself
    (ILIKE's escape character: a pattern ending in one is an error in PostgreSQL)."""
    return text.replace("\\", "\\\\")


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
        node = like_pattern(node)
        by_elements &= Q(RawSQL(NODE_SQL, [node, node], output_field=BooleanField()))
    for edge in edges:
        source, sep, target = edge.partition(":")
        if not sep or not source or not target:
            raise errors.bad_request(f"An edge is written source:target, not {edge!r}.")
        source, target = like_pattern(source), like_pattern(target)
        by_elements &= Q(RawSQL(EDGE_SQL, [source, target, target, source], output_field=BooleanField()))
    if names and (nodes or edges):
        return by_name | by_elements
    if names:
        return by_name
    if nodes or edges:
        return by_elements
    return None


def _ordered(qs: QuerySet[Any], page: schemas.Page, allowed: dict[str, str], default: str) -> QuerySet[Any]:
    sort = allowed.get(page.sort or default)
    if sort is None:
        raise errors.bad_request(f"Cannot sort by {page.sort}.")
    prefix = "" if (page.order or "desc").lower() == "asc" else "-"
    return qs.order_by(prefix + sort, prefix + "id")


def _page(qs: QuerySet[Any], page: schemas.Page) -> tuple[int, list[Any]]:
    return qs.count(), list(qs[page.offset : page.offset + page.limit])


def query_flag(value: str | None) -> bool | None:
    """A flag in a query string: 1, true or yes; anything else given is false."""
    if value is None:
        return None
    return value.lower() in ("1", "true", "yes")


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


# --- /api/v1/graphs/ -------------------------------------------------------------------

def list_graphs(request: HttpRequest, user: User) -> Answer:
    q = schemas.query(request, schemas.GraphQuery)
    owner_email, member_email = _lower(q.owner_email), _lower(q.member_email)
    is_public = query_flag(q.is_public)
    refusal = permissions.graph_list_refusal(user, owner_email, member_email, is_public)
    if refusal == "no_filter":
        raise errors.bad_request(
            "Atleast one of these variables is required: is_public, owner_email or member_email.",
            errors.IS_PUBLIC_NOT_SET,
        )
    if refusal:
        raise errors.bad_request(
            f"User is not authorized to access private graphs created by "
            f"{owner_email if refusal == 'others_private' else member_email}.",
            errors.NOT_ALLOWED_GRAPH_ACCESS,
        )
    qs = Graph.objects.select_related("owner")
    if owner_email:
        qs = qs.filter(owner__email=owner_email)
    if member_email:
        qs = qs.filter(shared_groups__groupmember__user__email=member_email)
    if is_public is not None:
        qs = qs.filter(is_public=is_public)
    match = name_or_elements(q.names, q.nodes, q.edges)
    if match is not None:
        qs = qs.filter(match)
    for tag in q.tags:
        qs = qs.filter(tags__contains=[tag])
    qs = qs.distinct()
    sorts = {s: ("owner__email" if s == "owner_email" else s) for s in GRAPH_SORTS}
    total, graphs = _page(_ordered(qs, q, sorts, "name"), q)
    return 200, {"total": total, "graphs": [serializers.graph_summary(g) for g in graphs]}


def create_graph(request: HttpRequest, user: User) -> Answer:
    data = body(request, schemas.GraphCreate)
    if (data.owner_email or user.email).lower() != user.email:
        raise errors.bad_request(
            "Cannot create graph with owner email other than the requesting user.",
            errors.CANNOT_CREATE_GRAPH_FOR_OTHER_USER,
        )
    if not data.name:
        raise errors.bad_request("name is required.")
    if data.graph_json is None:
        raise errors.bad_request("graph_json is required.")
    graph = actions.upload_graph(
        user, name=data.name, graph_json=data.graph_json, style_json=data.style_json,
        tags=data.tags, is_public=bool(data.is_public),
    )
    return 201, serializers.graph_full(graph)


# --- /api/v1/graphs/<id> ---------------------------------------------------------------

def get_graph(request: HttpRequest, user: User, graph_id: int) -> Answer:
    return 200, serializers.graph_full(actions.find_graph(user, graph_id))


def update_graph(request: HttpRequest, user: User, graph_id: int) -> Answer:
    graph = actions.find_graph(user, graph_id, "edit")
    data = body(request, schemas.GraphUpdate)
    graph = actions.update_graph(
        user, graph, name=data.name, is_public=data.is_public, graph_json=data.graph_json,
        style_json=data.style_json,
        default_layout_id=data.default_layout_id if "default_layout_id" in data.model_fields_set else actions.UNSET,
    )
    return 200, serializers.graph_full(graph)


def delete_graph(request: HttpRequest, user: User, graph_id: int) -> Answer:
    actions.delete_graph(user, actions.find_graph(user, graph_id, "delete"))
    return 200, {"message": f"Successfully deleted graph with id={graph_id}"}


# --- /api/v1/graphs/<id>/layouts/ ------------------------------------------------------

def list_layouts(request: HttpRequest, user: User, graph_id: int) -> Answer:
    graph = actions.find_graph(user, graph_id)
    q = schemas.query(request, schemas.LayoutQuery)
    owner_email = _lower(q.owner_email)
    is_shared = query_flag(q.is_shared)
    if not permissions.may_list_layouts(user, owner_email, is_shared):
        raise errors.bad_request(
            "User is not authorized to access layouts which are not shared.",
            errors.NOT_ALLOWED_LAYOUT_ACCESS,
        )
    qs = permissions.visible_layouts(user, graph).select_related("owner")
    if owner_email:
        qs = qs.filter(owner__email=owner_email)
    if is_shared is not None:
        qs = qs.filter(is_shared=is_shared)
    if q.name:
        qs = qs.filter(name__iregex=like_regex(q.name))
    total, layouts = _page(_ordered(qs, q, LAYOUT_SORTS, "name"), q)
    return 200, {"total": total, "layouts": [serializers.layout(item) for item in layouts]}


def create_layout(request: HttpRequest, user: User, graph_id: int) -> Answer:
    data = body(request, schemas.LayoutCreate)
    if (data.owner_email or user.email).lower() != user.email:
        raise errors.bad_request(
            "Cannot create layout with owner email other than the requesting user.",
            errors.CANNOT_CREATE_LAYOUT_FOR_OTHER_USER,
        )
    # GraphSpace takes the graph from the body (the client sends it); the URL's is the default.
    graph = actions.find_graph(user, data.graph_id or graph_id, "add_layout")
    if not data.name:
        raise errors.bad_request("name is required.")
    layout = actions.create_layout(
        user, graph, name=data.name, positions_json=data.positions_json, style_json=data.style_json,
        is_shared=bool(data.is_shared),
    )
    return 201, serializers.layout(layout)


# --- /api/v1/graphs/<id>/layouts/<id> --------------------------------------------------

def get_layout(request: HttpRequest, user: User, graph_id: int, layout_id: int) -> Answer:
    return 200, serializers.layout(actions.find_layout(user, graph_id, layout_id))


def update_layout(request: HttpRequest, user: User, graph_id: int, layout_id: int) -> Answer:
    layout = actions.find_layout(user, graph_id, layout_id, "edit")
    data = body(request, schemas.LayoutUpdate)
    layout = actions.update_layout(
        user, layout, name=data.name, positions_json=data.positions_json, style_json=data.style_json,
        is_shared=data.is_shared,
    )
    return 200, serializers.layout(layout)


def delete_layout(request: HttpRequest, user: User, graph_id: int, layout_id: int) -> Answer:
    actions.delete_layout(user, actions.find_layout(user, graph_id, layout_id, "edit"))
    return 200, {"message": f"Successfully deleted layout with id={layout_id}"}
