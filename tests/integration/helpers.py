"""Helpers the integration tests share: a sample graph and an API v1 caller."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from django.test import Client

from graphspace.models import User
from tests.conftest import PASSWORD

GRAPH = {
    "data": {"description": "a test graph"},
    "elements": {
        "nodes": [{"data": {"id": "a"}}, {"data": {"id": "b"}}],
        "edges": [{"data": {"source": "a", "target": "b"}}],
    },
}


class Api:
    """Speaks API v1 as the official client does: Basic auth, JSON or form bodies."""

    def __init__(self, user: User) -> None:
        token = base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()
        self.client = Client(HTTP_AUTHORIZATION=f"Basic {token}", HTTP_ACCEPT="application/json")

    def call(self, method: str, path: str, data: dict[str, Any] | None = None, *, form: bool = False,
             expect: int = 200) -> Any:
        if form:
            body, content_type = urlencode(data or {}), "application/x-www-form-urlencoded"
        else:
            body, content_type = json.dumps(data or {}), "application/json"
        response = self.client.generic(method, f"/api/v1/{path}", body, content_type=content_type)
        assert response.status_code == expect, response.content
        return response.json()
