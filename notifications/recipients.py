"""Who hears of an event: a pure rule over the event and the group's members."""

from __future__ import annotations

from collections.abc import Iterable

from notifications.events import Event


def recipients(event: Event, members: Iterable[str] = ()) -> list[str]:
    """The recipients' emails, each once, in a stable order.

    Owner topic: the owner. Group topic: every member of the group as of the action (the
    caller reads them at the event's membership number; the actor included: they see their
    own action in their group's history), plus the removed member on a remove event, who is
    no longer among the members.
    """
    if event.topic == "owner":
        return [event.owner_email] if event.owner_email else []
    found = {m.lower() for m in members}
    if event.type == "remove" and event.member_email:
        found.add(event.member_email)
    return sorted(found)
