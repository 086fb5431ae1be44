"""The notifications page and the link behind each notification."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from graphspace import actions, permissions
from graphspace.models import Graph, Group, Layout, User
from notifications import preferences, queries
from notifications.queries import BadFilter, Filters
from notifications.recipients import KIND_TYPES, settings_view
from notifications.serializers import cluster_json


@login_required
@require_GET
def page(request: HttpRequest) -> HttpResponse:
    user = request.user
    problem: str | None = None
    try:
        filters = Filters.parse(request.GET)
    except BadFilter as error:
        filters, problem = Filters(), str(error)
    views, next_cursor = queries.cluster_page(user, filters, None, 20)  # type: ignore[arg-type]
    groups = Group.objects.filter(groupmember__user=user).order_by("name").values("id", "name")
    return render(request, "notifications/page.html", {
        "filters": filters,
        "problem": problem,
        "groups": list(groups),
        "initial": {
            "clusters": [cluster_json(v, user.email) for v in views],
            "next_cursor": next_cursor,
            "filters": filters.as_params(),
        },
        "types": queries.TYPES,
        "resources": queries.RESOURCES,
    })


@login_required
@require_GET
def open_item(request: HttpRequest, topic: str, pk: int) -> HttpResponse:
    """Open what the notification is about, or say plainly it is gone.

    It changes nothing: a GET is what a link prefetcher, a mail scanner or a crawler sends too,
    and none of them has read anything. The page marks the notification read with a POST to
    the API as the person clicks (notifications/static/notifications/page.js)."""
    row = queries.item(request.user, topic, pk)  # type: ignore[arg-type]
    if row is None:
        raise Http404("No such notification.")
    target: str | None = None
    graph_id = getattr(row, "graph_id", None)
    if topic == "watching" and row.resource == "layout" and graph_id and Layout.objects.filter(pk=row.resource_id).exists():
        target = f"/graphs/{graph_id}/?layout={row.resource_id}"
    elif row.resource == "graph" and Graph.objects.filter(pk=row.resource_id).exists():
        target = f"/graphs/{row.resource_id}/"
    elif row.resource == "layout":
        layout = Layout.objects.filter(pk=row.resource_id).values("graph_id").first()
        if layout:
            target = f"/graphs/{layout['graph_id']}/?layout={row.resource_id}"
    elif row.resource == "group" and Group.objects.filter(pk=row.resource_id).exists():
        target = f"/groups/{row.resource_id}/"
    elif row.resource == "group_member":
        group_id = getattr(row, "group_id", None)
        if group_id and Group.objects.filter(pk=group_id, groupmember__user=request.user).exists():
            target = f"/groups/{group_id}/"
    if target:
        return redirect(target)
    return render(request, "notifications/gone.html", {"row": row}, status=410)


KIND_LABELS = {"owner": "My resources", "group": "My groups", "watching": "What I watch"}


@login_required
@require_http_methods(["GET", "POST"])
def preferences_page(request: HttpRequest) -> HttpResponse:
    """Every kind and type of notification, on the site and in the digest, and the groups to
    mute. The form sends the whole state (a box not ticked is off): set, never toggled."""
    user = request.user
    assert isinstance(user, User)
    if request.method == "POST":
        changes = [
            preferences.Change(kind, type, f"site.{kind}.{type}" in request.POST, f"email.{kind}.{type}" in request.POST)
            for kind, types in KIND_TYPES.items() for type in types
        ]
        preferences.set_many(user, changes, digest="receive_notification_email" in request.POST)
        messages.success(request, "Preferences saved.")
        return redirect("notification-preferences")
    view = settings_view(preferences.read(user))
    muted = preferences.muted_group_ids(user)
    groups = [{"id": g.id, "name": g.name, "muted": g.id in muted}
              for g in permissions.my_groups(user).order_by("name", "id")]
    return render(request, "notifications/preferences.html", {
        "digest": User.objects.filter(pk=user.pk).values_list("receive_notification_email", flat=True).first(),
        "kinds": [{"kind": kind, "label": KIND_LABELS[kind],
                   "rows": [{"type": t, **view[kind][t]} for t in types]} for kind, types in KIND_TYPES.items()],
        "groups": groups,
    })


@login_required
@require_POST
def mute_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    raw = request.POST.get("group_id", "")
    if not (raw.isascii() and raw.isdigit() and int(raw) <= queries.BIGINT_MAX):
        raise Http404("No such group.")
    try:
        group = actions.find_group(user, int(raw))
    except actions.NotFound:
        raise Http404("No such group.") from None
    muted = request.POST.get("muted") == "1"
    preferences.set_mute(user, group, muted)
    messages.success(request, f"{'Muted' if muted else 'Unmuted'} {group.name}.")
    if request.POST.get("back") == "group":
        return redirect("group", group_id=group.id)
    return redirect("notification-preferences")
