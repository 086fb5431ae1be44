"""Where rejected messages are kept: the dead-letter topic, or the table when the topic
refuses one for good; and what counts as worth retrying."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from kafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)
from kafka.producer.future import RecordMetadata
from kafka.structs import TopicPartition

from kafka_bridge.dead_letter import DeadLetterTopic, DeadLetterUnavailable, is_permanent
from kafka_bridge.loop import Rejection
from notifications.dead_letters import Letter
from notifications.models import DeadLetter

LIMIT = 1 << 20  # kafka-python's max_request_size


class Future:
    def __init__(self, verdict: Exception | int) -> None:
        self.verdict = verdict

    def get(self, timeout: float | None = None) -> RecordMetadata:
        if isinstance(self.verdict, Exception):
            raise self.verdict
        # Where the broker says it put the message (-1: nowhere, and no error).
        return RecordMetadata("dlq", 0, TopicPartition("dlq", 0), self.verdict, 0, None, 0, 0, 0)


class Producer:
    """Takes what fits, refuses what kafka-python would refuse before sending, and answers
    each send with the broker's verdict (`verdicts`, by value)."""

    def __init__(self, verdicts: dict[bytes, Exception | int] | None = None, flush_error: Exception | None = None,
                 send_error: Exception | None = None) -> None:
        self.verdicts = verdicts or {}
        self.flush_error = flush_error
        self.send_error = send_error
        self.sent: list[tuple[str, bytes | None, bytes, dict[str, bytes]]] = []
        self.closed = False

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"",
             headers: list[tuple[str, bytes]] | None = None) -> Future:
        if self.send_error is not None:
            raise self.send_error
        if len(value) > LIMIT:
            raise MessageSizeTooLargeError(f"The message is {len(value)} bytes when serialized")
        self.sent.append((topic, key, value, dict(headers or [])))
        return Future(self.verdicts.get(value, len(self.sent) - 1))

    def flush(self, timeout: float | None = None) -> None:
        if self.flush_error is not None:
            raise self.flush_error

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


class Table:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.letters: list[Letter] = []

    def __call__(self, letters: Sequence[Letter]) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("postgres is restarting")
        self.letters += letters
        return len(letters)


def rejection(offset: int, value: bytes, reason: str = "message is not JSON") -> Rejection:
    return Rejection("t-owner", 0, offset, reason, "ev-1" if offset == 1 else None, key=b"k", value=value)


def topic_with(*producers: Producer, table: Table | None = None) -> tuple[DeadLetterTopic, list[Producer]]:
    made: list[Producer] = []
    queue = list(producers)

    def factory() -> Producer:
        made.append(queue.pop(0))
        return made[-1]

    return DeadLetterTopic("dlq", timeout=0.1, record=table or Table(), producer_factory=factory), made


def test_each_rejection_is_copied_with_where_it_came_from_and_why() -> None:
    dlq, made = topic_with(Producer())
    rejections = [rejection(1, b"{oops"), rejection(2, b"[]", "message must be a JSON object, not list")]
    dlq(rejections)
    topic, key, value, headers = made[0].sent[1]
    assert (topic, key, value) == ("dlq", b"k", b"[]")
    assert headers == {"reason": b"message must be a JSON object, not list", "source-topic": b"t-owner",
                       "source-partition": b"0", "source-offset": b"2"}
    assert [r.kept for r in rejections] == ["topic", "topic"]


def test_a_message_too_large_for_the_topic_goes_to_the_table_and_the_rest_to_the_topic() -> None:
    table = Table()
    dlq, made = topic_with(Producer(), table=table)
    big = b"x" * (LIMIT + 1)
    rejections = [rejection(1, big, "message is 1048577 bytes, more than the 65536 allowed"), rejection(2, b"{oops")]
    dlq(rejections)
    assert [value for _, _, value, _ in made[0].sent] == [b"{oops"]
    [letter] = table.letters
    assert (letter.stage, letter.topic, letter.partition, letter.offset, letter.key, letter.event_id) == (
        DeadLetter.BRIDGE, "t-owner", 0, 1, b"k", "ev-1")
    assert letter.value == big
    assert letter.reason.startswith("message is 1048577 bytes, more than the 65536 allowed (not on the dead-letter topic: ")
    assert "MessageSizeTooLargeError" in letter.reason
    assert [r.kept for r in rejections] == ["table", "topic"]


@pytest.mark.parametrize("error", [
    MessageSizeTooLargeError("broker says too large"), RecordListTooLargeError(), TopicAuthorizationFailedError(),
], ids=lambda e: type(e).__name__)
def test_what_the_broker_refuses_for_good_goes_to_the_table(error: Exception) -> None:
    table = Table()
    dlq, _ = topic_with(Producer(verdicts={b"{oops": error}), table=table)
    rejections = [rejection(1, b"{oops"), rejection(2, b"[]")]
    dlq(rejections)
    assert [letter.offset for letter in table.letters] == [1]
    assert type(error).__name__ in table.letters[0].reason
    assert [r.kept for r in rejections] == ["table", "topic"]


@pytest.mark.parametrize("producer", [
    Producer(flush_error=KafkaTimeoutError("flush timed out")),
    Producer(send_error=KafkaTimeoutError("no metadata within max_block_ms")),
    Producer(verdicts={b"{oops": NotLeaderForPartitionError()}),
    Producer(verdicts={b"{oops": KafkaConnectionError("broker went away")}),
    # What Tansu 0.6.0 answers to a produce retried across its restart (it stores nothing).
    Producer(verdicts={b"{oops": -1}),
], ids=["flush timeout", "metadata timeout", "leader moved", "connection lost", "no offset"])
def test_a_broker_away_is_transient_and_the_next_try_gets_a_fresh_producer(producer: Producer) -> None:
    table = Table()
    dlq, made = topic_with(producer, Producer(), table=table)
    rejections = [rejection(1, b"{oops")]
    with pytest.raises(DeadLetterUnavailable):
        dlq(rejections)
    assert rejections[0].kept is None
    assert table.letters == []
    assert made[0].closed
    dlq(rejections)
    assert len(made) == 2
    assert rejections[0].kept == "topic"


def test_a_producer_that_cannot_be_made_is_transient() -> None:
    def factory() -> Any:
        raise KafkaTimeoutError("bootstrap timed out")

    dlq = DeadLetterTopic("dlq", timeout=0.1, record=Table(), producer_factory=factory)
    with pytest.raises(DeadLetterUnavailable, match="no producer for the dead-letter topic"):
        dlq([rejection(1, b"{oops")])


def test_a_table_that_is_away_is_transient_and_a_retry_copies_nothing_twice() -> None:
    table = Table(failures=1)
    dlq, made = topic_with(Producer(), table=table)
    rejections = [rejection(1, b"x" * (LIMIT + 1)), rejection(2, b"{oops")]
    with pytest.raises(DeadLetterUnavailable, match="the dead-letter table did not take 1"):
        dlq(rejections)
    assert [r.kept for r in rejections] == [None, "topic"]
    dlq(rejections)
    assert [r.kept for r in rejections] == ["table", "topic"]
    # The one on the topic was sent once, the too-large one never.
    assert [value for _, _, value, _ in made[0].sent] == [b"{oops"]
    assert len(table.letters) == 1


def test_kept_rejections_are_not_sent_again() -> None:
    dlq, made = topic_with(Producer())
    rejections = [rejection(1, b"{oops")]
    dlq(rejections)
    dlq(rejections)
    assert len(made[0].sent) == 1


@pytest.mark.parametrize(("error", "permanent"), [
    (MessageSizeTooLargeError(), True),
    (TopicAuthorizationFailedError(), True),
    (ValueError("Null messages require kafka >= 0.8.1"), True),
    (KafkaTimeoutError(), False),
    (KafkaConnectionError(), False),
    (NotLeaderForPartitionError(), False),
    (ConnectionRefusedError(), False),
    (TimeoutError(), False),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v))
def test_only_what_kafka_python_calls_retriable_and_network_errors_are_retried(error: Exception, permanent: bool) -> None:
    assert is_permanent(error) is permanent
