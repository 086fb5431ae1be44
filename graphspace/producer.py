"""The one door to Kafka for the web app: the transactional outbox and its relay.

`send_message(topic, message)` keeps the seed's signature. It completes and validates the
event at once (a programming error shows up in the request that made it) and writes it to
the outbox table inside the caller's transaction: the change and its event commit or vanish
together, and the request never waits for Kafka. A trigger on the table wakes the relay
(PostgreSQL NOTIFY, delivered when the transaction commits).

The relay (`manage.py relay_outbox`, `Relay` below) claims the oldest rows, publishes them,
waits for the broker's acknowledgement and only then deletes them. A relay that dies after
publishing and before deleting publishes those rows again: at-least-once, and the persist
task's unique key on (event, recipient) makes the copy change nothing. Rows are claimed with
SKIP LOCKED, so two relays never publish one row at once, under per-key advisory locks, so a
second relay never overtakes the first on one key: each key's events reach Kafka in the order
their transactions wrote them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from graphspace.models import OutboxEvent
from notifications.events import Event, new_event
from ops import metrics
from ops.kafka import acknowledged

log = logging.getLogger(__name__)

# The channel the outbox trigger notifies (graphspace/migrations: outbox_notify).
NOTIFY_CHANNEL = "graphspace_outbox"


def message_key(event: Event) -> str:
    """One recipient's or one group's events share a partition, so they stay in order."""
    if event.topic == "group":
        return f"group:{event.group_id}"
    if event.topic == "watching":
        return f"watching:{event.graph_id}"
    return f"owner:{event.owner_email}"


def encode(event: Event) -> bytes:
    return json.dumps(event.to_message(), separators=(",", ":")).encode("utf-8")


def write_to_outbox(event: Event) -> None:
    """Add the event to the outbox in the caller's transaction (it must be in one)."""
    OutboxEvent.objects.create(topic=event.topic, key=message_key(event), event_id=event.event_id, value=encode(event))


def send_message(topic: str, message: dict[str, Any]) -> Event:
    """Announce a change (the seed's API): the event is written to the outbox in the current
    transaction and reaches Kafka after it commits; a rolled-back change announces nothing."""
    event = new_event(topic, message)
    write_to_outbox(event)
    return event


# --- The relay -------------------------------------------------------------------------

# A claim takes two statements. The first locks (transaction-level advisory locks, skipping
# any held by another relay) the keys of the oldest rows. The second, with a fresh snapshot
# taken while those locks are held, reads the oldest rows of the locked keys. No other relay
# can hold one of those keys meanwhile, so an older row of the key is either deleted (its
# relay committed) or read here: each key reaches Kafka in the order its rows were written.
# A single statement would not do: a key whose lock is freed during the scan is skipped at
# its older rows and taken at its newer ones (the test caught exactly that).
_LOCK_KEYS_SQL = f"""
SELECT key FROM (SELECT DISTINCT key FROM (
    SELECT key FROM "{OutboxEvent._meta.db_table}" ORDER BY id LIMIT %s) AS oldest) AS keys
 WHERE pg_try_advisory_xact_lock(hashtextextended('outbox:' || key, 0))
"""
_CLAIM_SQL = f"""
SELECT id, topic, key, value FROM "{OutboxEvent._meta.db_table}"
 WHERE key = ANY(%s)
 ORDER BY id
 LIMIT %s
   FOR UPDATE SKIP LOCKED
"""


@dataclass
class Claimed:
    id: int
    topic: str
    key: str
    value: bytes


class PublishError(Exception):
    """The broker did not acknowledge every row of a batch; the rest stay in the outbox."""


def make_producer() -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        client_id="graphspace-relay",
        acks="all",
        # One request in flight per connection: a retried request cannot overtake the next
        # one, so a key's order survives retries.
        max_in_flight_requests_per_connection=1,
        retries=3,
        linger_ms=2,
        max_block_ms=settings.KAFKA_RELAY_TIMEOUT_MS,
        bootstrap_timeout_ms=settings.KAFKA_RELAY_TIMEOUT_MS,
        request_timeout_ms=settings.KAFKA_RELAY_TIMEOUT_MS,
    )


class Relay:
    """Publishes the outbox. `step()` moves one batch; `run()` loops, woken by NOTIFY."""

    def __init__(
        self, *, batch: int = 500, producer_factory: Callable[[], KafkaProducer] = make_producer,
        backoff_max: float = 5.0,
    ) -> None:
        self.batch = batch
        self.producer_factory = producer_factory
        self.backoff_max = backoff_max
        self._producer: KafkaProducer | None = None
        self.shutdown = False
        self.published = 0

    def request_shutdown(self, *_: Any) -> None:
        self.shutdown = True

    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self.producer_factory()
        return self._producer

    def reset_producer(self) -> None:
        """Drop the producer after any failure: one that hit a fatal error (the broker
        restarted under it) would otherwise stay broken for the life of the process."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=1)
            except Exception:  # closing a broken producer may fail too; it is gone either way
                log.debug("closing the failed producer", exc_info=True)

    def publish(self, rows: list[Claimed]) -> list[int]:
        """Send the rows and wait for the broker; return the ids it acknowledged, in order,
        stopping at the first failure (what follows it waits for the next attempt)."""
        producer = self.producer()
        timeout = settings.KAFKA_RELAY_TIMEOUT_MS / 1000
        futures = [
            producer.send(settings.KAFKA_TOPICS[row.topic], key=row.key.encode("utf-8"), value=row.value)
            for row in rows
        ]
        producer.flush(timeout=timeout)
        acked: list[int] = []
        # Where the broker put them, for the log: "owner[0]@120-131".
        spans: dict[str, list[int]] = {}
        for row, future in zip(rows, futures, strict=True):
            try:
                # An answer without an offset is not a delivery either (ops/kafka.py).
                where = acknowledged(future, timeout)
            except KafkaError as error:
                if not acked and not getattr(error, "retriable", True):
                    log.error("outbox row %d refused by the broker: %r", row.id, error)
                raise PublishError(f"{len(rows) - len(acked)} of {len(rows)} not acknowledged: "
                                   f"outbox row {row.id}: {error!r}") from error
            acked.append(row.id)
            span = spans.setdefault(f"{where.topic}[{where.partition}]", [where.offset, where.offset])
            span[0], span[1] = min(span[0], where.offset), max(span[1], where.offset)
        log.info("published %d events at %s", len(acked), ", ".join(f"{k}@{a}-{b}" for k, (a, b) in sorted(spans.items())))
        return acked

    def step(self) -> int:
        """Publish one batch of the oldest rows; returns how many were published."""
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_LOCK_KEYS_SQL, [self.batch])
                keys = [row[0] for row in cursor.fetchall()]
                if not keys:
                    return 0
                cursor.execute(_CLAIM_SQL, [keys, self.batch])
                rows = [Claimed(i, t, k, bytes(v)) for i, t, k, v in cursor.fetchall()]
            if not rows:
                return 0
            try:
                acked = self.publish(rows)
            except (PublishError, KafkaError) as error:
                # Nothing is deleted: the rows are published again (a copy the broker did
                # take is harmless, persisting is idempotent).
                self.reset_producer()
                metrics.relay_failures.inc()
                raise PublishError(str(error)) from error
            OutboxEvent.objects.filter(id__in=acked).delete()
        self.published += len(acked)
        metrics.relay_published.inc(len(acked))
        return len(acked)

    def drain(self) -> int:
        """Publish until the outbox is empty (or a stop is asked for)."""
        total = 0
        while not self.shutdown:
            moved = self.step()
            total += moved
            if moved < self.batch:
                break
        return total

    def run(self, listen: Callable[[float], bool] | None = None) -> None:
        """Drain, then wait for a NOTIFY (or `idle` seconds, in case one was missed while
        reconnecting); back off while the broker or the database is away."""
        wait = listen or self._listener()
        delay = 0.2
        try:
            while not self.shutdown:
                metrics.relay_heartbeat.set_to_current_time()
                try:
                    self.drain()
                    delay = 0.2
                    wait(settings.OUTBOX_IDLE_POLL_SECONDS)
                except Exception as error:
                    log.warning("relay: %s; retrying in %.1fs", error, delay)
                    connection.close()
                    self._sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
        finally:
            self.reset_producer()
            log.info("relay stopped after publishing %d events", self.published)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.shutdown and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))

    def _listener(self) -> Callable[[float], bool]:
        """A dedicated connection that LISTENs to the outbox channel; returns a function that
        waits up to `timeout` seconds for a notification (True if one came)."""
        state: dict[str, psycopg.Connection[Any] | None] = {"conn": None}

        def wait(timeout: float) -> bool:
            conn = state["conn"]
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(_dsn(), autocommit=True)
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    state["conn"] = conn
                    # Rows written while we were not listening would wait a whole idle period.
                    return True
                for _ in conn.notifies(timeout=timeout, stop_after=1):
                    return True
                return False
            except psycopg.Error as error:
                log.warning("relay: listening for the outbox failed (%s); polling", error)
                if conn is not None:
                    conn.close()
                state["conn"] = None
                self._sleep(min(timeout, 1.0))
                return False

        return wait


def _dsn() -> str:
    db = settings.DATABASES["default"]
    return psycopg.conninfo.make_conninfo(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=str(db["PORT"] or ""),
        connect_timeout=str(db.get("OPTIONS", {}).get("connect_timeout", 5)),
    )


class OutboxBacklog(Collector):
    """Events written by actions and not yet acknowledged by Kafka, read from the outbox
    table on each scrape of web's /metrics: it rises whenever the relay or the broker is
    away, whichever process is asked."""

    def describe(self) -> Iterator[Metric]:
        # Registering asks for the names; without this it would query at import time.
        yield GaugeMetricFamily("graphspace_outbox_events", "")
        yield GaugeMetricFamily("graphspace_outbox_oldest_age_seconds", "")

    def collect(self) -> Iterator[Metric]:
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f'SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) '
                    f'FROM "{OutboxEvent._meta.db_table}"'
                )
                count, age = cursor.fetchone()
        except Exception as error:
            # The database away: /healthz says so; the rest of /metrics still answers.
            log.warning("outbox metrics unavailable: %r", error)
            return
        yield GaugeMetricFamily("graphspace_outbox_events", "Events in the outbox, not yet acknowledged by Kafka.", value=count)
        yield GaugeMetricFamily(
            "graphspace_outbox_oldest_age_seconds", "Age of the oldest event in the outbox (0 when empty).", value=float(age)
        )
