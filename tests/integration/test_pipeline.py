"""Every action of the triggers table, through the REST API, to the exact notification rows,
over the real pipeline: outbox -> relay -> Kafka broker -> kafka_bridge -> Celery worker -> PostgreSQL.
"""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from graphspace import actions, producer
from notifications.models import GroupNotification, OwnerNotification
from tests.conftest import People
from tests.integration.conftest import wait_for
from tests.integration.helpers import GRAPH, Api

pytestmark = pytest.mark.usefixtures("pipeline")


def owner_rows() -> list[tuple[str, str, str, str, str | None]]:
    return sorted(OwnerNotification.objects.values_list("owner_id", "type", "resource", "message", "actor_email"))


def group_rows() -> list[tuple[str, str, str, str, str | None]]:
    return sorted(GroupNotification.objects.values_list("member_id", "type", "resource", "message", "owner_email"))


def settle(expected_owner: int, expected_group: int) -> None:
    """Wait until the pipeline has written this many rows, then a little longer, so that a
    duplicate would have had time to appear."""
    wait_for(
        lambda: OwnerNotification.objects.count() >= expected_owner
        and GroupNotification.objects.count() >= expected_group,
        what=f"{expected_owner} owner and {expected_group} group notifications",
    )
    time.sleep(0.5)


def test_every_action_notifies_exactly_the_right_people_once(people: People) -> None:
    alice = Api(people.alice)
    a, b, c = "alice@example.com", "bob@example.com", "carol@example.com"

    # Each step waits for its rows, so that the expected counts read as a story; the
    # recipients would be the same without the waits (they are fixed as of each action).
    counts = {"owner": 0, "group": 0}

    def then(owner: int = 0, group: int = 0) -> None:
        counts["owner"] += owner
        counts["group"] += group
        wait_for(lambda: OwnerNotification.objects.count() >= counts["owner"]
                 and GroupNotification.objects.count() >= counts["group"], what=f"{counts}")

    group = alice.call("POST", "groups/", {"name": "Lab", "description": "d", "owner_email": a}, form=True, expect=201)
    then(owner=1)
    gid = group["id"]
    alice.call("POST", f"groups/{gid}/members", {"member_email": b}, form=True, expect=201)
    then(group=2)
    alice.call("POST", f"groups/{gid}/members", {"member_email": c}, form=True, expect=201)
    then(group=3)
    graph = alice.call("POST", "graphs/", {"name": "XYZ", "is_public": 0, "graph_json": GRAPH,
                                           "style_json": {"style": []}, "tags": ["t"], "owner_email": a}, expect=201)
    then(owner=1)
    alice.call("PUT", f"graphs/{graph['id']}", {"is_public": 1})
    then(owner=1)
    alice.call("POST", f"groups/{gid}/graphs", {"graph_id": graph["id"]}, form=True, expect=201)
    then(group=3)
    layout = alice.call("POST", f"graphs/{graph['id']}/layouts/", {
        "name": "L1", "is_shared": 0, "style_json": {}, "positions_json": {"a": {"x": 1, "y": 2}},
        "graph_id": graph["id"], "owner_email": a}, expect=201)
    then(owner=1)
    lpath = f"graphs/{graph['id']}/layouts/{layout['id']}"
    alice.call("PUT", lpath, {"name": "L1", "is_shared": 0, "style_json": {}, "positions_json": {"a": {"x": 5, "y": 5}}})
    then(owner=1)
    # The client sends every field on each save: only the change of is_shared is news.
    alice.call("PUT", lpath, {"name": "L1", "is_shared": 1, "style_json": {}, "positions_json": {"a": {"x": 5, "y": 5}}})
    then(group=3)
    alice.call("PUT", lpath, {"is_shared": 0})
    then(group=3)
    alice.call("DELETE", lpath)
    then(owner=1)
    alice.call("DELETE", f"groups/{gid}/graphs/{graph['id']}")
    then(group=3)
    alice.call("DELETE", f"groups/{gid}/members/{people.carol.id}")
    then(group=3)
    alice.call("PUT", f"groups/{gid}", {"description": "new"}, form=True)
    then(owner=1)
    alice.call("DELETE", f"graphs/{graph['id']}")
    then(owner=1)

    owner_expected = sorted([
        (a, "create", "group", "New group Lab created.", a),
        (a, "upload", "graph", "New graph XYZ uploaded.", a),
        (a, "update", "graph", "Graph XYZ updated.", a),
        (a, "create", "layout", "New layout L1 created.", a),
        (a, "update", "layout", "Layout L1 updated.", a),
        (a, "delete", "layout", "Layout L1 deleted.", a),
        (a, "update", "group", "Group Lab updated.", a),
        (a, "delete", "graph", "Graph XYZ deleted.", a),
    ])

    def to_members(members: list[str], type: str, resource: str, message: str) -> list[tuple[str, str, str, str, str]]:
        return [(m, type, resource, message, a) for m in members]

    group_expected = sorted(
        to_members([a, b], "add", "group_member", f"New group member {b} added.")
        + to_members([a, b, c], "add", "group_member", f"New group member {c} added.")
        + to_members([a, b, c], "share", "graph", "Graph XYZ shared.")
        + to_members([a, b, c], "share", "layout", "Layout L1 shared.")
        + to_members([a, b, c], "unshare", "layout", "Layout L1 removed.")
        + to_members([a, b, c], "unshare", "graph", "Graph XYZ removed.")
        + to_members([a, b], "remove", "group_member", f"Group member {c} removed.")
        + [(c, "remove", "group_member", "You were removed from this group.", a)]
    )
    settle(len(owner_expected), len(group_expected))
    assert owner_rows() == owner_expected
    assert group_rows() == group_expected
    assert GroupNotification.objects.filter(group_id=gid).count() == len(group_expected)

    # Deleting the group notifies its owner; the group's own history goes with it.
    alice.call("DELETE", f"groups/{gid}")
    settle(len(owner_expected) + 1, 0)
    assert (a, "delete", "group", "Group Lab deleted.", a) in owner_rows()
    assert OwnerNotification.objects.count() == len(owner_expected) + 1
    assert GroupNotification.objects.count() == 0
    # Nobody else heard of alice's own resources.
    assert not OwnerNotification.objects.exclude(owner_id=a).exists()


def test_a_rolled_back_action_notifies_nobody(people: People) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        with transaction.atomic():
            actions.upload_graph(people.alice, name="Phantom", graph_json=GRAPH)
            raise Abort
    # A later action on the same key (same partition, so behind the first in the log) is
    # the marker: once it is stored, the rolled-back one would have been stored before it.
    actions.upload_graph(people.alice, name="Real", graph_json=GRAPH)
    settle(1, 0)
    assert [m for (_, _, _, m, _) in owner_rows()] == ["New graph Real uploaded."]


def test_the_seeds_own_example_becomes_a_row(people: People) -> None:
    with transaction.atomic():
        producer.send_message(topic="owner", message={
            "owner_email": "alice@example.com", "message": "New graph XYZ uploaded.",
            "resource": "graph", "resource_id": 1, "type": "upload",
        })
    wait_for(lambda: OwnerNotification.objects.exists(), timeout=10, what="the seed's example row")
    row = OwnerNotification.objects.get()
    assert (row.owner_id, row.type, row.resource, row.resource_id, row.message) == (
        "alice@example.com", "upload", "graph", 1, "New graph XYZ uploaded.")
    assert row.is_read is False and row.is_email_sent is False and row.emailed_at is None


def test_a_group_event_fans_out_to_the_members_as_of_the_action(people: People) -> None:
    group = actions.create_group(people.alice, name="Fan")
    actions.add_member(people.alice, group, people.bob)
    settle(1, 2)
    actions.add_member(people.alice, group, people.carol)
    settle(1, 2 + 3)
    graph = actions.upload_graph(people.bob, name="Shared", graph_json=GRAPH)
    actions.share_graph(people.bob, group, graph)
    settle(2, 2 + 3 + 3)
    shared = GroupNotification.objects.filter(type="share")
    assert sorted(shared.values_list("member_id", flat=True)) == [
        "alice@example.com", "bob@example.com", "carol@example.com"]
    # On group rows the seed's owner_email column names the actor.
    assert set(shared.values_list("owner_email", "actor_email")) == {("bob@example.com", "bob@example.com")}
