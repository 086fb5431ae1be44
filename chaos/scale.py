"""How big each experiment is: the issue's sizes (`CHAOS_SCALE=full`), or a small run of
a few hundred events that fits in the test suite (the default)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    # Events per crash experiment, and how long the stream takes (the faults fall inside it).
    stream_events: int
    stream_seconds: float
    # REST actions made while Kafka is down, and before the web process is killed.
    kafka_down_actions: int
    web_kill_actions: int
    # How long Redis and PostgreSQL stay stopped, and the event rate meanwhile.
    outage_seconds: float
    outage_rate: float
    # Groups created, changed and deleted at once.
    deletion_rounds: int
    # Hostile messages and the valid ones interleaved with them.
    hostile_messages: int
    valid_messages: int
    # Events produced with one unstorable event in each 500.
    unstorable_events: int
    # The bridge's Kafka session: a bridge killed -9 holds its partitions this long, and a
    # new one waits half of it to join (Tansu). Production's 6 s at full size; the tests' 2 s
    # in the small run, so that three kills fit in its short stream.
    session_timeout_ms: int = 6000
    # "all stored within 30 s": the promise every recovery is held to.
    recovery_limit: float = 30.0


FULL = Scale(
    "full", stream_events=20_000, stream_seconds=60, kafka_down_actions=50, web_kill_actions=20,
    outage_seconds=20, outage_rate=200, deletion_rounds=200, hostile_messages=10_000, valid_messages=1_000,
    unstorable_events=10_000,
)
SMALL = Scale(
    "small", stream_events=400, stream_seconds=15, kafka_down_actions=10, web_kill_actions=20,
    outage_seconds=5, outage_rate=40, deletion_rounds=20, hostile_messages=300, valid_messages=100,
    unstorable_events=1_000, session_timeout_ms=2000,
)
SCALES = {s.name: s for s in (SMALL, FULL)}


def scale_from_env() -> Scale:
    name = os.environ.get("CHAOS_SCALE", "small").strip().lower() or "small"
    if name not in SCALES:
        raise SystemExit(f"CHAOS_SCALE must be one of {', '.join(SCALES)}, not {name!r}")
    return SCALES[name]
