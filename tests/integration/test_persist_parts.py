"""A batch with many recipients stored in parts (notifications.persist.Part, Split): each
part writes only its own recipients, the parts together write every row once, a part
stored twice changes nothing, and two parts at once neither deadlock nor break a cluster
or an unread counter."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import redis
from django.db import connection

from graphspace import actions
from graphspace.models import Group, GroupMember, MembershipSpan, User
from notifications.models import GroupNotification, NotificationCluster, OwnerNotification
from notifications.persist import Part, Split, persist_events
from tests.conftest import People
from tests.integration.test_notification_center import A, share, upload
from tests.integration.test_unread_counter import counted_by_rows, counters

MEMBERS = 40


def test_the_parts_of_a_batch_split_its_recipients_between_them() -> None:
    emails = [f"m{n}@example.com" for n in range(1000)]
    for count in (2, 3):
        parts = [Part(i, count) for i in range(count)]
        held = [[e for e in emails if p.holds(e)] for p in parts]
        assert sorted(e for h in held for e in h) == sorted(emails)  # every one, once
        assert all(len(h) > 1000 / count / 2 for h in held)  # and roughly even


@pytest.fixture
def crowd(people: People) -> Group:
    group = actions.create_group(people.alice, name="Crowd")
    for n in range(MEMBERS):
        actions.add_member(people.alice, group, User.objects.create_user(f"m{n}@example.com", "x"))
    return group


def test_parts_store_every_row_once_and_a_part_twice_changes_nothing(crowd: Group) -> None:
    batch = [share(crowd.id, A, 1), share(crowd.id, A, 2), upload(A, 3)]
    first = persist_events(batch, part=Part(0, 2))
    again = persist_events(batch, part=Part(0, 2))
    second = persist_events(batch, part=Part(1, 2))
    # 40 members + alice herself get both shares; alice's upload goes to her alone.
    assert again.created == 0
    assert first.created + second.created == 2 * (MEMBERS + 1) + 1 == GroupNotification.objects.count() + 1
    assert OwnerNotification.objects.count() == 1
    mine = {r for r in GroupNotification.objects.filter(id__in=first.group_ids).values_list("member_id", flat=True)}
    theirs = {r for r in GroupNotification.objects.filter(id__in=second.group_ids).values_list("member_id", flat=True)}
    assert mine and theirs and not mine & theirs
    assert persist_events(batch).created == 0  # the whole batch again: nothing new
    clusters = NotificationCluster.objects.filter(topic="group")
    assert clusters.count() == MEMBERS + 1
    assert {(c.size, c.unread) for c in clusters} == {(2, 2)}
    assert counters() == counted_by_rows()


def test_a_split_hands_the_other_parts_on_once_and_stores_part_0(crowd: Group) -> None:
    handed: list[int] = []
    split = Split(lambda count: handed.append(count) or True, part_min=10, parts_max=3)
    batch = [share(crowd.id, A, 1)]
    result = persist_events(batch, split=split)
    assert handed == [3] and split.part == Part(0, 3)
    assert 0 < result.created < MEMBERS
    assert {r for r in GroupNotification.objects.values_list("member_id", flat=True)} == {
        e for e in [A, *(f"m{n}@example.com" for n in range(MEMBERS))] if Part(0, 3).holds(e)}
    for index in (1, 2):
        persist_events(batch, part=Part(index, 3))
    assert GroupNotification.objects.count() == MEMBERS + 1
    assert counters() == counted_by_rows()


def test_a_split_that_cannot_hand_on_stores_the_whole_batch(crowd: Group) -> None:
    split = Split(lambda count: False, part_min=10, parts_max=2)
    assert persist_events([share(crowd.id, A, 1)], split=split).created == MEMBERS + 1
    assert split.part is None


def test_a_small_batch_is_not_split(crowd: Group) -> None:
    split = Split(lambda count: pytest.fail("split"), part_min=MEMBERS, parts_max=2)
    assert persist_events([share(crowd.id, A, 1)], split=split).created == MEMBERS + 1


@pytest.mark.django_db(transaction=True)
def test_two_parts_at_once_neither_deadlock_nor_break_a_cluster_or_a_counter(people: People) -> None:
    # The group is made without actions: their outbox events would be committed here and reach
    # the suite's running relay and worker, whose "member added" rows a clean-clone run counted
    # among this test's (1,106 rows instead of 246).
    group = Group.objects.create(name="Crowd", owner=people.alice, membership_seq=MEMBERS + 1)
    members = [people.alice] + [User.objects.create_user(f"m{n}@example.com", "x") for n in range(MEMBERS)]
    for seq, member in enumerate(members, start=1):
        GroupMember.objects.create(group=group, user=member)
        MembershipSpan.objects.create(group=group, user=member, joined_seq=seq)
    # Each member already has an open cluster for the first share's key, and an owner row.
    persist_events([share(group.id, A, 0)] + [upload(f"m{n}@example.com", n) for n in range(MEMBERS)])
    batch = [share(group.id, A, n) for n in range(1, 6)] + [upload(f"m{n}@example.com", 100 + n) for n in range(MEMBERS)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def part(index: int) -> None:
        try:
            start.wait()
            for _ in range(3):  # and each part redelivered
                persist_events(batch, part=Part(index, 2))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=part, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert GroupNotification.objects.count() == 6 * (MEMBERS + 1)
    assert OwnerNotification.objects.count() == 2 * MEMBERS
    group_clusters = NotificationCluster.objects.filter(topic="group")
    assert group_clusters.count() == MEMBERS + 1
    assert {(c.size, c.unread) for c in group_clusters} == {(6, 6)}
    assert {(c.size, c.unread) for c in NotificationCluster.objects.filter(topic="owner")} == {(2, 2)}
    assert counters() == counted_by_rows()


def test_a_split_batch_is_confirmed_to_the_bridge_when_its_last_part_is_done(broker_url: str, settings: Any) -> None:
    from kafka_bridge.confirmations import confirmation_key
    from tasks import persist as task

    settings.CELERY_BROKER_URL = broker_url
    task._broker = None  # made again for this Redis
    client = redis.Redis.from_url(broker_url)
    batch = f"batch-{uuid.uuid4()}"
    task.part_done(batch, 0, 3)
    task.part_done(batch, 2, 3)
    # Part 2 delivered again (its worker killed before the ack): still one part, not two.
    task.part_done(batch, 2, 3)
    assert client.get(confirmation_key(batch)) is None
    task.part_done(batch, 1, 3)
    assert client.get(confirmation_key(batch)) == b"1"
    task._broker = None
