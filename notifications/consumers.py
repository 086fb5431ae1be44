"""The websocket behind the bell: one connection per open page of a logged-in user."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from notifications.channels import user_group


class NotificationConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Close with an application code the page reads as "log in first".
            await self.close(code=4401)
            return
        self.group = user_group(user.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The socket only pushes; anything a page sends is ignored.
        return None

    async def notifications_new(self, event: dict[str, Any]) -> None:
        # `more`: items of this batch the frame leaves out (past MAX_ITEMS); the page
        # refetches its newest clusters on every frame, so none of them is missed.
        await self.send_json({"type": "notifications", "items": event["items"], "more": event.get("more", 0),
                              "unread_count": event["unread_count"]})

    async def notifications_count(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "count", "unread_count": event["unread_count"]})
