"""What the bridge's loop reports while it works: Prometheus counters and the heartbeat file."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka.structs import TopicPartition
from prometheus_client import REGISTRY

from kafka_bridge.loop import Bridge, Heartbeat, claimed_event_id
from notifications.events import Event
from ops.metrics import FOLDER_PREFIX, is_celery_worker, remove_folders_of_dead_workers
from tests.unit.test_bridge_loop import OWNER, TOPICS, MemoryConsumer, Record, Submitter, upload


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_step_counts_what_it_consumed_rejected_submitted_and_committed() -> None:
    before = {
        name: sample(f"graphspace_bridge_events_{name}_total", topic="owner")
        for name in ("consumed", "rejected", "submitted")
    }
    consumer = MemoryConsumer([{OWNER: [Record(40, upload(0)), Record(41, b"{oops"), Record(42, upload(2))]}])
    Bridge(consumer, Submitter(), TOPICS).step()
    # The counters name the logical topic; the position names the partition on the broker.
    assert sample("graphspace_bridge_events_consumed_total", topic="owner") - before["consumed"] == 3
    assert sample("graphspace_bridge_events_rejected_total", topic="owner") - before["rejected"] == 1
    assert sample("graphspace_bridge_events_submitted_total", topic="owner") - before["submitted"] == 2
    assert sample("graphspace_bridge_committed_offset", topic="t-owner", partition="0") == 43


def test_the_lag_comes_from_the_consumers_high_watermark_when_it_has_one() -> None:
    class Fetching(MemoryConsumer):
        def highwater(self, partition: TopicPartition) -> int | None:
            return 60

    consumer = Fetching([{OWNER: [Record(50, upload(0))]}])
    Bridge(consumer, Submitter(), TOPICS).step()
    assert sample("graphspace_bridge_lag", topic="t-owner", partition="0") == 9


def test_a_rejection_keeps_the_event_id_the_message_claimed() -> None:
    value = json.dumps({"event_id": "0b7e3c2e-5a55-4f43-9f0e-8f1a4f1d8e21", "type": "upload"}).encode()
    assert claimed_event_id(value) == "0b7e3c2e-5a55-4f43-9f0e-8f1a4f1d8e21"
    assert claimed_event_id(b"{oops") is None
    assert claimed_event_id(b"\xff\xfe") is None
    assert claimed_event_id(b"[1, 2]") is None
    assert claimed_event_id(None) is None

    consumer = MemoryConsumer([{OWNER: [Record(0, value)]}])
    bridge = Bridge(consumer, Submitter(), TOPICS)
    bridge.step()
    assert bridge.stats.rejections[0].event_id == "0b7e3c2e-5a55-4f43-9f0e-8f1a4f1d8e21"


def test_the_heartbeat_touches_its_file_at_most_once_a_second(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    clock = Clock()
    heartbeat = Heartbeat(path, clock=clock)
    heartbeat.beat()
    assert path.exists()
    os.utime(path, (1, 1))
    clock.now += 0.5
    heartbeat.beat()
    # Too soon: the file keeps its old time.
    assert path.stat().st_mtime == 1
    clock.now += 0.6
    heartbeat.beat()
    assert path.stat().st_mtime > 1


def test_the_loop_beats_while_idle_and_while_the_celery_broker_is_down(tmp_path: Path) -> None:
    beats: list[dict[str, Any]] = []

    class Recording(Heartbeat):
        def beat(self, status: Mapping[str, Any] | None = None) -> None:
            beats.append(dict(status or {}))

    # Idle: three empty polls, then stop.
    consumer = MemoryConsumer([])
    bridge = Bridge(consumer, Submitter(), TOPICS, heartbeat=Recording(tmp_path / "hb"))
    polls = 0
    original_poll = consumer.poll

    def poll_three_times(timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        nonlocal polls
        polls += 1
        if polls == 3:
            bridge.request_shutdown()
        return original_poll(timeout_ms, max_records)

    consumer.poll = poll_three_times  # type: ignore[method-assign]
    bridge.run()
    assert len(beats) == 3
    assert {b["state"] for b in beats} == {"idle"}

    # Redis down: the loop turns (one poll per retry) and beats, saying it is paused with
    # the batch it holds, so a supervisor does not restart a waiting bridge and an operator
    # can tell it from an idle one.
    beats.clear()
    consumer = MemoryConsumer([{OWNER: [Record(0, upload(0)), Record(1, upload(1))]}])
    submit = Submitter(failures=4)
    bridge = Bridge(consumer, submit, TOPICS, heartbeat=Recording(tmp_path / "hb"))
    original_submit = bridge.submit

    def stop_once_accepted(events: Sequence[Event]) -> str:
        task = original_submit(events)
        bridge.request_shutdown()
        return task

    bridge.submit = stop_once_accepted
    bridge.run()
    assert [b["state"] for b in beats] == ["idle", "paused", "paused", "paused", "paused"]
    assert [b["held_messages"] for b in beats] == [0, 2, 2, 2, 2]
    assert beats[1]["paused_since"] is not None
    assert len(consumer.commits) == 1


def test_the_paused_gauge_and_the_last_progress_tell_stuck_from_idle() -> None:
    now = [1000.0]
    consumer = MemoryConsumer([{OWNER: [Record(0, upload(0))]}])
    bridge = Bridge(consumer, Submitter(failures=2), TOPICS, clock=lambda: now[0])
    assert sample("graphspace_bridge_last_progress_timestamp_seconds") == 1000.0
    now[0] = 1010.0
    bridge.step()
    assert sample("graphspace_bridge_paused") == 1
    assert sample("graphspace_bridge_held_messages") == 1
    assert bridge.status()["state"] == "paused"
    now[0] = 1020.0
    bridge.step()
    # Still stuck: no progress since the start.
    assert sample("graphspace_bridge_last_progress_timestamp_seconds") == 1000.0
    now[0] = 1030.0
    bridge.step()
    assert sample("graphspace_bridge_paused") == 0
    assert sample("graphspace_bridge_held_messages") == 0
    assert sample("graphspace_bridge_last_progress_timestamp_seconds") == 1030.0
    assert bridge.status() == {
        "state": "busy", "pid": os.getpid(), "updated_at": 1030.0, "last_progress_at": 1030.0,
        "paused_since": None, "held_messages": 0,
    }
    bridge.step()
    assert bridge.status()["state"] == "idle"


def test_the_heartbeat_file_is_json_saying_what_the_loop_does(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    Heartbeat(path).beat({"state": "paused", "held_messages": 3})
    assert json.loads(path.read_text()) == {"state": "paused", "held_messages": 3}
    # Renamed into place: no partial file is left beside it.
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat"]


def test_an_unwritable_heartbeat_file_never_stops_the_loop(tmp_path: Path) -> None:
    heartbeat = Heartbeat(tmp_path / "missing-folder" / "heartbeat")
    heartbeat.beat()
    assert heartbeat.failing


@pytest.mark.parametrize(
    ("argv", "worker"),
    [
        (["/app/.venv/bin/celery", "-A", "graphspace", "worker", "-l", "INFO"], True),
        (["/usr/lib/python3/site-packages/celery/__main__.py", "-A", "graphspace", "worker"], True),
        (["/app/.venv/bin/celery", "-A", "graphspace", "beat"], False),
        (["/app/.venv/bin/celery", "-A", "graphspace", "inspect", "ping"], False),
        (["manage.py", "kafka_bridge"], False),
        ([], False),
    ],
)
def test_only_a_celery_worker_turns_on_multiprocess_metrics(argv: list[str], worker: bool) -> None:
    assert is_celery_worker(argv) is worker


def test_a_starting_worker_removes_the_metrics_folders_of_killed_workers(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    folders = {
        "dead": tmp_path / f"{FOLDER_PREFIX}{dead.pid}-abc123",
        "alive": tmp_path / f"{FOLDER_PREFIX}{os.getppid()}-def456",
        "this process": tmp_path / f"{FOLDER_PREFIX}{os.getpid()}-ghi789",
        "someone else's": tmp_path / f"{FOLDER_PREFIX}x6gxzh77",
    }
    for folder in folders.values():
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"")
    remove_folders_of_dead_workers(tmp_path)
    assert {name for name, folder in folders.items() if folder.exists()} == {"alive", "someone else's"}
