"""Every action of the triggers table, in one place for the REST API and the web pages.

Each function changes the database in one transaction and announces the change through
`producer.send_message`, which writes the event to the outbox in that same transaction.

Group events carry the group's membership number as of the action (`membership_seq`), so
that their recipients are the members of that moment however late the pipeline reads them:
adds and removes bump the number under the group's row lock, and the actions that announce
to a group read it under a share lock, which waits for a membership change in flight.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from graphspace import producer
from graphspace.api import errors
from graphspace.cyjs import normalise_graph_json, validate_style_json
from graphspace.models import Graph, Group, GroupGraph, GroupMember, Layout, MembershipSpan, User
from notifications.messages import message_text


class ActionError(Exception):
    """A request that cannot be carried out; the message is shown to the user, and `code` is
    GraphSpace's error code for it (api.md 1.2)."""

    def __init__(self, message: str, code: int = errors.BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code


def _owner_event(type: str, resource: str, obj_id: int, name: str, recipient: User, actor: User) -> None:
    producer.send_message("owner", {
        "owner_email": recipient.email,
        "actor_email": actor.email,
        "message": message_text(type, resource, name),
        "resource": resource,
        "resource_id": obj_id,
        "resource_name": name,
        "type": type,
    })


def _bump_membership(group: Group) -> int:
    """The group's next membership number, taken under its row lock (no key columns change,
    so the persist task's key-share lock on the group never waits for it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{Group._meta.db_table}" SET membership_seq = membership_seq + 1 WHERE id = %s RETURNING membership_seq',
            [group.id],
        )
        row = cursor.fetchone()
    if row is None:
        raise ActionError(f"Group {group.id} does not exist.")
    return int(row[0])


def _membership_now(group: Group) -> int:
    """The group's membership number for an event about it. FOR SHARE waits for an add or a
    remove in flight, so the number read is the one in force when this action commits."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT membership_seq FROM "{Group._meta.db_table}" WHERE id = %s FOR SHARE', [group.id])
        row = cursor.fetchone()
    if row is None:
        raise ActionError(f"Group {group.id} does not exist.")
    return int(row[0])


def _group_event(
    type: str, resource: str, obj_id: int, name: str, group: Group, actor: User,
    member_email: str | None = None, membership_seq: int | None = None,
) -> None:
    message: dict[str, Any] = {
        "group_id": group.id,
        "membership_seq": _membership_now(group) if membership_seq is None else membership_seq,
        # The seed's group events carry the actor as owner_email.
        "owner_email": actor.email,
        "actor_email": actor.email,
        "message": message_text(type, resource, name),
        "resource": resource,
        "resource_id": obj_id,
        "resource_name": name,
        "type": type,
    }
    if member_email:
        message["member_email"] = member_email
    producer.send_message("group", message)


# --- graphs ----------------------------------------------------------------------------

def upload_graph(
    actor: User, *, name: str, graph_json: Any, style_json: Any = None,
    tags: list[str] | None = None, is_public: bool = False,
) -> Graph:
    if len(name) > 256:
        raise ActionError("Graph Name cannot be more than 256 characters long.", errors.GRAPH_NAME_SIZE)
    tags = [str(t) for t in (tags or [])]
    graph_data = normalise_graph_json(graph_json, name=name, tags=tags)
    style = validate_style_json(style_json)
    with transaction.atomic():
        if Graph.objects.filter(owner=actor, name=name).exists():
            raise ActionError(f"Graph {name} already exists for {actor.email}!")
        graph = Graph.objects.create(
            owner=actor, name=name, graph_json=graph_data, style_json=style, tags=tags,
            is_public=is_public,
        )
        _owner_event("upload", "graph", graph.id, graph.name, graph.owner, actor)
    return graph


def update_graph(actor: User, graph: Graph, changes: dict[str, Any]) -> Graph:
    """Apply the given fields. GraphSpace ignores tags on update; so do we."""
    with transaction.atomic():
        graph = Graph.objects.select_for_update().get(pk=graph.pk)
        before = (graph.name, graph.is_public, graph.graph_json, graph.style_json, graph.default_layout_id)
        if "name" in changes and changes["name"]:
            name = str(changes["name"])
            if len(name) > 256:
                raise ActionError("Graph Name cannot be more than 256 characters long.", errors.GRAPH_NAME_SIZE)
            if name != graph.name and Graph.objects.filter(owner=graph.owner, name=name).exists():
                raise ActionError(f"Graph {name} already exists for {graph.owner.email}!")
            graph.name = name
        if "is_public" in changes and changes["is_public"] is not None:
            graph.is_public = bool(int(changes["is_public"]))
        if changes.get("graph_json") is not None:
            graph.graph_json = normalise_graph_json(changes["graph_json"], name=graph.name, tags=graph.tags)
        elif graph.name != before[0]:
            graph.graph_json = {**graph.graph_json, "data": {**graph.graph_json.get("data", {}), "name": graph.name}}
        if changes.get("style_json") is not None:
            graph.style_json = validate_style_json(changes["style_json"])
        if "default_layout_id" in changes:
            layout_id = changes["default_layout_id"]
            if layout_id in (None, 0, "0", ""):
                graph.default_layout = None
            else:
                layout = Layout.objects.filter(pk=int(layout_id), graph=graph).first()
                if layout is None:
                    raise ActionError(f"Layout {layout_id} does not belong to graph {graph.id}.")
                graph.default_layout = layout
        after = (graph.name, graph.is_public, graph.graph_json, graph.style_json, graph.default_layout_id)
        graph.save()
        if after != before:
            _owner_event("update", "graph", graph.id, graph.name, graph.owner, actor)
    return graph


def delete_graph(actor: User, graph: Graph) -> None:
    with transaction.atomic():
        graph_id, name, owner = graph.id, graph.name, graph.owner
        graph.delete()
        _owner_event("delete", "graph", graph_id, name, owner, actor)


# --- layouts ---------------------------------------------------------------------------

def create_layout(
    actor: User, graph: Graph, *, name: str, positions_json: Any = None, style_json: Any = None,
    is_shared: bool = False,
) -> Layout:
    with transaction.atomic():
        if Layout.objects.filter(graph=graph, owner=actor, name=name).exists():
            raise ActionError(f"Layout with name `{name}` already exists.", errors.LAYOUT_NAME_ALREADY_EXISTS)
        layout = Layout.objects.create(
            graph=graph, owner=actor, name=name, positions_json=positions_json or {},
            style_json=style_json or {}, is_shared=is_shared,
        )
        _owner_event("create", "layout", layout.id, layout.name, actor, actor)
        if is_shared:
            _announce_layout_share("share", layout, actor)
    return layout


def _announce_layout_share(type: str, layout: Layout, actor: User) -> None:
    """A shared layout becomes visible in every group its graph is shared with."""
    for group in Group.objects.filter(groupgraph__graph_id=layout.graph_id).order_by("id"):
        _group_event(type, "layout", layout.id, layout.name, group, actor)


def update_layout(actor: User, layout: Layout, changes: dict[str, Any]) -> Layout:
    """Share or unshare when is_shared changes; "updated" when anything else changes.

    The official client sends every field on each update, so events follow what changed,
    not what was sent (the original announced a share on every save).
    """
    with transaction.atomic():
        layout = Layout.objects.select_for_update().get(pk=layout.pk)
        before = (layout.name, layout.positions_json, layout.style_json)
        was_shared = layout.is_shared
        if changes.get("name"):
            name = str(changes["name"])
            if name != layout.name and Layout.objects.filter(graph=layout.graph, owner=layout.owner, name=name).exists():
                raise ActionError(f"Layout with name `{name}` already exists.", errors.LAYOUT_NAME_ALREADY_EXISTS)
            layout.name = name
        if changes.get("positions_json") is not None:
            layout.positions_json = changes["positions_json"]
        if changes.get("style_json") is not None:
            layout.style_json = changes["style_json"]
        if changes.get("is_shared") is not None:
            layout.is_shared = bool(int(changes["is_shared"]))
        layout.save()
        if (layout.name, layout.positions_json, layout.style_json) != before:
            _owner_event("update", "layout", layout.id, layout.name, layout.owner, actor)
        if layout.is_shared != was_shared:
            _announce_layout_share("share" if layout.is_shared else "unshare", layout, actor)
    return layout


def delete_layout(actor: User, layout: Layout) -> None:
    with transaction.atomic():
        layout_id, name, owner = layout.id, layout.name, layout.owner
        layout.delete()
        _owner_event("delete", "layout", layout_id, name, owner, actor)


# --- groups ----------------------------------------------------------------------------

def create_group(actor: User, *, name: str, description: str = "") -> Group:
    with transaction.atomic():
        if Group.objects.filter(owner=actor, name=name).exists():
            raise ActionError(f"Group {name} already exists for {actor.email}!")
        group = Group.objects.create(owner=actor, name=name, description=description or "", membership_seq=1)
        GroupMember.objects.create(group=group, user=actor)
        MembershipSpan.objects.create(group=group, user=actor, joined_seq=1)
        _owner_event("create", "group", group.id, group.name, actor, actor)
    return group


def update_group(actor: User, group: Group, changes: dict[str, Any]) -> Group:
    with transaction.atomic():
        group = Group.objects.select_for_update().get(pk=group.pk)
        before = (group.name, group.description)
        if changes.get("name"):
            name = str(changes["name"])
            if name != group.name and Group.objects.filter(owner=group.owner, name=name).exists():
                raise ActionError(f"Group {name} already exists for {group.owner.email}!")
            group.name = name
        if changes.get("description") is not None:
            group.description = str(changes["description"])
        group.save()
        if (group.name, group.description) != before:
            _owner_event("update", "group", group.id, group.name, group.owner, actor)
    return group


def delete_group(actor: User, group: Group) -> None:
    with transaction.atomic():
        # Lock the row before Django collects what the delete cascades to: a persist task
        # holding the group (a key-share lock) finishes first and its rows are collected
        # too; one that comes later finds no group and stores nothing for it.
        locked = Group.objects.select_for_update().filter(pk=group.pk).first()
        if locked is None:
            raise ActionError(f"Group {group.id} does not exist.")
        group_id, name, owner = locked.id, locked.name, locked.owner
        group = locked
        group.delete()
        _owner_event("delete", "group", group_id, name, owner, actor)


def add_member(actor: User, group: Group, member: User) -> GroupMember:
    with transaction.atomic():
        # Numbered first: the group's row lock also serialises two adds of one member.
        seq = _bump_membership(group)
        if GroupMember.objects.filter(group=group, user=member).exists():
            raise ActionError(f"User with `{member.email}` email id already exists!", errors.USER_ALREADY_EXISTS)
        membership = GroupMember.objects.create(group=group, user=member)
        MembershipSpan.objects.create(group=group, user=member, joined_seq=seq)
        _group_event("add", "group_member", member.id, member.email, group, actor, member.email, seq)
    return membership


def remove_member(actor: User, group: Group, member: User) -> None:
    with transaction.atomic():
        if member.id == group.owner_id:
            raise ActionError("Cannot remove group owner from the group.")
        seq = _bump_membership(group)
        deleted, _ = GroupMember.objects.filter(group=group, user=member).delete()
        if not deleted:
            raise ActionError(f"User {member.id} is not a member of group {group.id}.")
        MembershipSpan.objects.filter(group=group, user=member, left_seq__isnull=True).update(left_seq=seq)
        _group_event("remove", "group_member", member.id, member.email, group, actor, member.email, seq)


def share_graph(actor: User, group: Group, graph: Graph) -> GroupGraph:
    with transaction.atomic():
        if GroupGraph.objects.filter(group=group, graph=graph).exists():
            raise ActionError(f"Graph {graph.id} is already shared with group {group.id}.")
        shared = GroupGraph.objects.create(group=group, graph=graph)
        _group_event("share", "graph", graph.id, graph.name, group, actor)
    return shared


def unshare_graph(actor: User, group: Group, graph: Graph) -> None:
    with transaction.atomic():
        deleted, _ = GroupGraph.objects.filter(group=group, graph=graph).delete()
        if not deleted:
            raise ActionError(f"Graph {graph.id} is not shared with group {group.id}.")
        _group_event("unshare", "graph", graph.id, graph.name, group, actor)
