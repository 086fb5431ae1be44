"""Login throttling (django-axes) on the login form and on the REST API's HTTP Basic: five
failures for one email from one address lock that pair out, the right password included, for
the cool-off; other people, and the same person from elsewhere, go on as before."""

from __future__ import annotations

import base64

from django.test import Client

from tests.conftest import PASSWORD, People

BOB = "bob@example.com"
ELSEWHERE = "192.0.2.7"


def log_in(client: Client, email: str, password: str) -> int:
    return client.post("/login/", {"email": email, "password": password}).status_code


def basic(email: str, password: str, address: str = "127.0.0.1") -> Client:
    token = base64.b64encode(f"{email}:{password}".encode()).decode()
    return Client(HTTP_AUTHORIZATION=f"Basic {token}", HTTP_ACCEPT="application/json", REMOTE_ADDR=address)


def test_the_login_form_locks_an_email_out_after_five_failures_even_with_the_right_password(people: People) -> None:
    browser = Client()
    assert [log_in(browser, BOB, "wrong") for _ in range(4)] == [400] * 4
    # The fifth failure locks bob out from this address: the form says so, and why.
    response = browser.post("/login/", {"email": BOB, "password": "wrong"})
    assert response.status_code == 429
    assert b"Too many failed logins for bob@example.com" in response.content
    assert b'<form class="login"' in response.content
    response = browser.post("/login/", {"email": BOB, "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in browser.session


def test_a_lockout_leaves_other_people_and_other_addresses_alone(people: People) -> None:
    for _ in range(5):
        log_in(Client(), BOB, "wrong")
    assert log_in(Client(), BOB, PASSWORD) == 429
    assert log_in(Client(), "alice@example.com", PASSWORD) == 302
    assert log_in(Client(REMOTE_ADDR=ELSEWHERE), BOB, PASSWORD) == 302


def test_a_successful_login_clears_the_failures_before_it(people: People) -> None:
    browser = Client()
    for _ in range(4):
        log_in(browser, BOB, "wrong")
    assert log_in(browser, BOB, PASSWORD) == 302
    # Four more failures do not reach the limit again: the count started over.
    assert [log_in(Client(), BOB, "wrong") for _ in range(4)] == [400] * 4


def test_basic_auth_is_throttled_with_graphspaces_json_error(people: People) -> None:
    wrong = basic(BOB, "wrong")
    answers = [wrong.get("/api/v1/notifications/count") for _ in range(5)]
    assert [r.status_code for r in answers] == [401] * 4 + [429]
    body = answers[-1].json()
    assert body["status_code"] == 429 and body["error_code"] == 1005
    assert body["error_message"].startswith("Too many failed logins")
    assert body["http_request"] == "GET /api/v1/notifications/count"
    assert "bob@example.com" not in body["error_message"]
    # The right password from the same address is refused until the cool-off ends...
    assert basic(BOB, PASSWORD).get("/api/v1/notifications/count").status_code == 429
    assert basic(BOB, PASSWORD).get("/api/v1/graphs/").status_code == 429
    # ...and the form from that address too: one count for every way in.
    assert log_in(Client(), BOB, PASSWORD) == 429
    # Alice, and bob from another address, are not affected.
    assert basic("alice@example.com", PASSWORD).get("/api/v1/notifications/count").status_code == 200
    assert basic(BOB, PASSWORD, ELSEWHERE).get("/api/v1/notifications/count").status_code == 200
