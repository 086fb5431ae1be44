"""Where the bridge keeps every message it rejects, as it came, with its reason.

First choice, the dead-letter topic: each copy carries headers saying where it came from and
why it was rejected, so an operator can read the topic, fix the producer, and replay what
matters. A message the topic refuses for good (kafka-python raises an error that is not
`retriable`: over the broker's or the client's size limit, say) goes to PostgreSQL instead,
one row in `notification_dead_letter` (notifications/dead_letters.py), so that no single
message can stop the bridge. Everything else (the broker away, a timeout, the database away)
is transient: the call raises, and the bridge holds the batch and retries under
backpressure. The bridge commits a batch's offsets only after every rejection was kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection
from kafka import KafkaProducer
from kafka.errors import KafkaError

from kafka_bridge.loop import Rejection
from notifications import dead_letters
from notifications.models import DeadLetter
from ops import metrics
from ops.kafka import acknowledged

log = logging.getLogger(__name__)


class DeadLetterUnavailable(Exception):
    """Some rejections could be kept neither on the topic nor in the table; retrying can help."""


def is_permanent(error: BaseException) -> bool:
    """Whether the topic will refuse this message however often it is sent again.

    kafka-python marks the errors a retry can cure (timeouts, a broker or leader away, a lost
    connection) as `retriable`; the others are about the message or the request. An error
    that is not kafka-python's, raised while sending one message, is about that message too
    (its key or headers).
    """
    if isinstance(error, KafkaError):
        return not error.retriable
    return not isinstance(error, OSError | TimeoutError)


def as_letter(rejection: Rejection, refusal: str) -> dead_letters.Letter:
    return dead_letters.Letter(
        stage=DeadLetter.BRIDGE,
        reason=f"{rejection.reason} (not on the dead-letter topic: {refusal})",
        value=rejection.value or b"",
        topic=rejection.topic,
        partition=rejection.partition,
        offset=rejection.offset,
        event_id=rejection.event_id or "",
        key=rejection.key,
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


class DeadLetterTopic:
    def __init__(
        self,
        topic: str | None = None,
        timeout: float = 5.0,
        record: Callable[[Sequence[dead_letters.Letter]], int] = dead_letters.record,
        producer_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.topic = topic or settings.KAFKA_DEAD_LETTER_TOPIC
        self.timeout = timeout
        self.record = record
        self.producer_factory = producer_factory or self._new_producer
        self._producer: Any = None

    def _new_producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, client_id="graphspace-bridge-dlq", acks="all",
            max_block_ms=int(self.timeout * 1000), bootstrap_timeout_ms=int(self.timeout * 1000),
        )

    def producer(self) -> Any:
        if self._producer is None:
            try:
                self._producer = self.producer_factory()
            except Exception as error:
                # Only an unreachable broker stops a producer from being made.
                raise DeadLetterUnavailable(f"no producer for the dead-letter topic: {_describe(error)}") from error
        return self._producer

    def __call__(self, rejections: Sequence[Rejection]) -> None:
        """Keep every rejection not kept yet: on the topic, or in the table when the topic
        refuses it for good. Raise DeadLetterUnavailable unless all of them are kept."""
        pending = [r for r in rejections if r.kept is None]
        if not pending:
            return
        refused: list[tuple[Rejection, str]] = []
        transient: list[str] = []
        try:
            self._send(pending, refused, transient)
        finally:
            if transient:
                # A producer that failed may stay broken (a restarted broker): the next
                # attempt gets a fresh one.
                self.close()
        if refused:
            self._record(refused)
        if transient:
            raise DeadLetterUnavailable(
                f"{len(transient)} of {len(pending)} not on the dead-letter topic: {transient[0]}"
            )

    def _send(self, pending: Sequence[Rejection], refused: list[tuple[Rejection, str]], transient: list[str]) -> None:
        producer = self.producer()
        sent: list[tuple[Rejection, Any]] = []
        for r in pending:
            headers = [
                ("reason", r.reason.encode("utf-8", "replace")),
                ("source-topic", r.topic.encode("utf-8", "replace")),
                ("source-partition", str(r.partition).encode()),
                ("source-offset", str(r.offset).encode()),
            ]
            try:
                # kafka-python checks the size here (MessageSizeTooLargeError), before sending.
                sent.append((r, producer.send(self.topic, key=r.key, value=r.value or b"", headers=headers)))
            except Exception as error:
                if not is_permanent(error):
                    # The broker is away: the rest would wait as long for the same answer.
                    # Those sent already are still flushed and read below.
                    transient.append(_describe(error))
                    break
                refused.append((r, _describe(error)))
        try:
            producer.flush(timeout=self.timeout)
        except Exception as error:
            transient.append(_describe(error))
            return
        for r, future in sent:
            try:
                # flush() returned, so every future is done: this only reads the outcome.
                # An answer without an offset is a transient error too (ops/kafka.py).
                acknowledged(future, self.timeout)
            except Exception as error:
                if is_permanent(error):
                    refused.append((r, _describe(error)))
                else:
                    transient.append(_describe(error))
                continue
            r.kept = "topic"
            metrics.dead_letters_kept.labels("topic").inc()

    def _record(self, refused: Sequence[tuple[Rejection, str]]) -> None:
        try:
            self.record([as_letter(r, refusal) for r, refusal in refused])
        except Exception as error:
            # PostgreSQL away, or a connection it dropped: a fresh connection next time.
            try:
                connection.close()
            except Exception:
                log.debug("closing the broken database connection failed", exc_info=True)
            raise DeadLetterUnavailable(f"the dead-letter table did not take {len(refused)}: {_describe(error)}") from error
        for r, refusal in refused:
            r.kept = "table"
            metrics.dead_letters_kept.labels("table").inc()
            log.warning("rejected message %s[%d]@%d kept in the dead-letter table: the topic refused it (%s)",
                        r.topic, r.partition, r.offset, refusal,
                        extra={"event_id": r.event_id, "topic": r.topic, "partition": r.partition, "offset": r.offset})

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=self.timeout)
            except Exception:
                log.debug("closing the dead-letter producer failed", exc_info=True)
