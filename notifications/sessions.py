"""A websocket lives no longer than the login it was opened with.

Each bell socket joins a Channels group of its session besides its user's. Logging out ends
that session's sockets; changing a password ends every socket of the user (Django has ended
their other sessions: their session hash no longer matches), and the pages reconnect, which
only the session that changed the password (update_session_auth_hash keeps it) survives.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.http import HttpRequest

from notifications.channels import user_group

log = logging.getLogger(__name__)

# The close code a page reads as "your login ended" (4401: "log in first", at connect).
SESSION_ENDED = 4001
ENDED_MESSAGE = {"type": "session.ended"}


def session_group(session_key: str) -> str:
    """One session's Channels group. A digest of the key, never the key itself: group names
    are Redis keys, readable by whoever can read Redis, and a session key is a login."""
    return "notifications.session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def _send(group: str) -> None:
    # Best effort: a channel layer that is down must not stop a logout. Its sockets are gone
    # with it anyway (they read from the same Redis).
    try:
        async_to_sync(get_channel_layer().group_send)(group, ENDED_MESSAGE)
    except Exception:
        log.warning("could not tell the sockets of %s that their session ended", group, exc_info=True)


def end_session_sockets(session_key: str | None) -> None:
    if session_key:
        _send(session_group(session_key))


def end_user_sockets(user_id: int) -> None:
    _send(user_group(user_id))


def on_logged_out(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """user_logged_out: sent by django.contrib.auth.logout before it flushes the session."""
    if request is not None and hasattr(request, "session"):
        end_session_sockets(request.session.session_key)


def on_user_saved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    """post_save of the user: set_password() leaves the new password in `_password` until
    save() has finished, so a save that changed it is known here without another query."""
    if not created and getattr(instance, "_password", None) is not None:
        user_id = instance.pk
        transaction.on_commit(lambda: end_user_sockets(user_id))
