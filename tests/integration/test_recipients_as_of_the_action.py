"""Group events reach the members of the group as of the action, however late they are
processed: the pipeline may lag by seconds or hours, and membership changes in between must
change nothing about who hears of what.

These tests play the lagging pipeline in-process: actions write their events to the outbox;
the events are read back from it and persisted only after later membership changes.
"""

from __future__ import annotations

from typing import Any

from graphspace import actions
from graphspace.models import OutboxEvent, User
from notifications.events import Event, parse_message
from notifications.models import GroupNotification
from notifications.persist import persist_events
from tests.conftest import PASSWORD, People
from tests.integration.helpers import GRAPH


def outbox_events() -> list[Event]:
    """What the relay would publish, as the bridge would read it."""
    return [parse_message(row.topic, bytes(row.value)) for row in OutboxEvent.objects.order_by("id")]


def told(type: str, **filters: Any) -> list[str]:
    return sorted(GroupNotification.objects.filter(type=type, **filters).values_list("member_id", flat=True))


def test_a_share_processed_after_a_member_left_still_reaches_them(people: People) -> None:
    dave = User.objects.create_user("dave@example.com", PASSWORD)
    group = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, group, people.bob)
    actions.add_member(people.alice, group, people.carol)
    graph = actions.upload_graph(people.alice, name="Findings", graph_json=GRAPH)
    actions.share_graph(people.alice, group, graph)
    # The pipeline lags: carol leaves and dave joins before anything is processed.
    actions.remove_member(people.alice, group, people.carol)
    actions.add_member(people.alice, group, dave)

    persist_events(outbox_events())

    a, b, c, d = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"
    # carol was a member when the graph was shared; dave was not.
    assert told("share") == [a, b, c]
    # The removal reaches the group as it was then, plus carol herself.
    assert told("remove") == [a, b, c]
    # dave hears of his own arrival, carol (gone by then) does not.
    assert told("add", resource_id=dave.id) == [a, b, d]
    # Each add reached exactly the members of its moment.
    assert told("add", resource_id=people.bob.id) == [a, b]
    assert told("add", resource_id=people.carol.id) == [a, b, c]


def test_a_member_who_left_and_came_back_hears_only_of_their_own_times(people: People) -> None:
    group = actions.create_group(people.alice, name="Lab")
    graph = actions.upload_graph(people.alice, name="G", graph_json=GRAPH)
    second = actions.upload_graph(people.alice, name="H", graph_json=GRAPH)
    actions.add_member(people.alice, group, people.bob)
    actions.remove_member(people.alice, group, people.bob)
    actions.share_graph(people.alice, group, graph)  # bob away
    actions.add_member(people.alice, group, people.bob)
    actions.share_graph(people.alice, group, second)  # bob back

    persist_events(outbox_events())

    assert told("share", resource_id=graph.id) == ["alice@example.com"]
    assert told("share", resource_id=second.id) == ["alice@example.com", "bob@example.com"]


def test_events_of_a_group_deleted_before_they_were_processed_store_nothing(people: People) -> None:
    group = actions.create_group(people.alice, name="Gone")
    actions.add_member(people.alice, group, people.bob)
    actions.delete_group(people.alice, group)

    result = persist_events(outbox_events())

    assert not GroupNotification.objects.exists()
    # The owner still hears of the creation and the deletion of the group.
    assert result.created == 2 and result.refused == 0


def test_a_redelivered_late_batch_changes_nothing(people: People) -> None:
    group = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, group, people.bob)
    graph = actions.upload_graph(people.alice, name="G", graph_json=GRAPH)
    actions.share_graph(people.alice, group, graph)
    events = outbox_events()
    first = persist_events(events)
    actions.remove_member(people.alice, group, people.bob)

    again = persist_events(events)

    assert first.created > 0 and again.created == 0
    assert told("share") == ["alice@example.com", "bob@example.com"]
