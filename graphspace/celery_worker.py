"""What the Celery worker adds so that a dead worker's tasks, or those in flight when Redis
went away, come back in seconds (docs/operating.md, "Recovery after a worker or Redis dies").

**Leases, renewed while the worker lives.** With `acks_late`, Redis keeps every task a worker
has taken and not yet acknowledged (reserved, waiting for its countdown, or running) in
kombu's `unacked` hash, indexed by the time it was taken (`unacked_index`). Every worker sweeps
that index every few seconds and puts back in its queue each task older than the visibility
timeout: that is how the tasks of a worker that died come back. On its own this makes the
timeout a bad trade. Short, and a long task (the digest) or a retry waiting out its countdown
is handed out again and again while its worker still holds it, one more copy each time. Long,
and a dead worker's tasks wait that long. `RenewLeases` removes the trade: several times per
visibility timeout the worker's main process moves the index time of every task it still
holds to now. A live worker's tasks are never older than one renewal interval, however long
they run or wait; a dead worker's stop being renewed and are swept back within the visibility
timeout plus one sweep. So are the tasks a worker took on a connection it has since lost: a
delivery can only be acknowledged on the connection that took it.

**Reconnecting soon after Redis returns.** kombu waits 2, 4, 6 ... up to 30 s between a
consumer's attempts to reconnect, so a worker could sleep through half a minute of a Redis
that is back. `Consumer` caps that wait at `RECONNECT_INTERVAL_MAX`, and keeps the worker
alive when Redis goes away while it holds tasks (`keep_pool`).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import redis
from celery import bootsteps
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

# Renewals per visibility timeout: a worker whose event loop stalls for up to two thirds of
# the timeout still keeps its tasks.
RENEWALS_PER_TIMEOUT = 3
# Seconds between a worker's attempts to reconnect to the broker: 1, 2, 3, 4, 5, 5, 5 ...
RECONNECT_INTERVAL_MAX = 5


def renewal_interval(transport_options: dict[str, Any]) -> float:
    timeout = float(transport_options.get("visibility_timeout", kombu_redis.Channel.visibility_timeout))
    return timeout / RENEWALS_PER_TIMEOUT


def renew(qos: Any, now: float | None = None) -> int:
    """Set the index time of every task this channel holds to `now`; return how many moved.

    `XX` only updates members that are still in the index, so a task acknowledged (or swept
    back by another worker) in the meantime is never put back in it."""
    held = [tag for tag in list(qos._delivered) if tag not in qos._dirty]
    if not held:
        return 0
    stamp = time.time() if now is None else now
    with qos.channel.conn_or_acquire() as client:
        return int(client.zadd(qos.unacked_index_key, dict.fromkeys(held, stamp), xx=True, ch=True))


class RenewLeases(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step: renews the leases of the task consumer's channel on the worker's timer."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        self.tref: Any = None
        super().__init__(parent, **kwargs)

    def start(self, c: Any) -> None:
        self.stop(c)  # a consumer that reconnects starts its steps again
        qos = c.task_consumer.channel.qos
        if not isinstance(qos, kombu_redis.QoS):
            return  # another broker: its own protocol returns a dead consumer's tasks
        interval = renewal_interval(c.app.conf.broker_transport_options or {})
        self.tref = c.timer.call_repeatedly(interval, self.renew, (qos,), priority=10)

    def renew(self, qos: Any) -> None:
        try:
            renew(qos)
        except Exception as error:  # the connection is down: the consumer reconnects by itself
            log.warning("could not renew the leases of held tasks: %r", error)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer, reconnecting at most `RECONNECT_INTERVAL_MAX` seconds apart, and
    surviving the loss of Redis while it holds tasks."""

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=1, interval_step=1, interval_max=RECONNECT_INTERVAL_MAX,
        )
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        keep_pool(getattr(getattr(self, "task_consumer", None), "channel", None))
        super().on_connection_error_after_connected(exc)


def keep_pool(channel: Any) -> None:
    """Let a Redis channel reach Redis after its connection has been collected.

    On a lost connection Celery detaches the transport before it closes the channel, and
    kombu's Redis channel builds its connection pool afresh from that transport whenever it
    needs one: to put the tasks it holds back in their queue as it closes, or to acknowledge a
    task that finishes after the loss. Without a transport that raises AttributeError,
    "Unrecoverable error", and the worker exits (1 Redis outage in 8, measured with kombu
    5.7). Pinned to the parameters it has now, those late calls reach Redis, or fail as the
    connection errors that everybody handles."""
    if isinstance(channel, kombu_redis.Channel) and getattr(channel.connection, "client", None) is not None:
        params = {flag: channel._connparams(asynchronous=flag) for flag in (False, True)}
        channel._get_pool = lambda asynchronous=False: redis.ConnectionPool(**params[asynchronous])  # type: ignore[method-assign]
