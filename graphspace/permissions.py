"""Who may see and change what (graphspace-api.md 1.5): every rule of the host, in one place.

Plain predicates and querysets, no side effects and no HTTP: `graphspace.actions` enforces
them (and turns a refusal into a domain error); the REST API and the pages only map those
errors to their answers. A rule written anywhere else is a bug.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from graphspace.models import Graph, Group, GroupMember, Layout, User


def is_member(user: User, group: Group) -> bool:
    return group.owner_id == user.id or GroupMember.objects.filter(group=group, user=user).exists()


# --- graphs ----------------------------------------------------------------------------

def readable_graphs(user: User) -> QuerySet[Graph]:
    """Owner, public, or shared with a group the user belongs to."""
    if user.is_admin:
        return Graph.objects.all()
    return Graph.objects.filter(
        Q(owner=user) | Q(is_public=True) | Q(shared_groups__groupmember__user=user)
    ).distinct()


def shared_with(user: User, graphs: QuerySet[Graph] | None = None) -> QuerySet[Graph]:
    """Others' graphs shared with a group the user belongs to ("Shared with me")."""
    graphs = Graph.objects.all() if graphs is None else graphs
    return graphs.filter(shared_groups__groupmember__user=user).exclude(owner=user).distinct()


def can_read_graph(user: User, graph: Graph) -> bool:
    if user.is_admin or graph.owner_id == user.id or graph.is_public:
        return True
    return GroupMember.objects.filter(user=user, group__groupgraph__graph=graph).exists()


def can_edit_graph(user: User, graph: Graph) -> bool:
    """Rename, publish, replace its JSON, set its default layout."""
    return user.is_admin or graph.owner_id == user.id


def can_delete_graph(user: User, graph: Graph) -> bool:
    return graph.owner_id == user.id


def can_share_graph(user: User, graph: Graph) -> bool:
    """Put the graph in a group (one the user reads: see can_share_graph_with)."""
    return user.is_admin or graph.owner_id == user.id or graph.is_public


def can_share_graph_with(user: User, graph: Graph, group: Group) -> bool:
    return can_share_graph(user, graph) and can_read_group(user, group)


def can_unshare_graph(user: User, graph: Graph, group: Group) -> bool:
    """The graph's owner (in a group they read) or the group's owner takes it out."""
    return can_read_group(user, group) and (graph.owner_id == user.id or can_admin_group(user, group))


# --- layouts ---------------------------------------------------------------------------

def can_add_layout(user: User, graph: Graph) -> bool:
    """Anyone who sees a graph may lay it out."""
    return can_read_graph(user, graph)


def can_read_layout(user: User, layout: Layout) -> bool:
    """Its graph first: a layout never shows a graph its owner can no longer see."""
    if user.is_admin:
        return True
    return (layout.owner_id == user.id or layout.is_shared) and can_read_graph(user, layout.graph)


def can_edit_layout(user: User, layout: Layout) -> bool:
    """Rename, move, share, unshare, delete: the layout's owner only."""
    return layout.owner_id == user.id


def visible_layouts(user: User, graph: Graph) -> QuerySet[Layout]:
    """The layouts of a graph the user reads: theirs and the shared ones."""
    layouts = Layout.objects.filter(graph=graph)
    return layouts if user.is_admin else layouts.filter(Q(owner=user) | Q(is_shared=True))


# --- groups ----------------------------------------------------------------------------

def my_groups(user: User) -> QuerySet[Group]:
    return Group.objects.filter(Q(owner=user) | Q(groupmember__user=user)).distinct()


def readable_groups(user: User) -> QuerySet[Group]:
    return Group.objects.all() if user.is_admin else my_groups(user)


def can_read_group(user: User, group: Group) -> bool:
    return user.is_admin or is_member(user, group)


def can_admin_group(user: User, group: Group) -> bool:
    """Rename, delete, add members, remove anyone but the owner."""
    return user.is_admin or group.owner_id == user.id


def can_remove_member(user: User, group: Group, member: User) -> bool:
    """The owner removes anyone; a member may leave."""
    return can_admin_group(user, group) or (member.id == user.id and can_read_group(user, group))


def known_users(user: User) -> QuerySet[User]:
    """The users whose email the user already knows: themselves and everyone who shares a
    group with them (the group's member list shows it). Only these may be named by id: by
    anything else an id would reveal an email (no enumeration)."""
    if user.is_admin:
        return User.objects.all()
    groups = my_groups(user).values("id")
    return User.objects.filter(
        Q(pk=user.pk) | Q(groupmember__group__in=groups) | Q(owned_groups__in=groups)
    ).distinct()


# --- the API's list filters (graphspace-api.md 1.5) --------------------------------------
# A list names whose things it lists; a user may ask only for their own, or for the public
# or shared ones. Each returns None when allowed, else which refusal it is.

def graph_list_refusal(user: User, owner_email: str | None, member_email: str | None, is_public: bool | None) -> str | None:
    if user.is_admin:
        return None
    if owner_email is None and member_email is None and not is_public:
        return "no_filter"
    if owner_email and owner_email != user.email and not is_public:
        return "others_private"
    if member_email and member_email != user.email:
        return "others_shared"
    return None


def may_list_layouts(user: User, owner_email: str | None, is_shared: bool | None) -> bool:
    return user.is_admin or owner_email == user.email or bool(is_shared)


def may_list_groups(user: User, owner_email: str | None, member_email: str | None) -> bool:
    return user.is_admin or user.email in (owner_email, member_email)
