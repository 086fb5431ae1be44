"""The unread counter the database keeps (notification_unread_count) against the rows
themselves, after every kind of write: persist, a redelivery, marking one item, a cluster,
all under a filter, a group's deletion, a user's deletion, and two writers at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from graphspace import actions
from graphspace.models import Group, GroupMember, MembershipSpan, User
from notifications import marking
from notifications.models import NotificationCluster, OwnerNotification, UnreadCount
from notifications.persist import persist_events
from notifications.queries import Filters, unread_count, unread_counts
from tests.conftest import People
from tests.integration.test_notification_center import A, B, C, share, upload


def counted_by_rows() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r, count(*) FROM (SELECT owner_email AS r FROM owner_notification WHERE NOT is_read"
            " UNION ALL SELECT member_email FROM group_notification WHERE NOT is_read) AS x GROUP BY r"
        )
        return dict(cursor.fetchall())


def counters() -> dict[str, int]:
    return {c.recipient_id: c.count for c in UnreadCount.objects.all() if c.count}


def test_the_counter_equals_the_rows_after_every_kind_of_write(people: People) -> None:
    lab = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, lab, people.bob)
    actions.add_member(people.alice, lab, people.carol)
    batch = [upload(B, n) for n in range(7)] + [share(lab.id, A, n) for n in range(5)] + [upload(C, 99)]
    persist_events(batch)
    persist_events(batch)  # a redelivery stores and counts nothing
    assert counters() == counted_by_rows() == {A: 5, B: 12, C: 6}
    assert unread_counts([A, B, C, "nobody@example.com"]) == {A: 5, B: 12, C: 6, "nobody@example.com": 0}

    one = OwnerNotification.objects.filter(owner_id=B).first()
    assert one is not None
    marking.mark_item(people.bob, "owner", one.id)
    marking.mark_item(people.bob, "owner", one.id)  # marking twice changes nothing
    assert unread_count(B) == 11 == counted_by_rows()[B]

    cluster = NotificationCluster.objects.filter(recipient=people.carol, topic="group").get()
    marking.mark_cluster(people.carol, cluster.id)
    assert unread_count(C) == 1 == counted_by_rows()[C]

    marking.mark_all(people.bob, Filters(topic="owner"))
    assert unread_count(B) == 5 == counted_by_rows()[B]

    actions.delete_group(people.alice, lab)  # cascades bob's five group notifications away
    assert unread_count(B) == 0
    assert counters() == counted_by_rows() == {C: 1}

    User.objects.get(email=C).delete()
    assert not UnreadCount.objects.filter(recipient_id=C).exists()
    assert counters() == counted_by_rows() == {}


@pytest.mark.django_db(transaction=True)
def test_writers_and_a_reader_marking_at_once_keep_the_counter_exact(people: People) -> None:
    # The group is made without actions: their outbox events would be committed here and
    # reach the suite's running relay and worker, whose writes could then meet this test's
    # teardown (a TRUNCATE of every table) in a deadlock.
    lab = Group.objects.create(name="Lab", owner=people.alice, membership_seq=2)
    for seq, member in enumerate((people.alice, people.bob), start=1):
        GroupMember.objects.create(group=lab, user=member)
        MembershipSpan.objects.create(group=lab, user=member, joined_seq=seq)
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def write(offset: int) -> None:
        try:
            start.wait()
            for round_ in range(10):
                n = offset + round_ * 10
                persist_events([upload(B, n + k) for k in range(5)] + [share(lab.id, C, n + k) for k in range(5)])
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)
        finally:
            connection.close()

    def read() -> None:
        try:
            start.wait()
            for _ in range(20):
                marking.mark_all(people.bob, Filters())
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(o,)) for o in (0, 1000)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert counters().get(B, 0) == counted_by_rows().get(B, 0)
    assert OwnerNotification.objects.filter(owner_id=B).count() == 100
