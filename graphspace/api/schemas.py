"""Request schemas of the REST API v1: where a request's body and query string become typed
values, or a 400 with GraphSpace's error body. The base model, the shared field types and the
body reader are apiedge/schemas.py (the notifications API uses them too); here are API v1's
own: names, tags, graph JSON, and the query strings with PHP-style arrays.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.http import HttpRequest
from pydantic import BeforeValidator

from apiedge.schemas import Flag, Id, M, PageNumber, QueryText, Schema, Text, text, validate
from graphspace.actions import JSON_DEPTH_MAX


def _tags(value: Any) -> Any:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise ValueError("must be a list of strings")
    return value


def _json_depth(value: Any) -> Any:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > JSON_DEPTH_MAX:
            raise ValueError(f"is nested more than {JSON_DEPTH_MAX} levels deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


# Names: their length is a rule of the domain (actions.clean_name, GraphSpace's 1015).
Name = Annotated[str, BeforeValidator(text)]
Tags = Annotated[list[Text], BeforeValidator(_tags)]
Json = Annotated[Any, BeforeValidator(_json_depth)]
JsonObject = Annotated[dict[str, Any] | None, BeforeValidator(_json_depth)]


# --- bodies ----------------------------------------------------------------------------

class GraphCreate(Schema):
    name: Name | None = None
    graph_json: Json = None
    style_json: Json = None
    tags: Tags = []
    is_public: Flag = None
    owner_email: Text | None = None


class GraphUpdate(Schema):
    name: Name | None = None
    graph_json: Json = None
    style_json: Json = None
    is_public: Flag = None
    default_layout_id: Id | None = None


class LayoutCreate(Schema):
    name: Name | None = None
    graph_id: Id | None = None
    positions_json: JsonObject = None
    style_json: JsonObject = None
    is_shared: Flag = None
    owner_email: Text | None = None


class LayoutUpdate(Schema):
    name: Name | None = None
    positions_json: JsonObject = None
    style_json: JsonObject = None
    is_shared: Flag = None


class GroupCreate(Schema):
    name: Name | None = None
    description: Text | None = None
    owner_email: Text | None = None


class GroupUpdate(Schema):
    name: Name | None = None
    description: Text | None = None


class MemberAdd(Schema):
    member_email: Text | None = None
    member_id: Id | None = None


class GraphRef(Schema):
    graph_id: Id


class GroupRef(Schema):
    group_id: Id


# --- query strings ---------------------------------------------------------------------

class Page(Schema):
    limit: PageNumber = 20
    offset: PageNumber = 0
    sort: QueryText | None = None
    order: QueryText | None = None


class GraphQuery(Page):
    owner_email: QueryText | None = None
    member_email: QueryText | None = None
    is_public: QueryText | None = None
    names: list[QueryText] = []
    nodes: list[QueryText] = []
    edges: list[QueryText] = []
    tags: list[QueryText] = []


class LayoutQuery(Page):
    owner_email: QueryText | None = None
    is_shared: QueryText | None = None
    name: QueryText | None = None


class GroupQuery(Page):
    owner_email: QueryText | None = None
    member_email: QueryText | None = None
    name: QueryText | None = None
    description: QueryText | None = None


class GroupGraphQuery(Page):
    owner_email: QueryText | None = None
    names: QueryText | None = None


_LISTS = ("names", "nodes", "edges", "tags")


def query(request: HttpRequest, model: type[M]) -> M:
    """The query string: one value per name; the PHP-style arrays `names[]=a&names[]=b`
    (also accepted without the brackets) as lists."""
    params: dict[str, Any] = {}
    for key in request.GET:
        bare = key[:-2] if key.endswith("[]") else key
        if bare in _LISTS and model is GraphQuery:
            params.setdefault(bare, []).extend(request.GET.getlist(key))
        else:
            params[bare] = request.GET.get(key)
    params = {k: v for k, v in params.items() if v not in ("", None)}
    return validate(model, params)
