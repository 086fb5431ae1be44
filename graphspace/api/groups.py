"""API v1: groups, their members and the graphs shared with them."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from apiedge import errors
from apiedge.schemas import body
from graphspace import actions, permissions
from graphspace.api import schemas, serializers
from graphspace.api.graphs import Answer, _lower, _ordered, _page, like_regex
from graphspace.models import Graph, Group, User

GROUP_SORTS = {"name": "name", "updated_at": "updated_at", "owner_email": "owner__email"}


def _with_totals(qs: QuerySet[Group]) -> QuerySet[Group]:
    return qs.annotate(
        n_graphs=Count("groupgraph", distinct=True), n_members=Count("groupmember", distinct=True)
    )


def _serialize(group: Group) -> dict[str, object]:
    return serializers.group(group, getattr(group, "n_graphs", None), getattr(group, "n_members", None))


# --- /api/v1/groups/ -------------------------------------------------------------------

def list_groups(request: HttpRequest, user: User) -> Answer:
    q = schemas.query(request, schemas.GroupQuery)
    owner_email, member_email = _lower(q.owner_email), _lower(q.member_email)
    if not permissions.may_list_groups(user, owner_email, member_email):
        raise errors.bad_request(
            "User is not authorized to access groups they are not a member of.",
            errors.NOT_ALLOWED_GROUP_ACCESS,
        )
    qs = Group.objects.select_related("owner")
    if owner_email:
        qs = qs.filter(owner__email=owner_email)
    if member_email:
        qs = qs.filter(Q(groupmember__user__email=member_email) | Q(owner__email=member_email))
    if q.name:
        qs = qs.filter(name__iregex=like_regex(q.name))
    if q.description:
        qs = qs.filter(description__iregex=like_regex(q.description))
    qs = qs.distinct()
    total, groups = _page(_ordered(_with_totals(qs), q, GROUP_SORTS, "name"), q)
    return 200, {"total": total, "groups": [_serialize(g) for g in groups]}


def create_group(request: HttpRequest, user: User) -> Answer:
    data = body(request, schemas.GroupCreate)
    if (data.owner_email or user.email).lower() != user.email:
        raise errors.bad_request(
            "Cannot create group with owner email other than the requesting user.",
            errors.CANNOT_CREATE_GROUP_FOR_OTHER_USER,
        )
    if not data.name:
        raise errors.bad_request("name is required.")
    group = actions.create_group(user, name=data.name, description=data.description or "")
    return 201, serializers.group(group, 0, 1)


# --- /api/v1/groups/<id> ---------------------------------------------------------------

def get_group(request: HttpRequest, user: User, group_id: int) -> Answer:
    return 200, serializers.group(actions.find_group(user, group_id))


def update_group(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = actions.find_group(user, group_id, "admin")
    data = body(request, schemas.GroupUpdate)
    group = actions.update_group(user, group, name=data.name, description=data.description)
    return 200, serializers.group(group)


def delete_group(request: HttpRequest, user: User, group_id: int) -> Answer:
    actions.delete_group(user, actions.find_group(user, group_id, "admin"))
    return 200, {"message": f"Successfully deleted group with id={group_id}"}


# --- /api/v1/groups/<id>/members -------------------------------------------------------

def list_members(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = actions.find_group(user, group_id)
    members = list(group.members.order_by("email"))
    return 200, {"members": [serializers.member(m) for m in members], "total": len(members)}


def add_member(request: HttpRequest, user: User, group_id: int) -> Answer:
    """By email, or by the id of a user the caller already knows (actions.find_user): an
    unknown id and an id of a stranger get the same "User does not exist."."""
    group = actions.find_group(user, group_id, "admin")
    data = body(request, schemas.MemberAdd)
    if data.member_email:
        member = actions.find_user(user, email=data.member_email)
    elif data.member_id:
        member = actions.find_user(user, user_id=data.member_id)
    else:
        raise errors.bad_request("member_email or member_id is required.")
    actions.add_member(user, group, member)
    return 201, {"user_id": member.id, "group_id": str(request.resolver_match.kwargs["group_id"])}  # type: ignore[union-attr]


def remove_member(request: HttpRequest, user: User, group_id: int, member_id: int) -> Answer:
    group = actions.find_group(user, group_id)
    actions.remove_member(user, group, actions.find_member(user, group, member_id))
    return 200, {"message": f"Successfully deleted member with id={member_id} from group with id={group_id}"}


# --- /api/v1/groups/<id>/graphs --------------------------------------------------------

def list_group_graphs(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = actions.find_group(user, group_id)
    q = schemas.query(request, schemas.GroupGraphQuery)
    qs = Graph.objects.select_related("owner").filter(groupgraph__group=group)
    if q.owner_email:
        qs = qs.filter(owner__email=q.owner_email.lower())
    if q.names:
        qs = qs.filter(name__iregex=like_regex(q.names))
    total, graphs = _page(qs.order_by("name", "id"), q)
    return 200, {"total": total, "graphs": [serializers.graph_full(g) for g in graphs]}


def _share(user: User, group: Group, graph_id: int) -> Answer:
    shared = actions.share_graph(user, group, actions.find_graph(user, graph_id, "share"))
    return 201, {
        "graph_id": graph_id,
        "group_id": str(group.id),
        "created_at": serializers.timestamp(shared.created_at),
        "updated_at": serializers.timestamp(shared.updated_at),
    }


def share_graph(request: HttpRequest, user: User, group_id: int) -> Answer:
    group = actions.find_group(user, group_id)
    return _share(user, group, body(request, schemas.GraphRef).graph_id)


def unshare_graph(request: HttpRequest, user: User, group_id: int, graph_id: int) -> Answer:
    group = actions.find_group(user, group_id)
    actions.unshare_graph(user, group, actions.find_graph(user, graph_id))
    return 200, {"message": f"Successfully deleted graph with id={graph_id} from group with id={group.id}"}


# --- /api/v1/graphs/<id>/groups (server-only twins) ------------------------------------

def list_graph_groups(request: HttpRequest, user: User, graph_id: int) -> Answer:
    graph = actions.find_graph(user, graph_id)
    groups = _with_totals(Group.objects.select_related("owner").filter(groupgraph__graph=graph))
    visible = [g for g in groups.order_by("name") if permissions.can_read_group(user, g)]
    return 200, {"total": len(visible), "groups": [_serialize(g) for g in visible]}


def share_graph_with_group(request: HttpRequest, user: User, graph_id: int) -> Answer:
    group = actions.find_group(user, body(request, schemas.GroupRef).group_id)
    return _share(user, group, graph_id)


def unshare_graph_from_group(request: HttpRequest, user: User, graph_id: int, group_id: int) -> Answer:
    group = actions.find_group(user, group_id)
    actions.unshare_graph(user, group, actions.find_graph(user, graph_id))
    return 200, {"message": f"Successfully deleted graph with id={graph_id} from group with id={group.id}"}
