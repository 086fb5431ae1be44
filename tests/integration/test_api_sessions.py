"""The notifications API reads a session's login with plain SQL (notifications/sessions.py:
authenticate). Every login it does not take as plain and valid is left to Django, and must get
exactly Django's answer: these tests go through each of those cases with a real session row."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from graphspace.models import User
from notifications.events import new_event
from notifications.persist import persist_events
from notifications.queries import unread_count
from tests.conftest import People

B = "bob@example.com"
COUNT = "/api/v1/notifications/count"


def logged_in(user: User) -> Client:
    client = Client(HTTP_ACCEPT="application/json")
    client.force_login(user)
    return client


def session_of(client: Client) -> Session:
    return Session.objects.get(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


@pytest.fixture
def bob_has_three(people: People) -> None:
    persist_events([new_event("owner", {
        "owner_email": B, "actor_email": B, "message": f"New graph G{n} uploaded.", "resource": "graph",
        "resource_id": n, "resource_name": f"G{n}", "type": "upload"}) for n in range(3)])


def test_a_plain_login_is_read_with_two_plain_queries(people: People, bob_has_three: None) -> None:
    bob = logged_in(people.bob)
    with CaptureQueriesContext(connection) as queries:
        response = bob.get(COUNT)
    assert response.status_code == 200 and response.json() == {"unread_count": 3}
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 3, sql
    assert sql[0].startswith("SELECT session_data FROM django_session WHERE session_key = ")
    assert sql[1].startswith('SELECT "id", "password"') and " FROM \"user\" WHERE id = " in sql[1]
    # The session was read as Django reads it: the answer varies with the cookie.
    assert "Cookie" in response["Vary"]
    with CaptureQueriesContext(connection) as queries:
        page = bob.get("/api/v1/notifications/")
    assert page.json()["unread_count"] == 3 and len(page.json()["clusters"]) == 1
    assert len(queries.captured_queries) == 3  # session, user, the page with its count


def test_each_session_reads_its_own_user(people: People, bob_has_three: None) -> None:
    assert logged_in(people.alice).get(COUNT).json() == {"unread_count": 0}
    assert logged_in(people.bob).get(COUNT).json() == {"unread_count": 3}
    assert logged_in(people.carol).get("/api/v1/notifications/").json()["clusters"] == []


def test_an_ended_or_unknown_session_is_refused(people: People) -> None:
    bob = logged_in(people.bob)
    key = bob.cookies[settings.SESSION_COOKIE_NAME].value
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert bob.get(COUNT).status_code == 401
    stranger = Client(HTTP_ACCEPT="application/json")
    stranger.cookies[settings.SESSION_COOKIE_NAME] = "x" * 32
    assert stranger.get(COUNT).status_code == 401
    carol = logged_in(people.carol)
    carol.logout()
    assert carol.get(COUNT).status_code == 401


def test_a_tampered_session_is_refused(people: People) -> None:
    bob = logged_in(people.bob)
    row = session_of(bob)
    # One character of the signed data changed, by someone without the key that signs sessions.
    data = row.session_data
    row.session_data = data[:5] + ("B" if data[5] != "B" else "C") + data[6:]
    row.save()
    assert bob.get(COUNT).status_code == 401


def test_a_password_changed_elsewhere_ends_the_session_as_django_ends_it(people: People) -> None:
    bob = logged_in(people.bob)
    assert bob.get(COUNT).status_code == 200
    user = User.objects.get(pk=people.bob.pk)
    user.set_password("a-new-password-for-bob")
    user.save()
    key = bob.cookies[settings.SESSION_COOKIE_NAME].value
    assert bob.get(COUNT).status_code == 401
    # Django's get_user flushed it: the row is gone.
    assert not Session.objects.filter(session_key=key).exists()


def test_an_inactive_user_is_refused(people: People) -> None:
    bob = logged_in(people.bob)
    User.objects.filter(pk=people.bob.pk).update(is_active=False)
    assert bob.get(COUNT).status_code == 401


def test_a_session_signed_before_a_key_rotation_is_kept_and_moved_to_the_new_key(people: People, settings: Any) -> None:
    old = settings.SECRET_KEY
    bob = logged_in(people.bob)
    before = bob.cookies[settings.SESSION_COOKIE_NAME].value
    settings.SECRET_KEY = "a-new-signing-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = [old]
    response = bob.get(COUNT)
    assert response.status_code == 200
    # Django's path: the fallback verified it, so the session got a new key signed with the new one.
    after = bob.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert bob.get(COUNT).status_code == 200


OTHER = "tests.integration.test_api_sessions.Other"


def test_a_login_by_another_backend_is_left_to_django(people: People, bob_has_three: None) -> None:
    with override_settings(AUTHENTICATION_BACKENDS=[*settings.AUTHENTICATION_BACKENDS, OTHER]):
        client = Client(HTTP_ACCEPT="application/json")
        client.force_login(people.bob, backend=OTHER)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(COUNT).json() == {"unread_count": unread_count(B)} == {"unread_count": 3}
        # The session row once (kept for Django), then Django's own user lookup.
        assert sum("django_session" in q["sql"] for q in queries.captured_queries) == 1
        assert any(q["sql"].startswith('SELECT "user"."id"') for q in queries.captured_queries)


class Other:
    """A second authentication backend (for a session it logged in, Django asks it for the user)."""

    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def get_user(self, user_id: int) -> User | None:
        return User.objects.filter(pk=user_id).first()
