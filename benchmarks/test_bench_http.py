"""The site under concurrent clients: the unread count and the first page over real HTTP,
through daphne, with 1 and 20 clients at once. Prints errors (any status >= 500) and latency
percentiles; asserts only that every answer was correct."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import requests
from django.conf import settings
from django.test import Client

from benchmarks.record import record
from graphspace.models import User
from notifications.events import new_event
from notifications.persist import persist_events
from tests.conftest import People

REQUESTS_PER_CLIENT = 100


def session_cookie(user: User) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def hammer(url: str, cookies: dict[str, str], clients: int) -> tuple[int, int, list[float]]:
    """`clients` threads, each with its own keep-alive session, REQUESTS_PER_CLIENT requests
    each. Returns (answers, server errors, latencies in ms)."""
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
            for _ in range(REQUESTS_PER_CLIENT):
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


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


def test_bench_count_and_first_page_under_concurrent_clients(people: People, web: str, transactional_db: Any) -> None:
    persist_events([new_event("owner", {
        "owner_email": people.bob.email, "message": f"New graph G{n} uploaded.", "resource": "graph",
        "resource_id": n, "resource_name": f"G{n}", "type": "upload",
    }) for n in range(200)])
    cookies = session_cookie(people.bob)
    # Correct answers first: the count is bob's.
    assert requests.get(f"{web}/api/v1/notifications/count", cookies=cookies, timeout=10).json()["unread_count"] == 200
    print()
    for name, path in (("/count", "/api/v1/notifications/count"), ("first page", "/api/v1/notifications/")):
        for clients in (1, 20):
            answers, errors, ms = hammer(f"{web}{path}", cookies, clients)
            print(f"{name:>10}, {clients:>2} clients: {answers} requests, {errors} HTTP 5xx, "
                  f"p50 {statistics.median(ms):.1f} ms, p99 {pct(ms, 99):.1f} ms")
            baseline = {("/count", 1): "48 ms p99", ("first page", 1): "55 ms p99",
                        ("/count", 20): "406 of 2,000 HTTP 500s; 526 ms p99",
                        ("first page", 20): "728 of 2,000 HTTP 500s; 732 ms p99"}[(name, clients)]
            target = {("/count", 1): "<= 10 ms p99", ("first page", 1): "<= 20 ms p99"}.get((name, clients),
                                                                                          "0 errors; <= 100 ms p99")
            record("http", f"{name} over HTTP (daphne), {clients} client(s)",
                   f"{errors} of {answers} HTTP 5xx; p50 {statistics.median(ms):.1f} / p99 {pct(ms, 99):.1f} ms",
                   baseline=baseline, target=target)
