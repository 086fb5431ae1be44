"""The REST API v1's answer to a domain error of graphspace.actions (graphspace-api.md 1.2).
GraphSpace's error body and codes themselves are in apiedge/errors.py, shared with the
notifications API."""

from __future__ import annotations

from apiedge import errors
from apiedge.errors import ApiError
from graphspace import actions


def from_action(error: actions.DomainError) -> ApiError:
    """A domain error of graphspace.actions as GraphSpace answers it (api.md 1.2): no 404s
    (a missing resource is a forbidden one), a conflict or a bad value is a 400."""
    if isinstance(error, actions.NotFound | actions.Forbidden):
        return errors.not_authorized()
    if isinstance(error, actions.AlreadyMember):
        return errors.bad_request(str(error), errors.USER_ALREADY_EXISTS)
    if isinstance(error, actions.LayoutNameTaken):
        return errors.bad_request(str(error), errors.LAYOUT_NAME_ALREADY_EXISTS)
    if isinstance(error, actions.NameTooLong) and error.resource == "graph":
        return errors.bad_request(str(error), errors.GRAPH_NAME_SIZE)
    return errors.bad_request(str(error))


def translate(error: Exception) -> ApiError | None:
    """For apiedge.http.api_view: the domain errors an API v1 handler lets through."""
    return from_action(error) if isinstance(error, actions.DomainError) else None
