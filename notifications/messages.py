"""Message texts: the seed's wording (its NOTIFICATION_MESSAGE table), as pure functions."""

from __future__ import annotations

from notifications.events import Event

TEMPLATES: dict[tuple[str, str], str] = {
    ("upload", "graph"): "New graph {name} uploaded.",
    ("create", "graph"): "New graph {name} created.",
    ("update", "graph"): "Graph {name} updated.",
    ("delete", "graph"): "Graph {name} deleted.",
    ("publish", "graph"): "Graph {name} made public.",
    ("unpublish", "graph"): "Graph {name} made private.",
    ("create", "layout"): "New layout {name} created.",
    ("update", "layout"): "Layout {name} updated.",
    ("delete", "layout"): "Layout {name} deleted.",
    ("create", "group"): "New group {name} created.",
    ("update", "group"): "Group {name} updated.",
    ("delete", "group"): "Group {name} deleted.",
    ("share", "graph"): "Graph {name} shared.",
    ("unshare", "graph"): "Graph {name} removed.",
    ("share", "layout"): "Layout {name} shared.",
    ("unshare", "layout"): "Layout {name} removed.",
    ("add", "group_member"): "New group member {name} added.",
    ("remove", "group_member"): "Group member {name} removed.",
}

REMOVED_MEMBER = "You were removed from this group."


def message_text(type: str, resource: str, name: str) -> str:
    """The text of a notification about `resource` named `name` (an email for members)."""
    try:
        template = TEMPLATES[(type, resource)]
    except KeyError:
        raise ValueError(f"no message for type {type!r} on resource {resource!r}") from None
    return template.format(name=name)


def message_for(event: Event, recipient: str) -> str:
    """What `recipient` reads: the removed member is told so in the second person."""
    if event.type == "remove" and event.member_email == recipient:
        return REMOVED_MEMBER
    return event.message
