"""The bridge keeps each batch until a worker confirms it stored, and submits again one that
was lost (a worker killed as it took the task from Redis). No server: the broker's answers are
functions the tests control."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kafka_bridge.confirmations import Confirmations, TooManyUnconfirmed
from notifications.events import Event, new_event


class Broker:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, list[Event]]] = []
        self.stored: set[str] = set()
        self.queued = 0

    def submit(self, events: Sequence[Event]) -> str:
        task_id = f"task-{len(self.submitted) + 1}"
        self.submitted.append((task_id, list(events)))
        return task_id

    def confirmed(self, ids: list[str]) -> list[bool]:
        return [i in self.stored for i in ids]

    def queue_empty(self) -> bool:
        return self.queued == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(n: int) -> list[Event]:
    return [new_event("owner", {"owner_email": "a@example.com", "message": "m", "resource": "graph",
                                "resource_id": i, "type": "upload"}) for i in range(n)]


@pytest.fixture
def setup() -> tuple[Broker, Clock, Confirmations]:
    broker, clock = Broker(), Clock()
    return broker, clock, Confirmations(broker.submit, broker.confirmed, broker.queue_empty,
                                        resubmit_after=10, check_every=1, max_pending_events=100, clock=clock)


def test_a_confirmed_batch_is_forgotten(setup: tuple[Broker, Clock, Confirmations]) -> None:
    broker, clock, c = setup
    task_id = c.submit(batch(3))
    broker.stored.add(task_id)
    clock.now += 1
    assert c.check() == 0
    assert c.pending == {} and c.pending_events == 0


def test_a_lost_batch_is_submitted_again_once_overdue_with_the_queue_empty(
    setup: tuple[Broker, Clock, Confirmations],
) -> None:
    broker, clock, c = setup
    events = batch(3)
    c.submit(events)
    clock.now += 9
    assert c.check() == 0  # not overdue yet
    clock.now += 1
    assert c.check() == 1
    assert [t for t, _ in broker.submitted] == ["task-1", "task-2"]
    assert broker.submitted[1][1] == events
    # The copy is what it waits for now; once confirmed, nothing is left.
    broker.stored.add("task-2")
    clock.now += 1
    c.check()
    assert c.pending == {}


def test_a_batch_waiting_in_the_queue_is_not_submitted_again(setup: tuple[Broker, Clock, Confirmations]) -> None:
    broker, clock, c = setup
    c.submit(batch(2))
    broker.queued = 5
    clock.now += 60
    assert c.check() == 0
    assert len(broker.submitted) == 1


def test_a_batch_that_stays_unconfirmed_is_submitted_again_less_and_less_often(
    setup: tuple[Broker, Clock, Confirmations],
) -> None:
    broker, clock, c = setup
    c.submit(batch(1))
    times = []
    for _ in range(200):
        clock.now += 1
        if c.check():
            times.append(clock.now - 1000)
    assert times[:4] == [10, 30, 70, 150]


def test_too_many_unconfirmed_events_refuse_more(setup: tuple[Broker, Clock, Confirmations]) -> None:
    broker, clock, c = setup
    c.submit(batch(60))
    with pytest.raises(TooManyUnconfirmed):
        c.submit(batch(60))
    broker.stored.add("task-1")
    clock.now += 1
    c.check()
    c.submit(batch(60))  # room again
    assert len(broker.submitted) == 2


def test_checks_are_throttled(setup: tuple[Broker, Clock, Confirmations]) -> None:
    broker, clock, c = setup
    calls = []
    c.confirmed = lambda ids: calls.append(ids) or [False] * len(ids)  # type: ignore[method-assign, func-returns-value]
    c.submit(batch(1))
    clock.now += 0.5
    c.check()
    clock.now += 0.6
    c.check()
    c.check()
    assert len(calls) == 1
