"""The bridge's loop against an in-memory consumer: what it submits, commits and rejects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka.structs import OffsetAndMetadata, TopicPartition

from kafka_bridge.loop import Bridge
from notifications.events import Event

TOPICS = {"t-owner": "owner", "t-group": "group"}
OWNER = TopicPartition("t-owner", 0)


@dataclass
class Record:
    offset: int
    value: bytes | None
    timestamp: int = 1_700_000_000_000


class MemoryConsumer:
    """Hands out the records it holds, one poll per batch, and remembers commits. While its
    partition is paused, a poll returns nothing (as kafka-python's does)."""

    def __init__(self, batches: list[dict[TopicPartition, list[Record]]]) -> None:
        self.batches = list(batches)
        self.commits: list[dict[TopicPartition, OffsetAndMetadata]] = []
        self.committed_offsets: dict[TopicPartition, int] = {}
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()
        self.polls: list[int] = []
        self.closed = False

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        self.polls.append(timeout_ms)
        if OWNER in self.paused:
            return {}
        return self.batches.pop(0) if self.batches else {}

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused -= set(partitions)

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata] | None = None) -> None:
        assert offsets is not None, "the bridge always names the offsets it commits"
        self.commits.append(dict(offsets))
        self.committed_offsets.update({tp: o.offset for tp, o in offsets.items()})

    def close(self, autocommit: bool = True) -> None:
        self.closed = True

    def assignment(self) -> set[TopicPartition]:
        return {OWNER}

    def committed(self, partition: TopicPartition) -> int | None:
        return self.committed_offsets.get(partition)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))


def upload(n: int) -> bytes:
    return json.dumps({
        "owner_email": "alice@example.com", "message": f"New graph G{n} uploaded.",
        "resource": "graph", "resource_id": n, "type": "upload",
    }).encode()


class Submitter:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[list[Event]] = []

    def __call__(self, events: Sequence[Event]) -> str:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis is down")
        self.batches.append(list(events))
        return f"task-{len(self.batches)}"


def make(consumer: MemoryConsumer, submit: Submitter, sleeps: list[float] | None = None) -> Bridge:
    record = sleeps if sleeps is not None else []
    return Bridge(consumer, submit, TOPICS, sleep=record.append)


def test_a_batch_becomes_one_task_and_its_offsets_are_committed_after() -> None:
    consumer = MemoryConsumer([{OWNER: [Record(0, upload(0)), Record(1, upload(1)), Record(2, upload(2))]}])
    submit = Submitter()
    bridge = make(consumer, submit)
    assert bridge.step() is True
    assert [[e.resource_id for e in batch] for batch in submit.batches] == [[0, 1, 2]]
    assert consumer.commits == [{OWNER: OffsetAndMetadata(3, "", -1)}]


def test_a_malformed_message_is_rejected_with_its_position_and_never_blocks_the_rest() -> None:
    consumer = MemoryConsumer([{OWNER: [Record(0, upload(0)), Record(1, b"{oops"), Record(2, upload(2))]}])
    submit = Submitter()
    bridge = make(consumer, submit)
    bridge.step()
    assert [e.resource_id for e in submit.batches[0]] == [0, 2]
    assert bridge.stats.rejected == 1
    rejection = bridge.stats.rejections[0]
    assert (rejection.topic, rejection.partition, rejection.offset) == ("t-owner", 0, 1)
    assert rejection.reason.startswith("message is not JSON")
    # The rejected message's offset is committed too: it will not come back.
    assert consumer.commits[-1][OWNER].offset == 3


def test_a_batch_of_only_bad_messages_submits_nothing_but_still_commits() -> None:
    consumer = MemoryConsumer([{OWNER: [Record(7, b"[]"), Record(8, None)]}])
    submit = Submitter()
    make(consumer, submit).step()
    assert submit.batches == []
    assert consumer.commits == [{OWNER: OffsetAndMetadata(9, "", -1)}]


def test_an_unreachable_celery_broker_is_retried_with_backoff_and_committed_only_after() -> None:
    consumer = MemoryConsumer([{OWNER: [Record(0, upload(0))]}])
    submit = Submitter(failures=3)
    sleeps: list[float] = []
    bridge = make(consumer, submit, sleeps)
    for _ in range(4):
        bridge.step()
    # The backoff is the timeout of the polls that keep the consumer in its group, not a sleep.
    assert consumer.polls == [200, 200, 400, 800]
    assert sleeps == []
    assert len(submit.batches) == 1
    assert len(consumer.commits) == 1
    assert bridge.stats.submit_failures == 3
    assert consumer.paused == set()


def test_stopping_while_the_broker_is_down_leaves_the_batch_uncommitted() -> None:
    consumer = MemoryConsumer([{OWNER: [Record(0, upload(0))]}])
    submit = Submitter(failures=100)
    bridge = make(consumer, submit)
    bridge.request_shutdown()
    bridge.step()
    assert submit.batches == []
    assert consumer.commits == []


def test_a_failed_step_rewinds_to_the_committed_offset_so_nothing_is_skipped() -> None:
    class Exploding(MemoryConsumer):
        def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata] | None = None) -> None:
            raise RuntimeError("commit failed")

    consumer = Exploding([{OWNER: [Record(5, upload(5))]}])
    consumer.committed_offsets[OWNER] = 5
    bridge = make(consumer, Submitter())

    def stop_after_sleep(seconds: float) -> None:
        bridge.shutdown = True

    bridge.sleep = stop_after_sleep
    bridge.run()
    assert consumer.seeks == [(OWNER, 5)]
    assert consumer.closed


def test_shutdown_finishes_the_batch_in_hand_then_stops() -> None:
    consumer = MemoryConsumer([{OWNER: [Record(0, upload(0))]}, {OWNER: [Record(1, upload(1))]}])
    submit = Submitter()
    bridge = make(consumer, submit)
    original_submit = bridge.submit

    def submit_then_stop(events: Sequence[Event]) -> Any:
        bridge.request_shutdown()
        return original_submit(events)

    bridge.submit = submit_then_stop
    bridge.run()
    assert len(submit.batches) == 1
    assert consumer.commits == [{OWNER: OffsetAndMetadata(1, "", -1)}]
    assert consumer.closed


class DeadLetters:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.copied: list[tuple[int, bytes | None]] = []

    def __call__(self, rejections: Sequence[Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("kafka is down")
        self.copied += [(r.offset, r.value) for r in rejections]


def test_rejected_messages_are_copied_to_the_dead_letter_topic_before_the_commit() -> None:
    consumer = MemoryConsumer([{OWNER: [Record(0, upload(0)), Record(1, b"{oops"), Record(2, b"[]")]}])
    dead = DeadLetters(failures=1)
    submit = Submitter()
    bridge = Bridge(consumer, submit, TOPICS, dead_letter=dead)
    bridge.step()
    # Not kept yet: nothing submitted, nothing committed, the partition paused.
    assert (dead.copied, submit.batches, consumer.commits, consumer.paused) == ([], [], [], {OWNER})
    bridge.step()
    assert dead.copied == [(1, b"{oops"), (2, b"[]")]
    assert consumer.polls == [200, 200]
    assert [e.resource_id for e in submit.batches[0]] == [0]
    assert consumer.commits == [{OWNER: OffsetAndMetadata(3, "", -1)}]


def test_stopping_while_the_dead_letter_topic_is_unreachable_commits_nothing() -> None:
    consumer = MemoryConsumer([{OWNER: [Record(0, b"{oops")]}])
    bridge = Bridge(consumer, Submitter(), TOPICS, sleep=lambda s: None, dead_letter=DeadLetters(failures=100))
    bridge.request_shutdown()
    bridge.step()
    assert consumer.commits == []
