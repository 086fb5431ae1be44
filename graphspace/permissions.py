"""Who may see and change what (graphspace-api.md 1.5): plain queries, no side effects."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from graphspace.models import Graph, Group, GroupMember, Layout, User


def is_member(user: User, group: Group) -> bool:
    return group.owner_id == user.id or GroupMember.objects.filter(group=group, user=user).exists()


def readable_graphs(user: User) -> QuerySet[Graph]:
    """Owner, public, or shared with a group the user belongs to."""
    if user.is_admin:
        return Graph.objects.all()
    return Graph.objects.filter(
        Q(owner=user) | Q(is_public=True) | Q(shared_groups__groupmember__user=user)
    ).distinct()


def can_read_graph(user: User, graph: Graph) -> bool:
    if user.is_admin or graph.owner_id == user.id or graph.is_public:
        return True
    return GroupMember.objects.filter(user=user, group__groupgraph__graph=graph).exists()


def can_read_layout(user: User, layout: Layout) -> bool:
    if user.is_admin or layout.owner_id == user.id:
        return True
    return layout.is_shared and can_read_graph(user, layout.graph)


def can_read_group(user: User, group: Group) -> bool:
    return user.is_admin or is_member(user, group)


def can_admin_group(user: User, group: Group) -> bool:
    return user.is_admin or group.owner_id == user.id
