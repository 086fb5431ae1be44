"""An event that passes the schema but that PostgreSQL refuses fails alone: the persist task
splits its batch until the bad event stands by itself, stores every other event, and keeps
the bad one as a dead letter with the database's reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from notifications.events import Event, new_event
from notifications.models import DeadLetter, OwnerNotification
from notifications.persist import persist_events
from tests.conftest import People

UNSTORABLE = "refused-by-the-database"


@pytest.fixture
def refusing_database(db: None) -> Iterator[None]:
    """A real refusal by PostgreSQL (a trigger raising check_violation) for one resource
    name: the stand-in for whatever a schema cannot foresee (a constraint added later, a
    value the column type rejects)."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE FUNCTION refuse_test_row() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.resource_name = '{UNSTORABLE}' THEN
                    RAISE EXCEPTION 'resource name % is refused', NEW.resource_name USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_test_row BEFORE INSERT ON owner_notification
                FOR EACH ROW EXECUTE FUNCTION refuse_test_row();
        """)
    yield


def upload(n: int, name: str | None = None) -> Event:
    return new_event("owner", {
        "owner_email": "alice@example.com", "message": f"New graph G{n} uploaded.", "resource": "graph",
        "resource_id": n, "resource_name": name or f"G{n}", "type": "upload",
    })


def test_one_unstorable_event_in_a_batch_of_500_fails_alone(people: People, refusing_database: None) -> None:
    events = [upload(n, UNSTORABLE if n == 321 else None) for n in range(500)]

    result = persist_events(events)

    assert (result.created, result.refused) == (499, 1)
    stored = set(OwnerNotification.objects.values_list("resource_id", flat=True))
    assert stored == set(range(500)) - {321}
    letter = DeadLetter.objects.get()
    assert (letter.stage, letter.event_id, letter.topic) == (DeadLetter.PERSIST, str(events[321].event_id), "owner")
    assert "resource name refused-by-the-database is refused" in letter.reason
    # The dead letter holds the event as the task had it, ready to replay once fixed.
    assert Event.model_validate_json(bytes(letter.value)) == events[321]


def test_a_redelivered_batch_with_an_unstorable_event_records_it_once(people: People, refusing_database: None) -> None:
    events = [upload(n, UNSTORABLE if n in (0, 9) else None) for n in range(10)]

    first, again = persist_events(events), persist_events(events)

    assert (first.created, first.refused) == (8, 2)
    assert (again.created, again.refused) == (0, 2)
    assert DeadLetter.objects.count() == 2
    assert OwnerNotification.objects.count() == 8
