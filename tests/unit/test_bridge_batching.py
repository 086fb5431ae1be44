"""The bridge gathers a batch over several polls: due by size or by time since its first
message, or, while the workers are busy, once one is free; one task and one commit per batch,
and handed on early, never lost, when its partitions are revoked or the bridge stops."""

from __future__ import annotations

import pytest
from kafka.structs import TopicPartition

from kafka_bridge.batching import Accumulator
from kafka_bridge.confirmations import Confirmations
from kafka_bridge.loop import Bridge
from notifications.events import Event, parse_message
from tests.unit.test_bridge_backpressure import OWNER0, OWNER1, Broker, Record, bridge_for, stored, uploads
from tests.unit.test_bridge_loop import Submitter

P0 = TopicPartition("t", 0)
P1 = TopicPartition("t", 1)


def records(tp: TopicPartition, start: int, count: int) -> dict[TopicPartition, list[Record]]:
    return {tp: [Record(n, b"") for n in range(start, start + count)]}


# --- the rule ---------------------------------------------------------------------------

def test_a_batch_is_due_once_it_holds_max_records() -> None:
    acc = Accumulator(max_records=5, max_wait=10.0)
    acc.add(records(P0, 0, 3), now=0.0)
    assert not acc.due(0.0)
    assert acc.room() == 2
    acc.add(records(P0, 3, 2), now=0.001)
    assert acc.due(0.001)


def test_a_batch_is_due_max_wait_after_its_first_message_however_small() -> None:
    acc = Accumulator(max_records=500, max_wait=0.020)
    assert not acc.due(100.0)  # empty: never due
    acc.add(records(P0, 0, 1), now=100.0)
    acc.add(records(P0, 1, 1), now=100.015)  # a later message does not restart the wait
    assert not acc.due(100.019)
    assert acc.due(100.020)


def test_the_poll_waits_at_most_until_the_batch_is_due() -> None:
    acc = Accumulator(max_records=500, max_wait=0.020)
    assert acc.poll_timeout_ms(0.0, idle_ms=200) == 200
    acc.add(records(P0, 0, 1), now=0.0)
    assert acc.poll_timeout_ms(0.005, idle_ms=200) == 15
    assert acc.poll_timeout_ms(0.030, idle_ms=200) == 0


def test_take_returns_every_message_in_order_per_partition_and_empties_the_batch() -> None:
    acc = Accumulator(max_records=500, max_wait=1.0)
    acc.add({**records(P0, 0, 2), **records(P1, 0, 1)}, now=0.0)
    acc.add({**records(P0, 2, 2), P1: []}, now=0.1)
    taken = acc.take()
    assert {tp: [r.offset for r in rs] for tp, rs in taken.items()} == {P0: [0, 1, 2, 3], P1: [0]}
    assert (acc.size, acc.first_at, acc.records) == (0, None, {})
    assert not acc.due(5.0)


def test_a_wait_of_zero_makes_each_poll_a_batch() -> None:
    acc = Accumulator(max_records=500, max_wait=0.0)
    acc.add(records(P0, 0, 1), now=0.0)
    assert acc.due(0.0)


@pytest.mark.parametrize("max_records, max_wait", [(0, 0.02), (500, -1.0)])
def test_a_nonsensical_rule_is_refused(max_records: int, max_wait: float) -> None:
    with pytest.raises(ValueError):
        Accumulator(max_records=max_records, max_wait=max_wait)


# --- the loop ---------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Trickle(Broker):
    """A broker whose log grows as the test says, and whose polls advance a clock by their
    timeout when they find nothing (as a real poll waits)."""

    def __init__(self, clock: Clock, assigned: set[TopicPartition]) -> None:
        super().__init__({tp: [] for tp in assigned}, assigned)
        self.clock = clock

    def append(self, tp: TopicPartition, values: list[bytes | None]) -> None:
        log = self.logs[tp]
        start = len(log)
        log.extend([Record(start + i, v) for i, v in enumerate(values)])

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        found = super().poll(timeout_ms, max_records)
        if not found:
            self.clock.now += timeout_ms / 1000
        return found


def trickle_bridge(clock: Clock, broker: Trickle, submit: Submitter, **options: object) -> Bridge:
    return bridge_for(broker, submit, monotonic=clock, batch_wait_ms=20, **options)


def test_messages_of_several_polls_become_one_task_and_one_commit_after_the_wait() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter()
    bridge = trickle_bridge(clock, broker, submit)
    for n in range(3):
        broker.append(OWNER0, uploads(n, 1))
        assert bridge.step() is True
        clock.now += 0.005
    assert (submit.batches, broker.commits) == ([], [])
    # Nothing more arrives: the poll waits out the rest of the 20 ms, and the batch is due.
    bridge.step()
    assert broker.polls[-1] == 5
    assert [[e.resource_id for e in b] for b in submit.batches] == [[0, 1, 2]]
    assert broker.commits == [{OWNER0: 3}]


def test_a_burst_fills_batches_by_size_without_waiting() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    broker.append(OWNER0, uploads(0, 25))
    submit = Submitter()
    bridge = trickle_bridge(clock, broker, submit, max_records=10)
    while bridge.step():
        pass
    assert [len(b) for b in submit.batches] == [10, 10, 5]
    assert [c[OWNER0] for c in broker.commits] == [10, 20, 25]
    # The first two were due by size the moment they were polled; only the last one waited.
    assert broker.polls[:2] == [200, 200]


def test_a_batch_gathered_across_partitions_commits_each_partition_once() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0, OWNER1})
    submit = Submitter()
    bridge = trickle_bridge(clock, broker, submit)
    broker.append(OWNER0, uploads(0, 2))
    bridge.step()
    broker.append(OWNER1, uploads(100, 1))
    broker.append(OWNER0, uploads(2, 1))
    bridge.step()
    bridge.step()
    assert stored(submit) == [0, 1, 2, 100]
    assert broker.commits == [{OWNER0: 3, OWNER1: 1}]


def test_a_revoke_hands_on_and_commits_the_batch_being_gathered_so_nothing_is_read_twice() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0, OWNER1})
    submit = Submitter()
    bridge = trickle_bridge(clock, broker, submit)
    broker.on_revoked = bridge.partitions_revoked
    broker.append(OWNER0, uploads(0, 3))
    broker.append(OWNER1, uploads(10, 2))
    bridge.step()
    assert submit.batches == []
    # Another bridge joins: inside the next poll, before the partitions go, the batch is
    # handed on and committed; this bridge keeps OWNER0 and reads on after the batch.
    broker.rebalance_to = {OWNER0}
    broker.append(OWNER0, uploads(3, 1))
    while bridge.step():
        pass
    assert [sorted(e.resource_id for e in b) for b in submit.batches] == [[0, 1, 2, 10, 11], [3]]
    assert broker.commits == [{OWNER0: 3, OWNER1: 2}, {OWNER0: 4}]


def test_a_revoke_while_celery_refuses_leaves_the_batch_uncommitted_for_the_next_reader() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter(failures=1)
    bridge = trickle_bridge(clock, broker, submit)
    broker.on_revoked = bridge.partitions_revoked
    broker.append(OWNER0, uploads(0, 2))
    bridge.step()
    broker.rebalance_to = {OWNER0}
    bridge.step()
    assert (submit.batches, broker.commits, bridge.stats.dropped) == ([], [], 1)
    # Read again from the committed offset (the start), then handed on once.
    while bridge.step():
        pass
    assert stored(submit) == [0, 1]
    assert broker.commits == [{OWNER0: 2}]


def test_stopping_hands_on_and_commits_the_batch_being_gathered() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter()
    bridge = trickle_bridge(clock, broker, submit)
    broker.append(OWNER0, uploads(0, 2))
    original = broker.poll

    def poll(timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        found = original(timeout_ms, max_records)
        bridge.request_shutdown()  # the signal arrives during the first poll
        return found

    broker.poll = poll  # type: ignore[method-assign]
    bridge.run()
    assert stored(submit) == [0, 1]
    assert broker.commits == [{OWNER0: 2}]
    assert broker.closed_with_autocommit is False


def test_stopping_while_celery_refuses_commits_nothing() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter(failures=1)
    bridge = trickle_bridge(clock, broker, submit)
    broker.append(OWNER0, uploads(0, 2))
    original = broker.poll

    def poll(timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        found = original(timeout_ms, max_records)
        bridge.request_shutdown()
        return found

    broker.poll = poll  # type: ignore[method-assign]
    bridge.run()
    assert (submit.batches, broker.commits) == ([], [])


def test_a_failed_step_forgets_the_batch_being_gathered_and_reads_it_again() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter()
    bridge = trickle_bridge(clock, broker, submit)
    broker.append(OWNER0, uploads(0, 2))
    bridge.step()
    bridge.abandon()  # what run() does after a step raised
    assert bridge.window.size == 0
    assert broker.positions[OWNER0] == 0
    while bridge.step():
        pass
    assert stored(submit) == [0, 1]
    assert broker.commits == [{OWNER0: 2}]


def test_while_a_task_waits_in_the_queue_the_batch_gathers_on_up_to_the_busy_wait() -> None:
    acc = Accumulator(max_records=500, max_wait=0.020, max_wait_busy=0.500)
    acc.add(records(P0, 0, 1), now=0.0)
    assert acc.waited(0.020)
    assert acc.due(0.020, queue_empty=True)
    assert not acc.due(0.020, queue_empty=False)
    assert acc.due(0.500, queue_empty=False)
    # Past the short wait the poll looks at the queue again every few milliseconds.
    assert acc.poll_timeout_ms(0.020, idle_ms=200) == 5
    assert acc.poll_timeout_ms(0.497, idle_ms=200) == 3


def test_the_busy_wait_is_never_shorter_than_the_wait() -> None:
    assert Accumulator(max_records=5, max_wait=0.020, max_wait_busy=0.001).max_wait_busy == 0.020
    assert Accumulator(max_records=5, max_wait=0.020).max_wait_busy == 0.020


def test_the_bridge_hands_a_batch_on_only_when_the_queue_is_empty_or_the_busy_wait_is_over() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter()
    queued = [3]  # tasks waiting in the Celery queue
    looks: list[float] = []

    def queue_empty() -> bool:
        looks.append(clock.now)
        return queued[0] == 0

    bridge = trickle_bridge(clock, broker, submit, batch_wait_busy_ms=500, queue_empty=queue_empty)
    broker.append(OWNER0, uploads(0, 1))
    bridge.step()
    for n in range(1, 6):
        broker.append(OWNER0, uploads(n, 1))
        bridge.step()
        clock.now += 0.010
    # Past 20 ms, but the workers are busy: still gathering, the queue looked at each turn.
    assert submit.batches == []
    assert looks
    queued[0] = 0
    while not submit.batches:
        bridge.step()
    assert [[e.resource_id for e in b] for b in submit.batches] == [[0, 1, 2, 3, 4, 5]]
    assert broker.commits == [{OWNER0: 6}]
    # Busy for good: the batch goes anyway after 500 ms.
    queued[0] = 9
    broker.append(OWNER0, uploads(6, 1))
    started = clock.now
    while len(submit.batches) < 2:
        bridge.step()
    assert 0.5 <= clock.now - started < 0.52
    assert broker.commits[-1] == {OWNER0: 7}


def test_a_batch_is_handed_on_when_the_queue_cannot_be_seen() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter()

    def queue_empty() -> bool:
        raise ConnectionError("redis is down")

    bridge = trickle_bridge(clock, broker, submit, batch_wait_busy_ms=500, queue_empty=queue_empty)
    broker.append(OWNER0, uploads(0, 1))
    while not submit.batches:
        bridge.step()
    assert clock.now - 50.0 < 0.1


def test_a_failed_poll_while_gathering_reads_the_batch_again_even_when_the_broker_cannot_say_what_was_committed() -> None:
    class Down(Trickle):
        def committed(self, partition: TopicPartition) -> int | None:
            raise ConnectionError("the broker is restarting")

    clock = Clock()
    broker = Down(clock, {OWNER0})
    submit = Submitter()
    bridge = trickle_bridge(clock, broker, submit)
    broker.append(OWNER0, uploads(0, 3))
    bridge.step()
    assert broker.positions[OWNER0] == 3 and submit.batches == []
    bridge.abandon()  # the next poll raised
    # Back to the batch's first offset, not left past it.
    assert broker.positions[OWNER0] == 0
    while bridge.step():
        pass
    assert stored(submit) == [0, 1, 2]


# --- a batch goes when a worker is free (Confirmations.ready) ---------------------------

class Workers:
    """The Celery side as the bridge sees it: what waits in the queue, and which submitted
    batches a worker has confirmed stored."""

    def __init__(self) -> None:
        self.queued = 0
        self.stored: set[str] = set()
        self.looks = 0

    def look(self, task_ids: list[str]) -> tuple[int, list[bool]]:
        self.looks += 1
        return self.queued, [t in self.stored for t in task_ids]


def workers_bridge(clock: Clock, broker: Trickle, submit: Submitter, workers: Workers, in_flight: int,
                   **options: object) -> tuple[Bridge, Confirmations]:
    confirmations = Confirmations(submit, lambda ids: workers.look(ids)[1], lambda: workers.queued == 0,
                                  in_flight=in_flight, look=workers.look, clock=clock)
    options = {"batch_wait_ms": 0, "batch_wait_busy_ms": 500, **options}
    bridge = bridge_for(broker, confirmations.submit, monotonic=clock, queue_empty=confirmations.ready, **options)
    return bridge, confirmations


def test_while_every_worker_holds_a_batch_the_next_one_gathers_and_goes_the_moment_one_is_confirmed() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter()
    workers = Workers()
    bridge, confirmations = workers_bridge(clock, broker, submit, workers, in_flight=2)
    # Idle workers: each poll's messages are a batch at once (no wait at all).
    for n in range(2):
        broker.append(OWNER0, uploads(n, 1))
        bridge.step()
    assert [[e.resource_id for e in b] for b in submit.batches] == [[0], [1]]
    # Both workers hold a batch, and the queue is empty: what comes now waits for one of them,
    # looking every few milliseconds, however long they take (up to the busy wait).
    for n in range(2, 6):
        broker.append(OWNER0, uploads(n, 1))
        bridge.step()
        clock.now += 0.030
    assert len(submit.batches) == 2 and workers.looks >= 4
    workers.stored.add("task-1")
    bridge.step()
    assert [[e.resource_id for e in b] for b in submit.batches][2:] == [[2, 3, 4, 5]]
    assert broker.commits[-1] == {OWNER0: 6}
    # The confirmed batch is forgotten; the two unconfirmed still count.
    assert sorted(confirmations.pending) == ["task-2", "task-3"]


def test_a_task_waiting_in_the_queue_keeps_the_batch_gathering_even_with_a_worker_free() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter()
    workers = Workers()
    workers.queued = 1  # another task (a digest) waits: a batch now would wait behind it
    bridge, _ = workers_bridge(clock, broker, submit, workers, in_flight=2)
    broker.append(OWNER0, uploads(0, 1))
    bridge.step()
    clock.now += 0.100
    bridge.step()
    assert submit.batches == []
    workers.queued = 0
    bridge.step()
    assert stored(submit) == [0]


def test_busy_workers_hold_a_batch_back_no_longer_than_the_busy_wait() -> None:
    clock = Clock()
    broker = Trickle(clock, {OWNER0})
    submit = Submitter()
    workers = Workers()
    bridge, _ = workers_bridge(clock, broker, submit, workers, in_flight=1)
    broker.append(OWNER0, uploads(0, 1))
    bridge.step()
    broker.append(OWNER0, uploads(1, 1))
    started = clock.now
    while len(submit.batches) < 2:
        bridge.step()
    assert 0.5 <= clock.now - started < 0.52
    assert broker.commits == [{OWNER0: 1}, {OWNER0: 2}]


def test_a_batch_unconfirmed_past_its_resubmission_time_stops_counting_as_busy() -> None:
    clock = Clock()
    workers = Workers()
    confirmations = Confirmations(Submitter(), lambda ids: workers.look(ids)[1], lambda: True,
                                  in_flight=1, look=workers.look, resubmit_after=10, clock=clock)
    confirmations.submit(uploads_events(1))
    assert confirmations.ready() is False
    # Lost with a killed worker, most likely: it no longer keeps every later batch waiting
    # (check() submits it again).
    clock.now += 10
    assert confirmations.ready() is True


def test_without_in_flight_ready_is_the_queue_being_empty() -> None:
    workers = Workers()
    confirmations = Confirmations(Submitter(), lambda ids: [False] * len(ids), lambda: workers.queued == 0)
    confirmations.submit(uploads_events(1))
    assert confirmations.ready() is True
    workers.queued = 1
    assert confirmations.ready() is False
    with pytest.raises(ValueError):
        Confirmations(Submitter(), lambda ids: [], lambda: True, in_flight=2)


def uploads_events(count: int) -> list[Event]:
    return [parse_message("owner", value, partition=0, offset=n) for n, value in enumerate(uploads(0, count))]
