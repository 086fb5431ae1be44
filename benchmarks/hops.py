"""Where an event's time goes between its commit and its frame: a timestamp per hop, read
after a run from what the processes already say.

- published: the Kafka record's timestamp (the relay's producer stamps it when it sends);
  read back from the topic with a consumer of its own.
- submitted: the bridge's "batch of N events submitted as task T" log line (after Celery's
  broker took it), with every event id of the batch.
- received: the worker's main process took the task from Redis (Celery's "received" line).
- started: the task began in a pool process (its "succeeded in" line less its runtime).
- persisted: the rows are committed, the push not begun (the task's "persisted N events"
  line, less the push_ms it reports when it is written after the push).
- pushed: the push is done (who is listening, broadcast's query, the frames in the channel
  layer): the time of that same line.
- sent: the task ended (the batch confirmed to the bridge, Celery's bookkeeping).
- frame: the bell's socket received the frame (benchmarks/bell.py).

The event ids in the log lines come only with LOG_FORMAT=json (their `extra` fields); with
plain logs there is no breakdown, only the end-to-end figure. Log times are wall-clock
milliseconds; the commit and frame times are converted to the same clock.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.bell import percentile

_SUBMITTED = re.compile(r"batch of \d+ events submitted as task ([0-9a-f-]+)")
HOPS = ("published", "submitted", "received", "started", "persisted", "pushed", "sent", "frame")


def _when(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def _lines(path: Path, offset: int = 0) -> Iterable[dict[str, Any]]:
    with path.open("rb") as log:
        log.seek(offset)
        for raw in log:
            if raw.startswith(b"{"):
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue


def read_logs(bridge_log: Path, worker_log: Path, offsets: tuple[int, int] = (0, 0)) -> dict[str, dict[str, float]]:
    """event id -> {hop: wall-clock seconds} for submitted .. sent, from JSON log lines."""
    submitted: dict[str, tuple[float, str]] = {}
    for line in _lines(bridge_log, offsets[0]):
        message = str(line.get("message", ""))
        found = _SUBMITTED.match(message)
        if found:
            task_id = found.group(1)
            for event_id in line.get("event_ids") or []:
                submitted[str(event_id)] = (_when(str(line["timestamp"])), task_id)
    tasks: dict[str, dict[str, float]] = {}
    persisted: dict[str, float] = {}
    pushed: dict[str, float] = {}
    for line in _lines(worker_log, offsets[1]):
        message = str(line.get("message", ""))
        data = line["data"] if isinstance(line.get("data"), dict) else {}
        at = _when(str(line["timestamp"]))
        if message.startswith("Task tasks.persist_events[") and message.endswith("] received"):
            tasks.setdefault(str(data.get("id")), {})["received"] = at
        elif message.startswith("Task tasks.persist_events[") and " succeeded in " in message:
            task = tasks.setdefault(str(data.get("id")), {})
            task["sent"] = at
            task["started"] = at - float(data.get("runtime") or 0)
        elif message.startswith("persisted "):
            # Logged after the push when the line says how long that took (push_ms).
            stored_at = at - float(line.get("push_ms") or 0) / 1000
            for event_id in line.get("event_ids") or []:
                persisted.setdefault(str(event_id), stored_at)
                if "push_ms" in line:
                    pushed.setdefault(str(event_id), at)
    times: dict[str, dict[str, float]] = {}
    for event_id, (at, task_id) in submitted.items():
        hops = {"submitted": at, **tasks.get(task_id, {})}
        if event_id in persisted:
            hops["persisted"] = persisted[event_id]
        if event_id in pushed:
            hops["pushed"] = pushed[event_id]
        times[event_id] = hops
    return times


def breakdown(committed: Mapping[str, float], hops: Mapping[str, Mapping[str, float]]) -> str:
    """Per hop, p50 / p99 of the time since the commit and of the hop itself (ms)."""
    rows = [f"{'hop':<10} {'since commit p50/p99':>22} {'this hop p50/p99':>20} {'n':>6}"]
    previous = "commit"
    for hop in HOPS:
        since: list[float] = []
        step: list[float] = []
        for event_id, at in committed.items():
            mine = hops.get(event_id, {})
            if hop not in mine:
                continue
            since.append((mine[hop] - at) * 1000)
            before = at if previous == "commit" else mine.get(previous)
            if before is not None:
                step.append((mine[hop] - before) * 1000)
        if not since:
            continue
        since.sort()
        step.sort()
        rows.append(f"{hop:<10} {_pair(since):>22} {_pair(step):>20} {len(since):>6}")
        previous = hop
    return "\n".join(rows)


def _pair(ordered: list[float]) -> str:
    if not ordered:
        return "-"
    return f"{percentile(ordered, 50):.1f} / {percentile(ordered, 99):.1f}"


def worst(committed: Mapping[str, float], hops: Mapping[str, Mapping[str, float]], share: float = 0.02) -> str:
    """The slowest events' hops (the p99's): where their time went, hop by hop, on average."""
    total = sorted(((h["frame"] - committed[e]) * 1000, e) for e, h in hops.items() if "frame" in h and e in committed)
    if not total:
        return ""
    slow = [e for _, e in total[-max(1, math.ceil(len(total) * share)):]]
    parts = []
    previous = "commit"
    for hop in HOPS:
        steps = [hops[e][hop] - (committed[e] if previous == "commit" else hops[e][previous])
                 for e in slow if hop in hops[e] and (previous == "commit" or previous in hops[e])]
        if steps:
            parts.append(f"{hop} +{sum(steps) / len(steps) * 1000:.0f}")
            previous = hop
    return f"slowest {len(slow)} events, mean ms per hop: " + ", ".join(parts)


def published(topic: str, event_ids: set[str], timeout: float = 10.0) -> dict[str, float]:
    """event id -> the record's timestamp (wall-clock seconds), read from the whole topic by
    a consumer outside any group."""
    import time

    from django.conf import settings
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=50)
    found: dict[str, float] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        event_id = str(json.loads(record.value)["event_id"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if event_id in event_ids:
                        found[event_id] = record.timestamp / 1000
    finally:
        consumer.close()
    return found
