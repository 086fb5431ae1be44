"""What broadcast pushes, through the Redis channel layer to real consumers: each open page
gets one frame whose items are exactly what item_json makes of the stored rows (the JSON the
page and the API share), in the page's order, with the batch's count past the frame and the
unread count; and it costs one query when the caller already knows who is listening."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from graphspace.models import Group, GroupMember, MembershipSpan, User
from notifications.broadcast import MAX_ITEMS, broadcast
from notifications.channels import ChannelLayer, _scripted_group_send, listening, send_to_users
from notifications.events import Event, new_event
from notifications.models import GroupNotification, OwnerNotification, WatchingNotification
from notifications.persist import persist_events
from notifications.serializers import item_json
from tasks.broadcast import broadcast_notifications
from tests.conftest import People
from tests.integration.test_websocket import headers_for, socket_for

A, B, C = "alice@example.com", "bob@example.com", "carol@example.com"
# What people type, carried as text: the page writes it with textContent, never as HTML.
NAME = "<img src=x onerror=alert(1)> \"Ünïcode\" & 'quotes' \u2028"


def upload(owner: str, n: int) -> Event:
    return new_event("owner", {"owner_email": owner, "message": f"<b>{n}</b>", "resource": "graph", "resource_id": n,
                               "resource_name": f"{NAME} {n}", "type": "upload"})


def share(group_id: int, actor: str, n: int) -> Event:
    return new_event("group", {"group_id": group_id, "owner_email": actor, "actor_email": actor, "message": "m",
                               "resource": "graph", "resource_id": n, "resource_name": f"S{n}", "type": "share"})


def watching(user: User, n: int) -> WatchingNotification:
    now = datetime.now(UTC)
    return WatchingNotification.objects.create(
        watcher=user, event_id=uuid.uuid4(), message="w", resource_id=n, resource_name=f"W{n}",
        actor_email=A, occurred_at=now, type="update", resource="graph", graph_id=n)


def expected_items(email: str, owner_ids: list[int], group_ids: list[int], watching_ids: list[int]) -> list[Any]:
    """The oracle: the stored rows read with the ORM and serialized by item_json, owner rows
    before group rows before watching rows, each newest first."""
    owners = OwnerNotification.objects.filter(id__in=owner_ids, owner_id=email).order_by("-created_at", "-id")
    groups = (GroupNotification.objects.select_related("group").filter(id__in=group_ids, member_id=email)
              .order_by("-created_at", "-id"))
    watchings = WatchingNotification.objects.filter(id__in=watching_ids, watcher_id=email).order_by("-created_at", "-id")
    return ([item_json(r, email) for r in owners] + [item_json(r, email, r.group.name) for r in groups]
            + [item_json(r, email) for r in watchings])


@pytest.mark.django_db(transaction=True)
def test_each_open_page_gets_the_rows_as_item_json_makes_them_in_one_query(people: People, broker_url: str) -> None:
    # The group is made without actions: their outbox events would reach the suite's running
    # relay and worker when other tests have started them, and rows of theirs would join these.
    members = [people.alice, people.bob, people.carol]
    lab = Group.objects.create(name=f"Lab {NAME}", owner=people.alice, membership_seq=len(members) + 1)
    for seq, member in enumerate(members, start=1):
        GroupMember.objects.create(group=lab, user=member)
        MembershipSpan.objects.create(group=lab, user=member, joined_seq=seq)
    result = persist_events([upload(A, 1), upload(B, 2), share(lab.id, A, 3), upload(B, 4), share(lab.id, A, 5)])
    owner_ids, group_ids = result.owner_ids, result.group_ids
    watching_ids = [watching(people.bob, 6).id]  # type: ignore[arg-type]
    # Carol has no page open: nothing is read or built for her.
    alice_headers, bob_headers = headers_for(people.alice), headers_for(people.bob)  # type: ignore[arg-type]

    def push() -> tuple[int, int]:
        online = listening([people.alice.pk, people.bob.pk, people.carol.pk])  # type: ignore[attr-defined]
        with CaptureQueriesContext(connection) as queries:
            sent = broadcast(owner_ids, group_ids, watching_ids, online=online)
        return sent, len(queries)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], tuple[int, int]]:
        # Bob has two pages open: both sockets' channels are in this process's one channel
        # key, so one message addressed to both carries his frame to each.
        alice, bob, bobs_other = socket_for(alice_headers), socket_for(bob_headers), socket_for(bob_headers)
        for socket in (alice, bob, bobs_other):
            assert (await socket.connect())[0]
        pushed = await sync_to_async(push)()
        frames = [await s.receive_json_from(timeout=5) for s in (alice, bob, bobs_other)]
        assert frames[1] == frames[2]
        for socket in (alice, bob, bobs_other):
            assert await socket.receive_nothing(timeout=0.2)
            await socket.disconnect()
        return frames[0], frames[1], pushed

    alices, bobs, (sent, queries) = async_to_sync(scenario)()
    assert (sent, queries) == (2, 1)
    for email, frame in ((A, alices), (B, bobs)):
        items = expected_items(email, owner_ids, group_ids, watching_ids)
        # Every row is new and unread, and all fit in the frame.
        assert frame == {"type": "notifications", "items": items, "more": 0, "unread_count": len(items)}
    assert [i["topic"] for i in bobs["items"]] == ["owner", "owner", "group", "group", "watching"]
    assert [i["resource_id"] for i in bobs["items"]][:2] == [4, 2]
    assert bobs["items"][2]["group_name"] == f"Lab {NAME}" and NAME in alices["items"][0]["resource_name"]


@pytest.mark.django_db(transaction=True)
def test_a_large_batch_fills_the_frame_with_the_newest_and_counts_the_rest(people: People, broker_url: str) -> None:
    result = persist_events([upload(B, n) for n in range(MAX_ITEMS + 7)])
    headers = headers_for(people.bob)  # type: ignore[arg-type]

    def push() -> tuple[int, int]:
        # Without `online`: broadcast asks who is listening itself (a second query: the ids).
        with CaptureQueriesContext(connection) as queries:
            sent = broadcast(result.owner_ids, result.group_ids)
        return sent, len(queries)

    async def scenario() -> tuple[dict[str, Any], tuple[int, int]]:
        bob = socket_for(headers)
        assert (await bob.connect())[0]
        pushed = await sync_to_async(push)()
        frame = await bob.receive_json_from(timeout=5)
        await bob.disconnect()
        return frame, pushed

    frame, pushed = async_to_sync(scenario)()
    assert pushed == (1, 2)
    assert (frame["more"], frame["unread_count"]) == (7, MAX_ITEMS + 7)
    assert frame["items"] == expected_items(B, result.owner_ids, [], [])[:MAX_ITEMS]


@pytest.mark.django_db(transaction=True)
def test_nobody_listening_costs_one_query_and_sends_nothing(people: People, broker_url: str) -> None:
    result = persist_events([upload(B, 1), upload(C, 2)])
    with CaptureQueriesContext(connection) as queries:
        assert broadcast(result.owner_ids, result.group_ids) == 0
    assert len(queries) == 1


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_frames_reaches_every_open_page_in_order(people: People, broker_url: str) -> None:
    """The frames wait on the process's channel key faster than they are read, so the web
    process takes them several at a time (notifications.channels.ChannelLayer): each page
    still gets each of its frames once, in the order sent."""
    bob_id, alice_id = people.bob.pk, people.alice.pk  # type: ignore[attr-defined]
    alice_headers, bob_headers = headers_for(people.alice), headers_for(people.bob)  # type: ignore[arg-type]
    burst = 40

    def push() -> None:
        for n in range(burst):
            send_to_users([(bob_id, {"type": "notifications.count", "unread_count": n}),
                           (alice_id, {"type": "notifications.count", "unread_count": 1000 + n})])

    async def scenario() -> list[list[int]]:
        sockets = [socket_for(alice_headers), socket_for(bob_headers), socket_for(bob_headers)]
        for socket in sockets:
            assert (await socket.connect())[0]
        await sync_to_async(push)()
        heard = [[(await s.receive_json_from(timeout=5))["unread_count"] for _ in range(burst)] for s in sockets]
        for socket in sockets:
            assert await socket.receive_nothing(timeout=0.2)
            await socket.disconnect()
        return heard

    alices, bobs, bobs_other = async_to_sync(scenario)()
    assert alices == [1000 + n for n in range(burst)]
    assert bobs == bobs_other == list(range(burst))


@pytest.mark.django_db(transaction=True)
def test_the_broadcast_task_pushes_rows_of_every_kind(people: People, broker_url: str) -> None:
    """tasks.broadcast_notifications, for rows stored by other means (and for messages queued
    by an older persist task, with two arguments)."""
    result = persist_events([upload(B, 1)])
    watching_ids = [watching(people.bob, 2).id]  # type: ignore[arg-type]
    headers = headers_for(people.bob)  # type: ignore[arg-type]

    async def scenario() -> list[dict[str, Any]]:
        bob = socket_for(headers)
        assert (await bob.connect())[0]
        assert await sync_to_async(broadcast_notifications)(result.owner_ids, [], watching_ids) == 1
        assert await sync_to_async(broadcast_notifications)(result.owner_ids, []) == 1
        frames = [await bob.receive_json_from(timeout=5) for _ in range(2)]
        await bob.disconnect()
        return frames

    with_watching, without = async_to_sync(scenario)()
    assert [i["topic"] for i in with_watching["items"]] == ["owner", "watching"]
    assert [i["topic"] for i in without["items"]] == ["owner"]


def test_the_send_script_writes_what_channels_redis_reads_and_keeps_its_capacity(broker_url: str) -> None:
    """_SEND_LUA stands in for channels-redis's group_send: an unmodified channels-redis layer
    receives what it writes, and a channel key at capacity refuses the rest, as group_send's
    own script does."""
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]

    async def scenario() -> tuple[int, list[dict[str, Any]]]:
        receiver = RedisChannelLayer(hosts=config["hosts"], prefix=f"{config['prefix']}cap", capacity=2)
        sender = ChannelLayer(hosts=config["hosts"], prefix=f"{config['prefix']}cap", capacity=2)
        try:
            channel = await receiver.new_channel()
            await receiver.group_add("bell", channel)
            refused = await _scripted_group_send(sender, [("bell", {"type": "x", "n": n}) for n in range(3)])
            got = [await receiver.receive(channel) for _ in range(2)]
            return refused, got
        finally:
            await receiver.flush()
            await receiver.close_pools()
            await sender.close_pools()

    refused, got = async_to_sync(scenario)()
    assert refused == 1
    assert sorted(message["n"] for message in got) == [0, 1]
    assert all(message["type"] == "x" and "__asgi_channel__" not in message for message in got)
