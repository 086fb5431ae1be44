"""Shared fixtures: the three GraphSpace users every test talks about."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

PASSWORD = "graphspace-test"


@dataclass
class People:
    alice: object
    bob: object
    carol: object


@pytest.fixture
def people(django_db_blocker: object, db: None) -> People:
    from graphspace.models import User

    return People(
        alice=User.objects.create_user("alice@example.com", PASSWORD),
        bob=User.objects.create_user("bob@example.com", PASSWORD),
        carol=User.objects.create_user("carol@example.com", PASSWORD),
    )
