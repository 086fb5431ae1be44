"""Who hears of an event: pure rules over the event, the group's members, the watchers and
each recipient's preferences.

Three kinds of notification (the original design's owner, group and watching topics). One
action can produce an event of each kind; a person hears of one action once, in the place
that says most about why they are told:

1. the owner event (their own resource),
2. the group event (a group they are in: the group's history, its filter, its mute),
3. the watching event, which leaves out the actor, the owner the owner event told, and the
   members of every group the same action told by a group event (the event carries those
   groups with their membership numbers, `Event.announced_groups`).

So a member of Lab who also watches a graph shared with Lab hears of a layout shared on it
once, as a Lab notification; a watcher outside Lab hears of it as a watching notification.

Preferences (`Preferences`) are applied last: a muted group creates nothing for its member
(except their own removal), and a type of event turned off for the site creates no row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from notifications.events import TOPIC_KINDS, Event

KINDS = ("owner", "group", "watching")
# The types of event a person can set preferences for, per kind.
KIND_TYPES: dict[str, tuple[str, ...]] = {kind: TOPIC_KINDS[kind][0] for kind in KINDS}
CHANNELS = ("site", "email")


def recipients(event: Event, members: Iterable[str] = ()) -> list[str]:
    """The recipients' emails, each once, in a stable order.

    Owner topic: the owner. Group topic: every member of the group as of the action (the
    caller reads them at the event's membership number; the actor included: they see their
    own action in their group's history), plus the removed member on a remove event, who is
    no longer among the members. (Watching topic: see `watching_recipients`.)
    """
    if event.topic == "owner":
        return [event.owner_email] if event.owner_email else []
    found = {m.lower() for m in members}
    if event.type == "remove" and event.member_email:
        found.add(event.member_email)
    return sorted(found)


def watched_at(started_seq: int, ended_seq: int | None, seq: int | None) -> bool:
    """Whether a watch (a span of watch numbers) was on at watch number `seq`: begun by it
    and not yet ended. An event without a number (a producer that predates it) reaches the
    watches open now. notifications/persist.py asks PostgreSQL the same question."""
    if seq is None:
        return ended_seq is None
    return started_seq <= seq and (ended_seq is None or ended_seq > seq)


def watching_recipients(event: Event, watchers: Iterable[str], told_by_groups: Iterable[str] = ()) -> list[str]:
    """The watchers (as of the action) who hear of it by this watching event: never the
    actor, never the owner the owner event told, never a member of a group the action told
    by a group event (they hear of it there). Each once, in a stable order."""
    left_out = {e.lower() for e in told_by_groups}
    for who in (event.actor, event.owner_email):
        if who:
            left_out.add(who.lower())
    return sorted({w.lower() for w in watchers} - left_out)


# --- preferences ---------------------------------------------------------------------------

def preference_key(kind: str, type: str) -> str:
    return f"{kind}.{type}"


@dataclass(frozen=True)
class Preferences:
    """One person's settings, as stored: only what differs from the defaults (everything on
    the site; in the digest when they opted in to it)."""

    site_off: frozenset[str] = field(default_factory=frozenset)  # preference keys
    email_off: frozenset[str] = field(default_factory=frozenset)
    muted_groups: frozenset[int] = field(default_factory=frozenset)


DEFAULT = Preferences()


def muted(event: Event, recipient: str, prefs: Preferences) -> bool:
    """A muted group's events create nothing for the member, except the news of their own
    removal (they would otherwise never learn why the group went quiet)."""
    if event.topic != "group" or event.group_id not in prefs.muted_groups:
        return False
    return not (event.type == "remove" and event.member_email == recipient)


def on_site(event: Event, recipient: str, prefs: Preferences) -> bool:
    """Whether the event creates a row (the page, the bell, the toast) for `recipient`."""
    if muted(event, recipient, prefs):
        return False
    return preference_key(event.topic, event.type) not in prefs.site_off


def in_digest(kind: str, type: str, prefs: Preferences) -> bool:
    """Whether a stored notification goes in the recipient's email digest (the digest opt-in
    itself is the user's `receive_notification_email`)."""
    return preference_key(kind, type) not in prefs.email_off


def keep(event: Event, candidates: Iterable[str], prefs: Mapping[str, Preferences]) -> list[str]:
    """The candidates whose preferences let the event create a row for them."""
    return [r for r in candidates if on_site(event, r, prefs.get(r, DEFAULT))]


def settings_view(prefs: Preferences) -> dict[str, dict[str, dict[str, bool]]]:
    """Every kind and type with its two channels, for the API and the page."""
    return {
        kind: {
            type: {"site": preference_key(kind, type) not in prefs.site_off,
                   "email": preference_key(kind, type) not in prefs.email_off}
            for type in types
        }
        for kind, types in KIND_TYPES.items()
    }
