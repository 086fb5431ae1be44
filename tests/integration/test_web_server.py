"""The web process as `scripts/process.sh web` starts it, not behind a proxy: it takes the
client's address from the connection, never from X-Forwarded-For (uvicorn believes that header
from 127.0.0.1 unless told otherwise; graphspace/web.py tells it). Web's /metrics answers only
the loopback, so a forwarded address it believed would turn the answer into a 403."""

from __future__ import annotations

import requests


def test_a_forwarded_address_is_not_believed_without_a_proxy(web: str) -> None:
    assert requests.get(f"{web}/metrics", timeout=10).status_code == 200
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert requests.get(f"{web}/metrics", headers=forwarded, timeout=10).status_code == 200


def test_the_server_does_not_name_itself(web: str) -> None:
    assert "server" not in {name.lower() for name in requests.get(f"{web}/healthz", timeout=10).headers}
