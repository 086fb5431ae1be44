"""The notifications API under /api/v1/notifications/ (session or HTTP Basic, like API v1).

Every endpoint answers only for the requesting user: another user's notification or cluster
is a 404, the same answer as one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.db import transaction
from django.http import HttpRequest
from pydantic import BeforeValidator

from apiedge import errors, schemas
from graphspace import actions
from graphspace.models import Group, User
from notifications import marking, preferences, queries
from notifications.broadcast import push_count
from notifications.models import Watch
from notifications.queries import BadFilter, Filters
from notifications.recipients import KIND_TYPES, settings_view
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


def _page_of(request: HttpRequest, user: User, read: Any) -> Any:
    """One page from `read(user, filters, cursor, limit)`, with the request's parameters."""
    params = _params(request)
    try:
        return read(user, _filters(params), params.get("cursor"), queries.limit_of(params.get("limit")))  # type: ignore[no-any-return]
    except BadFilter as error:
        raise errors.bad_request(str(error)) from None


def list_clusters(request: HttpRequest, user: User) -> Answer:
    page, next_cursor, unread = _page_of(request, user, queries.cluster_page_and_count)
    return 200, {
        "clusters": [cluster_json(view, user.email) for view in page],
        "next_cursor": next_cursor,
        "unread_count": unread,
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


class NotificationSettings(schemas.Schema):
    receive_notification_email: schemas.Boolean


def put_settings(request: HttpRequest, user: User) -> Answer:
    value = schemas.body(request, NotificationSettings).receive_notification_email
    # A set, never a toggle: sending the same value twice changes nothing.
    User.objects.filter(pk=user.pk).update(receive_notification_email=value)
    return 200, {"receive_notification_email": value}


# --- watching and preferences (issue 11) ------------------------------------------------


class WatchBody(schemas.Schema):
    resource: Literal["graph", "layout"]
    resource_id: schemas.Id


Channel = Annotated[bool | None, BeforeValidator(lambda v: v if v is None else schemas.boolean(v))]


class ChannelSettings(schemas.Schema):
    site: Channel = None
    email: Channel = None


class PreferencesBody(schemas.Schema):
    receive_notification_email: Channel = None
    # {"watching": {"update": {"site": false}}}: only what is given is set.
    kinds: dict[str, dict[str, ChannelSettings]] = {}


class MuteBody(schemas.Schema):
    muted: schemas.Boolean


def _domain(error: actions.DomainError, what: str) -> errors.ApiError:
    """The notifications API's answers: 404 for what the user may not see, 400 otherwise."""
    if isinstance(error, actions.NotFound):
        return not_found(what)
    return errors.bad_request(str(error))


def translate(error: Exception) -> errors.ApiError | None:
    """For apiedge.http.api_view: a domain error a handler let through (each handler above
    answers the ones it expects itself), answered as API v1 answers them: 403 / 1004 for what
    is missing or forbidden, 400 / 1002 otherwise."""
    if isinstance(error, actions.NotFound | actions.Forbidden):
        return errors.not_authorized()
    if isinstance(error, actions.DomainError):
        return errors.bad_request(str(error))
    return None


def watch_json(w: Watch) -> dict[str, Any]:
    return {"resource": w.resource, "resource_id": w.resource_id, "graph_id": w.graph_id,
            "since": w.created_at.isoformat().replace("+00:00", "Z")}


def list_watches(request: HttpRequest, user: User) -> Answer:
    return 200, {"watches": [watch_json(w) for w in actions.watches(user)]}


def add_watch(request: HttpRequest, user: User) -> Answer:
    wanted = schemas.body(request, WatchBody)
    try:
        watch = actions.watch(user, wanted.resource, wanted.resource_id)
    except actions.DomainError as error:
        raise _domain(error, wanted.resource.capitalize()) from None
    return 200, watch_json(watch)


def remove_watch(request: HttpRequest, user: User, resource: str, resource_id: int) -> Answer:
    if resource_id > queries.BIGINT_MAX:
        raise not_found("Watch")
    try:
        ended = actions.unwatch(user, resource, int(resource_id))
    except actions.DomainError as error:
        raise _domain(error, "Watch") from None
    return 200, {"unwatched": ended}


def _preferences_json(user: User) -> dict[str, Any]:
    prefs = preferences.read(user)
    return {
        "receive_notification_email": User.objects.filter(pk=user.pk).values_list(
            "receive_notification_email", flat=True).first() or False,
        "kinds": settings_view(prefs),
        "muted_groups": sorted(prefs.muted_groups),
    }


def get_preferences(request: HttpRequest, user: User) -> Answer:
    return 200, _preferences_json(user)


def put_preferences(request: HttpRequest, user: User) -> Answer:
    body = schemas.body(request, PreferencesBody)
    changes: list[preferences.Change] = []
    for kind, types in body.kinds.items():
        for type, channels in types.items():
            if kind not in KIND_TYPES or type not in KIND_TYPES[kind]:
                raise errors.bad_request(f"kinds.{kind[:40]}.{type[:40]} is not a kind and type of notification.")
            changes.append(preferences.Change(kind, type, channels.site, channels.email))
    preferences.set_many(user, changes, digest=body.receive_notification_email)
    return 200, _preferences_json(user)


def put_mute(request: HttpRequest, user: User, group_id: int) -> Answer:
    muted = schemas.body(request, MuteBody).muted
    if group_id > queries.BIGINT_MAX:
        raise not_found("Group")
    try:
        group = actions.find_group(user, int(group_id))
    except actions.DomainError as error:
        raise _domain(error, "Group") from None
    preferences.set_mute(user, group, muted)
    return 200, {"group_id": group.id, "muted": muted}
