"""Request schemas of the REST API v1 and the notifications API: where a request's body and
query string become typed values, or a 400 with GraphSpace's error body.

Pydantic models (the project already validates events with it, notifications/events.py), in
lax mode so the official client's values keep working: `is_public` as 0/1, "0"/"1" or a
bool, ids as numbers or digit strings, a group's fields as a form. Whatever passes fits its
column: no NUL in any string, integers within PostgreSQL's bigint, JSON a few levels deep.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, QueryDict
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from graphspace.actions import JSON_DEPTH_MAX
from graphspace.api import errors

BIGINT_MAX = 2**63 - 1
# OFFSET and LIMIT are bigint in PostgreSQL; GraphSpace set no upper bound of its own.
PAGE_MAX = 2**31 - 1
# A query parameter longer than this is not a search anyone types.
QUERY_TEXT_MAX = 1000


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _text(value: Any) -> Any:
    """A string; numbers are taken as their text (the original str()-ed them)."""
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a string")
    if isinstance(value, int | float):
        value = str(value)
    return _no_nul(value)


def _integer(value: Any) -> Any:
    """An integer sent as a number or as digits (forms send text)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit() or len(value) > 20:
            raise ValueError("must be an integer")
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _flag(value: Any) -> Any:
    """GraphSpace's 0/1 flags: bool(int(value)), refusing what is not an integer."""
    if value in (None, ""):
        return None
    try:
        number = _integer(value)
    except ValueError:
        number = None
    if not isinstance(number, int):
        raise ValueError("must be 0 or 1")
    return bool(number)


def _boolean(value: Any) -> Any:
    """true/false, as JSON or as form text ("true", "false", "1", "0")."""
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


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


Text = Annotated[str, BeforeValidator(_text)]
# Names: their length is a rule of the domain (actions.clean_name, GraphSpace's 1015).
Name = Annotated[str, BeforeValidator(_text)]
QueryText = Annotated[str, BeforeValidator(_no_nul), Field(max_length=QUERY_TEXT_MAX)]
Flag = Annotated[bool | None, BeforeValidator(_flag)]
Id = Annotated[int, BeforeValidator(_integer), Field(ge=0, le=BIGINT_MAX)]
PageNumber = Annotated[int, BeforeValidator(_integer), Field(ge=0, le=PAGE_MAX)]
Tags = Annotated[list[Text], BeforeValidator(_tags)]
Json = Annotated[Any, BeforeValidator(_json_depth)]
JsonObject = Annotated[dict[str, Any] | None, BeforeValidator(_json_depth)]


class Schema(BaseModel):
    # Unknown fields are ignored, as GraphSpace did (the client sends a few we do not use).
    model_config = ConfigDict(extra="ignore")


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


class NotificationSettings(Schema):
    receive_notification_email: Annotated[bool, BeforeValidator(_boolean)]


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


M = TypeVar("M", bound=Schema)

_LISTS = ("names", "nodes", "edges", "tags")


def _message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "The body"
    return f"{where} {first['msg'].removeprefix('Value error, ')}."


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise errors.bad_request(_message(error)) from None


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


def raw_body(request: HttpRequest) -> dict[str, Any]:
    """The request body as a dict: JSON (graphs, layouts) or a form (groups), by content."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise errors.ApiError(413, errors.BAD_REQUEST, "The request body is too large.") from None
    if not raw:
        return {}
    content_type = request.META.get("CONTENT_TYPE", "")
    if "json" in content_type:
        try:
            data = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError) as error:
            # ValueError: not JSON, not UTF-8, NaN, or an integer of more than 4,300 digits.
            raise errors.bad_request(f"The request body is not valid JSON: {str(error)[:200]}") from None
        if not isinstance(data, dict):
            raise errors.bad_request("The request body must be a JSON object.")
        return data
    try:
        form = QueryDict(raw, encoding="utf-8")
    except TooManyFieldsSent:
        raise errors.bad_request("The request has too many fields.") from None
    return {k: form.get(k) for k in form.keys()}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def body(request: HttpRequest, model: type[M]) -> M:
    return validate(model, raw_body(request))
