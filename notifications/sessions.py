"""A websocket lives no longer than the login it was opened with; and the notifications API's
cheaper reading of a request's login (`authenticate`).

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
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from graphspace.models import User
from notifications.channels import user_group
from notifications.queries import prepared_cursor

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


# --- The API's login, read with two plain queries -------------------------------------------

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
_USER_FIELDS = [f for f in User._meta.concrete_fields]
_USER_ATTNAMES = [f.attname for f in _USER_FIELDS]
_USER_SQL = (f'SELECT {", ".join(connection.ops.quote_name(f.column) for f in _USER_FIELDS)} '
             f'FROM {connection.ops.quote_name(User._meta.db_table)} WHERE id = %s')
_SESSION_SQL = "SELECT session_data FROM django_session WHERE session_key = %s AND expire_date > %s"


def authenticate(request: HttpRequest) -> None:
    """The request's user from its session, as django.contrib.auth's get_user finds it (the
    session row, then the user row, then the password hash the session was signed with), in
    two plain SQL queries instead of two ORM ones: about half the CPU of a request for the
    unread count (docs/web.md). Sets request.user when the login is a plain, valid one; for
    anything else (no session, an expired or tampered one, a backend other than ModelBackend,
    an inactive user, a hash that only a fallback key verifies) it leaves request.user to
    Django, whose get_user then decides exactly as it always has (flushing a bad session,
    rotating a fallback-signed one).

    The session's data is left in its SessionStore, as Django's own load leaves it, so the rest
    of the request (and SessionMiddleware's Vary: Cookie) sees the same session without
    reading it again."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if session is None or not key or hasattr(session, "_session_cache"):
        return
    with prepared_cursor() as cursor:
        cursor.execute(_SESSION_SQL, [key, timezone.now()])
        row = cursor.fetchone()
        if row is None:
            return
        data = session.decode(row[0])
        # What SessionBase._get_session does after its own load.
        session._session_cache = data
        session.accessed = True
        user_id, backend, session_hash = data.get(SESSION_KEY), data.get(BACKEND_SESSION_KEY), data.get(HASH_SESSION_KEY)
        if backend != MODEL_BACKEND or backend not in settings.AUTHENTICATION_BACKENDS or not session_hash:
            return
        try:
            pk = User._meta.pk.to_python(user_id)  # type: ignore[union-attr]
        except Exception:
            return
        cursor.execute(_USER_SQL, [pk])
        values = cursor.fetchone()
    if values is None:
        return
    user = User.from_db(DEFAULT_DB_ALIAS, _USER_ATTNAMES, values)
    # ModelBackend.get_user: only an active user; get_user: the hash of the current password.
    if not user.is_active or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return
    request.user = user
