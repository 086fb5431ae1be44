"""Recipient resolution and message texts: pure rules, no server."""

from __future__ import annotations

import pytest

from notifications.events import new_event
from notifications.messages import REMOVED_MEMBER, message_for, message_text
from notifications.recipients import recipients


def group_event(type: str, resource: str, **extra: object):  # type: ignore[no-untyped-def]
    return new_event("group", {
        "group_id": 3, "owner_email": "alice@example.com", "message": "m", "resource": resource,
        "resource_id": 7, "type": type, **extra,
    })


def test_an_owner_event_reaches_only_the_owner() -> None:
    event = new_event("owner", {"owner_email": "bob@example.com", "actor_email": "alice@example.com",
                                "message": "m", "resource": "graph", "resource_id": 1, "type": "update"})
    assert recipients(event, ["carol@example.com"]) == ["bob@example.com"]


def test_a_share_reaches_every_member_once_including_the_actor() -> None:
    members = ["bob@example.com", "alice@example.com", "Bob@example.com", "carol@example.com"]
    assert recipients(group_event("share", "graph"), members) == [
        "alice@example.com", "bob@example.com", "carol@example.com",
    ]


def test_a_remove_also_reaches_the_removed_member() -> None:
    event = group_event("remove", "group_member", member_email="carol@example.com")
    assert recipients(event, ["alice@example.com", "bob@example.com"]) == [
        "alice@example.com", "bob@example.com", "carol@example.com",
    ]


def test_a_group_without_members_notifies_nobody() -> None:
    assert recipients(group_event("share", "graph"), []) == []


@pytest.mark.parametrize(
    ("type", "resource", "name", "text"),
    [
        ("upload", "graph", "XYZ", "New graph XYZ uploaded."),
        ("update", "graph", "XYZ", "Graph XYZ updated."),
        ("delete", "graph", "XYZ", "Graph XYZ deleted."),
        ("create", "layout", "L", "New layout L created."),
        ("update", "layout", "L", "Layout L updated."),
        ("delete", "layout", "L", "Layout L deleted."),
        ("create", "group", "Lab", "New group Lab created."),
        ("update", "group", "Lab", "Group Lab updated."),
        ("delete", "group", "Lab", "Group Lab deleted."),
        ("share", "graph", "XYZ", "Graph XYZ shared."),
        ("unshare", "graph", "XYZ", "Graph XYZ removed."),
        ("share", "layout", "L", "Layout L shared."),
        ("unshare", "layout", "L", "Layout L removed."),
        ("add", "group_member", "bob@example.com", "New group member bob@example.com added."),
        ("remove", "group_member", "bob@example.com", "Group member bob@example.com removed."),
    ],
)
def test_message_texts_keep_the_seeds_wording(type: str, resource: str, name: str, text: str) -> None:
    assert message_text(type, resource, name) == text


def test_a_message_for_an_unknown_pair_is_an_error() -> None:
    with pytest.raises(ValueError, match="no message for type 'upload' on resource 'group'"):
        message_text("upload", "group", "x")


def test_the_removed_member_reads_that_they_were_removed() -> None:
    text = "Group member carol@example.com removed."
    event = group_event("remove", "group_member", member_email="carol@example.com", message=text)
    assert message_for(event, "carol@example.com") == REMOVED_MEMBER
    assert message_for(event, "bob@example.com") == "Group member carol@example.com removed."
