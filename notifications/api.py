"""The notifications API under /api/v1/notifications/ (session or HTTP Basic, like API v1).

Every endpoint answers only for the requesting user: another user's notification or cluster
is a 404, the same answer as one that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest

from graphspace.api import errors, schemas
from graphspace.models import Group, User
from notifications import marking, queries
from notifications.broadcast import push_count
from notifications.queries import BadFilter, Filters
from notifications.serializers import cluster_json, item_json

Answer = tuple[int, Any]
NOT_FOUND = 1016


def not_found(what: str) -> errors.ApiError:
    return errors.ApiError(404, NOT_FOUND, f"{what} not found.")


def _params(request: HttpRequest) -> dict[str, Any]:
    """Filters come from the query string, and for POSTs also from the body."""
    params: dict[str, Any] = dict(request.GET.items())
    if request.method in ("POST", "PUT"):
        params.update(schemas.raw_body(request))
    return params


def _filters(params: dict[str, Any]) -> Filters:
    try:
        return Filters.parse(params)
    except BadFilter as error:
        raise errors.bad_request(str(error)) from None


def _changed(user: User, changed: int) -> Answer:
    if changed:
        transaction.on_commit(lambda: push_count(user))
    return 200, {"changed": changed, "unread_count": queries.unread_count(user.email)}


def _page_of(request: HttpRequest, user: User, read: Any) -> tuple[list[Any], str | None]:
    """One page from `read(user, filters, cursor, limit)`, with the request's parameters."""
    params = _params(request)
    try:
        return read(user, _filters(params), params.get("cursor"), queries.limit_of(params.get("limit")))  # type: ignore[no-any-return]
    except BadFilter as error:
        raise errors.bad_request(str(error)) from None


def list_clusters(request: HttpRequest, user: User) -> Answer:
    page, next_cursor = _page_of(request, user, queries.cluster_page)
    return 200, {
        "clusters": [cluster_json(view, user.email) for view in page],
        "next_cursor": next_cursor,
        "unread_count": queries.unread_count(user.email),
    }


def list_items(request: HttpRequest, user: User) -> Answer:
    rows, next_cursor = _page_of(request, user, queries.items)
    groups = dict(Group.objects.filter(id__in={getattr(r, "group_id", None) for r in rows} - {None}).values_list("id", "name"))
    return 200, {
        "items": [item_json(r, user.email, groups.get(getattr(r, "group_id", None))) for r in rows],
        "next_cursor": next_cursor,
        "unread_count": queries.unread_count(user.email),
    }


def get_cluster(request: HttpRequest, user: User, cluster_id: int) -> Answer:
    try:
        found = queries.cluster_items(user, cluster_id, request.GET.get("cursor"), queries.limit_of(request.GET.get("limit"), 50))
    except BadFilter as error:
        raise errors.bad_request(str(error)) from None
    if found is None:
        raise not_found("Cluster")
    cluster, items, next_cursor = found
    group_name = cluster.group.name if cluster.group else None
    view = queries.ClusterView(cluster, items[: queries.PREVIEW])
    return 200, {
        "cluster": cluster_json(view, user.email),
        "items": [item_json(i, user.email, group_name) for i in items],
        "next_cursor": next_cursor,
    }


def get_item(request: HttpRequest, user: User, topic: str, item_id: int) -> Answer:
    row = queries.item(user, topic, item_id)
    if row is None:
        raise not_found("Notification")
    group_name = row.group.name if isinstance(row, queries.GroupNotification) else None
    return 200, item_json(row, user.email, group_name)


def count(request: HttpRequest, user: User) -> Answer:
    return 200, {"unread_count": queries.unread_count(user.email)}


def read_item(request: HttpRequest, user: User, topic: str, item_id: int) -> Answer:
    changed = marking.mark_item(user, topic, item_id)
    if changed is None:
        raise not_found("Notification")
    return _changed(user, changed)


def read_cluster(request: HttpRequest, user: User, cluster_id: int) -> Answer:
    changed = marking.mark_cluster(user, cluster_id)
    if changed is None:
        raise not_found("Cluster")
    return _changed(user, changed)


def read_all(request: HttpRequest, user: User) -> Answer:
    return _changed(user, marking.mark_all(user, _filters(_params(request))))


def get_settings(request: HttpRequest, user: User) -> Answer:
    return 200, {"receive_notification_email": user.receive_notification_email}


def put_settings(request: HttpRequest, user: User) -> Answer:
    value = schemas.body(request, schemas.NotificationSettings).receive_notification_email
    # A set, never a toggle: sending the same value twice changes nothing.
    User.objects.filter(pk=user.pk).update(receive_notification_email=value)
    return 200, {"receive_notification_email": value}
