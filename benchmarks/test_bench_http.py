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
each of 20 makes REQUESTS_PER_CLIENT (BENCH_HTTP_REQUESTS overrides it), after a first burst of
WARM_UP each that is printed but not recorded (it grows the database pools). Each line also says the
load average before it and the CPU each part spent per request, read from /proc: the web
processes' (all workers), PostgreSQL's (the postmaster and its backends) and the load
generator's. The server's and the database's move less with the machine's load than the
latencies do (docs/web.md).

BENCH_HTTP_PYSPY=DIR records each 20-client run of the web workers with py-spy (only the thread
holding the GIL, collapsed stacks in DIR/<figure>-<pid>.txt) for reading where the time goes.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import requests
import uvloop
from django.conf import settings
from django.test import Client

from benchmarks.record import record
from graphspace import actions
from graphspace.models import User
from notifications.events import new_event
from notifications.persist import persist_events
from tests.conftest import People

REQUESTS_PER_CLIENT = int(os.environ.get("BENCH_HTTP_REQUESTS", "100"))
ONE_CLIENT_REQUESTS = 500
WARM_UP = 20

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


# --- CPU of the server's processes, from /proc ------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name is in parentheses and may hold spaces: split after it.
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def listening_pids(port: int) -> set[int]:
    """The processes holding a socket that listens on `port` (the web supervisor and its
    workers; PostgreSQL's postmaster). Empty where /proc does not let us look."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    found = set()
    for pid in _pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    found.add(pid)
                    break
        except OSError:
            continue
    return found


def tree_cpu(roots: set[int]) -> float:
    """CPU seconds of `roots` and all their descendants, the ended ones included (a parent's
    cutime/cstime holds its reaped children's)."""
    stats = {pid: st for pid in _pids() if (st := _stat(pid)) is not None}
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        children.setdefault(int(st[1]), []).append(pid)
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        st = stats[pid]
        # After ")": state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based.
        total += int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])
        todo += children.get(pid, [])
    return total / TICK


@contextmanager
def pyspy(pids: set[int], name: str) -> Iterator[None]:
    """py-spy record of each web worker while the block runs, if BENCH_HTTP_PYSPY names a folder."""
    folder = os.environ.get("BENCH_HTTP_PYSPY")
    if not folder:
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    recorders = [subprocess.Popen([str(spy), "record", "--pid", str(pid), "--gil", "--rate", "500", "--format", "raw",
                                   "--output", f"{folder}/{slug}-{pid}.txt"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for pid in pids]
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for r in recorders:
            r.send_signal(signal.SIGINT)
        for r in recorders:
            r.wait(30)


GENERATORS: dict[str, Callable[[str, dict[str, str], int, int], Result]] = {
    "requests threads": hammer, "asyncio": hammer_async,
}
BASELINE = {("/count", 1): "48 ms p99", ("first page", 1): "55 ms p99",
            ("/count", 20): "406 of 2,000 HTTP 500s; 526 ms p99",
            ("first page", 20): "728 of 2,000 HTTP 500s; 732 ms p99"}
TARGET = {("/count", 1): "<= 10 ms p99", ("first page", 1): "<= 20 ms p99", ("first page of 20 clusters", 1): "<= 20 ms p99"}
PAGE = "/api/v1/notifications/"


def twenty_clusters(people: People) -> None:
    """carol's first page as a busy reader sees it: 20 clusters of both topics and two groups,
    of one notification (shown as itself) or of three (a preview of names), about 10 KB."""
    events = []
    kinds = [("owner", t, r, None) for t in ("create", "update", "delete") for r in ("graph", "layout", "group")]
    kinds.append(("owner", "upload", "graph", None))
    for name in ("Lab", "Other"):
        group = actions.create_group(people.alice, name=name)
        actions.add_member(people.alice, group, people.carol)
        kinds += [("group", t, r, group.id) for t, r in (("share", "graph"), ("share", "layout"), ("unshare", "graph"),
                                                          ("unshare", "layout"), ("add", "group_member"))]
    for k, (topic, kind, thing, group_id) in enumerate(kinds):
        batch = []
        for i in range(1 if k % 2 else 3):
            n = k * 10 + i
            fields = {"actor_email": people.alice.email, "message": f"{kind} {thing} N{n}", "resource": thing,
                      "resource_id": n, "resource_name": f"N{n}", "type": kind}
            fields.update({"owner_email": people.carol.email} if topic == "owner" else
                          {"group_id": group_id, "owner_email": people.alice.email})
            batch.append(new_event(topic, fields))
        events.append(batch)
    for batch in events:
        persist_events(batch)


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
    twenty_clusters(people)
    carol = session_cookie(people.carol)
    page = requests.get(f"{web}{PAGE}", cookies=carol, timeout=10).json()
    assert len(page["clusters"]) == 20 and page["next_cursor"] is None
    web_pids = listening_pids(int(urlsplit(web).port or 80))
    # The workers: the supervisor's children that hold the socket.
    workers = {pid for pid in web_pids if (st := _stat(pid)) is not None and int(st[1]) in web_pids}
    db_pids = listening_pids(int(settings.DATABASES["default"]["PORT"] or 5432))
    print()
    figures = [("/count", "/api/v1/notifications/count", cookies, GENERATORS), ("first page", PAGE, cookies, GENERATORS),
               ("first page of 20 clusters", PAGE, carol, {"asyncio": hammer_async})]
    for name, path, cookies, generators in figures:
        for clients in (1, 20):
            per_client = ONE_CLIENT_REQUESTS if clients == 1 else REQUESTS_PER_CLIENT
            if clients > 1:
                # The first burst grows each process's pool from its 2 connections to 10 (and
                # prepares the statements on each new one): printed, but the figures are of the
                # steady state that follows.
                answers, errors, ms = hammer_async(f"{web}{path}", cookies, clients, WARM_UP)
                print(f"{name:>10}, {clients:>2} clients, first burst ({WARM_UP} each, not in the table): {errors} HTTP 5xx, "
                      f"p50 {statistics.median(ms):.1f} ms, p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms")
            for generator, run in generators.items():
                load = os.getloadavg()[0]
                figure = f"{name}, {clients} clients, {generator}"
                with pyspy(workers if clients > 1 else set(), figure):
                    cpu, server, db = cpu_seconds(), tree_cpu(web_pids), tree_cpu(db_pids)
                    answers, errors, ms = run(f"{web}{path}", cookies, clients, per_client)
                    server, db = tree_cpu(web_pids) - server, tree_cpu(db_pids) - db
                    client_cpu = (cpu_seconds() - cpu) / answers * 1000
                cpu_note = (f"CPU ms/request: server {server / answers * 1000:.2f}, PostgreSQL {db / answers * 1000:.2f}, "
                            f"client {client_cpu:.2f}")
                print(f"{name:>10}, {clients:>2} clients, {generator:>16}: {answers} requests, {errors} HTTP 5xx, "
                      f"p50 {statistics.median(ms):.1f} ms, p99 {pct(ms, 99):.1f} ms "
                      f"(load average {load:.1f}; {cpu_note})")
                record("http", f"{name} over HTTP (uvicorn), {clients} client(s), {generator}",
                       f"{errors} of {answers} HTTP 5xx; p50 {statistics.median(ms):.1f} / p99 {pct(ms, 99):.1f} ms",
                       baseline=BASELINE.get((name, clients), ""), target=TARGET.get((name, clients), "0 errors; <= 100 ms p99"),
                       note=f"load average {load:.1f}; {cpu_note}")
