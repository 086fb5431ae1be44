"""The notifications page and the link behind each notification."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from graphspace.models import Graph, Group, Layout
from notifications import queries
from notifications.queries import BadFilter, Filters
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
    if row.resource == "graph" and Graph.objects.filter(pk=row.resource_id).exists():
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
