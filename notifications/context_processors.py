"""The unread count for the bell on every page."""

from __future__ import annotations

from django.http import HttpRequest

from notifications.queries import unread_count


def bell(request: HttpRequest) -> dict[str, int]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"unread_count": 0}
    return {"unread_count": unread_count(user.email)}
