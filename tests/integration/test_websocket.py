"""The websocket's permission matrix, through the real ASGI application and the Redis
channel layer: anonymous sockets are refused, and each message reaches one user only."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from graphspace.asgi import application
from graphspace.models import User
from notifications.broadcast import broadcast
from notifications.events import new_event
from notifications.persist import persist_events

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def headers_for(user: User | None, origin: tuple[bytes, bytes] = ORIGIN) -> list[tuple[bytes, bytes]]:
    """A browser's handshake headers: its origin, and the session cookie of a logged-in user."""
    headers = [origin]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def socket_for(headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/notifications/", headers=headers)


def upload(owner: str, n: int) -> Any:
    return new_event("owner", {"owner_email": owner, "message": "m", "resource": "graph", "resource_id": n,
                               "resource_name": f"G{n}", "type": "upload"})


@pytest.mark.django_db(transaction=True)
def test_each_user_hears_only_their_own_notifications(broker_url: str) -> None:
    # Two addresses that the original's group names confused (both became "a-b-x.org").
    plus = User.objects.create_user("a+b@x.org", "pw")
    dash = User.objects.create_user("a-b@x.org", "pw")
    result = persist_events([upload("a+b@x.org", 1), upload("a+b@x.org", 2)])
    anonymous_headers, my_headers, their_headers = headers_for(None), headers_for(plus), headers_for(dash)

    async def scenario() -> None:
        anonymous = socket_for(anonymous_headers)
        connected, code = await anonymous.connect()
        assert (connected, code) == (False, 4401)

        mine, theirs = socket_for(my_headers), socket_for(their_headers)
        assert (await mine.connect())[0] and (await theirs.connect())[0]
        sent = await sync_to_async(broadcast, thread_sensitive=False)(result.owner_ids, result.group_ids)
        assert sent == 1
        message = await mine.receive_json_from(timeout=3)
        assert message["type"] == "notifications"
        assert message["unread_count"] == 2
        assert sorted(i["resource_name"] for i in message["items"]) == ["G1", "G2"]
        assert sorted(i["text"] for i in message["items"]) == ["You uploaded graph G1", "You uploaded graph G2"]
        assert await theirs.receive_nothing(timeout=0.5)
        # What a page sends is ignored, and the socket stays open.
        await mine.send_json_to({"type": "notifications.new", "items": [], "unread_count": 99})
        assert await mine.receive_nothing(timeout=0.3)
        await mine.disconnect()
        await theirs.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_socket_from_a_foreign_origin_is_refused(broker_url: str) -> None:
    user = User.objects.create_user("origin@x.org", "pw")
    headers = headers_for(user, origin=(b"origin", b"https://evil.example.com"))

    async def scenario() -> None:
        socket = socket_for(headers)
        connected, _ = await socket.connect()
        assert connected is False

    async_to_sync(scenario)()
