"""What a person reads: personal wording of one notification and of a cluster.

Pure functions. The actor reads "You shared graph XYZ with Lab"; everyone else reads
"alice@example.com shared graph XYZ with Lab". Names are returned as plain text: every
page and email escapes them where it renders them.
"""

from __future__ import annotations

from collections.abc import Sequence

PAST = {
    "upload": "uploaded",
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "share": "shared",
    "unshare": "stopped sharing",
    "add": "added",
    "remove": "removed",
    "publish": "made public",
    "unpublish": "made private",
}
PLURAL = {"graph": "graphs", "layout": "layouts", "group": "groups", "group_member": "members"}
SINGULAR = {"graph": "graph", "layout": "layout", "group": "group", "group_member": "member"}


def _who(actor: str | None, viewer: str) -> str:
    if not actor:
        return "Someone"
    return "You" if actor == viewer else actor


def watching_text(*, type: str, resource: str, name: str, actor: str | None, viewer: str) -> str:
    """What someone watching a graph or layout reads: "alice@example.com updated graph XYZ,
    which you watch". A layout created or shared is news of the graph they watch."""
    who = _who(actor, viewer)
    thing = f"{SINGULAR.get(resource, resource)} {name}".rstrip()
    if type in ("publish", "unpublish"):
        return f"{who} made {thing} {'public' if type == 'publish' else 'private'}, which you watch"
    verb = PAST.get(type, type)
    if resource == "layout" and type in ("create", "share"):
        return f"{who} {verb} {thing} on a graph you watch"
    return f"{who} {verb} {thing}, which you watch"


def item_text(
    *, type: str, resource: str, name: str, actor: str | None, viewer: str,
    group_name: str | None = None, topic: str | None = None,
) -> str:
    """One notification, worded for `viewer`."""
    if topic == "watching":
        return watching_text(type=type, resource=resource, name=name, actor=actor, viewer=viewer)
    who = _who(actor, viewer)
    verb = PAST.get(type, type)
    if resource == "group_member":
        member = "you" if name == viewer else name
        where = f" {'to' if type == 'add' else 'from'} {group_name}" if group_name else ""
        return f"{who} {verb} {member}{where}"
    thing = f"{SINGULAR.get(resource, resource)} {name}".rstrip()
    if type in ("share", "unshare") and group_name:
        return f"{who} {verb} {thing} with {group_name}"
    return f"{who} {verb} {thing}"


def count_of(resource: str, count: int) -> str:
    noun = SINGULAR.get(resource, resource) if count == 1 else PLURAL.get(resource, resource + "s")
    return f"{count} {noun}"


def cluster_text(
    *, topic: str, type: str, resource: str, count: int, actor: str | None, viewer: str,
    group_name: str | None = None,
) -> str:
    """A cluster of `count` similar notifications: "5 graphs uploaded",
    "alice@example.com shared 3 graphs with Lab", "You added 2 members to Lab"."""
    verb = PAST.get(type, type)
    things = count_of(resource, count)
    if topic == "owner":
        return f"{things} {verb}"
    if topic == "watching":
        if type in ("publish", "unpublish"):
            return f"{_who(actor, viewer)} made {things} you watch {'public' if type == 'publish' else 'private'}"
        return f"{_who(actor, viewer)} {verb} {things} you watch"
    who = _who(actor, viewer)
    if resource == "group_member":
        where = f" {'to' if type == 'add' else 'from'} {group_name}" if group_name else ""
        return f"{who} {verb} {things}{where}"
    where = f" with {group_name}" if group_name else ""
    return f"{who} {verb} {things}{where}"


def name_preview(names: Sequence[str], total: int, shown: int = 3) -> str:
    """The first few names of a cluster: "XYZ, ABC, DEF and 2 more"."""
    first = [n for n in names if n][:shown]
    rest = total - len(first)
    text = ", ".join(first)
    if rest > 0:
        text = f"{text} and {rest} more" if text else f"{rest} more"
    return text
