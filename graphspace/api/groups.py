"""API v1: groups, their members and the graphs shared with them."""

from __future__ import annotations

from django.db.models import Count, Q
from django.http import HttpRequest

from graphspace import actions
from graphspace.api import errors, serializers
from graphspace.api.graphs import Answer, _ordered, _page, get_graph_or_403, like_regex
from graphspace.api.http import as_int, body
from graphspace.models import Graph, Group, User
from graphspace.permissions import can_admin_group, can_read_group

GROUP_SORTS = {"name": "name", "updated_at": "updated_at", "owner_email": "owner__email"}


def _group(group_id: int) -> Group | None:
    return Group.objects.select_related("owner").filter(pk=group_id).first()


def readable_group_or_403(user: User, group_id: int) -> Group:
    group = _group(group_id)
    if group is None or not can_read_group(user, group):
        raise errors.not_authorized()
    return group


def owned_group_or_403(user: User, group_id: int) -> Group:
    group = _group(group_id)
    if group is None or not can_admin_group(user, group):
        raise errors.not_authorized()
    return group


def _with_totals(qs):  # type: ignore[no-untyped-def]
    return qs.annotate(
        n_graphs=Count("groupgraph", distinct=True), n_members=Count("groupmember", distinct=True)
    )


def _serialize(group: Group) -> dict[str, object]:
    return serializers.group(group, getattr(group, "n_graphs", None), getattr(group, "n_members", None))


# --- /api/v1/groups/ -------------------------------------------------------------------

def list_groups(request: HttpRequest, user: User) -> Answer:
    owner_email = (request.GET.get("owner_email") or "").lower() or None
    member_email = (request.GET.get("member_email") or "").lower() or None
    if not user.is_admin and owner_email != user.email and member_email != user.email:
        raise errors.bad_request(
            "User is not authorized to access groups they are not a member of.",
            errors.NOT_ALLOWED_GROUP_ACCESS,
        )
    qs = Group.objects.select_related("owner")
    if owner_email:
        qs = qs.filter(owner__email=owner_email)
    if member_email:
        qs = qs.filter(Q(groupmember__user__email=member_email) | Q(owner__email=member_email))
    if request.GET.get("name"):
        qs = qs.filter(name__iregex=like_regex(request.GET["name"]))
    if request.GET.get("description"):
        qs = qs.filter(description__iregex=like_regex(request.GET["description"]))
    qs = qs.distinct()
    total, groups = _page(_ordered(_with_totals(qs), request, GROUP_SORTS, "name"), request)
    return 200, {"total": total, "groups": [_serialize(g) for g in groups]}


def create_group(request: HttpRequest, user: User) -> Answer:
    data = body(request)
    owner_email = (data.get("owner_email") or user.email).lower()
    if owner_email != user.email:
        raise errors.bad_request(
            "Cannot create group with owner email other than the requesting user.",
            errors.CANNOT_CREATE_GROUP_FOR_OTHER_USER,
        )
    if not data.get("name"):
        raise errors.bad_request("name is required.")
    group = actions.create_group(user, name=str(data["name"]), description=str(data.get("description") or ""))
    return 201, serializers.group(group, 0, 1)


# --- /api/v1/groups/<id> ---------------------------------------------------------------

def get_group(request: HttpRequest, user: User, group_id: int) -> Answer:
    return 200, serializers.group(readable_group_or_403(user, group_id))


def update_group(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = owned_group_or_403(user, group_id)
    group = actions.update_group(user, group, body(request))
    return 200, serializers.group(group)


def delete_group(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = owned_group_or_403(user, group_id)
    actions.delete_group(user, group)
    return 200, {"message": f"Successfully deleted group with id={group_id}"}


# --- /api/v1/groups/<id>/members -------------------------------------------------------

def list_members(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = readable_group_or_403(user, group_id)
    members = list(group.members.order_by("email"))
    return 200, {"members": [serializers.member(m) for m in members], "total": len(members)}


def add_member(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = owned_group_or_403(user, group_id)
    data = body(request)
    if data.get("member_email"):
        member = User.objects.filter(email=str(data["member_email"]).strip().lower()).first()
    elif data.get("member_id"):
        member = User.objects.filter(pk=as_int(data["member_id"], "member_id")).first()
    else:
        raise errors.bad_request("member_email or member_id is required.")
    if member is None:
        raise errors.bad_request("User does not exist.")
    actions.add_member(user, group, member)
    return 201, {"user_id": member.id, "group_id": str(request.resolver_match.kwargs["group_id"])}  # type: ignore[union-attr]


def remove_member(request: HttpRequest, user: User, group_id: int, member_id: int) -> Answer:
    group = _group(group_id)
    # The owner removes anyone; a member may leave.
    if group is None or not (can_admin_group(user, group) or (member_id == user.id and can_read_group(user, group))):
        raise errors.not_authorized()
    member = User.objects.filter(pk=member_id).first()
    if member is None:
        raise errors.bad_request("User does not exist.")
    actions.remove_member(user, group, member)
    return 200, {"message": f"Successfully deleted member with id={member_id} from group with id={group_id}"}


# --- /api/v1/groups/<id>/graphs --------------------------------------------------------

def list_group_graphs(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = readable_group_or_403(user, group_id)
    qs = Graph.objects.select_related("owner").filter(groupgraph__group=group)
    if request.GET.get("owner_email"):
        qs = qs.filter(owner__email=request.GET["owner_email"].lower())
    if request.GET.get("names"):
        qs = qs.filter(name__iregex=like_regex(request.GET["names"]))
    total, graphs = _page(qs.order_by("name", "id"), request)
    return 200, {"total": total, "graphs": [serializers.graph_full(g) for g in graphs]}


def _share(user: User, group: Group, graph_id: int) -> Answer:
    graph = get_graph_or_403(user, graph_id)
    if not (graph.owner_id == user.id or graph.is_public or user.is_admin):
        raise errors.not_authorized()
    shared = actions.share_graph(user, group, graph)
    return 201, {
        "graph_id": graph.id,
        "group_id": str(group.id),
        "created_at": serializers.timestamp(shared.created_at),
        "updated_at": serializers.timestamp(shared.updated_at),
    }


def _unshare(user: User, group: Group, graph_id: int) -> Answer:
    graph = Graph.objects.filter(pk=graph_id).first()
    if graph is None:
        raise errors.not_authorized()
    # The graph's owner or the group's owner may take a graph out of a group.
    if not (graph.owner_id == user.id or can_admin_group(user, group)):
        raise errors.not_authorized()
    actions.unshare_graph(user, group, graph)
    return 200, {"message": f"Successfully deleted graph with id={graph_id} from group with id={group.id}"}


def share_graph(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = readable_group_or_403(user, group_id)
    return _share(user, group, as_int(body(request).get("graph_id"), "graph_id"))


def unshare_graph(request: HttpRequest, user: User, group_id: int, graph_id: int) -> Answer:
    return _unshare(user, readable_group_or_403(user, group_id), graph_id)


# --- /api/v1/graphs/<id>/groups (server-only twins) ------------------------------------

def list_graph_groups(request: HttpRequest, user: User, graph_id: int) -> Answer:
    graph = get_graph_or_403(user, graph_id)
    groups = _with_totals(Group.objects.select_related("owner").filter(groupgraph__graph=graph))
    visible = [g for g in groups.order_by("name") if can_read_group(user, g)]
    return 200, {"total": len(visible), "groups": [_serialize(g) for g in visible]}


def share_graph_with_group(request: HttpRequest, user: User, graph_id: int) -> Answer:
    group = readable_group_or_403(user, as_int(body(request).get("group_id"), "group_id"))
    return _share(user, group, graph_id)


def unshare_graph_from_group(request: HttpRequest, user: User, graph_id: int, group_id: int) -> Answer:
    return _unshare(user, readable_group_or_403(user, group_id), graph_id)

