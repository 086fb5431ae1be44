"""The recipient rule with watchers and preferences: pure functions, no server."""

from __future__ import annotations

from typing import Any

import pytest

from notifications.events import Event, InvalidEvent, new_event
from notifications.recipients import (
    KIND_TYPES,
    Preferences,
    in_digest,
    keep,
    muted,
    on_site,
    preference_key,
    settings_view,
    watched_at,
    watching_recipients,
)

A, B, C, D = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"


def watching(type: str = "update", resource: str = "graph", **extra: Any) -> Event:
    return new_event("watching", {
        "graph_id": 5, "watch_seq": 10, "owner_email": A, "actor_email": A, "message": "m",
        "resource": resource, "resource_id": 5 if resource == "graph" else 9, "type": type, **extra,
    })


def group(type: str = "share", **extra: Any) -> Event:
    return new_event("group", {"group_id": 3, "owner_email": A, "actor_email": A, "message": "m",
                               "resource": "graph", "resource_id": 5, "type": type, **extra})


def test_watchers_hear_of_an_update_but_never_the_actor_or_the_owner() -> None:
    assert watching_recipients(watching(), [B, A, C]) == [B, C]
    # An admin edits alice's graph: alice hears by her owner event, the admin acted.
    admin_edit = watching(actor_email=D)
    assert watching_recipients(admin_edit, [A, B, D]) == [B]


def test_a_watcher_hears_of_one_action_once() -> None:
    assert watching_recipients(watching(), [B, "Bob@example.com", B]) == [B]


def test_a_member_who_also_watches_hears_by_the_group_event_only() -> None:
    """The group event wins: bob, in Lab and watching the graph, is told once, in Lab."""
    event = watching("share", "layout", announced_groups=[[3, 4]])
    assert event.announced_groups == ((3, 4),)
    assert watching_recipients(event, [B, C], told_by_groups=[A, B]) == [C]


@pytest.mark.parametrize(("started", "ended", "seq", "on"), [
    (5, None, 10, True),    # watching since before the action
    (10, None, 10, True),   # began with the number the action saw (committed before it)
    (11, None, 10, False),  # began after the action
    (5, 10, 10, False),     # lost access (or unwatched) before the action committed
    (5, 11, 10, True),      # lost access after: still heard of this one
    (5, None, None, True),  # an event without a number: the watches open now
    (5, 8, None, False),
])
def test_a_watch_counts_while_its_span_covers_the_action(started: int, ended: int | None, seq: int | None, on: bool) -> None:
    assert watched_at(started, ended, seq) is on


def test_a_muted_group_creates_nothing_but_the_members_own_removal() -> None:
    prefs = Preferences(muted_groups=frozenset({3}))
    assert muted(group(), B, prefs)
    assert not on_site(group(), B, prefs)
    removal = group("remove", resource="group_member", member_email=B)
    assert not muted(removal, B, prefs) and on_site(removal, B, prefs)
    # The same removal told to another member who muted the group: nothing.
    assert not on_site(removal, C, prefs)
    # Another group, and the other kinds, are not affected.
    assert on_site(group(group_id=4), B, prefs) and on_site(watching(), B, prefs)


@pytest.mark.parametrize("kind", list(KIND_TYPES))
def test_each_type_of_each_kind_can_be_turned_off_for_the_site(kind: str) -> None:
    for type in KIND_TYPES[kind]:
        prefs = Preferences(site_off=frozenset({preference_key(kind, type)}))
        others = [t for t in KIND_TYPES[kind] if t != type]
        assert settings_view(prefs)[kind][type] == {"site": False, "email": True}
        assert all(settings_view(prefs)[kind][t]["site"] for t in others)
    off = Preferences(site_off=frozenset({"watching.update"}))
    assert keep(watching(), [B, C], {B: off}) == [C]
    assert keep(watching("delete"), [B, C], {B: off}) == [B, C]


def test_the_email_preference_is_per_kind_and_type() -> None:
    prefs = Preferences(email_off=frozenset({"watching.update"}))
    assert not in_digest("watching", "update", prefs)
    assert in_digest("watching", "delete", prefs) and in_digest("owner", "update", prefs)
    # The site is untouched by it.
    assert on_site(watching(), B, prefs)


def test_the_defaults_are_everything_on() -> None:
    view = settings_view(Preferences())
    assert set(view) == {"owner", "group", "watching"}
    assert all(c == {"site": True, "email": True} for types in view.values() for c in types.values())


def test_a_watching_event_needs_its_graph_and_a_type_it_carries() -> None:
    with pytest.raises(InvalidEvent, match="graph_id is required"):
        new_event("watching", {"owner_email": A, "message": "m", "resource": "graph", "resource_id": 1, "type": "update"})
    with pytest.raises(InvalidEvent, match="type 'upload' is not one of"):
        watching("upload")
    with pytest.raises(InvalidEvent, match="does not apply"):
        watching("publish", "layout")


def test_watching_notifications_are_worded_for_the_watcher() -> None:
    from notifications.wording import cluster_text, item_text

    def text(type: str, resource: str = "graph") -> str:
        return item_text(type=type, resource=resource, name="XYZ", actor=A, viewer=B, topic="watching")

    assert text("update") == "alice@example.com updated graph XYZ, which you watch"
    assert text("unpublish") == "alice@example.com made graph XYZ private, which you watch"
    assert text("share", "layout") == "alice@example.com shared layout XYZ on a graph you watch"
    assert text("unshare", "layout") == "alice@example.com stopped sharing layout XYZ, which you watch"
    assert cluster_text(topic="watching", type="update", resource="graph", count=3, actor=A, viewer=B) == (
        "alice@example.com updated 3 graphs you watch")
