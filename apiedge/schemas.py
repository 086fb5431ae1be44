"""The request-schema layer shared by the site's JSON APIs (the REST API v1 in
graphspace/api/schemas.py, the notifications API in notifications/api.py): the base model,
the field types every API uses, and reading a body into a model, with a refusal as a 400 in
GraphSpace's error body.

Pydantic models (the project already validates events with it, notifications/events.py), in
lax mode so the official client's values keep working: `is_public` as 0/1, "0"/"1" or a
bool, ids as numbers or digit strings, a group's fields as a form. Whatever passes fits its
column: no NUL in any string, integers within PostgreSQL's bigint.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, QueryDict
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from apiedge import errors

BIGINT_MAX = 2**63 - 1
# OFFSET and LIMIT are bigint in PostgreSQL; GraphSpace set no upper bound of its own.
PAGE_MAX = 2**31 - 1
# A query parameter longer than this is not a search anyone types.
QUERY_TEXT_MAX = 1000


def no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def text(value: Any) -> Any:
    """A string; numbers are taken as their text (the original str()-ed them)."""
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a string")
    if isinstance(value, int | float):
        value = str(value)
    return no_nul(value)


def integer(value: Any) -> Any:
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


def flag(value: Any) -> Any:
    """GraphSpace's 0/1 flags: bool(int(value)), refusing what is not an integer."""
    if value in (None, ""):
        return None
    try:
        number = integer(value)
    except ValueError:
        number = None
    if not isinstance(number, int):
        raise ValueError("must be 0 or 1")
    return bool(number)


def boolean(value: Any) -> Any:
    """true/false, as JSON or as form text ("true", "false", "1", "0")."""
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


Text = Annotated[str, BeforeValidator(text)]
QueryText = Annotated[str, BeforeValidator(no_nul), Field(max_length=QUERY_TEXT_MAX)]
Flag = Annotated[bool | None, BeforeValidator(flag)]
Boolean = Annotated[bool, BeforeValidator(boolean)]
Id = Annotated[int, BeforeValidator(integer), Field(ge=0, le=BIGINT_MAX)]
PageNumber = Annotated[int, BeforeValidator(integer), Field(ge=0, le=PAGE_MAX)]


class Schema(BaseModel):
    # Unknown fields are ignored, as GraphSpace did (the client sends a few we do not use).
    model_config = ConfigDict(extra="ignore")


M = TypeVar("M", bound=Schema)


def _message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "The body"
    return f"{where} {first['msg'].removeprefix('Value error, ')}."


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise errors.bad_request(_message(error)) from None


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
