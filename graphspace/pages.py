"""The GraphSpace pages: graphs, layouts, groups, members and sharing, for a browser.

Each view is an edge: a Django form (graphspace/forms.py) turns the POST into typed values,
`graphspace.actions` finds the resource, enforces the permission rule and does the change
(publishing its notification in the same transaction), and the view maps what comes back: a
resource the user may not read is a 404 (actions.NotFound), one the user reads but may not
change a 403 (actions.Forbidden), any other refusal a form error shown again with the
user's input. A success redirects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms as django_forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from graphspace import actions, forms, permissions
from graphspace.models import Graph, Group, GroupMember, User
from notifications import preferences

LIST_LIMIT = 100
View = Callable[..., HttpResponse]


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def page(view: View) -> View:
    """A page view for a logged-in user, with the actions' refusals as HTTP answers."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except actions.NotFound as error:
            raise Http404(str(error)) from None
        except actions.Forbidden as error:
            raise PermissionDenied(str(error)) from None

    return wrapped


def _failed(request: HttpRequest, error: actions.ActionError | django_forms.Form) -> None:
    message = forms.first_error(error) if isinstance(error, django_forms.Form) else str(error)
    messages.error(request, message)


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) if value not in (None, {}, []) else ""


# --- dashboard -------------------------------------------------------------------------

@page
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    mine = Graph.objects.filter(owner=user)
    shared = permissions.shared_with(user)
    groups = permissions.my_groups(user)
    return render(request, "graphspace/home.html", {
        "graph_count": mine.count(),
        "shared_count": shared.count(),
        "group_count": groups.count(),
        "recent_graphs": mine.order_by("-updated_at", "-id")[:5],
        "recent_shared": shared.select_related("owner").order_by("-updated_at", "-id")[:5],
        "groups": groups.select_related("owner").order_by("name", "id")[:5],
    })


# --- graphs ----------------------------------------------------------------------------

UPLOAD_FORM = {"name": "", "graph_json": "", "style_json": "", "tags": "", "is_public": False}


class SearchForm(django_forms.Form):
    q = django_forms.CharField(required=False, max_length=256)


def _graphs_page(request: HttpRequest, form: django_forms.Form | None = None) -> HttpResponse:
    user = _user(request)
    search_form = SearchForm(request.GET)
    search = search_form.cleaned_data["q"].strip() if search_form.is_valid() else ""
    if not search_form.is_valid():
        _failed(request, search_form)
    graphs = Graph.objects.select_related("owner").order_by("name", "id")
    if search:
        graphs = graphs.filter(name__icontains=search)
    sections = [
        ("mine", "My graphs", graphs.filter(owner=user)),
        ("shared", "Shared with me", permissions.shared_with(user, graphs)),
        ("public", "Public graphs", graphs.filter(is_public=True).exclude(owner=user)),
    ]
    failed = form is not None
    return render(request, "graphspace/graphs.html", {
        "sections": [
            {"key": key, "title": title, "graphs": list(qs[:LIST_LIMIT]), "total": qs.count()}
            for key, title, qs in sections
        ],
        "limit": LIST_LIMIT,
        "search": search,
        "form": forms.shown(form or forms.GraphUploadForm(), UPLOAD_FORM),
        "failed": failed,
    }, status=400 if failed or not search_form.is_valid() else 200)


@page
@require_http_methods(["GET", "POST"])
def graphs(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _graphs_page(request)
    form = forms.GraphUploadForm(request.POST)
    if not form.is_valid():
        _failed(request, form)
        return _graphs_page(request, form)
    try:
        graph = actions.upload_graph(_user(request), **form.cleaned_data)
    except actions.ActionError as error:
        _failed(request, error)
        return _graphs_page(request, form)
    messages.success(request, f"Uploaded graph {graph.name}.")
    return redirect("graph", graph_id=graph.id)


def _graph_page(
    request: HttpRequest, graph: Graph, failed: str = "", form: django_forms.Form | None = None,
    layout_id: int | None = None,
) -> HttpResponse:
    """The graph page; `failed` names the form whose input `form` is shown again."""
    user = _user(request)
    elements = graph.graph_json.get("elements", {}) if isinstance(graph.graph_json, dict) else {}

    shared_in = (
        permissions.readable_groups(user).filter(groupgraph__graph=graph).select_related("owner").order_by("name", "id")
    )
    shared_groups = [{"group": g, "can_unshare": permissions.can_unshare_graph(user, graph, g)} for g in shared_in]
    can_share = permissions.can_share_graph(user, graph)
    share_choices = permissions.my_groups(user).exclude(groupgraph__graph=graph).order_by("name", "id") if can_share else []

    layout_rows = []
    for layout in permissions.visible_layouts(user, graph).select_related("owner").order_by("name", "id"):
        initial = {"name": layout.name, "positions_json": _json_text(layout.positions_json)}
        again = form if failed == "layout_update" and layout.id == layout_id else None
        layout_rows.append({
            "layout": layout, "mine": permissions.can_edit_layout(user, layout),
            "form": forms.shown(again, initial) if again else initial, "failed": again is not None,
        })

    update_initial = {
        "name": graph.name, "is_public": graph.is_public,
        "graph_json": _json_text(graph.graph_json), "style_json": _json_text(graph.style_json),
    }
    layout_initial = {"name": "", "positions_json": "", "is_shared": False}
    watched = {(w.resource, w.resource_id) for w in actions.watches(user) if w.graph_id == graph.id}
    for row in layout_rows:
        row["watched"] = ("layout", row["layout"].id) in watched
    return render(request, "graphspace/graph.html", {
        "graph": graph,
        "watching_graph": ("graph", graph.id) in watched,
        "node_count": len(elements.get("nodes") or []),
        "edge_count": len(elements.get("edges") or []),
        "graph_json_text": json.dumps(graph.graph_json, indent=2, ensure_ascii=False),
        "is_owner": permissions.can_delete_graph(user, graph),
        "can_edit": permissions.can_edit_graph(user, graph),
        "can_share": can_share,
        "shared_groups": shared_groups,
        "share_choices": share_choices,
        "layouts": layout_rows,
        "update_form": forms.shown(form, update_initial) if form and failed == "update" else update_initial,
        "layout_form": forms.shown(form, layout_initial) if form and failed == "layout_create" else layout_initial,
        "failed": failed,
    }, status=400 if failed else 200)


@page
@require_GET
def graph(request: HttpRequest, graph_id: int) -> HttpResponse:
    return _graph_page(request, actions.find_graph(_user(request), graph_id))


@page
@require_POST
def update_graph(request: HttpRequest, graph_id: int) -> HttpResponse:
    user = _user(request)
    graph = actions.find_graph(user, graph_id, "edit")
    form = forms.GraphUpdateForm(request.POST)
    try:
        if not form.is_valid():
            raise actions.ActionError(forms.first_error(form))
        graph = actions.update_graph(user, graph, **form.cleaned_data)
    except actions.ActionError as error:
        _failed(request, error)
        return _graph_page(request, graph, "update", form)
    messages.success(request, f"Updated graph {graph.name}.")
    return redirect("graph", graph_id=graph.id)


@page
@require_http_methods(["GET", "POST"])
def delete_graph(request: HttpRequest, graph_id: int) -> HttpResponse:
    user = _user(request)
    graph = actions.find_graph(user, graph_id, "delete")
    if request.method == "GET":
        return render(request, "graphspace/confirm_delete.html", {
            "kind": "graph", "name": graph.name, "cancel_url": reverse("graph", args=[graph.id]),
            "consequence": "Its layouts are deleted with it and every group it is shared with loses it.",
        })
    name = graph.name
    actions.delete_graph(user, graph)
    messages.success(request, f"Deleted graph {name}.")
    return redirect("graphs")


@page
@require_POST
def share_graph(request: HttpRequest, graph_id: int) -> HttpResponse:
    user = _user(request)
    graph = actions.find_graph(user, graph_id, "share")
    form = forms.ShareForm(request.POST)
    if not form.is_valid():
        _failed(request, form)
        return redirect("graph", graph_id=graph.id)
    group = actions.find_group(user, form.cleaned_data["group_id"])
    try:
        actions.share_graph(user, group, graph)
    except actions.ActionError as error:
        _failed(request, error)
    else:
        messages.success(request, f"Shared graph {graph.name} with group {group.name}.")
    return redirect("graph", graph_id=graph.id)


@page
@require_POST
def unshare_graph(request: HttpRequest, graph_id: int, group_id: int) -> HttpResponse:
    """Take a graph out of a group; the graph page and the group page both post here."""
    user = _user(request)
    group = actions.find_group(user, group_id)
    graph = actions.find_graph(user, graph_id)
    form = forms.UnshareForm(request.POST)
    back = form.cleaned_data["next"] if form.is_valid() else ""
    try:
        actions.unshare_graph(user, group, graph)
    except actions.ActionError as error:
        _failed(request, error)
    else:
        messages.success(request, f"Unshared graph {graph.name} from group {group.name}.")
    if back == "group":
        return redirect("group", group_id=group.id)
    if permissions.can_read_graph(user, graph):
        return redirect("graph", graph_id=graph.id)
    return redirect("graphs")


# --- layouts ---------------------------------------------------------------------------

@page
@require_POST
def create_layout(request: HttpRequest, graph_id: int) -> HttpResponse:
    user = _user(request)
    graph = actions.find_graph(user, graph_id, "add_layout")
    form = forms.LayoutCreateForm(request.POST)
    try:
        if not form.is_valid():
            raise actions.ActionError(forms.first_error(form))
        layout = actions.create_layout(user, graph, **form.cleaned_data)
    except actions.ActionError as error:
        _failed(request, error)
        return _graph_page(request, graph, "layout_create", form)
    messages.success(request, f"Created layout {layout.name}.")
    return redirect("graph", graph_id=graph.id)


@page
@require_POST
def update_layout(request: HttpRequest, graph_id: int, layout_id: int) -> HttpResponse:
    user = _user(request)
    layout = actions.find_layout(user, graph_id, layout_id, "edit")
    form = forms.LayoutUpdateForm(request.POST)
    try:
        if not form.is_valid():
            raise actions.ActionError(forms.first_error(form))
        data = form.cleaned_data
        layout = actions.update_layout(user, layout, name=data["name"], positions_json=data["positions_json"] or {})
    except actions.ActionError as error:
        _failed(request, error)
        return _graph_page(request, layout.graph, "layout_update", form, layout_id=layout.id)
    messages.success(request, f"Updated layout {layout.name}.")
    return redirect("graph", graph_id=graph_id)


@page
@require_POST
def share_layout(request: HttpRequest, graph_id: int, layout_id: int) -> HttpResponse:
    """Share (is_shared=1) or unshare (is_shared=0) a layout with everyone who sees the graph."""
    user = _user(request)
    layout = actions.find_layout(user, graph_id, layout_id, "edit")
    form = forms.LayoutShareForm(request.POST)
    is_shared = form.is_valid() and form.shared()
    try:
        layout = actions.update_layout(user, layout, is_shared=is_shared)
    except actions.ActionError as error:
        _failed(request, error)
    else:
        messages.success(request, f"{'Shared' if is_shared else 'Unshared'} layout {layout.name}.")
    return redirect("graph", graph_id=graph_id)


@page
@require_POST
def delete_layout(request: HttpRequest, graph_id: int, layout_id: int) -> HttpResponse:
    user = _user(request)
    layout = actions.find_layout(user, graph_id, layout_id, "edit")
    name = layout.name
    actions.delete_layout(user, layout)
    messages.success(request, f"Deleted layout {name}.")
    return redirect("graph", graph_id=graph_id)


# --- groups ----------------------------------------------------------------------------

GROUP_FORM = {"name": "", "description": ""}


def _groups_page(request: HttpRequest, form: django_forms.Form | None = None) -> HttpResponse:
    user = _user(request)
    groups = (
        permissions.my_groups(user).select_related("owner")
        .annotate(n_graphs=Count("groupgraph", distinct=True), n_members=Count("groupmember", distinct=True))
        .order_by("name", "id")
    )
    return render(request, "graphspace/groups.html", {
        "owned": [g for g in groups if g.owner_id == user.id],
        "joined": [g for g in groups if g.owner_id != user.id],
        "form": forms.shown(form, GROUP_FORM) if form else GROUP_FORM,
    }, status=400 if form else 200)


@page
@require_http_methods(["GET", "POST"])
def groups(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _groups_page(request)
    form = forms.GroupForm(request.POST)
    try:
        if not form.is_valid():
            raise actions.ActionError(forms.first_error(form))
        group = actions.create_group(_user(request), **form.cleaned_data)
    except actions.ActionError as error:
        _failed(request, error)
        return _groups_page(request, form)
    messages.success(request, f"Created group {group.name}.")
    return redirect("group", group_id=group.id)


def _group_page(request: HttpRequest, group: Group, failed: str = "", form: django_forms.Form | None = None) -> HttpResponse:
    user = _user(request)
    is_owner = permissions.can_admin_group(user, group)
    members = GroupMember.objects.filter(group=group).select_related("user").order_by("user__email")
    shared = Graph.objects.filter(groupgraph__group=group).select_related("owner").order_by("name", "id")
    update_initial = {"name": group.name, "description": group.description}
    return render(request, "graphspace/group.html", {
        "group": group,
        "is_owner": is_owner,
        "is_member": any(m.user_id == user.id for m in members),
        "muted": preferences.is_muted(user, group),
        "members": members,
        "graphs": [{"graph": g, "can_unshare": permissions.can_unshare_graph(user, g, group)} for g in shared],
        "update_form": forms.shown(form, update_initial) if form and failed == "update" else update_initial,
        "member_form": forms.shown(form, {"email": ""}) if form and failed == "member" else {"email": ""},
        "failed": failed,
    }, status=400 if failed else 200)


@page
@require_GET
def group(request: HttpRequest, group_id: int) -> HttpResponse:
    return _group_page(request, actions.find_group(_user(request), group_id))


@page
@require_POST
def update_group(request: HttpRequest, group_id: int) -> HttpResponse:
    user = _user(request)
    group = actions.find_group(user, group_id, "admin")
    form = forms.GroupForm(request.POST)
    try:
        if not form.is_valid():
            raise actions.ActionError(forms.first_error(form))
        group = actions.update_group(user, group, **form.cleaned_data)
    except actions.ActionError as error:
        _failed(request, error)
        return _group_page(request, group, "update", form)
    messages.success(request, f"Updated group {group.name}.")
    return redirect("group", group_id=group.id)


@page
@require_http_methods(["GET", "POST"])
def delete_group(request: HttpRequest, group_id: int) -> HttpResponse:
    user = _user(request)
    group = actions.find_group(user, group_id, "admin")
    if request.method == "GET":
        return render(request, "graphspace/confirm_delete.html", {
            "kind": "group", "name": group.name, "cancel_url": reverse("group", args=[group.id]),
            "consequence": "Its members lose access to the graphs shared with it; the graphs themselves stay.",
        })
    name = group.name
    actions.delete_group(user, group)
    messages.success(request, f"Deleted group {name}.")
    return redirect("groups")


@page
@require_POST
def add_member(request: HttpRequest, group_id: int) -> HttpResponse:
    user = _user(request)
    group = actions.find_group(user, group_id, "admin")
    form = forms.MemberForm(request.POST)
    try:
        if not form.is_valid():
            raise actions.ActionError(forms.first_error(form))
        email = form.cleaned_data["email"]
        try:
            member = actions.find_user(user, email=email)
        except actions.NoSuchUser:
            raise actions.ActionError(f"No GraphSpace user has the email {email}.") from None
        actions.add_member(user, group, member)
    except actions.ActionError as error:
        _failed(request, error)
        return _group_page(request, group, "member", form)
    messages.success(request, f"Added {member.email} to group {group.name}.")
    return redirect("group", group_id=group.id)


@page
@require_POST
def remove_member(request: HttpRequest, group_id: int, member_id: int) -> HttpResponse:
    """The owner removes anyone but themselves; a member may leave."""
    user = _user(request)
    group = actions.find_group(user, group_id)
    try:
        member = actions.find_member(user, group, member_id)
    except actions.NoSuchUser:
        raise Http404("No such member.") from None
    try:
        actions.remove_member(user, group, member)
    except actions.ActionError as error:
        _failed(request, error)
        return redirect("group", group_id=group.id)
    if member.id == user.id:
        messages.success(request, f"You left group {group.name}.")
        return redirect("group", group_id=group.id) if permissions.can_read_group(user, group) else redirect("groups")
    messages.success(request, f"Removed {member.email} from group {group.name}.")
    return redirect("group", group_id=group.id)


# --- watching (issue 11) ------------------------------------------------------------------

@page
@require_POST
def watch_graph(request: HttpRequest, graph_id: int, layout_id: int | None = None) -> HttpResponse:
    """Watch or unwatch (the form says which: a set, never a toggle) the graph or a layout."""
    user = _user(request)
    graph = actions.find_graph(user, graph_id)
    resource, resource_id = ("layout", layout_id) if layout_id is not None else ("graph", graph.id)
    if resource == "layout":
        actions.find_layout(user, graph.id, resource_id)
    thing = f"{resource} {graph.name if resource == 'graph' else resource_id}"
    try:
        if request.POST.get("watch") == "1":
            actions.watch(user, resource, resource_id)
            messages.success(request, f"You watch {thing}: you will hear of what happens to it.")
        else:
            actions.unwatch(user, resource, resource_id)
            messages.success(request, f"You no longer watch {thing}.")
    except actions.ActionError as error:
        _failed(request, error)
    return redirect("graph", graph_id=graph.id)


urlpatterns = [
    path("", home, name="home"),
    path("graphs/<int:graph_id>/watch/", watch_graph, name="watch_graph"),
    path("graphs/<int:graph_id>/layouts/<int:layout_id>/watch/", watch_graph, name="watch_layout"),
    path("graphs/", graphs, name="graphs"),
    path("graphs/<int:graph_id>/", graph, name="graph"),
    path("graphs/<int:graph_id>/update/", update_graph, name="update_graph"),
    path("graphs/<int:graph_id>/delete/", delete_graph, name="delete_graph"),
    path("graphs/<int:graph_id>/share/", share_graph, name="share_graph"),
    path("graphs/<int:graph_id>/groups/<int:group_id>/unshare/", unshare_graph, name="unshare_graph"),
    path("graphs/<int:graph_id>/layouts/", create_layout, name="create_layout"),
    path("graphs/<int:graph_id>/layouts/<int:layout_id>/update/", update_layout, name="update_layout"),
    path("graphs/<int:graph_id>/layouts/<int:layout_id>/share/", share_layout, name="share_layout"),
    path("graphs/<int:graph_id>/layouts/<int:layout_id>/delete/", delete_layout, name="delete_layout"),
    path("groups/", groups, name="groups"),
    path("groups/<int:group_id>/", group, name="group"),
    path("groups/<int:group_id>/update/", update_group, name="update_group"),
    path("groups/<int:group_id>/delete/", delete_group, name="delete_group"),
    path("groups/<int:group_id>/members/", add_member, name="add_member"),
    path("groups/<int:group_id>/members/<int:member_id>/remove/", remove_member, name="remove_member"),
]
