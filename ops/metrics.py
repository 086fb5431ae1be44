"""Every Prometheus metric of GraphSpace, and how each process serves them.

Where each number is counted and where it is read (docs/operating.md lists what they mean):

- the bridge counts events consumed, rejected and submitted, and its committed offsets; it
  serves them itself on BRIDGE_METRICS_PORT (`serve()`, a small HTTP server thread);
- the Celery worker counts notifications persisted and broadcast, task retries and failures,
  and digest emails sent; its main process serves them on WORKER_METRICS_PORT;
- the web app serves its own on /metrics (ops/web_metrics.py), with the outbox's backlog
  that the host adds (graphspace/producer.py: OutboxBacklog).

Celery's prefork pool runs tasks in forked child processes, whose counters a server in the
parent would never see. So the worker uses prometheus-client's multiprocess mode: every
process writes its values into files under PROMETHEUS_MULTIPROC_DIR, and the parent's server
adds them up. A worker started with that variable set uses its folder (empty at start);
otherwise it makes a temporary one, removed when it exits (or, after a SIGKILL, by the next
worker to start). Other processes keep the plain in-process registry.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, multiprocess, start_http_server, values

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The worker's own folder is named after its process id: <prefix><pid>-<random>.
FOLDER_PREFIX = "graphspace-worker-metrics-"


def is_celery_worker(argv: Sequence[str]) -> bool:
    """`celery ... worker ...` (scripts/process.sh worker), also as `python -m celery`."""
    if not argv:
        return False
    program = Path(argv[0])
    launched_by_celery = program.name == "celery" or program.parent.name == "celery"
    return launched_by_celery and "worker" in argv[1:]


def _use_multiprocess_mode_in_the_worker() -> None:
    if not is_celery_worker(sys.argv):
        return
    if MULTIPROC_ENV not in os.environ:
        remove_folders_of_dead_workers(Path(tempfile.gettempdir()))
        owner = os.getpid()
        folder = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{owner}-")
        os.environ[MULTIPROC_ENV] = folder

        def remove() -> None:
            # The pool's children inherit this handler; only the process that made the
            # folder may remove it.
            if os.getpid() == owner:
                shutil.rmtree(folder, ignore_errors=True)

        atexit.register(remove)
    # prometheus-client picks its value class from the environment when it is first imported,
    # and the celery command imports it before any of our code (flower's command plugin does):
    # switch to the multiprocess class before the metrics below are made.
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def remove_folders_of_dead_workers(parent: Path) -> None:
    """A worker killed with SIGKILL never removes its folder: the next one to start does.
    A folder named after this very process is stale too: a restarted container's worker is
    process 1 again (process.sh execs celery)."""
    for folder in parent.glob(f"{FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_use_multiprocess_mode_in_the_worker()

# --- The bridge (kafka_bridge/loop.py) ----------------------------------------------------
# `topic` is the logical topic, owner or group, whatever the topic is called on the broker.
events_consumed = Counter(
    "graphspace_bridge_events_consumed", "Messages the bridge read from Kafka, valid or not.", ["topic"]
)
events_rejected = Counter(
    "graphspace_bridge_events_rejected",
    "Messages that are not a valid event: logged with their position, committed, never persisted.",
    ["topic"],
)
events_submitted = Counter(
    "graphspace_bridge_events_submitted", "Valid events the Celery broker accepted in a persist task.", ["topic"]
)
batches_submitted = Counter("graphspace_bridge_batches_submitted", "Persist tasks the Celery broker accepted.")
batches_resubmitted = Counter(
    "graphspace_bridge_batches_resubmitted",
    "Batches submitted again because no worker confirmed them stored while the queue was empty "
    "(a task lost by a worker killed as it took it; kafka_bridge/confirmations.py).",
)
submit_failures = Counter(
    "graphspace_bridge_submit_failures",
    "Times the Celery broker refused a batch (the bridge pauses its partitions, keeps polling and retries).",
)
# Kafka's own names here: a position belongs to a topic and partition on the broker. The
# `mostrecent` modes only matter if the bridge is run with PROMETHEUS_MULTIPROC_DIR set.
committed_offset = Gauge(
    "graphspace_bridge_committed_offset",
    "The next offset the consumer group will read, as this bridge last committed it.",
    ["topic", "partition"],
    multiprocess_mode="mostrecent",
)
consumer_lag = Gauge(
    "graphspace_bridge_lag",
    "Messages between the committed offset and the end of the partition (the broker's high "
    "watermark from the latest fetch).",
    ["topic", "partition"],
    multiprocess_mode="mostrecent",
)
bridge_heartbeat = Gauge(
    "graphspace_bridge_heartbeat_timestamp_seconds",
    "When the bridge's loop last turned (Unix time), busy or idle.",
    multiprocess_mode="mostrecent",
)
# A bridge that waits for Redis or the dead-letter topic still turns and beats: these tell
# waiting (paused, no progress) from idle (not paused, nothing to read).
bridge_paused = Gauge(
    "graphspace_bridge_paused",
    "1 while the bridge holds a batch it cannot hand on (its partitions paused, still polling), else 0.",
    multiprocess_mode="mostrecent",
)
bridge_held_messages = Gauge(
    "graphspace_bridge_held_messages",
    "Messages in the batch the bridge holds while it cannot hand it on (0 when not paused).",
    multiprocess_mode="mostrecent",
)
bridge_last_progress = Gauge(
    "graphspace_bridge_last_progress_timestamp_seconds",
    "When the bridge last committed a batch (Unix time; its start until the first commit).",
    multiprocess_mode="mostrecent",
)
batches_dropped = Counter(
    "graphspace_bridge_batches_dropped",
    "Held batches given up uncommitted because their partitions were revoked (their new owner reads them again).",
)
dead_letters_kept = Counter(
    "graphspace_bridge_dead_letters",
    "Rejected messages kept as dead letters: place=topic (the dead-letter topic) or place=table "
    "(notification_dead_letter, when the topic refused them for good, e.g. too large).",
    ["place"],
)
dead_letter_failures = Counter(
    "graphspace_bridge_dead_letter_failures",
    "Times a batch's rejected messages could be kept neither on the topic nor in the table (retried, paused).",
)

# --- The worker (tasks/) ---------------------------------------------------------------
notifications_persisted = Counter(
    "graphspace_notifications_persisted", "Notification rows created (a redelivered event creates none).", ["topic"]
)
notifications_broadcast = Counter(
    "graphspace_notifications_broadcast", "Live messages sent to users' open pages over Channels."
)
task_retries = Counter("graphspace_task_retries", "Celery task retries after a transient error.", ["task"])
task_failures = Counter("graphspace_task_failures", "Celery tasks that failed for good (logged with their payload).", ["task"])
digest_emails_sent = Counter("graphspace_digest_emails_sent", "Digest emails handed to the mail server.")

# --- The relay (graphspace/producer.py: Relay) ------------------------------------------
relay_published = Counter("graphspace_relay_events_published", "Outbox events the broker acknowledged (then deleted).")
relay_failures = Counter(
    "graphspace_relay_failures", "Batches the broker did not acknowledge in full (kept in the outbox and retried)."
)
relay_heartbeat = Gauge(
    "graphspace_relay_heartbeat_timestamp_seconds", "When the relay's loop last turned (Unix time).",
    multiprocess_mode="mostrecent",
)


def registry() -> CollectorRegistry:
    """What this process's /metrics shows: its own metrics, or in multiprocess mode (the
    worker) the sum over every process writing into PROMETHEUS_MULTIPROC_DIR."""
    if MULTIPROC_ENV not in os.environ:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


def process_ended(pid: int) -> None:
    """A pool process exited: drop its live gauges (its counters stay in the sums)."""
    if MULTIPROC_ENV in os.environ:
        multiprocess.mark_process_dead(pid)


def serve(port: int, host: str = "127.0.0.1") -> bool:
    """Serve /metrics on host:port from a daemon thread; port 0 turns it off.

    A port already taken (two bridges on one machine) is logged and the process goes on
    without metrics: counting is never a reason to stop consuming.
    """
    if not port:
        return False
    try:
        start_http_server(port, addr=host, registry=registry())
    except OSError as error:
        log.warning("metrics not served on %s:%d: %s", host, port, error)
        return False
    log.info("metrics served on http://%s:%d/metrics", host, port)
    return True
