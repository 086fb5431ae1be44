"""A batch of several topics is one transaction whose inserts' statement triggers would lock
the unread counters in one sorted run per table; persist locks all of the batch's counters
in one sorted statement first (notifications/persist.py: _lock_counters), so two such batches
for crossed recipients cannot deadlock."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from graphspace.models import Group, MembershipSpan, User
from notifications.events import Event
from notifications.models import GroupNotification, NotificationCluster, OwnerNotification
from notifications.persist import persist_events
from tests.integration.test_notification_center import share, upload
from tests.integration.test_unread_counter import counted_by_rows, counters

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 10
ROUNDS = 8


def team(name: str, emails: list[str]) -> Group:
    # Made without actions: their outbox events would reach the suite's running worker.
    users = [User.objects.create_user(email, "x") for email in emails]
    group = Group.objects.create(name=name, owner=users[0], membership_seq=len(users))
    MembershipSpan.objects.bulk_create([MembershipSpan(group=group, user=u, joined_seq=seq)
                                        for seq, u in enumerate(users, start=1)])
    return group


def test_batches_of_two_topics_for_crossed_recipients_neither_deadlock_nor_miscount() -> None:
    # Batch x: owner events for the x users and a share into the y team; batch y the other
    # way round. Locked by each statement's trigger, the owner rows' counters would be locked
    # before the group rows' (two sorted runs): x holds x0 and waits for y0, y holds y0 and
    # waits for x0.
    xs = [f"x{n}@example.com" for n in range(SIZE)]
    ys = [f"y{n}@example.com" for n in range(SIZE)]
    x_team, y_team = team("X", xs), team("Y", ys)

    def batch(owners: list[str], into: Group, n: int) -> list[Event]:
        return [upload(email, n * 100 + k) for k, email in enumerate(owners)] + [share(into.id, owners[0], n)]

    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(owners: list[str], into: Group, offset: int) -> None:
        try:
            start.wait()
            for n in range(ROUNDS):
                persist_events(batch(owners, into, offset + n))
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(xs, y_team, 0)),
               threading.Thread(target=write, args=(ys, x_team, 1000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert OwnerNotification.objects.count() == 2 * ROUNDS * SIZE
    assert GroupNotification.objects.count() == 2 * ROUNDS * SIZE
    # One cluster per recipient and key, holding every row of it.
    clusters = NotificationCluster.objects.all()
    assert clusters.count() == 4 * SIZE
    assert {(c.size, c.unread) for c in clusters} == {(ROUNDS, ROUNDS)}
    assert counters() == counted_by_rows() == {email: 2 * ROUNDS for email in xs + ys}
