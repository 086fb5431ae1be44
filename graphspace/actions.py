"""Every action of the triggers table, in one place for the REST API and the web pages.

Actions are the host's domain API: they take typed arguments (ints, bools, parsed JSON; the
edges parse requests: graphspace/forms.py for the pages, graphspace/api/schemas.py for the
REST API), enforce every read and write rule of `graphspace.permissions`, and refuse with a
domain error (below) that carries no HTTP code: each edge maps it to its own answer.

Each function changes the database in one transaction and announces the change through
`producer.send_message`, which writes the event to the outbox in that same transaction.

Group events carry the group's membership number as of the action (`membership_seq`), so
that their recipients are the members of that moment however late the pipeline reads them:
adds and removes bump the number under the group's row lock, and the actions that announce
to a group read it under a share lock, which waits for a membership change in flight.

Watching events (issue 11, docs/watching.md) work the same way with watch numbers: watching
and unwatching a graph (or a layout of it) take an exclusive transaction-level advisory lock
on the graph, an action announcing to its watchers a shared one, so the watch number the
event takes is the one in force when it commits. Losing access ends a watch inside the
action that took the access away.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from django.db import IntegrityError, connection, transaction

from graphspace import permissions, producer
from graphspace.cyjs import GraphFormatError, normalise_graph_json, validate_style_json
from graphspace.models import Graph, Group, GroupGraph, GroupMember, Layout, MembershipSpan, User
from notifications.messages import message_text
from notifications.models import Watch

NAME_MAX = 256  # the name columns of graph, layout and group
JSON_DEPTH_MAX = 100  # Cytoscape.js JSON is a few levels deep; Python's parser stops near 1,000


# --- domain errors ---------------------------------------------------------------------

class DomainError(Exception):
    """Why an action refused; the message is shown to the user as it is."""


class NotFound(DomainError):
    """No such resource, or one the actor may not see: the same answer, so that a refusal
    tells nothing about what exists."""


class Forbidden(DomainError):
    """The actor sees the resource but may not do this to it."""


class ActionError(DomainError):
    """A request that cannot be carried out as asked: a bad value or a rule of the domain
    (the pages show it as a form error)."""


class Conflict(ActionError):
    """The change collides with what is stored: a name taken, a member or a share already
    there (also when a concurrent request stored it first)."""


class AlreadyMember(Conflict):
    pass


class LayoutNameTaken(Conflict):
    pass


class NameTooLong(ActionError):
    def __init__(self, message: str, resource: str) -> None:
        super().__init__(message)
        self.resource = resource


class NoSuchUser(ActionError):
    """A user the actor may not name: unknown, or known to exist only by an id (see
    permissions.known_users). One message for both, so an id reveals nothing."""

    def __init__(self) -> None:
        super().__init__("User does not exist.")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final[Any] = _Unset()


# --- checks of typed values -------------------------------------------------------------

def clean_text(value: str, label: str) -> str:
    """PostgreSQL text cannot hold NUL; nothing a person types contains one."""
    if "\x00" in value:
        raise ActionError(f"{label} must not contain NUL characters.")
    return value


def clean_name(value: str, label: str, resource: str) -> str:
    if not value.strip():
        raise ActionError(f"{label} is required.")
    if len(value) > NAME_MAX:
        if resource == "graph":
            raise NameTooLong("Graph Name cannot be more than 256 characters long.", resource)
        raise NameTooLong(f"{label} cannot be more than {NAME_MAX} characters long.", resource)
    return clean_text(value, label)


def check_json(value: Any, label: str) -> Any:
    """JSON that PostgreSQL's jsonb stores and Python reads back: no NUL in a string or key,
    no NaN or infinity, at most JSON_DEPTH_MAX levels."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > JSON_DEPTH_MAX:
            raise ActionError(f"{label} is nested more than {JSON_DEPTH_MAX} levels deep.")
        if isinstance(item, str):
            clean_text(item, label)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ActionError(f"{label} must not contain NaN or infinity.")
        elif isinstance(item, dict):
            for key, inner in item.items():
                clean_text(str(key), label)
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)
        elif not (item is None or isinstance(item, bool | int)):
            raise ActionError(f"{label} must be JSON.")
    return value


def _json_object(value: Any, label: str) -> dict[str, Any]:
    check_json(value, label)
    if not isinstance(value, dict):
        raise ActionError(f"{label} must be a JSON object.")
    return value


def _graph_json(value: Any, name: str, tags: list[str]) -> dict[str, Any]:
    check_json(value, "graph_json")
    try:
        return normalise_graph_json(value, name=name, tags=tags)
    except GraphFormatError as error:
        raise ActionError(str(error)) from None


def _style_json(value: Any) -> dict[str, Any]:
    check_json(value, "style_json")
    try:
        return validate_style_json(value)
    except GraphFormatError as error:
        raise ActionError(str(error)) from None


@contextmanager
def _unique(constraint: str, error: Callable[[], ActionError]) -> Iterator[None]:
    """A uniqueness race (two requests pass the existence check, the second insert fails)
    ends in the same error as the check's, not in an IntegrityError."""
    try:
        yield
    except IntegrityError as failure:
        cause = getattr(failure.__cause__, "diag", None)
        if getattr(cause, "constraint_name", None) == constraint:
            raise error() from None
        raise Conflict("The request collided with a change made at the same time; try again.") from None


def _allow(allowed: bool, visible: bool, message: str) -> None:
    """A refusal: NotFound if the actor may not even see the resource, else Forbidden."""
    if not allowed:
        raise Forbidden(message) if visible else NotFound("Not found.")


# --- lookups: what an edge asks for by id, with the rule for what it will do ---------------

GRAPH_RULES: dict[str, Callable[[User, Graph], bool]] = {
    "read": permissions.can_read_graph,
    "edit": permissions.can_edit_graph,
    "delete": permissions.can_delete_graph,
    "share": permissions.can_share_graph,
    "add_layout": permissions.can_add_layout,
}
GROUP_RULES: dict[str, Callable[[User, Group], bool]] = {
    "read": permissions.can_read_group,
    "admin": permissions.can_admin_group,
}
LAYOUT_RULES: dict[str, Callable[[User, Layout], bool]] = {
    "read": permissions.can_read_layout,
    "edit": permissions.can_edit_layout,
}


def find_graph(actor: User, graph_id: int, to: str = "read") -> Graph:
    graph = Graph.objects.select_related("owner").filter(pk=graph_id).first()
    if graph is None or not permissions.can_read_graph(actor, graph):
        raise NotFound("No such graph.")
    _allow(GRAPH_RULES[to](actor, graph), True, _GRAPH_REFUSAL[to])
    return graph


def find_layout(actor: User, graph_id: int, layout_id: int, to: str = "read") -> Layout:
    """A layout of the graph in the URL (the API and the pages: one rule)."""
    layout = Layout.objects.select_related("owner", "graph").filter(pk=layout_id, graph_id=graph_id).first()
    if layout is None or not permissions.can_read_layout(actor, layout):
        raise NotFound("No such layout.")
    _allow(LAYOUT_RULES[to](actor, layout), True, "Only the layout's owner can change it.")
    return layout


def find_group(actor: User, group_id: int, to: str = "read") -> Group:
    group = Group.objects.select_related("owner").filter(pk=group_id).first()
    if group is None or not permissions.can_read_group(actor, group):
        raise NotFound("No such group.")
    _allow(GROUP_RULES[to](actor, group), True, "Only the group's owner can change it.")
    return group


def find_user(actor: User, *, email: str | None = None, user_id: int | None = None) -> User:
    """A user to add to a group: by email (which the actor already knows), or by id only
    among the users whose email the actor already knows (permissions.known_users)."""
    if email is not None:
        user = User.objects.filter(email=clean_text(email, "Email").strip().lower()).first()
    elif user_id is not None:
        user = permissions.known_users(actor).filter(pk=user_id).first()
    else:
        raise ActionError("member_email or member_id is required.")
    if user is None:
        raise NoSuchUser()
    return user


def find_member(actor: User, group: Group, user_id: int) -> User:
    """A member of a group the actor reads (anyone else: the same NoSuchUser)."""
    user = User.objects.filter(pk=user_id, groupmember__group=group).first()
    if user is None:
        raise NoSuchUser()
    return user


_GRAPH_REFUSAL = {
    "read": "",
    "edit": "Only the graph's owner can change it.",
    "delete": "Only the graph's owner can delete it.",
    "share": "Only the graph's owner can share it.",
    "add_layout": "",
}


def _about(type: str, resource: str, obj_id: int, name: str, actor: User) -> dict[str, Any]:
    """What every event says of its action, whatever its topic."""
    return {
        "actor_email": actor.email,
        "message": message_text(type, resource, name),
        "resource": resource,
        "resource_id": obj_id,
        "resource_name": name,
        "type": type,
    }


def _owner_event(type: str, resource: str, obj_id: int, name: str, recipient: User, actor: User) -> None:
    producer.send_message("owner", {"owner_email": recipient.email, **_about(type, resource, obj_id, name, actor)})


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
        raise NotFound("No such group.")
    return int(row[0])


def _membership_now(group: Group) -> int:
    """The group's membership number for an event about it. FOR SHARE waits for an add or a
    remove in flight, so the number read is the one in force when this action commits."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT membership_seq FROM "{Group._meta.db_table}" WHERE id = %s FOR SHARE', [group.id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such group.")
    return int(row[0])


def _group_event(
    type: str, resource: str, obj_id: int, name: str, group: Group, actor: User,
    member_email: str | None = None, membership_seq: int | None = None,
) -> int:
    """Returns the membership number the event carries."""
    seq = _membership_now(group) if membership_seq is None else membership_seq
    message: dict[str, Any] = {
        "group_id": group.id,
        "membership_seq": seq,
        # The seed's group events carry the actor as owner_email.
        "owner_email": actor.email,
        **_about(type, resource, obj_id, name, actor),
    }
    if member_email:
        message["member_email"] = member_email
    producer.send_message("group", message)
    return seq


# --- watching (issue 11) ------------------------------------------------------------------

WATCH_SEQ = "notification_watch_seq"
_WATCH = Watch._meta.db_table


def _lock_watches(graph_ids: Iterable[int], *, exclusive: bool) -> None:
    """The graphs' watch locks, in id order (two actions never deadlock on them)."""
    ids = sorted(set(graph_ids))
    if not ids:
        return
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count({lock}(hashtextextended('watch:graph:' || g, 0))) FROM "
            "(SELECT g FROM unnest(%s::bigint[]) AS g ORDER BY g) AS ids",
            [ids],
        )


def _next_watch_seq() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s)", [WATCH_SEQ])
        return int(cursor.fetchone()[0])


def _watching_event(
    type: str, resource: str, obj_id: int, name: str, graph_id: int, actor: User, owner_email: str | None,
    announced: Sequence[tuple[int, int]] = (), exclusive: bool = False,
) -> None:
    """Tell the watchers of the graph (and of the layout, for a layout) as of this action.

    Under the graph's watch lock (shared: actions on one graph run side by side; exclusive
    when the caller then ends watches), the watch number taken is in force at commit: a
    watch or unwatch in flight is waited for, one that comes later waits for this commit.
    Nothing is written when nobody watches (the usual case: no event, no cost downstream)."""
    _lock_watches([graph_id], exclusive=exclusive)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT CASE WHEN EXISTS (SELECT 1 FROM "{_WATCH}" w WHERE w.graph_id = %s AND w.ended_seq IS NULL '
            "AND (w.resource = 'graph' AND w.resource_id = %s OR w.resource = %s AND w.resource_id = %s)) "
            "THEN nextval(%s) END",
            [graph_id, graph_id, resource, obj_id, WATCH_SEQ],
        )
        seq = cursor.fetchone()[0]
    if seq is None:
        return
    producer.send_message("watching", {
        "graph_id": graph_id,
        "watch_seq": int(seq),
        "announced_groups": [list(pair) for pair in announced],
        "owner_email": owner_email,
        **_about(type, resource, obj_id, name, actor),
    })


# A watch ends when its watcher can no longer read what it watches: the graph gone, private
# and not shared with a group of theirs; a layout gone or unshared. The rules of
# permissions.can_read_graph and can_read_layout, as SQL over every open watch of the graphs.
_END_LOST_WATCHES_SQL = f"""
UPDATE "{_WATCH}" AS w SET ended_seq = nextval('{WATCH_SEQ}')
 WHERE w.ended_seq IS NULL AND w.graph_id = ANY(%s::bigint[]) AND (%s::bigint[] IS NULL OR w.user_id = ANY(%s::bigint[]))
   AND NOT (
     EXISTS (SELECT 1 FROM "{Graph._meta.db_table}" g JOIN "{User._meta.db_table}" u ON u.id = w.user_id
              WHERE g.id = w.graph_id AND (u.is_admin OR g.owner_id = w.user_id OR g.is_public OR EXISTS (
                SELECT 1 FROM "{GroupGraph._meta.db_table}" gg
                  JOIN "{GroupMember._meta.db_table}" gm ON gm.group_id = gg.group_id
                 WHERE gg.graph_id = g.id AND gm.user_id = w.user_id)))
     AND (w.resource = 'graph' OR EXISTS (SELECT 1 FROM "{Layout._meta.db_table}" l
                                          WHERE l.id = w.resource_id AND (l.is_shared OR l.owner_id = w.user_id))))
"""


def _end_lost_watches(graph_ids: Iterable[int], user_ids: Sequence[int] | None = None) -> int:
    """End the watches on these graphs (and their layouts) whose watchers lost access, in
    the caller's transaction, under the graphs' exclusive watch locks. Returns how many."""
    ids = sorted(set(graph_ids))
    if not ids:
        return 0
    _lock_watches(ids, exclusive=True)
    users = list(user_ids) if user_ids is not None else None
    with connection.cursor() as cursor:
        cursor.execute(_END_LOST_WATCHES_SQL, [ids, users, users])
        return int(cursor.rowcount)


def find_watchable(actor: User, resource: str, resource_id: int) -> tuple[int, int]:
    """(graph id, resource id) of a graph or layout the actor may watch: one they read and do
    not own. NotFound for anything they cannot read (one answer for missing and hidden)."""
    if resource == Watch.GRAPH:
        graph = Graph.objects.filter(pk=resource_id).first()
        if graph is None or not permissions.can_read_graph(actor, graph):
            raise NotFound("No such graph.")
        if graph.owner_id == actor.id:
            raise ActionError("You own this graph: you hear of it already.")
        return graph.id, graph.id
    if resource == Watch.LAYOUT:
        layout = Layout.objects.select_related("graph").filter(pk=resource_id).first()
        if layout is None or not permissions.can_read_layout(actor, layout):
            raise NotFound("No such layout.")
        if layout.owner_id == actor.id:
            raise ActionError("You own this layout: you hear of it already.")
        return layout.graph_id, layout.id
    raise ActionError("resource must be 'graph' or 'layout'.")


def watch(actor: User, resource: str, resource_id: int) -> Watch:
    """Start watching (idempotent: an open watch is returned as it is)."""
    graph_id, resource_id = find_watchable(actor, resource, resource_id)
    with transaction.atomic():
        _lock_watches([graph_id], exclusive=True)
        existing = Watch.objects.filter(user=actor, resource=resource, resource_id=resource_id,
                                        ended_seq__isnull=True).first()
        if existing is not None:
            return existing
        # Access checked again under the lock: an unshare in flight has ended by now.
        find_watchable(actor, resource, resource_id)
        return Watch.objects.create(user=actor, resource=resource, resource_id=resource_id, graph_id=graph_id,
                                    started_seq=_next_watch_seq())


def unwatch(actor: User, resource: str, resource_id: int) -> bool:
    """Stop watching (idempotent). Returns whether a watch ended."""
    if resource not in (Watch.GRAPH, Watch.LAYOUT):
        raise ActionError("resource must be 'graph' or 'layout'.")
    with transaction.atomic():
        open_watch = Watch.objects.filter(user=actor, resource=resource, resource_id=resource_id,
                                          ended_seq__isnull=True).first()
        if open_watch is None:
            return False
        _lock_watches([open_watch.graph_id], exclusive=True)
        return bool(Watch.objects.filter(pk=open_watch.pk, ended_seq__isnull=True).update(ended_seq=_next_watch_seq()))


def watches(actor: User) -> list[Watch]:
    return list(Watch.objects.filter(user=actor, ended_seq__isnull=True).order_by("-started_seq"))


# --- graphs ----------------------------------------------------------------------------

def _graph_name_taken(owner: User, name: str) -> Conflict:
    return Conflict(f"Graph {name} already exists for {owner.email}!")


def upload_graph(
    actor: User, *, name: str, graph_json: Any, style_json: Any = None,
    tags: list[str] | None = None, is_public: bool = False,
) -> Graph:
    name = clean_name(name, "Name", "graph")
    tags = [clean_text(str(t), "tags") for t in (tags or [])]
    graph_data = _graph_json(graph_json, name, tags)
    style = _style_json(style_json)
    with _unique("graph_unique_owner_name", lambda: _graph_name_taken(actor, name)), transaction.atomic():
        if Graph.objects.filter(owner=actor, name=name).exists():
            raise _graph_name_taken(actor, name)
        graph = Graph.objects.create(
            owner=actor, name=name, graph_json=graph_data, style_json=style, tags=tags,
            is_public=bool(is_public),
        )
        _owner_event("upload", "graph", graph.id, graph.name, graph.owner, actor)
    return graph


def update_graph(
    actor: User, graph: Graph, *, name: str | None = None, is_public: bool | None = None,
    graph_json: Any = None, style_json: Any = None, default_layout_id: int | None = UNSET,
) -> Graph:
    """Apply the given fields (None: unchanged; default_layout_id None or 0: no default).
    GraphSpace ignores tags on update; so do we."""
    if name:
        name = clean_name(name, "Name", "graph")
    if graph_json is not None:
        check_json(graph_json, "graph_json")
    with _unique("graph_unique_owner_name", lambda: _graph_name_taken(graph.owner, str(name))), transaction.atomic():
        graph = Graph.objects.select_for_update().select_related("owner").get(pk=graph.pk)
        _allow(permissions.can_edit_graph(actor, graph), permissions.can_read_graph(actor, graph),
               _GRAPH_REFUSAL["edit"])
        before = (graph.name, graph.is_public, graph.graph_json, graph.style_json, graph.default_layout_id)
        if name:
            if name != graph.name and Graph.objects.filter(owner=graph.owner, name=name).exists():
                raise _graph_name_taken(graph.owner, name)
            graph.name = name
        if is_public is not None:
            graph.is_public = bool(is_public)
        if graph_json is not None:
            graph.graph_json = _graph_json(graph_json, graph.name, graph.tags)
        elif graph.name != before[0]:
            graph.graph_json = {**graph.graph_json, "data": {**graph.graph_json.get("data", {}), "name": graph.name}}
        if style_json is not None:
            graph.style_json = _style_json(style_json)
        if default_layout_id is not UNSET:
            if not default_layout_id:
                graph.default_layout = None
            else:
                layout = Layout.objects.filter(pk=default_layout_id, graph=graph).first()
                if layout is None:
                    raise ActionError(f"Layout {default_layout_id} does not belong to graph {graph.id}.")
                graph.default_layout = layout
        after = (graph.name, graph.is_public, graph.graph_json, graph.style_json, graph.default_layout_id)
        graph.save()
        if after != before:
            _owner_event("update", "graph", graph.id, graph.name, graph.owner, actor)
            # One watching event per action: a change of visibility says most.
            made = None if after[1] == before[1] else "publish" if graph.is_public else "unpublish"
            if made == "unpublish":
                # Watchers who could read it only because it was public stop here, untold.
                _end_lost_watches([graph.id])
            _watching_event(made or "update", "graph", graph.id, graph.name, graph.id, actor, graph.owner.email,
                            exclusive=made == "unpublish")
    return graph


def delete_graph(actor: User, graph: Graph) -> None:
    _allow(permissions.can_delete_graph(actor, graph), permissions.can_read_graph(actor, graph),
           _GRAPH_REFUSAL["delete"])
    with transaction.atomic():
        graph_id, name, owner = graph.id, graph.name, graph.owner
        _lock_watches([graph_id], exclusive=True)
        graph.delete()
        _owner_event("delete", "graph", graph_id, name, owner, actor)
        # The watchers hear of it, then their watches (of it and its layouts) end.
        _watching_event("delete", "graph", graph_id, name, graph_id, actor, owner.email, exclusive=True)
        _end_lost_watches([graph_id])


# --- layouts ---------------------------------------------------------------------------

def _layout_name_taken(name: str) -> LayoutNameTaken:
    return LayoutNameTaken(f"Layout with name `{name}` already exists.")


def create_layout(
    actor: User, graph: Graph, *, name: str, positions_json: Any = None, style_json: Any = None,
    is_shared: bool = False,
) -> Layout:
    _allow(permissions.can_add_layout(actor, graph), False, "")
    name = clean_name(name, "Layout name", "layout")
    positions = _json_object(positions_json or {}, "positions_json")
    style = _json_object(style_json or {}, "style_json")
    with _unique("layout_unique_name_graph_owner", lambda: _layout_name_taken(name)), transaction.atomic():
        if Layout.objects.filter(graph=graph, owner=actor, name=name).exists():
            raise _layout_name_taken(name)
        layout = Layout.objects.create(
            graph=graph, owner=actor, name=name, positions_json=positions,
            style_json=style, is_shared=bool(is_shared),
        )
        _owner_event("create", "layout", layout.id, layout.name, actor, actor)
        if is_shared:
            announced = _announce_layout_share("share", layout, actor)
            _watching_event("create", "layout", layout.id, layout.name, graph.id, actor, actor.email, announced)
    return layout


def _announce_layout_share(type: str, layout: Layout, actor: User) -> list[tuple[int, int]]:
    """A shared layout becomes visible in every group its graph is shared with. Returns the
    (group, membership number) pairs told, which the watching event leaves out."""
    return [
        (group.id, _group_event(type, "layout", layout.id, layout.name, group, actor))
        for group in Group.objects.filter(groupgraph__graph_id=layout.graph_id).order_by("id")
    ]


def update_layout(
    actor: User, layout: Layout, *, name: str | None = None, positions_json: Any = None,
    style_json: Any = None, is_shared: bool | None = None,
) -> Layout:
    """Share or unshare when is_shared changes; "updated" when anything else changes
    (None: unchanged).

    The official client sends every field on each update, so events follow what changed,
    not what was sent (the original announced a share on every save).
    """
    if name:
        name = clean_name(name, "Layout name", "layout")
    if positions_json is not None:
        positions_json = _json_object(positions_json, "positions_json")
    if style_json is not None:
        style_json = _json_object(style_json, "style_json")
    with _unique("layout_unique_name_graph_owner", lambda: _layout_name_taken(str(name))), transaction.atomic():
        layout = Layout.objects.select_for_update().select_related("graph").get(pk=layout.pk)
        _allow(permissions.can_edit_layout(actor, layout), permissions.can_read_layout(actor, layout),
               "Only the layout's owner can change it.")
        before = (layout.name, layout.positions_json, layout.style_json)
        was_shared = layout.is_shared
        if name:
            if name != layout.name and Layout.objects.filter(graph=layout.graph, owner=layout.owner, name=name).exists():
                raise _layout_name_taken(name)
            layout.name = name
        if positions_json is not None:
            layout.positions_json = positions_json
        if style_json is not None:
            layout.style_json = style_json
        if is_shared is not None:
            layout.is_shared = bool(is_shared)
        layout.save()
        changed = (layout.name, layout.positions_json, layout.style_json) != before
        if changed:
            _owner_event("update", "layout", layout.id, layout.name, layout.owner, actor)
        announced: list[tuple[int, int]] = []
        if layout.is_shared != was_shared:
            announced = _announce_layout_share("share" if layout.is_shared else "unshare", layout, actor)
        # Watchers of the graph and of the layout, once per action; a layout nobody else can
        # see is nobody's news.
        if layout.is_shared and not was_shared:
            _watching_event("share", "layout", layout.id, layout.name, layout.graph_id, actor, layout.owner.email,
                            announced)
        elif was_shared and not layout.is_shared:
            _watching_event("unshare", "layout", layout.id, layout.name, layout.graph_id, actor, layout.owner.email,
                            announced, exclusive=True)
            _end_lost_watches([layout.graph_id])
        elif changed and layout.is_shared:
            _watching_event("update", "layout", layout.id, layout.name, layout.graph_id, actor, layout.owner.email)
    return layout


def delete_layout(actor: User, layout: Layout) -> None:
    _allow(permissions.can_edit_layout(actor, layout), permissions.can_read_layout(actor, layout),
           "Only the layout's owner can delete it.")
    with transaction.atomic():
        layout_id, name, owner, graph_id, shared = layout.id, layout.name, layout.owner, layout.graph_id, layout.is_shared
        if shared:
            _lock_watches([graph_id], exclusive=True)
        layout.delete()
        _owner_event("delete", "layout", layout_id, name, owner, actor)
        if shared:
            _watching_event("delete", "layout", layout_id, name, graph_id, actor, owner.email, exclusive=True)
            _end_lost_watches([graph_id])


# --- groups ----------------------------------------------------------------------------

def _group_name_taken(owner: User, name: str) -> Conflict:
    return Conflict(f"Group {name} already exists for {owner.email}!")


def create_group(actor: User, *, name: str, description: str = "") -> Group:
    name = clean_name(name, "Group name", "group")
    description = clean_text(description or "", "Description")
    with _unique("group_unique_name_owner", lambda: _group_name_taken(actor, name)), transaction.atomic():
        if Group.objects.filter(owner=actor, name=name).exists():
            raise _group_name_taken(actor, name)
        group = Group.objects.create(owner=actor, name=name, description=description, membership_seq=1)
        GroupMember.objects.create(group=group, user=actor)
        MembershipSpan.objects.create(group=group, user=actor, joined_seq=1)
        _owner_event("create", "group", group.id, group.name, actor, actor)
    return group


def update_group(actor: User, group: Group, *, name: str | None = None, description: str | None = None) -> Group:
    """Rename or describe (None: unchanged)."""
    if name:
        name = clean_name(name, "Group name", "group")
    if description is not None:
        description = clean_text(description, "Description")
    with _unique("group_unique_name_owner", lambda: _group_name_taken(group.owner, str(name))), transaction.atomic():
        group = Group.objects.select_for_update().select_related("owner").get(pk=group.pk)
        _allow(permissions.can_admin_group(actor, group), permissions.can_read_group(actor, group),
               "Only the group's owner can change it.")
        before = (group.name, group.description)
        if name:
            if name != group.name and Group.objects.filter(owner=group.owner, name=name).exists():
                raise _group_name_taken(group.owner, name)
            group.name = name
        if description is not None:
            group.description = description
        group.save()
        if (group.name, group.description) != before:
            _owner_event("update", "group", group.id, group.name, group.owner, actor)
    return group


def delete_group(actor: User, group: Group) -> None:
    _allow(permissions.can_admin_group(actor, group), permissions.can_read_group(actor, group),
           "Only the group's owner can delete it.")
    with transaction.atomic():
        # Lock the row before Django collects what the delete cascades to: a persist task
        # holding the group (a key-share lock) finishes first and its rows are collected
        # too; one that comes later finds no group and stores nothing for it.
        locked = Group.objects.select_for_update().filter(pk=group.pk).first()
        if locked is None:
            raise NotFound("No such group.")
        group_id, name, owner = locked.id, locked.name, locked.owner
        group = locked
        graph_ids = list(GroupGraph.objects.filter(group=group).values_list("graph_id", flat=True))
        group.delete()
        _owner_event("delete", "group", group_id, name, owner, actor)
        # Members who read a graph only through this group stop watching it.
        _end_lost_watches(graph_ids)


def _already_member(member: User) -> AlreadyMember:
    # The actor named this user by email or by an id of a user they know: the email
    # tells them nothing new.
    return AlreadyMember(f"User with `{member.email}` email id already exists!")


def add_member(actor: User, group: Group, member: User) -> GroupMember:
    _allow(permissions.can_admin_group(actor, group), permissions.can_read_group(actor, group),
           "Only the group's owner can add members.")
    with _unique("group_member_unique", lambda: _already_member(member)), transaction.atomic():
        # Numbered first: the group's row lock also serialises two adds of one member.
        seq = _bump_membership(group)
        if GroupMember.objects.filter(group=group, user=member).exists():
            raise _already_member(member)
        membership = GroupMember.objects.create(group=group, user=member)
        MembershipSpan.objects.create(group=group, user=member, joined_seq=seq)
        _group_event("add", "group_member", member.id, member.email, group, actor, member.email, seq)
    return membership


def remove_member(actor: User, group: Group, member: User) -> None:
    _allow(permissions.can_remove_member(actor, group, member), permissions.can_read_group(actor, group),
           "Only the group's owner can remove members.")
    with transaction.atomic():
        if member.id == group.owner_id:
            raise ActionError("Cannot remove group owner from the group.")
        seq = _bump_membership(group)
        deleted, _ = GroupMember.objects.filter(group=group, user=member).delete()
        if not deleted:
            raise NoSuchUser()
        MembershipSpan.objects.filter(group=group, user=member, left_seq__isnull=True).update(left_seq=seq)
        _group_event("remove", "group_member", member.id, member.email, group, actor, member.email, seq)
        _end_lost_watches(GroupGraph.objects.filter(group=group).values_list("graph_id", flat=True), [member.id])


def _already_shared(graph: Graph, group: Group) -> Conflict:
    return Conflict(f"Graph {graph.id} is already shared with group {group.id}.")


def share_graph(actor: User, group: Group, graph: Graph) -> GroupGraph:
    if not permissions.can_read_group(actor, group):
        raise NotFound("No such group.")
    _allow(permissions.can_share_graph(actor, graph), permissions.can_read_graph(actor, graph),
           _GRAPH_REFUSAL["share"])
    with _unique("group_graph_unique", lambda: _already_shared(graph, group)), transaction.atomic():
        if GroupGraph.objects.filter(group=group, graph=graph).exists():
            raise _already_shared(graph, group)
        shared = GroupGraph.objects.create(group=group, graph=graph)
        _group_event("share", "graph", graph.id, graph.name, group, actor)
    return shared


def unshare_graph(actor: User, group: Group, graph: Graph) -> None:
    if not permissions.can_read_group(actor, group):
        raise NotFound("No such group.")
    _allow(permissions.can_unshare_graph(actor, graph, group), True,
           "Only the graph's owner or the group's owner can unshare it.")
    with transaction.atomic():
        deleted, _ = GroupGraph.objects.filter(group=group, graph=graph).delete()
        if not deleted:
            raise ActionError(f"Graph {graph.id} is not shared with group {group.id}.")
        _group_event("unshare", "graph", graph.id, graph.name, group, actor)
        _end_lost_watches([graph.id])
