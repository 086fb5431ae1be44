"""The worker's leases and reconnect policy (graphspace/celery_worker.py), without a server.
The real-Redis proof is tests/integration/test_recovery.py."""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from graphspace.celery import app
from graphspace.celery_worker import RECONNECT_INTERVAL_MAX, Consumer, renew, renewal_interval


class Client:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, float], dict[str, Any]]] = []

    def zadd(self, key: str, mapping: dict[str, float], **options: Any) -> int:
        self.calls.append((key, mapping, options))
        return len(mapping)


class Channel:
    def __init__(self, client: Client) -> None:
        self.client = client

    @contextmanager
    def conn_or_acquire(self) -> Any:
        yield self.client


class QoS:
    """kombu's Redis QoS as renew() reads it: delivered tags, and the acknowledged ones."""

    unacked_index_key = "unacked_index"

    def __init__(self, delivered: list[str], acked: set[str]) -> None:
        self._delivered = OrderedDict((tag, object()) for tag in delivered)
        self._dirty = acked
        self.client = Client()
        self.channel = Channel(self.client)


def test_it_moves_every_held_task_to_now_and_never_adds_one() -> None:
    qos = QoS(["a", "b", "c"], acked={"b"})
    assert renew(qos, now=1234.5) == 2
    # XX: a task acknowledged, or swept back by another worker, meanwhile stays out.
    assert qos.client.calls == [("unacked_index", {"a": 1234.5, "c": 1234.5}, {"xx": True, "ch": True})]


def test_it_asks_nothing_of_redis_when_nothing_is_held() -> None:
    qos = QoS(["a"], acked={"a"})
    assert renew(qos) == 0
    assert qos.client.calls == []


def test_it_renews_three_times_per_visibility_timeout() -> None:
    assert renewal_interval({"visibility_timeout": 15}) == 5
    # kombu's own default (an hour) when the option is not set.
    assert renewal_interval({}) == 1200


def test_the_settings_sweep_often_enough_for_the_leases() -> None:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    sweep = options["unacked_restore_interval"] * options["unacked_restore_throttle"]
    # A dead worker's task is back within the timeout and one sweep: well inside 30 s.
    assert options["visibility_timeout"] + sweep + options["unacked_mutex_expire"] < 30
    assert renewal_interval(options) < options["visibility_timeout"] / 2


def test_the_worker_uses_the_consumer_that_reconnects_soon() -> None:
    assert app.conf.worker_consumer == "graphspace.celery_worker:Consumer"
    seen: dict[str, Any] = {}

    class Connection:
        def ensure_connection(self, *args: Any, **kwargs: Any) -> Connection:
            seen.update(kwargs)
            return self

    consumer = Consumer.__new__(Consumer)  # only ensure_connected is under test
    consumer.app = app
    consumer.first_connection_attempt = False
    consumer.broker_connection_retry_attempt = 0
    consumer.ensure_connected(Connection())
    assert seen["interval_max"] == RECONNECT_INTERVAL_MAX
