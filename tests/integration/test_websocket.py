"""The websocket's permission matrix, through the real ASGI application and the Redis
channel layer: anonymous sockets are refused, and each message reaches one user only. And
real sockets through the web process (uvicorn): one that stays open while idle, and ones that close when their
session ends (logout, password change)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import pytest
import requests
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from graphspace.asgi import application
from graphspace.models import User
from notifications.broadcast import broadcast
from notifications.events import new_event
from notifications.persist import persist_events

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
# Longer than the channel layer's blocking read (5 s) several times over, and than daphne's
# ping interval (20 s), so that a socket that survives it survives any idle time.
IDLE_SECONDS = 30.0


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
def test_a_frame_says_how_many_items_of_a_large_batch_it_left_out(broker_url: str) -> None:
    user = User.objects.create_user("busy@x.org", "pw")
    result = persist_events([upload("busy@x.org", n) for n in range(25)])
    headers = headers_for(user)

    async def scenario() -> None:
        socket = socket_for(headers)
        assert (await socket.connect())[0]
        await sync_to_async(broadcast, thread_sensitive=False)(result.owner_ids, result.group_ids)
        message = await socket.receive_json_from(timeout=3)
        assert (len(message["items"]), message["more"], message["unread_count"]) == (20, 5, 25)
        await socket.disconnect()

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



class Refused(Exception):
    """The server answered the handshake with something other than 101."""


class BellSocket:
    """A page's websocket as a browser holds it, over a plain TCP connection (RFC 6455, in
    a few lines: the autobahn client cannot run here, daphne has claimed txaio for Twisted).
    It answers daphne's keepalive pings, as browsers do, and otherwise only listens."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.listening = asyncio.ensure_future(self.listen())

    @classmethod
    async def open(cls, url: str, origin: str, cookie: str) -> BellSocket:
        host, port = url.removeprefix("ws://").split("/", 1)[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /{url.split('/', 3)[3]} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Origin: {origin}\r\nCookie: {cookie}\r\n\r\n").encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        if not head.startswith("HTTP/1.1 101"):
            writer.close()
            raise Refused(head.split("\r\n", 1)[0])
        return cls(reader, writer)

    def send(self, opcode: int, payload: bytes = b"") -> None:
        # A client masks every frame; payloads here are short (pongs, a close).
        mask = os.urandom(4)
        self.writer.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
                          + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def listen(self) -> None:
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                length = second & 0x7F
                if length >= 126:
                    length = int.from_bytes(await self.reader.readexactly(2 if length == 126 else 8), "big")
                payload = await self.reader.readexactly(length)
                opcode = first & 0x0F
                if opcode == 0x9:  # ping
                    self.send(0xA, payload)
                elif opcode == 0x1:
                    self.messages.put_nowait(json.loads(payload))
                elif opcode == 0x8:
                    self.closed.set_result(int.from_bytes(payload[:2], "big") if payload else None)
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self.closed.done():
                self.closed.set_result(None)

    async def close(self) -> int | None:
        if not self.closed.done():
            self.send(0x8, (1000).to_bytes(2, "big"))
        code = await asyncio.wait_for(self.closed, 10)
        self.writer.close()
        return code


def test_an_idle_socket_stays_open_and_still_receives(web: str, transactional_db: None) -> None:
    """The channel layer waits for a socket's messages with a blocking Redis read of 5 s;
    its connections must allow that read more than 5 s, or every idle socket is closed
    (1011) within seconds and the bell silently reconnects all day."""
    user = User.objects.create_user("idle@x.org", "pw")
    cookie = headers_for(user)[1][1].decode()
    host = web.removeprefix("http://")
    result = persist_events([upload("idle@x.org", 1)])

    def push() -> int:
        try:
            return broadcast(result.owner_ids, result.group_ids)
        finally:
            connections.close_all()  # this thread's: the test database is dropped at the end

    async def scenario() -> None:
        socket = await asyncio.wait_for(BellSocket.open(f"ws://{host}/ws/notifications/", web, cookie), 10)
        try:
            # Idle for 30 s: the one fixed wait, since staying open is the point.
            done, _ = await asyncio.wait([socket.closed], timeout=IDLE_SECONDS)
            assert not done, f"the idle socket was closed with code {socket.closed.result()}"
            sent = await asyncio.to_thread(push)
            assert sent == 1
            message = await asyncio.wait_for(socket.messages.get(), 10)
            assert message["type"] == "notifications" and message["unread_count"] == 1
            assert [i["resource_name"] for i in message["items"]] == ["G1"]
        finally:
            await socket.close()

    asyncio.run(scenario())


def log_out_through_the_web_process(web: str, cookie: str) -> None:
    """What the page's "Log out" button does, from another client holding the same session."""
    client = requests.Session()
    name, value = cookie.split("=", 1)
    client.cookies.set(name, value)
    assert client.get(f"{web}/notifications/", timeout=10).status_code == 200  # sets csrftoken
    response = client.post(f"{web}/logout/", data={"csrfmiddlewaretoken": client.cookies["csrftoken"]},
                           allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text


def test_logging_out_closes_that_sessions_socket_and_it_hears_nothing_more(web: str, transactional_db: None) -> None:
    user = User.objects.create_user("leaving@x.org", "pw")
    leaving, staying = headers_for(user)[1][1].decode(), headers_for(user)[1][1].decode()
    host = web.removeprefix("http://")
    result = persist_events([upload("leaving@x.org", 1)])

    def push() -> int:
        try:
            return broadcast(result.owner_ids, result.group_ids)
        finally:
            connections.close_all()

    async def scenario() -> None:
        url = f"ws://{host}/ws/notifications/"
        ended = await asyncio.wait_for(BellSocket.open(url, web, leaving), 10)
        other = await asyncio.wait_for(BellSocket.open(url, web, staying), 10)
        try:
            await asyncio.to_thread(log_out_through_the_web_process, web, leaving)
            assert await asyncio.wait_for(ended.closed, 10) == 4001
            assert await asyncio.to_thread(push) == 1
            # The same user's other login still hears it; the closed socket heard nothing.
            message = await asyncio.wait_for(other.messages.get(), 10)
            assert [i["resource_name"] for i in message["items"]] == ["G1"]
            assert ended.messages.empty()
            assert not other.closed.done()
        finally:
            await ended.close()
            await other.close()

    asyncio.run(scenario())


def test_changing_the_password_closes_every_socket_and_old_sessions_cannot_reopen(web: str, transactional_db: None) -> None:
    user = User.objects.create_user("rotating@x.org", "pw")
    cookies = [headers_for(user)[1][1].decode() for _ in range(2)]
    host = web.removeprefix("http://")

    def change_password() -> None:
        try:
            fresh = User.objects.get(pk=user.pk)
            fresh.set_password("a new password")
            fresh.save()
        finally:
            connections.close_all()

    async def scenario() -> None:
        url = f"ws://{host}/ws/notifications/"
        sockets = [await asyncio.wait_for(BellSocket.open(url, web, cookie), 10) for cookie in cookies]
        try:
            await asyncio.to_thread(change_password)
            assert [await asyncio.wait_for(s.closed, 10) for s in sockets] == [4001, 4001]
            # Their sessions were made with the old password: the page's reconnect is refused.
            with pytest.raises(Refused):
                await asyncio.wait_for(BellSocket.open(url, web, cookies[0]), 10)
        finally:
            for s in sockets:
                await s.close()

    asyncio.run(scenario())
