"""The websocket behind the bell: one connection per open page of a logged-in user."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from notifications.channels import user_group
from notifications.sessions import SESSION_ENDED, session_group

# What the channel layer brings a socket; none of their handlers touches the database.
PUSHES = ("notifications.new", "notifications.count", "session.ended")


class NotificationConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    groups_joined: tuple[str, ...] = ()
    ended = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        # channels' dispatch first closes the process's old database connections, in the one
        # thread that runs sync code (a hop there and back, in line with every other request's
        # sync work), before every message: per frame, for handlers that use no connection.
        # The socket's own events (connect, receive, disconnect) still go through it.
        if message["type"] in PUSHES:
            await getattr(self, message["type"].replace(".", "_"))(message)
            return
        await super().dispatch(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Close with an application code the page reads as "log in first".
            await self.close(code=4401)
            return
        # The user's group carries the pushes; the session's says when this login ended
        # (notifications/sessions.py).
        session_key = self.scope["session"].session_key
        self.groups_joined = (user_group(user.id), session_group(session_key))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.leave()

    async def leave(self) -> None:
        groups, self.groups_joined = self.groups_joined, ()
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def session_ended(self, event: dict[str, Any]) -> None:
        # Logged out, or the password changed: nothing more goes out on this socket, even what
        # the layer already holds for it.
        self.ended = True
        await self.leave()
        await self.close(code=SESSION_ENDED)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The socket only pushes; anything a page sends is ignored.
        return None

    async def notifications_new(self, event: dict[str, Any]) -> None:
        if self.ended:
            return
        # `more`: items of this batch the frame leaves out (past MAX_ITEMS); the page
        # refetches its newest clusters on every frame, so none of them is missed.
        await self.send_json({"type": "notifications", "items": event["items"], "more": event.get("more", 0),
                              "unread_count": event["unread_count"]})

    async def notifications_count(self, event: dict[str, Any]) -> None:
        if self.ended:
            return
        await self.send_json({"type": "count", "unread_count": event["unread_count"]})
