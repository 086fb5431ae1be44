"""Real services for the integration tests.

PostgreSQL, Redis and the Kafka-protocol broker are started by `scripts/services.sh`
(`make test` does it). This file starts the project's own processes against them, through
the same `scripts/process.sh` the Procfile uses: a Celery worker, the Kafka bridge, and the
web server behind TLS. Each test run gets topics, a consumer group and a Redis database of
its own, so runs never read each other's events.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
RUN_ID = uuid.uuid4().hex[:8]
TEST_REDIS_DB = 13
TEST_CHANNELS_DB = 12


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A project process started through scripts/process.sh, its output in test-artifacts/."""

    def __init__(self, name: str, env: dict[str, str], label: str | None = None) -> None:
        self.name = name
        self.env = env
        self.label = label or name
        self.log_path = ARTIFACTS / f"{self.label}-{RUN_ID}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, ready: str | None = None, timeout: float = 40.0) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.starts += 1
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "process.sh"), self.name],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )
        if ready:
            def seen() -> bool:
                assert self.proc is not None and self.proc.poll() is None, f"{self.label} exited; see {self.log_path}"
                return ready in self.log_path.read_bytes()[offset:].decode("utf-8", "replace")
            wait_for(seen, timeout, 0.1, f"{self.label} to log {ready!r}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def kafka_topics() -> dict[str, str]:
    """Topics of this run; the in-process producer and every started process use them."""
    from kafka_bridge.backend import create_topics

    topics = {"owner": f"t{RUN_ID}-owner", "group": f"t{RUN_ID}-group", "watching": f"t{RUN_ID}-watching"}
    create_topics(topics.values())
    settings.KAFKA_TOPICS = topics
    return topics


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """A Redis database of the tests' own for Celery, and another for the channel layer
    (the tests' web process, worker and in-process consumers all share it)."""
    base = settings.CELERY_BROKER_URL.rsplit("/", 1)[0]
    url = f"{base}/{TEST_REDIS_DB}"
    channels_url = f"{base}/{TEST_CHANNELS_DB}"
    # Two suites at once on one machine (a developer's and a helper's) must not read each
    # other's tasks or channel messages: a queue and a channel prefix of this run's own. The
    # databases are not flushed (that wiped a concurrent run's channel groups mid-test); this
    # run's own keys are removed when it ends.
    layer = settings.CHANNEL_LAYERS["default"]
    hosts = [{**layer["CONFIG"]["hosts"][0], "address": channels_url}]
    settings.CHANNEL_LAYERS = {"default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": hosts, "prefix": f"t{RUN_ID}"}}}
    settings.CELERY_TASK_DEFAULT_QUEUE = f"t{RUN_ID}"
    yield url
    for db_url in (url, channels_url):
        client = redis.Redis.from_url(db_url)
        keys = list(client.scan_iter(match=f"*t{RUN_ID}*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="session")
def process_env(django_db_setup: None, django_db_blocker: Any, kafka_topics: dict[str, str], broker_url: str) -> dict[str, str]:
    """The environment of a process that works on this run's test database and topics."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "graphspace.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "KAFKA_TOPIC_OWNER": kafka_topics["owner"],
        "KAFKA_TOPIC_GROUP": kafka_topics["group"],
        "KAFKA_TOPIC_WATCHING": kafka_topics["watching"],
        "KAFKA_CONSUMER_GROUP": f"t{RUN_ID}-notifications",
        "KAFKA_DEAD_LETTER_TOPIC": f"t{RUN_ID}-dead-letter",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "CELERY_BROKER_URL": broker_url,
        "CHANNELS_REDIS_URL": settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"],
        "CHANNELS_PREFIX": f"t{RUN_ID}",
        "CELERY_QUEUE": f"t{RUN_ID}",
        "CELERY_RESULT_BACKEND": "django-db",
        "CELERY_CONCURRENCY": "2",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture(scope="session")
def worker(process_env: dict[str, str]) -> Iterator[Process]:
    proc = Process("worker", process_env)
    proc.start(ready="ready.")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def bridge(process_env: dict[str, str], worker: Process) -> Iterator[Process]:
    proc = Process("bridge", process_env)
    # Joined the group and owns the partitions: events produced from now on are read at once.
    proc.start(ready="partitions assigned: t")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def web(process_env: dict[str, str]) -> Iterator[str]:
    """The web process (uvicorn: HTTP and websockets) on a port of its own."""
    port = free_port()
    proc = Process("web", {**process_env, "WEB_PORT": str(port)}, label="web")
    proc.start(ready="Listening on")
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(scope="session")
def relay(process_env: dict[str, str]) -> Iterator[Process]:
    """The outbox relay: publishes what actions wrote to the outbox (graphspace/producer.py)."""
    proc = Process("relay", {**process_env, "RELAY_METRICS_PORT": "0"})
    proc.start(ready="relay_outbox: publishing")
    yield proc
    proc.stop()


@pytest.fixture
def pipeline(relay: Process, bridge: Process, worker: Process, transactional_db: None) -> None:
    """The whole pipeline up (relay, bridge, worker), with a database whose commits the
    processes can see."""
