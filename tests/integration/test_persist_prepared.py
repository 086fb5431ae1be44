"""A small batch's statements run prepared on the connection (PostgreSQL plans each once per
worker connection), a large batch's are planned each time (notifications/persist.py:
PREPARE_MAX_ROWS), and either way the batch makes the same statements and stores the same rows."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from graphspace.models import User
from notifications.events import Event, new_event
from notifications.models import OwnerNotification
from notifications.persist import PREPARE_MAX_ROWS, persist_events


def uploads(first: int, count: int, emails: list[str]) -> list[Event]:
    return [new_event("owner", {
        "owner_email": emails[n % len(emails)], "message": f"New graph G{n} uploaded.", "resource": "graph",
        "resource_id": n, "resource_name": f"G{n}", "type": "upload"}) for n in range(first, first + count)]


def prepared_inserts() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements "
                       "WHERE statement LIKE '%%INSERT INTO \"owner_notification\"%%'")
        return int(cursor.fetchone()[0])


def test_a_small_batch_runs_prepared_and_a_large_one_does_not(transactional_db: Any) -> None:
    emails = [f"p{n}@example.com" for n in range(5)]
    User.objects.bulk_create([User(email=e, password="x") for e in emails])
    connection.ensure_connection()
    assert prepared_inserts() == 0

    large = PREPARE_MAX_ROWS + 1
    with CaptureQueriesContext(connection) as big:
        assert persist_events(uploads(0, large, emails)).created == large
    assert prepared_inserts() == 0

    with CaptureQueriesContext(connection) as small:
        assert persist_events(uploads(large, 10, emails)).created == 10
    assert prepared_inserts() == 1

    # The same statements either way (the clusters are open after the first batch, so the
    # second needs no lock: compare it with a third, small batch, and the first's shape).
    with CaptureQueriesContext(connection) as again:
        assert persist_events(uploads(large + 10, 10, emails)).created == 10
    assert [q["sql"].split()[:3] for q in again.captured_queries] == [
        q["sql"].split()[:3] for q in small.captured_queries]
    assert len(small.captured_queries) <= len(big.captured_queries)
    assert OwnerNotification.objects.count() == large + 20
