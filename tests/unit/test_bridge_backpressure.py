"""Backpressure: while Redis or the dead-letter place cannot take a batch, the bridge holds
it, pauses its partitions and keeps polling (so it stays in its consumer group), commits
nothing until the hand-off succeeds, and never skips or loses a record on the way."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from kafka.structs import OffsetAndMetadata, TopicPartition

from kafka_bridge.loop import Bridge, Rejection
from notifications.events import Event
from tests.unit.test_bridge_loop import TOPICS, Submitter, upload
from tests.unit.test_events import HOSTILE

OWNER0 = TopicPartition("t-owner", 0)
OWNER1 = TopicPartition("t-owner", 1)
GROUP0 = TopicPartition("t-group", 0)


@dataclass
class Record:
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int = 1_700_000_000_000


class Broker:
    """An in-memory consumer as kafka-python behaves: a position per assigned partition that
    poll advances, seek moves and commits never touch; paused partitions return nothing; a
    rebalance calls the listener inside poll and resets positions to the committed offsets."""

    def __init__(self, logs: dict[TopicPartition, list[bytes | None]], assigned: set[TopicPartition]) -> None:
        self.logs = {tp: [Record(i, v) for i, v in enumerate(values)] for tp, values in logs.items()}
        self.assigned = set(assigned)
        self.positions = {tp: 0 for tp in assigned}
        self.committed_offsets: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()
        self.polls: list[int] = []
        self.on_revoked: Any = None
        self.rebalance_to: set[TopicPartition] | None = None
        self.closed_with_autocommit: bool | None = None

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        self.polls.append(timeout_ms)
        if self.rebalance_to is not None:
            self._rebalance(self.rebalance_to)
            self.rebalance_to = None
        left = max_records or 500
        found: dict[TopicPartition, list[Record]] = {}
        for tp in sorted(self.assigned - self.paused):
            records = self.logs.get(tp, [])[self.positions[tp]:][:left]
            if records:
                found[tp] = records
                self.positions[tp] += len(records)
                left -= len(records)
        return found

    def _rebalance(self, assignment: set[TopicPartition]) -> None:
        # The eager protocol: everything is revoked, then the new assignment given, unpaused,
        # reading from the committed offsets.
        if self.on_revoked is not None:
            self.on_revoked(set(self.assigned))
        self.assigned = set(assignment)
        self.paused = set()
        self.positions = {tp: self.committed_offsets.get(tp, 0) for tp in assignment}

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata] | None = None) -> None:
        assert offsets is not None, "the bridge always names the offsets it commits"
        done = {tp: o.offset for tp, o in offsets.items()}
        self.commits.append(done)
        self.committed_offsets.update(done)

    def close(self, autocommit: bool = True) -> None:
        self.closed_with_autocommit = autocommit

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def committed(self, partition: TopicPartition) -> int | None:
        return self.committed_offsets.get(partition)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        assert partition in self.assigned, "seek on a partition not assigned"
        self.positions[partition] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        assert set(partitions) <= self.assigned, "pause of a partition not assigned"
        self.paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused -= set(partitions)


def uploads(start: int, count: int) -> list[bytes | None]:
    return [upload(n) for n in range(start, start + count)]


def bridge_for(broker: Broker, submit: Any, **options: Any) -> Bridge:
    bridge = Bridge(broker, submit, TOPICS, sleep=lambda s: pytest.fail("the bridge slept"), **options)
    broker.on_revoked = bridge.partitions_revoked
    return bridge


def stored(submit: Submitter) -> list[int]:
    return sorted(e.resource_id for batch in submit.batches for e in batch)


def test_a_refused_batch_pauses_the_partitions_and_polls_on_until_it_is_accepted() -> None:
    broker = Broker({OWNER0: uploads(0, 3), OWNER1: uploads(100, 2)}, {OWNER0, OWNER1})
    submit = Submitter(failures=6)
    bridge = bridge_for(broker, submit)
    bridge.step()
    assert broker.paused == {OWNER0, OWNER1}
    for _ in range(5):
        bridge.step()
        # Held, never committed: a crash now redelivers the batch.
        assert broker.commits == []
        assert broker.paused == {OWNER0, OWNER1}
    # Every wait was a poll whose timeout is the backoff, doubling up to its cap.
    assert broker.polls == [200, 200, 400, 800, 1600, 3200]
    bridge.step()
    assert broker.polls[-1] == 5000
    assert broker.commits == [{OWNER0: 3, OWNER1: 2}]
    assert broker.paused == set()
    assert stored(submit) == [0, 1, 2, 100, 101]
    assert bridge.stats.submit_failures == 6


def test_the_backoff_stays_at_its_cap_through_a_long_outage() -> None:
    broker = Broker({OWNER0: uploads(0, 1)}, {OWNER0})
    submit = Submitter(failures=50)
    bridge = bridge_for(broker, submit, backoff_max=2.0)
    for _ in range(51):
        bridge.step()
    assert max(broker.polls) == 2000
    assert broker.polls[-10:] == [2000] * 10
    assert broker.commits == [{OWNER0: 1}]


def test_after_an_outage_the_bridge_reads_on_where_it_was() -> None:
    broker = Broker({OWNER0: uploads(0, 10)}, {OWNER0})
    submit = Submitter(failures=3)
    bridge = bridge_for(broker, submit, max_records=4)
    while bridge.step():
        pass
    assert [[e.resource_id for e in batch] for batch in submit.batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [c[OWNER0] for c in broker.commits] == [4, 8, 10]


def test_records_polled_while_holding_are_read_again_later_not_skipped() -> None:
    broker = Broker({OWNER0: uploads(0, 2), GROUP0: []}, {OWNER0})
    submit = Submitter(failures=2)
    bridge = bridge_for(broker, submit)
    bridge.step()
    assert broker.paused == {OWNER0}

    # A partition assigned while the batch is held is not paused, so poll returns its records.
    group_share = (b'{"owner_email": "bob@example.com", "message": "m", "resource": "graph", '
                   b'"resource_id": 7, "type": "share", "group_id": 3}')
    broker.logs[GROUP0] = [Record(0, group_share), Record(1, group_share)]
    broker.assigned.add(GROUP0)
    broker.positions[GROUP0] = 0
    bridge.step()
    # The bridge went back to them and paused their partition too.
    assert broker.positions[GROUP0] == 0
    assert broker.paused == {OWNER0, GROUP0}
    assert broker.commits == []
    bridge.step()  # the held batch is accepted
    assert broker.commits == [{OWNER0: 2}]
    bridge.step()
    assert broker.commits[-1] == {GROUP0: 2}
    assert [len(batch) for batch in submit.batches] == [2, 2]


def test_a_rebalance_while_holding_drops_the_batch_uncommitted_and_it_is_read_again() -> None:
    broker = Broker({OWNER0: uploads(0, 3), OWNER1: uploads(10, 2)}, {OWNER0, OWNER1})
    broker.committed_offsets = {OWNER0: 0, OWNER1: 0}
    submit = Submitter(failures=3)
    bridge = bridge_for(broker, submit)
    bridge.step()
    assert bridge.held is not None
    # Another bridge joins: this one keeps OWNER0 only.
    broker.rebalance_to = {OWNER0}
    bridge.step()
    assert bridge.held is None
    assert broker.commits == []
    assert broker.paused == set()
    assert bridge.stats.dropped == 1
    assert bridge.status()["state"] == "idle"
    # It reads its remaining partition again from the committed offset; OWNER1's records
    # are the new owner's to read.
    while bridge.step() or submit.failures:
        pass
    assert stored(submit) == [0, 1, 2]
    assert broker.commits == [{OWNER0: 3}]


def test_a_rebalance_that_gives_back_the_same_partitions_still_rereads_the_batch() -> None:
    broker = Broker({OWNER0: uploads(0, 3)}, {OWNER0})
    submit = Submitter(failures=2)
    bridge = bridge_for(broker, submit)
    bridge.step()
    broker.rebalance_to = {OWNER0}
    bridge.step()
    assert (bridge.held, broker.commits, broker.positions[OWNER0]) == (None, [], 0)
    while bridge.step() or submit.failures:
        pass
    assert stored(submit) == [0, 1, 2]
    assert broker.commits == [{OWNER0: 3}]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_while_holding_stops_without_committing(signum: int) -> None:
    broker = Broker({OWNER0: uploads(0, 3)}, {OWNER0})
    submit = Submitter(failures=1000)
    bridge = bridge_for(broker, submit)
    turns = 0
    original_poll = broker.poll

    def poll(timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        nonlocal turns
        turns += 1
        if turns == 4:
            # The handler the command installs, as the signal would run it inside poll.
            bridge.request_shutdown(signum, None)
        return original_poll(timeout_ms, max_records)

    broker.poll = poll  # type: ignore[method-assign]
    bridge.run()
    assert turns == 4
    assert broker.commits == []
    assert broker.closed_with_autocommit is False
    # Three attempts: the first and two retries; the signal came before a fourth.
    assert bridge.stats.submit_failures == 3


def test_rejections_the_dead_letter_place_cannot_keep_hold_the_batch_and_are_kept_once() -> None:
    broker = Broker({OWNER0: [upload(0), b"{oops", upload(2)]}, {OWNER0})
    kept: list[list[int]] = []
    failures = [2]

    def dead_letter(rejections: Sequence[Rejection]) -> None:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("kafka and postgres are away")
        kept.append([r.offset for r in rejections])

    submit = Submitter(failures=1)
    bridge = bridge_for(broker, submit, dead_letter=dead_letter)
    for _ in range(3):
        bridge.step()
        assert broker.commits == []
    # Kept at the third try; then the submit failed once more, which does not keep them again.
    assert kept == [[1]]
    bridge.step()
    assert kept == [[1]]
    assert stored(submit) == [0, 2]
    assert broker.commits == [{OWNER0: 3}]
    assert (bridge.stats.dead_letter_failures, bridge.stats.submit_failures) == (2, 1)


def test_an_accepted_batch_is_not_submitted_again_when_only_its_commit_is_retried() -> None:
    broker = Broker({OWNER0: uploads(0, 2)}, {OWNER0})
    submit = Submitter()
    bridge = bridge_for(broker, submit)
    batch_submit = bridge.submit
    calls: list[int] = []

    def counting(events: Sequence[Event]) -> str:
        calls.append(len(events))
        return batch_submit(events)

    bridge.submit = counting
    bridge.step()
    assert calls == [2]
    assert broker.commits == [{OWNER0: 2}]


def test_every_hostile_message_in_a_batch_is_rejected_and_the_valid_ones_go_on() -> None:
    hostile = [value for _, _, value, _ in HOSTILE]
    values: list[bytes | None] = []
    for n, value in enumerate(hostile):
        values += [upload(n), value]
    broker = Broker({OWNER0: values}, {OWNER0})
    submit = Submitter()
    kept: list[Rejection] = []
    bridge = bridge_for(broker, submit, dead_letter=kept.extend, max_records=1000)
    bridge.step()
    assert stored(submit) == list(range(len(hostile)))
    # Those of the group topic's cases that are fine on the owner topic are valid here.
    assert len(kept) + len(submit.batches[0]) == len(values)
    assert all(r.reason for r in kept)
    assert broker.commits == [{OWNER0: len(values)}]


def test_a_message_that_breaks_the_parser_itself_is_a_rejection_not_a_failed_step() -> None:
    class Weird:
        """A value no consumer should hand out: len() raises."""

        def __len__(self) -> int:
            raise RuntimeError("boom")

    broker = Broker({OWNER0: uploads(0, 1)}, {OWNER0})
    broker.logs[OWNER0].append(Record(1, Weird()))  # type: ignore[arg-type]
    submit = Submitter()
    kept: list[Rejection] = []
    bridge = bridge_for(broker, submit, dead_letter=kept.extend)
    bridge.step()
    assert [(r.offset, r.reason) for r in kept] == [(1, "message value is Weird, not bytes")]
    assert broker.commits == [{OWNER0: 2}]
