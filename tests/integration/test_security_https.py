"""The web process as deployed behind a proxy that ends TLS (DJANGO_SECURE=true,
DJANGO_BEHIND_PROXY=true): http is redirected, https answers carry HSTS and Secure cookies,
the health check stays on http, and the login throttle counts the client's address from
X-Forwarded-For (daphne --proxy-headers), not the proxy's."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import PASSWORD, People
from tests.integration.conftest import Process, free_port


@pytest.fixture(scope="module")
def secure_web(process_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = Process("web", {**process_env, "WEB_PORT": str(port), "DJANGO_SECURE": "true", "DJANGO_BEHIND_PROXY": "true"},
                   label="web-secure")
    proc.start(ready="Listening on")
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def via_proxy(address: str, **headers: str) -> dict[str, str]:
    """What the proxy adds to each request it passes on."""
    return {"X-Forwarded-Proto": "https", "X-Forwarded-For": address, **headers}


def test_plain_http_is_sent_to_https_but_the_health_check_is_not(secure_web: str) -> None:
    response = requests.get(f"{secure_web}/login/", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://127.0.0.1:")
    assert requests.get(f"{secure_web}/healthz", allow_redirects=False, timeout=10).status_code in (200, 503)
    assert requests.get(f"{secure_web}/healthz/dependencies", allow_redirects=False, timeout=10).status_code in (200, 503)


def test_https_answers_carry_hsts_and_secure_cookies(secure_web: str) -> None:
    response = requests.get(f"{secure_web}/login/", headers=via_proxy("198.51.100.1"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert re.search(r"csrftoken=[^;]+;.*\bSecure\b", response.headers["Set-Cookie"])


def test_the_login_throttle_counts_the_forwarded_address(secure_web: str, people: People, transactional_db: None) -> None:
    page = requests.get(f"{secure_web}/login/", headers=via_proxy("198.51.100.2"), timeout=10)
    token = page.cookies["csrftoken"]
    origin = secure_web.replace("http://", "https://")

    def log_in(password: str, address: str) -> int:
        # Set by hand: requests keeps a Secure cookie off plain http, and the proxy speaks http.
        headers = via_proxy(address, Cookie=f"csrftoken={token}", Origin=origin)
        return requests.post(f"{secure_web}/login/", data={"email": "bob@example.com", "password": password,
                                                            "csrfmiddlewaretoken": token},
                             headers=headers, allow_redirects=False, timeout=10).status_code

    assert [log_in("wrong", "198.51.100.2") for _ in range(5)] == [400] * 4 + [429]
    assert log_in(PASSWORD, "198.51.100.2") == 429
    # Every request comes from the proxy's 127.0.0.1; only the forwarded address is locked out.
    assert log_in(PASSWORD, "198.51.100.3") == 302
