"""The GraphSpace pages: graphs, layouts, groups, members and sharing, for a browser.

Every change goes through `graphspace.actions`, so each one publishes its notification
after commit exactly as the REST API's do, and the permission rules are the API's: a
resource the user may not read is a 404, a readable one the user may not change is a 403.
A failed form is shown again with the user's input and the error; a success redirects.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from graphspace import actions
from graphspace.cyjs import GraphFormatError
from graphspace.models import Graph, Group, GroupMember, Layout, User
from graphspace.permissions import can_admin_group, can_read_graph, can_read_group, can_read_layout

# What a user can fix by changing the form; anything else is a bug and a 500.
USER_ERRORS = (actions.ActionError, GraphFormatError, ValueError)
LIST_LIMIT = 100


# --- form helpers ----------------------------------------------------------------------

def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) if value not in (None, {}, []) else ""


def _parse_json(text: str, label: str, *, required: bool = False) -> Any:
    text = text.strip()
    if not text:
        if required:
            raise ValueError(f"{label} is required.")
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{label} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).") from None


def _parse_object(text: str, label: str) -> dict[str, Any] | None:
    value = _parse_json(text, label)
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{label} must be a JSON object.")
    return value


def _required(data: QueryDict, field: str, label: str) -> str:
    value = (data.get(field) or "").strip()
    if not value:
        raise ValueError(f"{label} is required.")
    return value


def _form(initial: dict[str, Any], data: QueryDict | None) -> dict[str, Any]:
    """The values a form shows: the initial ones, or what the user sent (a failed submit)."""
    if data is None:
        return initial
    return {key: (key in data) if isinstance(value, bool) else data.get(key, "") for key, value in initial.items()}


def _post_id(data: QueryDict, field: str, label: str) -> int:
    try:
        return int(data.get(field) or "")
    except ValueError:
        raise ValueError(f"Choose a {label}.") from None


# --- lookups: the API's rules (graphspace/api/graphs.py, groups.py) ---------------------

def _readable_graph(user: User, graph_id: int) -> Graph:
    graph = Graph.objects.select_related("owner").filter(pk=graph_id).first()
    if graph is None or not can_read_graph(user, graph):
        raise Http404("No such graph.")
    return graph


def _editable_graph(user: User, graph_id: int) -> Graph:
    graph = _readable_graph(user, graph_id)
    if not (graph.owner_id == user.id or user.is_admin):
        raise PermissionDenied("Only the graph's owner can change it.")
    return graph


def _owned_graph(user: User, graph_id: int) -> Graph:
    graph = _readable_graph(user, graph_id)
    if graph.owner_id != user.id:
        raise PermissionDenied("Only the graph's owner can delete it.")
    return graph


def _owned_layout(user: User, graph: Graph, layout_id: int) -> Layout:
    layout = Layout.objects.select_related("owner", "graph").filter(pk=layout_id, graph=graph).first()
    if layout is None or not can_read_layout(user, layout):
        raise Http404("No such layout.")
    if layout.owner_id != user.id:
        raise PermissionDenied("Only the layout's owner can change it.")
    return layout


def _readable_group(user: User, group_id: int) -> Group:
    group = Group.objects.select_related("owner").filter(pk=group_id).first()
    if group is None or not can_read_group(user, group):
        raise Http404("No such group.")
    return group


def _owned_group(user: User, group_id: int) -> Group:
    group = _readable_group(user, group_id)
    if not can_admin_group(user, group):
        raise PermissionDenied("Only the group's owner can change it.")
    return group


def _my_groups(user: User) -> QuerySet[Group]:
    return Group.objects.filter(Q(owner=user) | Q(groupmember__user=user)).distinct()


def _can_share(user: User, graph: Graph) -> bool:
    return graph.owner_id == user.id or graph.is_public or user.is_admin


def _can_unshare(user: User, group: Group, graph: Graph) -> bool:
    return graph.owner_id == user.id or can_admin_group(user, group)


# --- dashboard -------------------------------------------------------------------------

@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    mine = Graph.objects.filter(owner=user)
    shared = Graph.objects.filter(shared_groups__groupmember__user=user).exclude(owner=user).distinct()
    groups = _my_groups(user)
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


def _graphs_page(request: HttpRequest, data: QueryDict | None = None, status: int = 200) -> HttpResponse:
    user = _user(request)
    search = (request.GET.get("q") or "").strip()
    graphs = Graph.objects.select_related("owner").order_by("name", "id")
    if search:
        graphs = graphs.filter(name__icontains=search)
    sections = [
        ("mine", "My graphs", graphs.filter(owner=user)),
        ("shared", "Shared with me", graphs.filter(shared_groups__groupmember__user=user).exclude(owner=user).distinct()),
        ("public", "Public graphs", graphs.filter(is_public=True).exclude(owner=user)),
    ]
    return render(request, "graphspace/graphs.html", {
        "sections": [
            {"key": key, "title": title, "graphs": list(qs[:LIST_LIMIT]), "total": qs.count()}
            for key, title, qs in sections
        ],
        "limit": LIST_LIMIT,
        "search": search,
        "form": _form(UPLOAD_FORM, data),
        "failed": data is not None,
    }, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def graphs(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _graphs_page(request)
    data = request.POST
    try:
        graph = actions.upload_graph(
            _user(request),
            name=_required(data, "name", "Name"),
            graph_json=_parse_json(data.get("graph_json", ""), "Graph JSON", required=True),
            style_json=_parse_json(data.get("style_json", ""), "Style JSON"),
            tags=[tag.strip() for tag in data.get("tags", "").split(",") if tag.strip()],
            is_public="is_public" in data,
        )
    except USER_ERRORS as error:
        messages.error(request, str(error))
        return _graphs_page(request, data, status=400)
    messages.success(request, f"Uploaded graph {graph.name}.")
    return redirect("graph", graph_id=graph.id)


def _graph_page(
    request: HttpRequest, graph: Graph, failed: str = "", data: QueryDict | None = None,
    layout_id: int | None = None,
) -> HttpResponse:
    """The graph page; `failed` names the form whose input `data` is shown again."""
    user = _user(request)
    elements = graph.graph_json.get("elements", {}) if isinstance(graph.graph_json, dict) else {}
    is_owner = graph.owner_id == user.id
    can_edit = is_owner or user.is_admin

    shared_in = Group.objects.filter(groupgraph__graph=graph).select_related("owner").order_by("name", "id")
    if not user.is_admin:
        shared_in = shared_in.filter(Q(owner=user) | Q(groupmember__user=user)).distinct()
    shared_groups = [{"group": g, "can_unshare": _can_unshare(user, g, graph)} for g in shared_in]
    share_choices = _my_groups(user).exclude(groupgraph__graph=graph).order_by("name", "id") if _can_share(user, graph) else []

    layouts = Layout.objects.filter(graph=graph).select_related("owner").order_by("name", "id")
    if not user.is_admin:
        layouts = layouts.filter(Q(owner=user) | Q(is_shared=True))
    layout_rows = []
    for layout in layouts:
        initial = {"name": layout.name, "positions_json": _json_text(layout.positions_json)}
        again = data if failed == "layout_update" and layout.id == layout_id else None
        layout_rows.append({
            "layout": layout, "mine": layout.owner_id == user.id, "form": _form(initial, again), "failed": again is not None,
        })

    update_initial = {
        "name": graph.name, "is_public": graph.is_public,
        "graph_json": _json_text(graph.graph_json), "style_json": _json_text(graph.style_json),
    }
    layout_initial = {"name": "", "positions_json": "", "is_shared": False}
    return render(request, "graphspace/graph.html", {
        "graph": graph,
        "node_count": len(elements.get("nodes") or []),
        "edge_count": len(elements.get("edges") or []),
        "graph_json_text": json.dumps(graph.graph_json, indent=2, ensure_ascii=False),
        "is_owner": is_owner,
        "can_edit": can_edit,
        "can_share": _can_share(user, graph),
        "shared_groups": shared_groups,
        "share_choices": share_choices,
        "layouts": layout_rows,
        "update_form": _form(update_initial, data if failed == "update" else None),
        "layout_form": _form(layout_initial, data if failed == "layout_create" else None),
        "failed": failed,
    }, status=400 if failed else 200)


@login_required
@require_GET
def graph(request: HttpRequest, graph_id: int) -> HttpResponse:
    return _graph_page(request, _readable_graph(_user(request), graph_id))


@login_required
@require_POST
def update_graph(request: HttpRequest, graph_id: int) -> HttpResponse:
    user = _user(request)
    graph = _editable_graph(user, graph_id)
    data = request.POST
    try:
        graph = actions.update_graph(user, graph, {
            "name": _required(data, "name", "Name"),
            "is_public": 1 if "is_public" in data else 0,
            "graph_json": _parse_json(data.get("graph_json", ""), "Graph JSON", required=True),
            "style_json": _parse_json(data.get("style_json", ""), "Style JSON"),
        })
    except USER_ERRORS as error:
        messages.error(request, str(error))
        return _graph_page(request, graph, "update", data)
    messages.success(request, f"Updated graph {graph.name}.")
    return redirect("graph", graph_id=graph.id)


@login_required
@require_http_methods(["GET", "POST"])
def delete_graph(request: HttpRequest, graph_id: int) -> HttpResponse:
    user = _user(request)
    graph = _owned_graph(user, graph_id)
    if request.method == "GET":
        return render(request, "graphspace/confirm_delete.html", {
            "kind": "graph", "name": graph.name, "cancel_url": f"/graphs/{graph.id}/",
            "consequence": "Its layouts are deleted with it and every group it is shared with loses it.",
        })
    name = graph.name
    actions.delete_graph(user, graph)
    messages.success(request, f"Deleted graph {name}.")
    return redirect("graphs")


@login_required
@require_POST
def share_graph(request: HttpRequest, graph_id: int) -> HttpResponse:
    user = _user(request)
    graph = _readable_graph(user, graph_id)
    if not _can_share(user, graph):
        raise PermissionDenied("Only the graph's owner can share it.")
    try:
        group = _readable_group(user, _post_id(request.POST, "group_id", "group"))
        actions.share_graph(user, group, graph)
    except USER_ERRORS as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Shared graph {graph.name} with group {group.name}.")
    return redirect("graph", graph_id=graph.id)


@login_required
@require_POST
def unshare_graph(request: HttpRequest, graph_id: int, group_id: int) -> HttpResponse:
    """Take a graph out of a group; the graph page and the group page both post here."""
    user = _user(request)
    group = _readable_group(user, group_id)
    graph = Graph.objects.filter(pk=graph_id).first()
    if graph is None:
        raise Http404("No such graph.")
    if not _can_unshare(user, group, graph):
        raise PermissionDenied("Only the graph's owner or the group's owner can unshare it.")
    try:
        actions.unshare_graph(user, group, graph)
    except USER_ERRORS as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Unshared graph {graph.name} from group {group.name}.")
    back = request.POST.get("next")
    if back == "group":
        return redirect("group", group_id=group.id)
    if can_read_graph(user, graph):
        return redirect("graph", graph_id=graph.id)
    return redirect("graphs")


# --- layouts ---------------------------------------------------------------------------

@login_required
@require_POST
def create_layout(request: HttpRequest, graph_id: int) -> HttpResponse:
    user = _user(request)
    graph = _readable_graph(user, graph_id)
    data = request.POST
    try:
        layout = actions.create_layout(
            user, graph,
            name=_required(data, "name", "Layout name"),
            positions_json=_parse_object(data.get("positions_json", ""), "Positions JSON"),
            is_shared="is_shared" in data,
        )
    except USER_ERRORS as error:
        messages.error(request, str(error))
        return _graph_page(request, graph, "layout_create", data)
    messages.success(request, f"Created layout {layout.name}.")
    return redirect("graph", graph_id=graph.id)


@login_required
@require_POST
def update_layout(request: HttpRequest, graph_id: int, layout_id: int) -> HttpResponse:
    user = _user(request)
    graph = _readable_graph(user, graph_id)
    layout = _owned_layout(user, graph, layout_id)
    data = request.POST
    try:
        layout = actions.update_layout(user, layout, {
            "name": _required(data, "name", "Layout name"),
            "positions_json": _parse_object(data.get("positions_json", ""), "Positions JSON") or {},
        })
    except USER_ERRORS as error:
        messages.error(request, str(error))
        return _graph_page(request, graph, "layout_update", data, layout_id=layout.id)
    messages.success(request, f"Updated layout {layout.name}.")
    return redirect("graph", graph_id=graph.id)


@login_required
@require_POST
def share_layout(request: HttpRequest, graph_id: int, layout_id: int) -> HttpResponse:
    """Share (is_shared=1) or unshare (is_shared=0) a layout with everyone who sees the graph."""
    user = _user(request)
    graph = _readable_graph(user, graph_id)
    layout = _owned_layout(user, graph, layout_id)
    is_shared = request.POST.get("is_shared") == "1"
    try:
        layout = actions.update_layout(user, layout, {"is_shared": int(is_shared)})
    except USER_ERRORS as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{'Shared' if is_shared else 'Unshared'} layout {layout.name}.")
    return redirect("graph", graph_id=graph.id)


@login_required
@require_POST
def delete_layout(request: HttpRequest, graph_id: int, layout_id: int) -> HttpResponse:
    user = _user(request)
    graph = _readable_graph(user, graph_id)
    layout = _owned_layout(user, graph, layout_id)
    name = layout.name
    actions.delete_layout(user, layout)
    messages.success(request, f"Deleted layout {name}.")
    return redirect("graph", graph_id=graph.id)


# --- groups ----------------------------------------------------------------------------

GROUP_FORM = {"name": "", "description": ""}


def _groups_page(request: HttpRequest, data: QueryDict | None = None, status: int = 200) -> HttpResponse:
    user = _user(request)
    groups = (
        _my_groups(user).select_related("owner")
        .annotate(n_graphs=Count("groupgraph", distinct=True), n_members=Count("groupmember", distinct=True))
        .order_by("name", "id")
    )
    return render(request, "graphspace/groups.html", {
        "owned": [g for g in groups if g.owner_id == user.id],
        "joined": [g for g in groups if g.owner_id != user.id],
        "form": _form(GROUP_FORM, data),
    }, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def groups(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _groups_page(request)
    data = request.POST
    try:
        group = actions.create_group(
            _user(request), name=_required(data, "name", "Group name"), description=data.get("description", "").strip(),
        )
    except USER_ERRORS as error:
        messages.error(request, str(error))
        return _groups_page(request, data, status=400)
    messages.success(request, f"Created group {group.name}.")
    return redirect("group", group_id=group.id)


def _group_page(request: HttpRequest, group: Group, failed: str = "", data: QueryDict | None = None) -> HttpResponse:
    user = _user(request)
    is_owner = can_admin_group(user, group)
    members = GroupMember.objects.filter(group=group).select_related("user").order_by("user__email")
    shared = Graph.objects.filter(groupgraph__group=group).select_related("owner").order_by("name", "id")
    return render(request, "graphspace/group.html", {
        "group": group,
        "is_owner": is_owner,
        "is_member": any(m.user_id == user.id for m in members),
        "members": members,
        "graphs": [{"graph": g, "can_unshare": is_owner or g.owner_id == user.id} for g in shared],
        "update_form": _form({"name": group.name, "description": group.description}, data if failed == "update" else None),
        "member_form": _form({"email": ""}, data if failed == "member" else None),
        "failed": failed,
    }, status=400 if failed else 200)


@login_required
@require_GET
def group(request: HttpRequest, group_id: int) -> HttpResponse:
    return _group_page(request, _readable_group(_user(request), group_id))


@login_required
@require_POST
def update_group(request: HttpRequest, group_id: int) -> HttpResponse:
    user = _user(request)
    group = _owned_group(user, group_id)
    data = request.POST
    try:
        group = actions.update_group(user, group, {
            "name": _required(data, "name", "Group name"), "description": data.get("description", "").strip(),
        })
    except USER_ERRORS as error:
        messages.error(request, str(error))
        return _group_page(request, group, "update", data)
    messages.success(request, f"Updated group {group.name}.")
    return redirect("group", group_id=group.id)


@login_required
@require_http_methods(["GET", "POST"])
def delete_group(request: HttpRequest, group_id: int) -> HttpResponse:
    user = _user(request)
    group = _owned_group(user, group_id)
    if request.method == "GET":
        return render(request, "graphspace/confirm_delete.html", {
            "kind": "group", "name": group.name, "cancel_url": f"/groups/{group.id}/",
            "consequence": "Its members lose access to the graphs shared with it; the graphs themselves stay.",
        })
    name = group.name
    actions.delete_group(user, group)
    messages.success(request, f"Deleted group {name}.")
    return redirect("groups")


@login_required
@require_POST
def add_member(request: HttpRequest, group_id: int) -> HttpResponse:
    user = _user(request)
    group = _owned_group(user, group_id)
    data = request.POST
    try:
        email = _required(data, "email", "Email").lower()
        member = User.objects.filter(email=email).first()
        if member is None:
            raise ValueError(f"No GraphSpace user has the email {email}.")
        actions.add_member(user, group, member)
    except USER_ERRORS as error:
        messages.error(request, str(error))
        return _group_page(request, group, "member", data)
    messages.success(request, f"Added {member.email} to group {group.name}.")
    return redirect("group", group_id=group.id)


@login_required
@require_POST
def remove_member(request: HttpRequest, group_id: int, member_id: int) -> HttpResponse:
    """The owner removes anyone but themselves; a member may leave."""
    user = _user(request)
    group = _readable_group(user, group_id)
    if not (can_admin_group(user, group) or member_id == user.id):
        raise PermissionDenied("Only the group's owner can remove members.")
    member = User.objects.filter(pk=member_id).first()
    if member is None:
        raise Http404("No such member.")
    try:
        actions.remove_member(user, group, member)
    except USER_ERRORS as error:
        messages.error(request, str(error))
        return redirect("group", group_id=group.id)
    if member.id == user.id:
        messages.success(request, f"You left group {group.name}.")
        return redirect("group", group_id=group.id) if can_read_group(user, group) else redirect("groups")
    messages.success(request, f"Removed {member.email} from group {group.name}.")
    return redirect("group", group_id=group.id)


urlpatterns = [
    path("", home, name="home"),
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
