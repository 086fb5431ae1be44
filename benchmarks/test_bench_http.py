"""The site under concurrent clients: the unread count and the first page over real HTTP,
through the web process as `scripts/process.sh web` starts it (uvicorn, WEB_WORKERS processes),
with 1 and 20 clients at once. Prints errors (any status >= 500) and latency percentiles;
asserts only that every answer was correct.

Each figure is taken with two load generators, both on this machine's 2 cores beside the
server (docs/web.md):
- `requests`, one thread and keep-alive session per client, as the issue's baseline was taken.
  It costs about 1 ms of CPU per request and holds the GIL while it parses, so with 20 threads
  it is a good part of the load it measures.
- asyncio: one event loop (uvloop) holding one keep-alive connection per client, each sending
  its next request when the last answer is in (the same closed loop), answers parsed by
  httptools (uvicorn's C parser). About a tenth of the CPU per request, so the figure is closer
  to what the server does for clients on other machines.
One client makes ONE_CLIENT_REQUESTS requests (a p99 of 100 samples would be their maximum);
each of 20 makes REQUESTS_PER_CLIENT. Each line also says the load average before it, and the
load generator's own CPU per request.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httptools
import requests
import uvloop
from django.conf import settings
from django.test import Client

from benchmarks.record import record
from graphspace.models import User
from notifications.events import new_event
from notifications.persist import persist_events
from tests.conftest import People

REQUESTS_PER_CLIENT = 100
ONE_CLIENT_REQUESTS = 500

Result = tuple[int, int, list[float]]


def session_cookie(user: User) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def hammer(url: str, cookies: dict[str, str], clients: int, per_client: int = REQUESTS_PER_CLIENT) -> Result:
    """`clients` threads, each with its own keep-alive `requests` session, `per_client`
    requests each. Returns (answers, server errors, latencies in ms)."""
    latencies: list[float] = []
    errors = [0]
    answers = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client() -> None:
        with requests.Session() as s:
            s.cookies.update(cookies)
            s.headers["Accept"] = "application/json"
            mine: list[float] = []
            bad = 0
            start.wait()
            for _ in range(per_client):
                t = time.perf_counter()
                r = s.get(url, timeout=30)
                mine.append((time.perf_counter() - t) * 1000)
                bad += r.status_code >= 500
            with lock:
                latencies.extend(mine)
                errors[0] += bad
                answers[0] += len(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers[0], errors[0], latencies


class _KeepAlive(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: send a request, wait for its whole answer."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.answer: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's, not a subclass of asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"connection closed: {exc}"))

    async def get(self, request: bytes) -> int:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await asyncio.wait_for(self.answer, 30)


def hammer_async(url: str, cookies: dict[str, str], clients: int, per_client: int = REQUESTS_PER_CLIENT) -> Result:
    """The same closed loop as `hammer`, from one uvloop event loop."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    request = (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: application/json\r\n"
               f"Cookie: {cookie}\r\n\r\n").encode()

    async def run() -> Result:
        loop = asyncio.get_running_loop()
        connections = [(await loop.create_connection(_KeepAlive, host, port))[1] for _ in range(clients)]
        latencies: list[float] = []
        errors = 0

        async def client(connection: _KeepAlive) -> None:
            nonlocal errors
            for _ in range(per_client):
                t = time.perf_counter()
                status = await connection.get(request)
                latencies.append((time.perf_counter() - t) * 1000)
                errors += status >= 500

        try:
            await asyncio.gather(*(client(c) for c in connections))
        finally:
            for c in connections:
                if c.transport is not None:
                    c.transport.close()
        return len(latencies), errors, latencies

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run())


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


GENERATORS: dict[str, Callable[[str, dict[str, str], int, int], Result]] = {
    "requests threads": hammer, "asyncio": hammer_async,
}
BASELINE = {("/count", 1): "48 ms p99", ("first page", 1): "55 ms p99",
            ("/count", 20): "406 of 2,000 HTTP 500s; 526 ms p99",
            ("first page", 20): "728 of 2,000 HTTP 500s; 732 ms p99"}
TARGET = {("/count", 1): "<= 10 ms p99", ("first page", 1): "<= 20 ms p99"}


def test_bench_count_and_first_page_under_concurrent_clients(people: People, web: str, transactional_db: Any) -> None:
    persist_events([new_event("owner", {
        "owner_email": people.bob.email, "message": f"New graph G{n} uploaded.", "resource": "graph",
        "resource_id": n, "resource_name": f"G{n}", "type": "upload",
    }) for n in range(200)])
    cookies = session_cookie(people.bob)
    # Correct answers first: the count is bob's, from every worker process.
    for _ in range(int(os.environ.get("WEB_WORKERS", "2")) * 2):
        assert requests.get(f"{web}/api/v1/notifications/count", cookies=cookies, timeout=10).json()["unread_count"] == 200
        assert requests.get(f"{web}/api/v1/notifications/", cookies=cookies, timeout=10).json()["unread_count"] == 200
    print()
    for name, path in (("/count", "/api/v1/notifications/count"), ("first page", "/api/v1/notifications/")):
        for clients in (1, 20):
            per_client = ONE_CLIENT_REQUESTS if clients == 1 else REQUESTS_PER_CLIENT
            for generator, run in GENERATORS.items():
                load = os.getloadavg()[0]
                cpu = cpu_seconds()
                answers, errors, ms = run(f"{web}{path}", cookies, clients, per_client)
                client_cpu = (cpu_seconds() - cpu) / answers * 1000
                print(f"{name:>10}, {clients:>2} clients, {generator:>16}: {answers} requests, {errors} HTTP 5xx, "
                      f"p50 {statistics.median(ms):.1f} ms, p99 {pct(ms, 99):.1f} ms "
                      f"(load average {load:.1f}; client CPU {client_cpu:.2f} ms/request)")
                record("http", f"{name} over HTTP (uvicorn), {clients} client(s), {generator}",
                       f"{errors} of {answers} HTTP 5xx; p50 {statistics.median(ms):.1f} / p99 {pct(ms, 99):.1f} ms",
                       baseline=BASELINE[(name, clients)], target=TARGET.get((name, clients), "0 errors; <= 100 ms p99"),
                       note=f"load average {load:.1f}; client CPU {client_cpu:.2f} ms/request")
